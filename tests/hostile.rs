//! The real binary against hostile registries: a fault server written here (no
//! registry sends these answers on purpose) on 127.0.0.1, configured like any
//! private registry. Each admission must be answered within the deadline with the
//! right failure class, nothing bad may be pinned, and the binary's peak RSS
//! (`VmHWM`) must stay bounded while it is fed a 200 MB manifest, endless bodies,
//! oversized configs and tokens, HTML, redirects to loopback and token realms on
//! link-local and loopback addresses.

mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Response, StatusCode, Uri};
use base64::Engine;
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::Digest;

const DEADLINE_SECS: f64 = 3.0;
/// Time allowed on top of the deadline: the request, the engine, the reply.
const SLACK: Duration = Duration::from_millis(1500);
/// How far the peak RSS may rise above the RSS after start while hostile
/// registries send 200 MB and endless bodies: the 32 MiB body budget, the old
/// copy a growing body keeps during its reallocation (up to half again), and
/// freed pages the allocator holds until its 1 s decay. Measured in a debug
/// build: 31 to 59 MiB over seven runs (the peak is bimodal with the scheduling of
/// the 24 concurrent reads). A read that was not bounded would add 200 MB.
const RSS_GROWTH_LIMIT_KB: u64 = 80 * 1024;
const MB: u64 = 1024 * 1024;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A valid single-platform image: (config, manifest).
fn image(config_size_claim: Option<i64>) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config_size_claim.unwrap_or(config.len() as i64),
        },
        "layers": [],
    }))
    .unwrap();
    (config, manifest)
}

/// `total` bytes (or endless with `None`) of `fill`, produced lazily in 64 KiB
/// chunks, `sent` counting what the server produced; `pause` between chunks.
fn lazy_body(total: Option<u64>, fill: u8, sent: Arc<AtomicU64>, pause: Duration) -> Body {
    let chunk = vec![fill; 64 * 1024];
    let stream = futures::stream::unfold(0u64, move |done| {
        let chunk = chunk.clone();
        let sent = sent.clone();
        async move {
            let n = match total {
                Some(t) if done >= t => return None,
                Some(t) => (t - done).min(chunk.len() as u64),
                None => chunk.len() as u64,
            };
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            sent.fetch_add(n, Ordering::SeqCst);
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk[..n as usize].to_vec())),
                done + n,
            ))
        }
    });
    Body::from_stream(stream.boxed())
}

