//! Registry lookups: what a cold decision (first sight of an image) costs next to the
//! bare registry round trips it needs, as a ratio measured in one run, and the warm
//! decision rate once the inspector's caches are full.
//!
//! Setup: Debian's docker-registry (distribution 2.8) on 127.0.0.1, started by the
//! test harness (`tests/support`), twice in one run:
//! - plain HTTP, no authentication (anonymous);
//! - HTTPS with token authentication: a Docker token server (ES256 JWTs) on
//!   127.0.0.1, the credentials (`ci`) in a docker config given to the inspector,
//!   as a private registry is read. The raw side asks the token server for a pull
//!   token once per repository and pass (inside the first measured decision), and
//!   sends it with every request, as a client that caches tokens does.
//!
//! Two repositories:
//! - `bench/multi`: a 3-platform OCI index (linux/amd64, linux/arm64, linux/arm/v7);
//! - `bench/single`: a single-platform OCI image (linux/amd64).
//!
//! The children, layers and config blobs are pushed once. Then every tag of every set
//! gets its own manifest: the same index (or image manifest) with one annotation
//! naming the tag, PUT under that tag. Each tag therefore has its own digest. This
//! matters: the inspector caches a tag's digest by tag, but the platforms by digest,
//! so re-PUTting identical bytes under a new tag would make every decision after
//! the first one a digest lookup only (that case is measured too, for information:
//! "new tag of a known digest").
//!
//! Cold decision: a one-container Pod with an image never seen before,
//! `Workload::from_object` + `engine::needs` + `Inspector::gather` + `engine::decide`,
//! one at a time, under a policy requiring amd64 and arm64 (so platforms are needed):
//! the index is allowed, the amd64-only image denied. The Inspector is the server's
//! (default settings, anonymous, the registry configured insecure), fresh each round.
//!
//! Raw round trips: one keep-alive reqwest client per round doing the minimum a cold
//! decision needs: `HEAD /v2/<repo>/manifests/<tag>` with the full Accept list (the
//! digest from `Docker-Content-Digest`), `GET /v2/<repo>/manifests/<digest>` with the
//! Accept list (body parsed as JSON: the index's platforms, or the manifest's config
//! descriptor) and, for the single-platform image, `GET /v2/<repo>/blobs/<config>`
//! (parsed for its architecture). "Raw with pings" is the same with a `GET /v2/`
//! before each request, which is what oci-client sends when anonymous (it does not
//! remember that the registry wants no authentication): the difference between the
//! two is what the pings cost, measured rather than estimated.
//!
//! Fairness: raw, raw with pings and imagegate run on separate, never-seen tag sets,
//! alternating (round 1 in that order, round 2 reversed, and so on); the registry's
//! own caching is the same for all. Request counts come from the registry's JSON log.
//!
//! Warm: the last round's Inspector, a Pod of three containers whose images it has
//! already seen, admitted in a loop by one task, then by 16 concurrent tasks; the
//! registry must see no request at all.
//!
//! Run with `cargo bench --bench registry_lookup`. Environment overrides:
//! - `BENCH_TAGS`: tags per set (default 200)
//! - `BENCH_ROUNDS`: alternating rounds (default 2)
//! - `BENCH_SECONDS`: seconds per warm measurement (default 3)
//! - `BENCH_REGISTRIES`: `plain`, `token` or `plain,token` (default)

mod common;

use common::{env_number, pod};
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use imagegate::admission::Workload;
use imagegate::engine;
use imagegate::inspector::{Inspector, InspectorConfig};
use imagegate::policy::{PolicySet, load_sources};
use imagegate::registry::{ACCEPT, RegistryClient, RegistryConfig, RegistrySettings};
use reqwest::header::{ACCEPT as ACCEPT_HEADER, AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use support::images::{self, Format};
use support::registry::{Kind, LoggedRequest, Registry};
use support::token::{Grant, TokenServer, TokenServerConfig};

const POLICY: &str = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: architectures}\nspec:\n  architectures:\n    require: [amd64, arm64]\n";

