//! Signature verification: what a cold verification of one image costs next to the
//! bare registry round trips it needs (a ratio measured in one run), the warm cost
//! per image, and a cold admission of 8 distinct images under 2 authorities
//! (Kyverno publishes 8 containers x 5 attestors in about 21 s).
//!
//! Setup: Debian's docker-registry (distribution 2.8, no referrers API) on
//! 127.0.0.1, plain HTTP, started by the test harness (`tests/support`). Every image
//! has its own digest and carries a legacy `.sig` signed by the `release` key and a
//! key-based cosign v3 bundle by the `security` key, listed in the `sha256-<hex>`
//! index; the policy needs both (threshold 2).
//!
//! Cold verification: a one-container Pod whose image's digest is already known
//! (pinned `repo@digest`, so only the signature work is measured), through
//! `engine::needs` + `Inspector::gather` + `engine::decide` on a fresh Inspector.
//! Raw round trips: one keep-alive reqwest client doing what that needs at least:
//! `GET referrers` (404), `GET` the `sha256-<hex>` index, the referrer manifest and
//! its bundle blob, `GET` the `.sig` manifest and its layer blob, `GET` the `.att`
//! tag (404). Raw and imagegate alternate over never-seen images.
//!
//! Warm: the same Pod again and again on the last Inspector (cached: no request).
//!
//! Run with `cargo bench --bench signatures`. Environment overrides:
//! - `BENCH_IMAGES`: images per side (default 40)
//! - `BENCH_SECONDS`: seconds of the warm measurement (default 3)

mod common;

use common::{env_number, pod};
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use imagegate::admission::Workload;
use imagegate::engine;
use imagegate::inspector::{Inspector, InspectorConfig};
use imagegate::policy::{PolicySet, load_sources};
use imagegate::registry::{RegistryClient, RegistryConfig, RegistrySettings};
use serde_json::{Value, json};
use support::cosign::{key_bundle, key_sig, push_bundles, push_layers, push_unique, tag_of};
use support::registry::{Kind, Registry};
use support::signer::{self, KeyKind, TestKey};

struct Gate {
    inspector: Inspector,
    policies: PolicySet,
}

impl Gate {
    fn new(registry: &Registry, policy: &str) -> Gate {
        let client = RegistryClient::new(RegistryConfig {
            registries: vec![RegistrySettings {
                host: registry.host(),
                ca_pem: None,
                insecure: true,
            }],
            ..RegistryConfig::default()
        });
        Gate {
            inspector: Inspector::new(client, None, InspectorConfig::default()).unwrap(),
            policies: PolicySet::compile(&load_sources(&[("p.yaml", policy)])).unwrap(),
        }
    }

    async fn admit(&self, pod: &Value) -> engine::Decision {
        let workload = Workload::from_object("", "Pod", "team", pod)
            .unwrap()
            .unwrap();
        let needs = engine::needs(&self.policies, &workload);
        let facts = self
            .inspector
            .gather(&needs, &workload, Duration::from_secs(10))
            .await;
        engine::decide(&self.policies, &workload, &facts)
    }
}

/// Pushes `n` signed images under `prefix`; returns `host/repo@digest` references.
async fn signed_images(
    registry: &Registry,
    prefix: &str,
    n: usize,
    release: &TestKey,
    security: &TestKey,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let repo = format!("{prefix}{i:04}");
        let digest = push_unique(registry, &format!("{repo}:v1")).await;
        let name = format!("{}/{repo}", registry.host());
        push_layers(
            registry,
            &repo,
            &format!("{}.sig", tag_of(&digest)),
            &[key_sig(release, &name, &digest)],
        )
        .await;
        let bundle = key_bundle(security, &digest, signer::COSIGN_SIGN_PREDICATE, json!({}));
        push_bundles(
            registry,
            &repo,
            &digest,
            &[(signer::BUNDLE_V03_MEDIA_TYPE, bundle)],
        )
        .await;
        out.push((repo, digest));
    }
    out
}