fn respond(status: StatusCode, headers: &[(&str, String)], body: Body) -> Response<Body> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(body).unwrap()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The fault server. Routes by the repository's first segment:
/// - `huge`: a 200 MB manifest with its Content-Length; `chunked`: the same
///   without one; `endless`: a manifest that never ends; `trickle`: one that never
///   ends, slowly;
/// - `html`: a login page for every GET (HEAD answers 200 without a digest);
/// - `nodigest`: HEAD without `Docker-Content-Digest`, a valid manifest on GET;
/// - `bigconfig`: a config descriptor of 2 MiB; `liar`: a config whose blob is
///   endless although its descriptor says a few bytes;
/// - `bigtoken`: a bearer challenge whose realm answers an endless token;
/// - `metadata`: a realm on 169.254.169.254; `localrealm`: a realm on localhost;
/// - `redirect`: a redirect to `localhost` (a name for loopback); `redirect-ip`:
///   to 127.0.0.2.
struct Fault {
    addr: String,
    /// Bytes the lazy bodies produced (read by the client or buffered by TCP).
    sent: Arc<AtomicU64>,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn fault_server() -> Fault {
    let sent = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (s, r, me) = (sent.clone(), requests.clone(), addr.clone());
    let app = Router::new().fallback(move |method: Method, uri: Uri| {
        let (sent, requests, me) = (s.clone(), r.clone(), me.clone());
        async move {
            let path = uri.path().to_string();
            requests.lock().unwrap().push(format!("{method} {path}"));
            let head = method == Method::HEAD;
            let repo = path
                .strip_prefix("/v2/")
                .and_then(|p| p.split('/').next())
                .unwrap_or_default()
                .to_string();
            let (config, manifest) = image(None);
            let none = Duration::ZERO;
            match repo.as_str() {
                _ if path.starts_with("/token-endless") => respond(
                    StatusCode::OK,
                    &[("content-type", "application/json".into())],
                    lazy_body(None, b'a', sent, none),
                ),
                "huge" if head => respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], Body::empty()),
                "huge" => respond(
                    StatusCode::OK,
                    &[("content-type", OCI_MANIFEST.into()), ("content-length", (200 * MB).to_string())],
                    lazy_body(Some(200 * MB), b' ', sent, none),
                ),
                "chunked" | "endless" | "trickle" if head => respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], Body::empty()),
                "chunked" => respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], lazy_body(Some(200 * MB), b' ', sent, none)),
                "endless" => respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], lazy_body(None, b' ', sent, none)),
                "trickle" => respond(
                    StatusCode::OK,
                    &[("content-type", OCI_MANIFEST.into())],
                    lazy_body(None, b' ', sent, Duration::from_millis(200)),
                ),
                "html" if head => respond(StatusCode::OK, &[("content-type", "text/html".into())], Body::empty()),
                "html" => respond(
                    StatusCode::OK,
                    &[("content-type", "text/html; charset=utf-8".into())],
                    Body::from("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\u{1b}[2JPlease sign in to the corporate proxy</body></html>"),
                ),
                "nodigest" | "bigconfig" | "liar" if head => {
                    respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], Body::empty())
                }
                "nodigest" if path.contains("/blobs/") => respond(StatusCode::OK, &[], Body::from(config)),
                "nodigest" => respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], Body::from(manifest)),
                "bigconfig" if path.contains("/blobs/") => {
                    respond(StatusCode::OK, &[], lazy_body(Some(2 * MB), b'{', sent, none))
                }
                "bigconfig" => respond(
                    StatusCode::OK,
                    &[("content-type", OCI_MANIFEST.into())],
                    Body::from(image(Some(2 * MB as i64)).1),
                ),
                "liar" if path.contains("/blobs/") => respond(StatusCode::OK, &[], lazy_body(None, b'{', sent, none)),
                "liar" => respond(StatusCode::OK, &[("content-type", OCI_MANIFEST.into())], Body::from(manifest)),
                "bigtoken" => respond(
                    StatusCode::UNAUTHORIZED,
                    &[("www-authenticate", format!("Bearer realm=\"http://{me}/token-endless\",service=\"fault\""))],
                    Body::empty(),
                ),
                "metadata" => respond(
                    StatusCode::UNAUTHORIZED,
                    &[("www-authenticate", "Bearer realm=\"http://169.254.169.254/latest/meta-data/iam/security-credentials/\",service=\"x\"".into())],
                    Body::empty(),
                ),
                "localrealm" => respond(
                    StatusCode::UNAUTHORIZED,
                    &[("www-authenticate", format!("Bearer realm=\"http://localhost:{}/token\",service=\"x\"", me.rsplit_once(':').unwrap().1))],
                    Body::empty(),
                ),
                "redirect" => respond(
                    StatusCode::TEMPORARY_REDIRECT,
                    &[("location", format!("http://localhost:{}/v2/nodigest/app/manifests/v1", me.rsplit_once(':').unwrap().1))],
                    Body::empty(),
                ),
                "redirect-ip" => respond(
                    StatusCode::TEMPORARY_REDIRECT,
                    &[("location", format!("http://127.0.0.2:{}/v2/nodigest/app/manifests/v1", me.rsplit_once(':').unwrap().1))],
                    Body::empty(),
                ),
                _ => respond(StatusCode::NOT_FOUND, &[], Body::from(r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#)),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fault {
        addr,
        sent,
        requests,
    }
}