const MULTI_REPO: &str = "bench/multi";
const SINGLE_REPO: &str = "bench/single";
const BASE_TAG: &str = "base";
const TAG_ANNOTATION: &str = "dev.imagegate.bench.tag";
const PLATFORMS: [(&str, &str, Option<&str>); 3] = [
    ("linux", "amd64", None),
    ("linux", "arm64", None),
    ("linux", "arm", Some("v7")),
];
const WARM_TASKS: usize = 16;
const PUSH_CONCURRENCY: usize = 8;

struct Settings {
    tags: usize,
    rounds: usize,
    seconds: Duration,
    registries: Vec<Auth>,
}

/// How the measured registry is reached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Auth {
    /// Plain HTTP, anonymous.
    Anonymous,
    /// HTTPS, token authentication with credentials.
    Token,
}

const TOKEN_USER: (&str, &str) = ("ci", "ci-pass");

/// The registry of one run, with what reaching it takes.
struct Target {
    registry: Registry,
    auth: Auth,
    /// The token server (kept alive for the run) and the docker config naming the
    /// credentials, for [`Auth::Token`].
    tokens: Option<TokenServer>,
    docker_config: Option<tempfile::NamedTempFile>,
}

impl Target {
    async fn start(auth: Auth) -> Target {
        match auth {
            Auth::Anonymous => Target {
                registry: Registry::start(Kind::Plain).await,
                auth,
                tokens: None,
                docker_config: None,
            },
            Auth::Token => {
                let tokens = TokenServer::start(TokenServerConfig::default().user(
                    TOKEN_USER.0,
                    TOKEN_USER.1,
                    &[Grant::new("*", &["pull", "push"])],
                ));
                let registry = Registry::start(tokens.kind()).await;
                let basic = data_encoding::BASE64
                    .encode(format!("{}:{}", TOKEN_USER.0, TOKEN_USER.1).as_bytes());
                let config = json!({"auths": {registry.host(): {"auth": basic}}});
                let file = tempfile::NamedTempFile::new().expect("a temporary file");
                std::fs::write(file.path(), config.to_string()).expect("writing the docker config");
                Target {
                    registry,
                    auth,
                    tokens: Some(tokens),
                    docker_config: Some(file),
                }
            }
        }
    }

    fn push_auth(&self) -> oci_client::secrets::RegistryAuth {
        match self.auth {
            Auth::Anonymous => images::auth(&self.registry),
            Auth::Token => images::basic(TOKEN_USER.0, TOKEN_USER.1),
        }
    }

    fn describe(&self) -> &'static str {
        match self.auth {
            Auth::Anonymous => "plain HTTP, anonymous",
            Auth::Token => {
                "HTTPS, token authentication (ES256 bearer tokens from a local token server; credentials from a docker config)"
            }
        }
    }

    /// The sides measured: pings only matter on the anonymous registry.
    fn sides(&self) -> Vec<Side> {
        match self.auth {
            Auth::Anonymous => vec![Side::Raw, Side::RawPinged, Side::Imagegate],
            Auth::Token => vec![Side::Raw, Side::Imagegate],
        }
    }

    /// A pull token for `repo`, as a registry client asks for it with credentials.
    async fn pull_token(&self, http: &reqwest::Client, repo: &str) -> String {
        let tokens = self
            .tokens
            .as_ref()
            .expect("a token registry has a token server");
        let url = format!(
            "{}?service={}&scope=repository:{repo}:pull",
            tokens.realm(),
            tokens.service()
        );
        let answer: Value = http
            .get(&url)
            .basic_auth(TOKEN_USER.0, Some(TOKEN_USER.1))
            .send()
            .await
            .expect("GET token: request failed")
            .json()
            .await
            .expect("GET token: the answer is not JSON");
        answer["token"]
            .as_str()
            .expect("the token server answers a token")
            .to_string()
    }
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            tags: env_number("BENCH_TAGS", 200.0) as usize,
            rounds: env_number("BENCH_ROUNDS", 2.0) as usize,
            seconds: Duration::from_secs_f64(env_number("BENCH_SECONDS", 3.0)),
            registries: std::env::var("BENCH_REGISTRIES")
                .unwrap_or_else(|_| "plain,token".into())
                .split(',')
                .map(|r| match r.trim() {
                    "plain" => Auth::Anonymous,
                    "token" => Auth::Token,
                    other => panic!("BENCH_REGISTRIES: `{other}` is not `plain` or `token`"),
                })
                .collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Scenario {
    /// The 3-platform index, a new digest per tag.
    Index,
    /// The amd64-only image, a new manifest digest per tag (shared config blob).
    Single,
    /// The base index bytes under a new tag: a known digest (imagegate only).
    Retag,
}