/// The requests a cold verification needs, at least, with one keep-alive client.
async fn raw(http: &reqwest::Client, base: &str, repo: &str, digest: &str) {
    let tag = tag_of(digest);
    let get = |path: String, accept: &'static str| {
        http.get(format!("{base}/v2/{repo}/{path}"))
            .header("accept", accept)
            .send()
    };
    let manifest = "application/vnd.oci.image.manifest.v1+json";
    let index = "application/vnd.oci.image.index.v1+json";
    let (referrers, sig, att) = futures::join!(
        async {
            let r = get(format!("referrers/{digest}"), index).await.unwrap();
            assert_eq!(r.status(), 404);
            let idx: Value = get(format!("manifests/{tag}"), index)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let referrer = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
            let m: Value = get(format!("manifests/{referrer}"), manifest)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let blob = m["layers"][0]["digest"].as_str().unwrap().to_string();
            get(format!("blobs/{blob}"), "*/*")
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        },
        async {
            let m: Value = get(format!("manifests/{tag}.sig"), manifest)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let blob = m["layers"][0]["digest"].as_str().unwrap().to_string();
            get(format!("blobs/{blob}"), "*/*")
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len()
        },
        async {
            get(format!("manifests/{tag}.att"), manifest)
                .await
                .unwrap()
                .status()
        },
    );
    assert!(referrers > 0 && sig > 0 && att == 404);
}

fn main() {
    support::registry::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let n = env_number("BENCH_IMAGES", 40.0) as usize;
    let seconds = Duration::from_secs_f64(env_number("BENCH_SECONDS", 3.0));
    let registry = Registry::start(Kind::Plain).await;
    let host = registry.host();
    let release = TestKey::generate(KeyKind::EcdsaP256);
    let security = TestKey::generate(KeyKind::EcdsaP256);
    let pem = |k: &TestKey| k.public_pem().replace('\n', "\\n");
    let policy = format!(
        "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: signed}}\nspec:\n  signatures:\n    threshold: 2\n    authorities:\n      - {{name: release, key: {{inline: \"{}\"}}, transparencyLog: Off}}\n      - {{name: security, key: {{inline: \"{}\"}}, transparencyLog: Off}}\n",
        pem(&release),
        pem(&security)
    );
    eprintln!("pushing {} signed images ...", 2 * n + 8);
    let raw_set = signed_images(&registry, "bench/raw", n, &release, &security).await;
    let gate_set = signed_images(&registry, "bench/gate", n, &release, &security).await;
    let eight = signed_images(&registry, "bench/eight", 8, &release, &security).await;

    // Cold, one image at a time, alternating raw and imagegate.
    let http = reqwest::Client::new();
    let base = format!("http://{host}");
    let (mut raw_time, mut gate_time) = (Duration::ZERO, Duration::ZERO);
    let mut gate = Gate::new(&registry, &policy);
    for i in 0..n {
        let (repo, digest) = &raw_set[i];
        let t = Instant::now();
        raw(&http, &base, repo, digest).await;
        raw_time += t.elapsed();
        let (repo, digest) = &gate_set[i];
        gate = Gate::new(&registry, &policy);
        let image = format!("{host}/{repo}@{digest}");
        let t = Instant::now();
        let d = gate.admit(&pod(&[image])).await;
        gate_time += t.elapsed();
        assert!(d.allowed(), "{:?}", d.violations);
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    println!(
        "cold verification, one image (2 authorities: .sig + bundle in the sha256-<hex> index): imagegate {:.2} ms, raw round trips {:.2} ms, ratio {:.2}",
        per(gate_time),
        per(raw_time),
        gate_time.as_secs_f64() / raw_time.as_secs_f64()
    );

    // Warm: the last image again and again.
    let (repo, digest) = &gate_set[n - 1];
    let warm_pod = pod(&[format!("{host}/{repo}@{digest}")]);
    registry.reset_counts();
    let (mut count, t) = (0u64, Instant::now());
    while t.elapsed() < seconds {
        assert!(gate.admit(&warm_pod).await.allowed());
        count += 1;
    }
    let warm = t.elapsed().as_secs_f64() / count as f64;
    println!(
        "warm, per image: {:.1} µs ({count} admissions, {} registry requests)",
        warm * 1e6,
        registry.requests().len()
    );

    // Cold admission of 8 distinct images x 2 authorities, one Pod.
    let gate = Gate::new(&registry, &policy);
    let images: Vec<String> = eight
        .iter()
        .map(|(repo, digest)| format!("{host}/{repo}@{digest}"))
        .collect();
    let t = Instant::now();
    let d = gate.admit(&pod(&images)).await;
    let cold8 = t.elapsed();
    assert!(d.allowed(), "{:?}", d.violations);
    println!(
        "cold admission, 8 images x 2 authorities: {:.1} ms (Kyverno publishes 8 containers x 5 attestors in about 21 s)",
        cold8.as_secs_f64() * 1000.0
    );
}