/// The peak resident set of a process, in KiB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn pod_in(namespace: &str, image: &str) -> Value {
    let mut pod = object("Pod", "web", &[("app", image)]);
    pod["metadata"]["namespace"] = json!(namespace);
    let mut r = review("CREATE", &pod, None, None);
    r["request"]["namespace"] = json!(namespace);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registries_get_bounded_answers_within_the_deadline() {
    let fault = fault_server().await;
    let host = fault.addr.clone();
    let deny = policy(
        "strict",
        "namespaces: [strict]\npreflight: true\nonRegistryError: Deny\npinDigests: true\narchitectures:\n  require: [amd64]",
    );
    let warn = policy(
        "lenient",
        "namespaces: [lenient]\npreflight: true\nonRegistryError: Warn\npinDigests: true",
    );
    let config = format!(
        "registries:\n  - host: \"{host}\"\n    insecure: true\ndeadlineSeconds: {DEADLINE_SECS}\n"
    );
    let ig =
        Imagegate::start_with(&[("s.yaml", &deny), ("l.yaml", &warn)], Some(&config), None).await;
    let baseline = peak_rss_kb(ig.pid());

    // (repository, fragments of the denial)
    let table: Vec<(&str, Vec<String>)> = vec![
        ("huge", vec!["too large: the registry sent a manifest over 4 MiB".into()]),
        ("chunked", vec!["too large: the registry sent a manifest over 4 MiB".into()]),
        ("endless", vec!["too large: the registry sent a manifest over 4 MiB".into()]),
        ("trickle", vec![format!("timeout: the registry lookup of \"{host}/trickle/app:v1\" (its digest and platforms) did not finish within the admission deadline of 3.0 s")]),
        ("html", vec![format!("not a manifest: {host} did not answer for {host}/html/app:v1 with an image manifest or index (the registry answered with an HTML page (text/html) instead of a manifest"), "<title>Sign in</title>".into()]),
        ("bigconfig", vec!["too large: the registry sent an image config over 1 MiB".into()]),
        ("liar", vec!["digest mismatch: the registry sent an image config longer than the".into()]),
        ("bigtoken", vec!["too large: the registry sent a token response over 64 KiB".into()]),
        ("metadata", vec!["address refused: looking up".into(), "169.254.169.254 is a link-local address (169.254.0.0/16, where cloud metadata services answer), which imagegate does not connect to".into()]),
        ("localrealm", vec!["address refused".into(), "is on imagegate's own loopback".into()]),
        ("redirect", vec!["address refused".into(), "localhost is a loopback address, which imagegate does not connect to".into()]),
        ("redirect-ip", vec!["address refused".into(), "127.0.0.2 is a loopback address".into()]),
    ];
    for (repo, fragments) in &table {
        let image = format!("{host}/{repo}/app:v1");
        let started = Instant::now();
        let r = ig.review("/validate", &pod_in("strict", &image)).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs_f64(DEADLINE_SECS) + SLACK,
            "{repo}: answered after {took:?}"
        );
        assert_eq!(r["allowed"], false, "{repo}: {r}");
        let msg = r["status"]["message"].as_str().unwrap();
        for f in fragments {
            assert!(msg.contains(f.as_str()), "{repo}: {msg}\nlacks: {f}");
        }
        assert!(
            !msg.chars().any(|c| c.is_control() && c != '\n'),
            "{repo}: control characters in {msg:?}"
        );
        eprintln!("{repo}: {took:?}, peak RSS {} KiB", peak_rss_kb(ig.pid()));
    }
    // The 200 MB bodies were abandoned at the limit: the server produced a small
    // part of them (what TCP buffers took before the client hung up).
    let produced = fault.sent.load(Ordering::SeqCst);
    eprintln!("bytes the fault server produced: {produced}");
    assert!(
        produced < 120 * MB,
        "the client kept reading: {produced} bytes"
    );
    // A config over the limit and a realm on a refused address are never fetched.
    let requests = fault.requests.lock().unwrap().clone();
    assert!(
        !requests
            .iter()
            .any(|r| r.starts_with("GET /v2/bigconfig/app/blobs/")),
        "{requests:?}"
    );

    // HTML under onRegistryError: Warn is admitted with a warning, and never pinned.
    let html = format!("{host}/html/app:v1");
    let r = ig.review("/mutate", &pod_in("lenient", &html)).await;
    assert!(r.get("patch").is_none(), "HTML must not be pinned: {r}");
    let r = ig.review("/validate", &pod_in("lenient", &html)).await;
    assert_eq!(r["allowed"], true, "{r}");
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(warning.contains(": not a manifest: "), "{warning}");

    // A HEAD without Docker-Content-Digest: the GET's body is a manifest, and its
    // own digest is what gets pinned.
    let (_, manifest) = image(None);
    let good = format!("{host}/nodigest/app:v1");
    let r = ig.review("/mutate", &pod_in("strict", &good)).await;
    let patch: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(r["patch"].as_str().expect("a pin"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        patch[0]["value"],
        format!("{good}@{}", sha256(&manifest)),
        "{patch}"
    );
    assert_eq!(
        ig.review("/validate", &pod_in("strict", &good)).await["allowed"],
        true
    );

    // The node's own registry is not looked up on imagegate's loopback.
    for local in [
        "localhost:5000/app:v1",
        "127.0.0.1:5000/team/app:v1",
        "127.0.0.2:5000/app:v1",
        "[::1]:5000/app:v1",
    ] {
        let started = Instant::now();
        let r = ig.review("/validate", &pod_in("strict", local)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(
            msg.contains("node-local registry:") && msg.contains("is each node's own loopback"),
            "{msg}"
        );
    }

    // Many of them at once: still bounded.
    let ig = Arc::new(ig);
    let burst = (0..24).map(|i| {
        let ig = ig.clone();
        let repo = ["huge", "chunked", "endless", "bigtoken"][i % 4];
        let image = format!("{host}/{repo}/app:v{i}");
        tokio::spawn(async move {
            let started = Instant::now();
            let r = ig.review("/validate", &pod_in("strict", &image)).await;
            (r["allowed"] == false, started.elapsed())
        })
    });
    for result in futures::future::join_all(burst).await {
        let (denied, took) = result.unwrap();
        assert!(denied);
        assert!(
            took < Duration::from_secs_f64(DEADLINE_SECS) + SLACK * 2,
            "{took:?}"
        );
    }

    let peak = peak_rss_kb(ig.pid());
    eprintln!("peak RSS: {peak} KiB (after start: {baseline} KiB)");
    assert!(
        peak.saturating_sub(baseline) < RSS_GROWTH_LIMIT_KB,
        "peak RSS {peak} KiB, {} KiB above the {baseline} KiB after start",
        peak.saturating_sub(baseline)
    );
    let metrics = ig.metrics().await;
    for kind in [
        "too-large",
        "not-a-manifest",
        "address-refused",
        "node-local",
        "digest-mismatch",
    ] {
        assert!(
            metrics.contains(&format!(
                "imagegate_registry_lookup_failures_total{{kind=\"{kind}\"}}"
            )),
            "{kind}: {metrics}"
        );
    }
}