impl Scenario {
    fn repo(self) -> &'static str {
        match self {
            Scenario::Index | Scenario::Retag => MULTI_REPO,
            Scenario::Single => SINGLE_REPO,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Side {
    /// The minimum requests.
    Raw,
    /// The same, each preceded by `GET /v2/`, as oci-client sends them when anonymous.
    RawPinged,
    Imagegate,
}

/// The tags of one set: scenario, round and side make them unique.
fn tag_set(scenario: Scenario, round: usize, side: Side, n: usize) -> Vec<String> {
    let s = match scenario {
        Scenario::Index => "index",
        Scenario::Single => "single",
        Scenario::Retag => "retag",
    };
    let side = match side {
        Side::Raw => "raw",
        Side::RawPinged => "rawping",
        Side::Imagegate => "gate",
    };
    (0..n)
        .map(|i| format!("r{round}-{s}-{side}-{i:05}"))
        .collect()
}

/// The policy set, the inspector and the admission deadline, wired as the server does.
struct Gate {
    inspector: Inspector,
    policies: PolicySet,
    deadline: Duration,
}

impl Gate {
    fn new(target: &Target) -> Gate {
        let registry = &target.registry;
        let client = RegistryClient::new(RegistryConfig {
            registries: vec![RegistrySettings {
                host: registry.host(),
                ca_pem: registry.ca_pem().map(String::into_bytes),
                insecure: !registry.kind().is_tls(),
            }],
            ..RegistryConfig::default()
        });
        let config = InspectorConfig {
            docker_config: target
                .docker_config
                .as_ref()
                .map(|f| f.path().to_path_buf()),
            ..InspectorConfig::default()
        };
        Gate {
            inspector: Inspector::new(client, None, config)
                .expect("the inspector is created with the docker config"),
            policies: PolicySet::compile(&load_sources(&[("p.yaml", POLICY)]))
                .expect("the architectures policy compiles"),
            deadline: Duration::from_secs(5),
        }
    }

    async fn admit(&self, pod: &Value) -> engine::Decision {
        let workload = Workload::from_object("", "Pod", "team", pod)
            .expect("the Pod is a valid object")
            .expect("a Pod is a workload");
        let needs = engine::needs(&self.policies, &workload);
        let facts = self
            .inspector
            .gather(&needs, &workload, self.deadline)
            .await;
        engine::decide(&self.policies, &workload, &facts)
    }
}

// ---------------------------------------------------------------------------
// Images

/// What was pushed once, from which every tag's manifest is made.
struct Bases {
    /// The index as pushed under `base` (exact bytes).
    index_bytes: Vec<u8>,
    index: Value,
    single: Value,
}

async fn push_bases(target: &Target) -> Bases {
    let registry = &target.registry;
    let client = images::client(registry);
    let auth = target.push_auth();
    let base = images::reference(registry, &format!("{MULTI_REPO}:{BASE_TAG}"));
    images::push_index(&client, &auth, &base, &PLATFORMS, Format::Oci, false)
        .await
        .expect("cannot push the 3-platform index");
    let (index_bytes, _) = client
        .pull_manifest_raw(&base, &auth, images::ALL_MANIFEST_TYPES)
        .await
        .expect("cannot read back the base index");
    let index: Value = serde_json::from_slice(&index_bytes).expect("the base index is JSON");

    let image = images::build_image("amd64", "linux", None, Format::Oci);
    let single_ref = images::reference(registry, &format!("{SINGLE_REPO}:{BASE_TAG}"));
    images::push_built(&client, &auth, &single_ref, &image)
        .await
        .expect("cannot push the single-platform image");
    let single: Value =
        serde_json::from_slice(&image.manifest.data).expect("the image manifest is JSON");
    Bases {
        index_bytes: index_bytes.to_vec(),
        index,
        single,
    }
}

/// `base` with an annotation naming `tag`: the same content, a digest of its own.
fn annotated(base: &Value, tag: &str) -> Vec<u8> {
    let mut manifest = base.clone();
    manifest["annotations"] = json!({ TAG_ANNOTATION: tag });
    serde_json::to_vec(&manifest).expect("the manifest serializes")
}

/// PUTs one manifest per tag of `scenario`'s sets (every round, both sides).
async fn push_tags(target: &Target, bases: &Bases, scenario: Scenario, settings: &Settings) {
    let registry = &target.registry;
    let client = images::client(registry);
    let auth = target.push_auth();
    let mut tags = Vec::new();
    for round in 0..settings.rounds {
        for side in target.sides() {
            if scenario == Scenario::Retag && side != Side::Imagegate {
                continue;
            }
            tags.extend(tag_set(scenario, round, side, settings.tags));
        }
    }
    let (content_type, repo) = match scenario {
        Scenario::Index | Scenario::Retag => (images::OCI_INDEX, MULTI_REPO),
        Scenario::Single => (images::OCI_MANIFEST, SINGLE_REPO),
    };
    let client = &client;
    let auth = &auth;
    futures::stream::iter(tags)
        .map(|tag| async move {
            let body = match scenario {
                Scenario::Index => annotated(&bases.index, &tag),
                Scenario::Single => annotated(&bases.single, &tag),
                Scenario::Retag => bases.index_bytes.clone(),
            };
            let reference = images::reference(registry, &format!("{repo}:{tag}"));
            images::push_manifest_bytes(client, auth, &reference, &body, content_type)
                .await
                .unwrap_or_else(|e| panic!("cannot push {repo}:{tag}: {e}"));
        })
        .buffer_unordered(PUSH_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

// ---------------------------------------------------------------------------
// Passes

/// One timed pass over a tag set, and the registry requests it caused.
struct Pass {
    samples: Vec<Duration>,
    requests: Vec<LoggedRequest>,
}

/// Cold decisions, one at a time, for each tag of the set.
async fn imagegate_pass(
    gate: &Gate,
    registry: &Registry,
    scenario: Scenario,
    tags: &[String],
) -> Pass {
    let pods: Vec<Value> = tags
        .iter()
        .map(|tag| pod(&[registry.reference(&format!("{}:{tag}", scenario.repo()))]))
        .collect();
    let expect_allowed = scenario != Scenario::Single;
    registry.reset_counts();
    let mut samples = Vec::with_capacity(pods.len());
    for (pod, tag) in pods.iter().zip(tags) {
        let start = Instant::now();
        let decision = gate.admit(pod).await;
        samples.push(start.elapsed());
        assert_eq!(
            decision.allowed(),
            expect_allowed,
            "{scenario:?} {tag}: the decision should be {}: {:?}",
            if expect_allowed { "allowed" } else { "denied" },
            decision.violations
        );
    }
    Pass {
        samples,
        requests: registry.logged_requests(),
    }
}

/// The minimum round trips of a cold decision, per tag of the set; with `pinged`,
/// each request is preceded by `GET /v2/`, as oci-client does when anonymous.
/// GETs `url` (with `accept`, when given) and reads the body as JSON; `what` names
/// the request in failures.
async fn get_json(
    http: &reqwest::Client,
    url: String,
    accept: Option<&HeaderValue>,
    bearer: Option<&HeaderValue>,
    what: &str,
) -> Value {
    let mut request = http.get(&url);
    if let Some(accept) = accept {
        request = request.header(ACCEPT_HEADER, accept.clone());
    }
    if let Some(bearer) = bearer {
        request = request.header(AUTHORIZATION, bearer.clone());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
    assert!(
        response.status().is_success(),
        "{what} {url}: {}",
        response.status()
    );
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: the body is not JSON: {e}"))
}

async fn raw_pass(
    http: &reqwest::Client,
    target: &Target,
    scenario: Scenario,
    tags: &[String],
    pinged: bool,
) -> Pass {
    let registry = &target.registry;
    let accept = HeaderValue::from_str(&ACCEPT.join(", ")).expect("the Accept list is a header");
    let base = format!("{}/v2/{}", registry.url(), scenario.repo());
    let ping_url = format!("{}/v2/", registry.url());
    let ping = || async {
        if pinged {
            let res = http
                .get(&ping_url)
                .send()
                .await
                .expect("GET /v2/: request failed");
            assert!(res.status().is_success(), "GET /v2/: {}", res.status());
            res.bytes().await.expect("GET /v2/: cannot read the body");
        }
    };
    registry.reset_counts();
    let mut samples = Vec::with_capacity(tags.len());
    let mut bearer: Option<HeaderValue> = None;
    for tag in tags {
        let start = Instant::now();
        if target.auth == Auth::Token && bearer.is_none() {
            let token = target.pull_token(http, scenario.repo()).await;
            bearer = Some(
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is a header"),
            );
        }
        ping().await;
        let mut head = http
            .head(format!("{base}/manifests/{tag}"))
            .header(ACCEPT_HEADER, accept.clone());
        if let Some(bearer) = &bearer {
            head = head.header(AUTHORIZATION, bearer.clone());
        }
        let head = head.send().await.expect("HEAD manifest: request failed");
        assert!(head.status().is_success(), "HEAD {tag}: {}", head.status());
        let digest = head
            .headers()
            .get("docker-content-digest")
            .expect("HEAD manifest: no Docker-Content-Digest")
            .to_str()
            .expect("the digest header is ASCII")
            .to_string();
        ping().await;
        let manifest = get_json(
            http,
            format!("{base}/manifests/{digest}"),
            Some(&accept),
            bearer.as_ref(),
            "GET manifest",
        )
        .await;
        match scenario {
            Scenario::Index | Scenario::Retag => {
                let platforms = manifest["manifests"]
                    .as_array()
                    .expect("the index has manifests")
                    .iter()
                    .filter(|m| m["platform"]["architecture"].is_string())
                    .count();
                assert_eq!(platforms, PLATFORMS.len(), "{tag}: platforms in the index");
            }
            Scenario::Single => {
                let config = manifest["config"]["digest"]
                    .as_str()
                    .expect("the manifest has a config digest");
                ping().await;
                let config = get_json(
                    http,
                    format!("{base}/blobs/{config}"),
                    None,
                    bearer.as_ref(),
                    "GET config blob",
                )
                .await;
                assert_eq!(
                    config["architecture"], "amd64",
                    "{tag}: config architecture"
                );
            }
        }
        samples.push(start.elapsed());
    }
    Pass {
        samples,
        requests: registry.logged_requests(),
    }
}

fn http_client(registry: &Registry) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(ca) = registry.ca_pem() {
        let certs =
            reqwest::Certificate::from_pem_bundle(ca.as_bytes()).expect("the test CA is PEM");
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().expect("cannot build the reqwest client")
}

// ---------------------------------------------------------------------------
// Warm

/// Decisions per second for `tasks` concurrent tasks admitting `pod` for `duration`.
async fn warm_rate(gate: &Arc<Gate>, pod: &Value, tasks: usize, duration: Duration) -> f64 {
    let start = Instant::now();
    let until = start + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let gate = gate.clone();
            let pod = pod.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < until {
                    let decision = gate.admit(&pod).await;
                    assert!(
                        decision.allowed(),
                        "warm: the Pod should be allowed: {:?}",
                        decision.violations
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0u64;
    for handle in handles {
        total += handle.await.expect("a warm task panicked");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------
// Figures

struct Stats {
    n: usize,
    mean: Duration,
    p50: Duration,
    p95: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort();
    // Nearest rank.
    let rank =
        |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Stats {
        n: sorted.len(),
        mean: sorted.iter().sum::<Duration>() / sorted.len() as u32,
        p50: rank(0.50),
        p95: rank(0.95),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn describe(samples: &[Duration], per_round: &[Duration]) -> String {
    let s = stats(samples);
    let rounds: Vec<String> = per_round.iter().map(|&d| ms(d)).collect();
    format!(
        "mean {} ms (p50 {}, p95 {}; n={}; per-round means {})",
        ms(s.mean),
        ms(s.p50),
        ms(s.p95),
        s.n,
        rounds.join(" / ")
    )
}

/// Requests by kind, for a breakdown per decision.
#[derive(Default)]
struct Breakdown {
    total: usize,
    pings: usize,
    head_manifests: usize,
    get_manifests: usize,
    get_blobs: usize,
    other: BTreeMap<String, usize>,
    not_ok: usize,
}

impl Breakdown {
    fn add(&mut self, requests: &[LoggedRequest]) {
        for r in requests {
            self.total += 1;
            if r.status.is_some_and(|s| !(200..300).contains(&s)) {
                self.not_ok += 1;
            }
            let path = r.uri.split('?').next().unwrap_or_default();
            match (r.method.as_str(), path) {
                ("GET", "/v2/") => self.pings += 1,
                ("HEAD", p) if p.contains("/manifests/") => self.head_manifests += 1,
                ("GET", p) if p.contains("/manifests/") => self.get_manifests += 1,
                ("GET", p) if p.contains("/blobs/") => self.get_blobs += 1,
                (m, p) => *self.other.entry(format!("{m} {p}")).or_default() += 1,
            }
        }
    }

    fn per(&self, decisions: usize) -> String {
        let d = decisions as f64;
        let f = |n: usize| format!("{:.2}", n as f64 / d);
        let mut parts = Vec::new();
        for (label, n) in [
            ("GET /v2/", self.pings),
            ("HEAD manifest", self.head_manifests),
            ("GET manifest", self.get_manifests),
            ("GET blob", self.get_blobs),
        ] {
            if n > 0 {
                parts.push(format!("{label} {}", f(n)));
            }
        }
        for (what, &n) in &self.other {
            parts.push(format!("{what} {}", f(n)));
        }
        if self.not_ok > 0 {
            parts.push(format!("non-2xx {}", f(self.not_ok)));
        }
        format!("{} ({})", f(self.total), parts.join(", "))
    }
}

/// Every pass of one (scenario, side), over the rounds.
#[derive(Default)]
struct Series {
    samples: Vec<Duration>,
    round_means: Vec<Duration>,
    requests: Breakdown,
    /// Requests to the token server (token registry only).
    token_requests: usize,
}

impl Series {
    fn add(&mut self, pass: Pass) {
        self.round_means.push(stats(&pass.samples).mean);
        self.samples.extend(&pass.samples);
        self.requests.add(&pass.requests);
    }

    fn mean(&self) -> Duration {
        stats(&self.samples).mean
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("registry-lookup")
        .build()
        .expect("cannot build the tokio runtime");
    let workers = runtime.metrics().num_workers();
    runtime.block_on(run(settings, workers));
}

async fn run(settings: Settings, workers: usize) {
    for &auth in &settings.registries {
        let target = Target::start(auth).await;
        run_one(&settings, workers, &target).await;
    }
}

async fn run_one(settings: &Settings, workers: usize, target: &Target) {
    let registry = &target.registry;
    let version = std::process::Command::new(
        std::env::var("IMAGEGATE_TEST_REGISTRY")
            .unwrap_or_else(|_| support::registry::DEFAULT_REGISTRY_BIN.to_string()),
    )
    .arg("--version")
    .output()
    .map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .last()
            .unwrap_or("?")
            .to_string()
    })
    .unwrap_or_else(|_| "?".into());

    let setup = Instant::now();
    let bases = push_bases(target).await;
    for scenario in [Scenario::Index, Scenario::Single, Scenario::Retag] {
        push_tags(target, &bases, scenario, settings).await;
    }
    eprintln!(
        "registry_lookup ({}): pushed {} tags in {:.1} s; measuring",
        target.describe(),
        settings.rounds * settings.tags * (2 * target.sides().len() + 1),
        setup.elapsed().as_secs_f64()
    );

    let mut series: BTreeMap<(Scenario, Side), Series> = BTreeMap::new();
    let mut gate = None;
    for round in 0..settings.rounds {
        // Fresh caches and connection pools for every side every round.
        let round_gate = Gate::new(target);
        let http = http_client(registry);
        let mut order = target.sides();
        if round % 2 == 1 {
            order.reverse();
        }
        for scenario in [Scenario::Index, Scenario::Single] {
            for &side in &order {
                let tags = tag_set(scenario, round, side, settings.tags);
                if let Some(tokens) = &target.tokens {
                    tokens.reset_count();
                }
                let pass = match side {
                    Side::Raw => raw_pass(&http, target, scenario, &tags, false).await,
                    Side::RawPinged => raw_pass(&http, target, scenario, &tags, true).await,
                    Side::Imagegate => imagegate_pass(&round_gate, registry, scenario, &tags).await,
                };
                let entry = series.entry((scenario, side)).or_default();
                entry.add(pass);
                if let Some(tokens) = &target.tokens {
                    entry.token_requests += tokens.requests().len();
                }
            }
        }
        let tags = tag_set(Scenario::Retag, round, Side::Imagegate, settings.tags);
        let pass = imagegate_pass(&round_gate, registry, Scenario::Retag, &tags).await;
        series
            .entry((Scenario::Retag, Side::Imagegate))
            .or_default()
            .add(pass);
        gate = Some(round_gate);
    }
    let gate = Arc::new(gate.expect("at least one round"));

    // Warm: three images the last round's inspector has seen (index tags).
    let last = settings.rounds - 1;
    let seen = tag_set(Scenario::Index, last, Side::Imagegate, settings.tags);
    let warm_images: Vec<String> = seen
        .iter()
        .take(3)
        .map(|tag| registry.reference(&format!("{MULTI_REPO}:{tag}")))
        .collect();
    let warm_pod = pod(&warm_images);
    registry.reset_counts();
    let one = warm_rate(&gate, &warm_pod, 1, settings.seconds).await;
    let many = warm_rate(&gate, &warm_pod, WARM_TASKS, settings.seconds).await;
    let warm_requests = registry.requests();
    assert!(
        warm_requests.is_empty(),
        "the warm phase made registry requests: {warm_requests:?}"
    );

    // Figures.
    let n_per_series = settings.tags * settings.rounds;
    let get = |scenario, side| {
        series
            .get(&(scenario, side))
            .expect("every series was measured")
    };
    println!();
    println!(
        "registry_lookup (Debian docker-registry {version} on 127.0.0.1, {}; N={} tags per set; {} rounds, {} alternating; tokio multi-thread runtime, {workers} workers)",
        target.describe(),
        settings.tags,
        settings.rounds,
        match target.auth {
            Auth::Anonymous => "raw, raw with pings and imagegate",
            Auth::Token => "raw and imagegate",
        }
    );
    println!(
        "  cold decision = one-container Pod with a never-seen tag (own digest): Workload::from_object + needs + gather + decide, one at a time; fresh Inspector (default settings) per round"
    );
    println!(
        "  raw = one keep-alive reqwest client per round, only the requests a cold decision needs (full Accept list on manifests), bodies parsed as JSON"
    );
    if target.auth == Auth::Anonymous {
        println!(
            "  raw with pings = the same, each request preceded by GET /v2/ as oci-client does when anonymous (it does not remember that no auth is needed)"
        );
    }
    println!(
        "  requests from the registry's JSON log, divided by the number of decisions (or images); all times wall clock per decision, ms"
    );
    for (scenario, label, raw_label) in [
        (
            Scenario::Index,
            "3-platform index (allowed)",
            "HEAD + GET manifest",
        ),
        (
            Scenario::Single,
            "single-platform amd64 image (denied)",
            "HEAD + GET manifest + GET config",
        ),
    ] {
        let cold = get(scenario, Side::Imagegate);
        let raw = get(scenario, Side::Raw);
        let pinged = series.get(&(scenario, Side::RawPinged));
        let per_round = |a: &Series, b: &Series| -> String {
            a.round_means
                .iter()
                .zip(&b.round_means)
                .map(|(&x, &y)| format!("{:.2}", ratio(x, y)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let p50_ratio =
            |a: &Series, b: &Series| ratio(stats(&a.samples).p50, stats(&b.samples).p50);
        println!(
            "cold decision, {label}: {}",
            describe(&cold.samples, &cold.round_means)
        );
        println!(
            "  requests per decision: {}",
            cold.requests.per(n_per_series)
        );
        if target.tokens.is_some() {
            println!(
                "  token server requests: imagegate {} in all, raw {} in all ({} decisions each)",
                cold.token_requests, raw.token_requests, n_per_series
            );
        }
        println!(
            "raw round trips ({raw_label}): {}",
            describe(&raw.samples, &raw.round_means)
        );
        println!("  requests per image: {}", raw.requests.per(n_per_series));
        if let Some(pinged) = pinged {
            println!(
                "raw with pings: {}",
                describe(&pinged.samples, &pinged.round_means)
            );
            println!(
                "  requests per image: {}",
                pinged.requests.per(n_per_series)
            );
        }
        println!(
            "ratio cold/raw: {:.2} (per round {}; ratio of p50s {:.2})",
            ratio(cold.mean(), raw.mean()),
            per_round(cold, raw),
            p50_ratio(cold, raw)
        );
        if let Some(pinged) = pinged {
            let ping_cost = pinged.mean().saturating_sub(raw.mean());
            println!(
                "  the GET /v2/ pings cost {} ms per decision (raw with pings - raw, means) = {:.2} of that ratio; cold/raw-with-pings: {:.2} (per round {}; ratio of p50s {:.2})",
                ms(ping_cost),
                ratio(ping_cost, raw.mean()),
                ratio(cold.mean(), pinged.mean()),
                per_round(cold, pinged),
                p50_ratio(cold, pinged)
            );
        }
    }
    let retag = get(Scenario::Retag, Side::Imagegate);
    println!(
        "new tag of a known digest (base index bytes re-PUT under new tags; platforms cached by digest): {}",
        describe(&retag.samples, &retag.round_means)
    );
    println!(
        "  requests per decision: {}",
        retag.requests.per(n_per_series)
    );
    println!(
        "warm decisions (3 containers, full cache, {:.0} s each): 1 task {:.0}/s, {WARM_TASKS} tasks {:.0}/s; registry requests during warm phase: {}",
        settings.seconds.as_secs_f64(),
        one,
        many,
        warm_requests.len()
    );
}
