//! Structure-aware fuzzing on stable Rust, with proptest: generators that build
//! the inputs imagegate reads from the grammar and shapes they come in, then
//! mutate them (odd types, huge and duplicate keys, unicode, truncation, flipped
//! bytes), with an oracle for each target:
//!
//! - `admission_reviews`: AdmissionReviews built from generated Pods and workloads
//!   (containers, initContainers, ephemeralContainers; CREATE, UPDATE with an
//!   oldObject, DELETE; every covered kind), mutated as JSON trees and as bytes,
//!   through the webhook's own router (`imagegate::server::router`, the handlers
//!   and the body limit; no TLS). Every answer is an HTTP 200 with a decision for
//!   the request's uid, or an in-band refusal with code 400, or an HTTP 400 with a
//!   message; never a 5xx, never code 500 (a panic caught by the handler). An
//!   unmutated CREATE is allowed exactly when every image is one the policy allows
//!   (the oracle knows each image's verdict); an UPDATE judges only new images.
//! - `image_references`: references generated from distribution/reference's
//!   grammar, then mutated, and arbitrary strings. A differential oracle, the
//!   runtime's own grammar (`ParseNormalizedNamed` of distribution/reference
//!   v0.6.0 as its regular expressions, and go-digest v1.0.0), decides what the
//!   runtime accepts: imagegate accepts only what the runtime accepts, refuses
//!   everything the runtime refuses as `runtime_refuses()`, and its other refusals
//!   are the deliberate ones. An accepted reference normalizes as the rules say
//!   (registry, repository, `library/`, tag, digest, implicit `latest`), and
//!   parse -> to_string -> parse is idempotent.
//! - `policy_files`: YAML documents generated from the policy schema (valid, and
//!   with invalid values), in block and flow style, with comments, quotes, anchors
//!   and several documents, then mutated as text. A valid set compiles; anything
//!   else is refused with errors that each name the file and a line within it
//!   (only "the file holds no document" names the whole file).
//! - `docker_configs`: `.dockerconfigjson`, `config.json` and legacy `.dockercfg`
//!   documents (the kubelet's field rules: case-insensitive names, `auth` wins,
//!   `null` entries), then mutated. A valid one gives back exactly its entries;
//!   no error message, `Debug` output or credential description ever contains a
//!   password; keyring lookups on generated images never panic.
//! - `pull_secrets`: Secrets of every type, with and without the data key their
//!   type needs, holding generated (and mutated) docker configs, read through
//!   `imagegate::cluster::Cluster` from a local server that serves the API's JSON:
//!   classified as the kubelet reads them (missing, wrong type, invalid, config),
//!   the config exactly what the parser makes of the bytes, and no reason ever
//!   contains a password.
//! - `manifests`: OCI and Docker manifests and indexes with generated descriptors
//!   and `Content-Type` headers, judged against a model of the rules (accepted
//!   media type, schemaVersion 2, digests and sizes), then mutated.
//! - `signatures`: valid material made by the test signer (`src/signature/testing.rs`:
//!   a key-signed DSSE bundle, a message-signature bundle, a legacy `.sig` layer),
//!   mutated where it is signed (signature, payload, digest, descriptor), never
//!   verifies; mutated anywhere else as bytes, it verifies only if what it signs
//!   is unchanged; garbage never verifies; nothing panics.
//!
//! Each target runs `IMAGEGATE_FUZZ_CASES` inputs (default 512; the signature
//! and pull-secret targets a quarter of that: each input is a signature
//! verification or an API round trip), and
//! prints `fuzz-stats target=... inputs=... seconds=...` (`--nocapture` shows it;
//! `scripts/fuzz-long.sh` sums them). A failure is shrunk to a small input and
//! printed with the run's seed (`IMAGEGATE_FUZZ_SEED=<seed>` replays it; each run
//! takes a new one). Any finding is fixed in its own commit with a regression test
//! beside the code.

#[path = "../src/signature/testing.rs"]
#[allow(dead_code, clippy::all)]
mod signer;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use imagegate::reference::ImageRef;

const DEFAULT_CASES: u32 = 512;

fn cases(divisor: u32) -> u32 {
    let n = std::env::var("IMAGEGATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_CASES);
    (n / divisor).max(1)
}

/// Runs `test` on `cases(divisor)` inputs of `strategy`, shrinking a failure.
fn fuzz<S>(
    target: &str,
    divisor: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = cases(divisor);
    // A new seed each run (more inputs over time), or IMAGEGATE_FUZZ_SEED to replay
    // the run a failure printed.
    let seed = std::env::var("IMAGEGATE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        });
    let mut bytes = [0u8; 32];
    let mixed = target.bytes().fold(seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mixed.rotate_left(i as u32 * 16).to_le_bytes());
    }
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let rng = proptest::test_runner::TestRng::from_seed(
        proptest::test_runner::RngAlgorithm::ChaCha,
        &bytes,
    );
    let mut runner = TestRunner::new_with_rng(config, rng);
    let started = Instant::now();
    // The inputs actually run (a failure stops the run early; shrinking adds some).
    let ran = std::sync::atomic::AtomicU64::new(0);
    let result = runner.run(&strategy, |value| {
        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        test(value)
    });
    let seconds = started.elapsed().as_secs_f64();
    let inputs = ran.into_inner();
    println!(
        "fuzz-stats target={target} inputs={inputs} seconds={seconds:.2} rate={:.0}/s seed={seed}{}",
        inputs as f64 / seconds.max(1e-9),
        if result.is_err() { " FAILED" } else { "" }
    );
    if let Err(e) = result {
        panic!("fuzz target {target} failed (replay: IMAGEGATE_FUZZ_SEED={seed}): {e}");
    }
}

// ---------------------------------------------------------------------------
// Shared mutations
// ---------------------------------------------------------------------------

/// A byte-level edit of a text or body.
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, String),
    Delete(Index, usize),
    Replace(Index, String),
    Truncate(Index),
    FlipBit(Index, u8),
    Duplicate(Index, usize),
}

/// Characters that matter to the grammars imagegate reads.
fn interesting() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/",
            ":",
            "@",
            ".",
            "-",
            "_",
            "__",
            "[",
            "]",
            "A",
            "Z",
            "0",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\0",
            "é",
            "\u{202e}",
            "\u{feff}",
            "\u{fffd}",
            "😀",
            "\\",
            "\"",
            "'",
            "{",
            "}",
            ",",
            "#",
            "&a",
            "*a",
            "!!str ",
            "---\n",
            "...\n",
            "- ",
            ": ",
            "null",
            "~",
            "%",
            "\u{85}",
            "sha256:",
            "latest",
            "localhost",
            "docker.io",
            "\u{0130}",
            "\u{212a}",
        ])
        .prop_map(str::to_string),
        "\\PC{1,4}",
        "[ -~]{1,6}",
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), interesting()).prop_map(|(i, s)| Edit::Insert(i, s)),
        2 => (any::<Index>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        2 => (any::<Index>(), interesting()).prop_map(|(i, s)| Edit::Replace(i, s)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::FlipBit(i, b)),
        1 => (any::<Index>(), 1usize..24).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply_bytes(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Insert(i, s) => {
                let p = at(i);
                bytes.splice(p..p, s.bytes());
            }
            Edit::Delete(i, n) => {
                let p = at(i).min(len);
                bytes.drain(p..(p + n).min(len));
            }
            Edit::Replace(i, s) => {
                let p = at(i).min(len);
                let end = (p + s.len()).min(len);
                bytes.splice(p..end, s.bytes());
            }
            Edit::Truncate(i) => bytes.truncate(at(i)),
            Edit::FlipBit(i, b) => {
                if len > 0 {
                    bytes[i.index(len)] ^= 1 << b;
                }
            }
            Edit::Duplicate(i, n) => {
                let p = at(i).min(len);
                let chunk: Vec<u8> = bytes[p..(p + n).min(len)].to_vec();
                bytes.splice(p..p, chunk);
            }
        }
    }
    bytes
}

/// Edits that keep UTF-8 (for inputs that are `&str`).
fn apply_text(text: &str, edits: &[Edit]) -> String {
    let edited = apply_bytes(text.as_bytes().to_vec(), edits);
    String::from_utf8_lossy(&edited).into_owned()
}

/// JSON values of every type, small and odd.
fn odd_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        3 => Just(Value::Null),
        3 => any::<bool>().prop_map(Value::Bool),
        3 => any::<i64>().prop_map(|n| json!(n)),
        3 => any::<u64>().prop_map(|n| json!(n)),
        3 => (-1e300f64..1e300).prop_map(|f| json!(f)),
        3 => "\\PC{0,12}".prop_map(Value::String),
        3 => interesting().prop_map(Value::String),
        // Huge strings (keys and values), rarely: they cost time, not coverage.
        1 => (1usize..200_000).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}|\\PC{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(c, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A change to a JSON tree: replace a node, delete it, or add a key beside it.
#[derive(Debug, Clone)]
enum TreeEdit {
    Replace(Index, Value),
    Remove(Index),
    AddKey(Index, String, Value),
}

/// An object key: short, unicode, or (rarely) huge.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z]{1,10}|\\PC{1,6}",
        1 => (1usize..100_000).prop_map(|n| "k".repeat(n)),
    ]
}

fn tree_edit() -> impl Strategy<Value = TreeEdit> {
    prop_oneof![
        3 => (any::<Index>(), odd_value()).prop_map(|(i, v)| TreeEdit::Replace(i, v)),
        1 => any::<Index>().prop_map(TreeEdit::Remove),
        1 => (any::<Index>(), key(), odd_value())
            .prop_map(|(i, k, v)| TreeEdit::AddKey(i, k, v)),
    ]
}

fn apply_tree(mut v: Value, edits: &[TreeEdit]) -> Value {
    for e in edits {
        let mut all = Vec::new();
        pointers(&v, String::new(), &mut all);
        let pick = |i: &Index| all[i.index(all.len())].clone();
        match e {
            TreeEdit::Replace(i, new) => {
                let p = pick(i);
                if p.is_empty() {
                    v = new.clone();
                } else if let Some(slot) = v.pointer_mut(&p) {
                    *slot = new.clone();
                }
            }
            TreeEdit::Remove(i) => {
                let p = pick(i);
                if let Some((parent, last)) = p.rsplit_once('/') {
                    let last = last.replace("~1", "/").replace("~0", "~");
                    match v.pointer_mut(parent) {
                        Some(Value::Object(m)) => {
                            m.remove(&last);
                        }
                        Some(Value::Array(a)) => {
                            if let Ok(n) = last.parse::<usize>()
                                && n < a.len()
                            {
                                a.remove(n);
                            }
                        }
                        _ => {}
                    }
                }
            }
            TreeEdit::AddKey(i, k, new) => {
                let p = pick(i);
                if let Some(Value::Object(m)) = v.pointer_mut(&p) {
                    m.insert(k.clone(), new.clone());
                }
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Admission reviews through the webhook's router
// ---------------------------------------------------------------------------

const FUZZ_POLICIES: &str = r#"apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: fuzz-registries
spec:
  excludeNamespaces: ["kube-system"]
  registries:
    allow: ["registry.example.com", "ghcr.io/acme/**"]
  blockedImages: ["registry.example.com/evil/**"]
  tags:
    forbid: ["latest"]
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: fuzz-audit
spec:
  mode: Audit
  tags:
    requireDigest: true
"#;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Images the policies allow, in several spellings.
fn good_images() -> Vec<String> {
    vec![
        "registry.example.com/team/app:v1.2.3".into(),
        format!("registry.example.com/team/app:v1@{DIGEST}"),
        format!("registry.example.com/app@{DIGEST}"),
        "REGISTRY.Example.COM/team/app:2024.11".into(),
        "registry.example.com:443/team/app:v2".into(),
        "ghcr.io/acme/tool:1.0".into(),
        "ghcr.io/acme/deep/path/tool:1.0-rc.1".into(),
    ]
}

/// Images some rule refuses: `latest` (explicit or implied), another registry, a
/// host that only starts like an allowed one, a blocked repository, and invalid
/// references and image IDs.
fn bad_images() -> Vec<String> {
    vec![
        "nginx".into(),
        "nginx:latest".into(),
        "registry.example.com/team/app".into(),
        "registry.example.com/team/app:latest".into(),
        "docker.io/library/busybox:1.36".into(),
        "registry.example.com.evil.com/team/app:v1".into(),
        "registry.example.com/evil/thing:v1".into(),
        "ghcr.io/other/tool:1.0".into(),
        "registry.example.com/Team/App:v1".into(),
        String::new(),
        " registry.example.com/team/app:v1".into(),
        DIGEST.into(),
        "registry.example.com/team/app:v1 ".into(),
        "registry.example.com/team/app:v1\u{202e}".into(),
        "registry.example.com//team/app:v1".into(),
    ]
}

#[derive(Debug, Clone)]
struct Container {
    name: String,
    /// Index into good (even) or bad (odd) images: `(bad, index)`.
    image: (bool, usize),
    extra: bool,
}

fn container() -> impl Strategy<Value = Container> {
    (
        prop_oneof![
            4 => "[a-z][a-z0-9-]{0,10}",
            1 => Just("app".to_string()),
            1 => "\\PC{0,12}",
        ],
        prop_oneof![3 => Just(false), 1 => Just(true)],
        any::<Index>(),
        any::<bool>(),
    )
        .prop_map(|(name, bad, i, extra)| {
            let n = if bad {
                bad_images().len()
            } else {
                good_images().len()
            };
            Container {
                name,
                image: (bad, i.index(n)),
                extra,
            }
        })
}

impl Container {
    fn image(&self) -> String {
        if self.image.0 {
            bad_images()[self.image.1].clone()
        } else {
            good_images()[self.image.1].clone()
        }
    }

    fn json(&self) -> Value {
        let mut c = json!({"name": self.name, "image": self.image()});
        if self.extra {
            c["imagePullPolicy"] = json!("IfNotPresent");
            c["ports"] = json!([{"containerPort": 8080, "protocol": "TCP"}]);
            c["env"] = json!([{"name": "K", "value": "v"}]);
            c["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        }
        c
    }
}

#[derive(Debug, Clone)]
struct PodSpecGen {
    containers: Vec<Container>,
    init: Vec<Container>,
    ephemeral: Vec<Container>,
}

fn pod_spec() -> impl Strategy<Value = PodSpecGen> {
    (
        prop::collection::vec(container(), 1..5),
        prop::collection::vec(container(), 0..3),
        prop::collection::vec(container(), 0..3),
    )
        .prop_map(|(containers, init, ephemeral)| PodSpecGen {
            containers,
            init,
            ephemeral,
        })
}

impl PodSpecGen {
    fn json(&self, with_ephemeral: bool) -> Value {
        let mut spec = json!({
            "containers": self.containers.iter().map(Container::json).collect::<Vec<_>>(),
            "restartPolicy": "Always",
            "nodeSelector": {"kubernetes.io/os": "linux"},
        });
        if !self.init.is_empty() {
            spec["initContainers"] = self.init.iter().map(Container::json).collect();
        }
        if with_ephemeral && !self.ephemeral.is_empty() {
            spec["ephemeralContainers"] = self.ephemeral.iter().map(Container::json).collect();
        }
        spec
    }

    /// (kind, name, image, bad) of every container the object carries.
    fn images(&self, with_ephemeral: bool) -> Vec<(&'static str, String, String, bool)> {
        let mut out = Vec::new();
        for c in &self.init {
            out.push(("init", c.name.clone(), c.image(), c.image.0));
        }
        for c in &self.containers {
            out.push(("container", c.name.clone(), c.image(), c.image.0));
        }
        if with_ephemeral {
            for c in &self.ephemeral {
                out.push(("ephemeral", c.name.clone(), c.image(), c.image.0));
            }
        }
        out
    }
}

const KINDS: &[(&str, &str, &str)] = &[
    ("", "Pod", "pods"),
    ("apps", "Deployment", "deployments"),
    ("apps", "StatefulSet", "statefulsets"),
    ("apps", "DaemonSet", "daemonsets"),
    ("apps", "ReplicaSet", "replicasets"),
    ("", "ReplicationController", "replicationcontrollers"),
    ("batch", "Job", "jobs"),
    ("batch", "CronJob", "cronjobs"),
    ("", "ConfigMap", "configmaps"),
];

fn object(kind: &str, name: &str, namespace: &str, spec: Value) -> Value {
    let meta = json!({"name": name, "namespace": namespace, "labels": {"app": name}});
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": spec});
    match kind {
        "Pod" => json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}),
        "CronJob" => json!({"apiVersion": "batch/v1", "kind": kind, "metadata": meta,
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        "Job" => {
            json!({"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": {"template": template}})
        }
        "ConfigMap" => {
            json!({"apiVersion": "v1", "kind": kind, "metadata": meta, "data": {"spec": spec.to_string()}})
        }
        "ReplicationController" => json!({"apiVersion": "v1", "kind": kind, "metadata": meta,
            "spec": {"replicas": 1, "selector": {"app": name}, "template": template}}),
        _ => json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template}}),
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    None,
    Tree(Vec<TreeEdit>),
    Bytes(Vec<Edit>),
    /// A second `key` inserted before the first one in `request.object` (serde
    /// then sees duplicate fields).
    DuplicateKey(String, Value),
    /// Nested arrays this deep in a container field.
    Deep(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => Just(Mutation::None),
        4 => prop::collection::vec(tree_edit(), 1..4).prop_map(Mutation::Tree),
        2 => prop::collection::vec(edit(), 1..4).prop_map(Mutation::Bytes),
        1 => (prop::sample::select(vec!["spec", "metadata", "kind", "apiVersion", "uid", "object"]), odd_value())
            .prop_map(|(k, v)| Mutation::DuplicateKey(k.to_string(), v)),
        1 => (1usize..400).prop_map(Mutation::Deep),
    ]
}

#[derive(Debug, Clone)]
struct ReviewCase {
    kind: usize,
    operation: &'static str,
    namespace: &'static str,
    name: String,
    spec: PodSpecGen,
    old: Option<PodSpecGen>,
    /// Keep these containers of `spec` in `old` unchanged (an UPDATE that changes
    /// only some images).
    keep_old: bool,
    uid: String,
    mutate_endpoint: bool,
    mutation: Mutation,
}

fn review_case() -> impl Strategy<Value = ReviewCase> {
    (
        0..KINDS.len(),
        prop::sample::select(vec![
            "CREATE", "CREATE", "UPDATE", "UPDATE", "DELETE", "CONNECT",
        ]),
        prop::sample::select(vec!["shop", "team-a", "kube-system", ""]),
        prop_oneof!["[a-z][a-z0-9-]{0,20}", "\\PC{0,10}"],
        pod_spec(),
        prop::option::of(pod_spec()),
        any::<bool>(),
        prop_oneof![
            8 => "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
            1 => "[!-~]{1,140}",
            1 => "\\PC{0,10}",
        ],
        any::<bool>(),
        mutation(),
    )
        .prop_map(
            |(
                kind,
                operation,
                namespace,
                name,
                spec,
                old,
                keep_old,
                uid,
                mutate_endpoint,
                mutation,
            )| ReviewCase {
                kind,
                operation,
                namespace,
                name,
                spec,
                old,
                keep_old,
                uid,
                mutate_endpoint,
                mutation,
            },
        )
}

impl ReviewCase {
    fn old_spec(&self) -> Option<PodSpecGen> {
        let old = self.old.clone()?;
        if !self.keep_old {
            return Some(old);
        }
        // The old object had the same containers as the new one, but for the
        // first container's image.
        let mut kept = self.spec.clone();
        if let Some(first) = kept.containers.first_mut() {
            first.image = old.containers[0].image;
        }
        Some(kept)
    }

    fn review(&self) -> Value {
        let (group, kind, resource) = KINDS[self.kind];
        let pod = kind == "Pod";
        let obj = object(kind, &self.name, self.namespace, self.spec.json(pod));
        let mut request = json!({
            "uid": self.uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": obj,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        });
        if self.operation == "UPDATE"
            && let Some(old) = self.old_spec()
        {
            request["oldObject"] = object(kind, &self.name, self.namespace, old.json(pod));
        }
        if self.operation == "DELETE" {
            request["oldObject"] = request["object"].take();
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }

    /// The body to send, and whether it is the review as generated.
    fn body(&self) -> (Vec<u8>, bool) {
        let review = self.review();
        match &self.mutation {
            Mutation::None => (serde_json::to_vec(&review).unwrap(), true),
            Mutation::Tree(edits) => (
                serde_json::to_vec(&apply_tree(review, edits)).unwrap(),
                false,
            ),
            Mutation::Bytes(edits) => (
                apply_bytes(serde_json::to_vec(&review).unwrap(), edits),
                false,
            ),
            Mutation::DuplicateKey(key, value) => {
                let text = serde_json::to_string(&review).unwrap();
                let needle = format!("\"{key}\":");
                let dup = format!("\"{key}\":{value},");
                let out = match text.find(&needle) {
                    Some(at) => format!("{}{dup}{}", &text[..at], &text[at..]),
                    None => text,
                };
                (out.into_bytes(), false)
            }
            Mutation::Deep(depth) => {
                let mut r = review;
                let mut v = json!("x");
                for _ in 0..*depth {
                    v = json!([v]);
                }
                if let Some(spec) = r.pointer_mut("/request/object/spec") {
                    spec["deep"] = v;
                }
                (serde_json::to_vec(&r).unwrap(), false)
            }
        }
    }

    /// The decision the rules give for the unmutated review, when it is judged.
    fn expected_allowed(&self) -> Option<bool> {
        let (_, kind, _) = KINDS[self.kind];
        if kind == "ConfigMap" || !matches!(self.operation, "CREATE" | "UPDATE") {
            return Some(true);
        }
        let pod = kind == "Pod";
        let mut judged = self.spec.images(pod);
        if self.operation == "UPDATE"
            && let Some(old) = self.old_spec()
        {
            let old = old.images(pod);
            judged.retain(|(k, n, i, _)| {
                !old.iter()
                    .any(|(ok, on, oi, _)| ok == k && on == n && oi == i)
            });
        }
        // The policy excludes kube-system; an invalid reference is refused
        // everywhere (the pod would fail with InvalidImageName).
        let refused = |(_, _, image, bad): &(&str, String, String, bool)| {
            if self.namespace == "kube-system" {
                ImageRef::parse(image).is_err()
            } else {
                *bad
            }
        };
        Some(!judged.iter().any(refused))
    }
}

struct Webhook {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn webhook() -> &'static Webhook {
    static WEBHOOK: OnceLock<Webhook> = OnceLock::new();
    WEBHOOK.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sources = imagegate::policy::load_sources(&[("fuzz.yaml", FUZZ_POLICIES)]);
        let policies =
            imagegate::policy::PolicySet::compile(&sources).expect("the fuzz policies compile");
        let router = runtime.block_on(async {
            let inspector = imagegate::inspector::Inspector::new(
                imagegate::registry::RegistryClient::new(
                    imagegate::registry::RegistryConfig::default(),
                ),
                None,
                imagegate::inspector::InspectorConfig::default(),
            )
            .expect("the inspector builds");
            let state = imagegate::server::AppState::new(
                policies,
                imagegate::server::Lookups {
                    inspector,
                    deadline: Duration::from_secs(2),
                },
            );
            imagegate::server::router(state)
        });
        Webhook { runtime, router }
    })
}

/// POSTs `body` to `path` through the router: (HTTP status, body).
fn post(path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    use tower::ServiceExt as _;
    let w = webhook();
    w.runtime.block_on(async {
        let request = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = w.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    })
}

/// The invariants every answer keeps; returns the reply when it is a review.
fn check_answer(status: u16, reply: &[u8], sent: &[u8]) -> Result<Option<Value>, TestCaseError> {
    // The request path reads a body in one pass when it can; the two-pass reading
    // it falls back to must read every body the same.
    let (read, two_passes) = (
        imagegate::admission::review::read(sent),
        imagegate::admission::review::read_with_raw_objects(sent),
    );
    prop_assert_eq!(
        format!("{read:?}"),
        format!("{two_passes:?}"),
        "the one pass and the two passes read this differently: {}",
        String::from_utf8_lossy(sent)
    );
    let text = String::from_utf8_lossy(reply);
    prop_assert!(status < 500, "HTTP {status}: {text}");
    if status != 200 {
        prop_assert!(status == 400 || status == 413, "HTTP {status}: {text}");
        prop_assert!(!text.trim().is_empty(), "HTTP {status} without a message");
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(reply)
        .map_err(|e| TestCaseError::fail(format!("a 200 that is not JSON ({e}): {text}")))?;
    prop_assert_eq!(v["kind"].as_str(), Some("AdmissionReview"), "{}", text);
    let response = &v["response"];
    let allowed = response["allowed"].as_bool();
    prop_assert!(allowed.is_some(), "no decision: {text}");
    // The uid answered is the uid sent.
    let sent: Option<Value> = serde_json::from_slice(sent).ok();
    if let Some(uid) = sent
        .as_ref()
        .and_then(|s| s.pointer("/request/uid"))
        .and_then(Value::as_str)
    {
        prop_assert_eq!(response["uid"].as_str(), Some(uid), "{}", text);
    }
    if allowed == Some(false) {
        let code = response.pointer("/status/code").and_then(Value::as_u64);
        prop_assert!(
            matches!(code, Some(400 | 403)),
            "a refusal with code {code:?}: {text}"
        );
        let message = response
            .pointer("/status/message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        prop_assert!(
            !message.trim().is_empty(),
            "a refusal without a message: {text}"
        );
    }
    if let Some(warnings) = response["warnings"].as_array() {
        let total: usize = warnings
            .iter()
            .filter_map(Value::as_str)
            .map(str::len)
            .sum();
        prop_assert!(
            total <= imagegate::admission::review::MAX_WARNINGS_TOTAL,
            "warnings of {total} bytes"
        );
        for w in warnings.iter().filter_map(Value::as_str) {
            prop_assert!(
                w.len() <= imagegate::admission::review::MAX_WARNING_LEN,
                "a warning of {} bytes",
                w.len()
            );
        }
    }
    Ok(Some(v))
}

#[test]
fn admission_reviews() {
    fuzz("admission_reviews", 1, review_case(), |case| {
        let (body, unmutated) = case.body();
        let path = if case.mutate_endpoint {
            "/mutate"
        } else {
            "/validate"
        };
        let (status, reply) = post(path, body.clone());
        let Some(v) = check_answer(status, &reply, &body)? else {
            prop_assert!(
                !unmutated
                    || case.uid.trim().is_empty()
                    || case.uid.len() > 128
                    || !case.uid.bytes().all(|b| b.is_ascii_graphic()),
                "a generated review got HTTP {status}: {}",
                String::from_utf8_lossy(&reply)
            );
            return Ok(());
        };
        if unmutated {
            let response = &v["response"];
            let code = response.pointer("/status/code").and_then(Value::as_u64);
            prop_assert_ne!(
                code,
                Some(400),
                "a generated review was refused as malformed: {}",
                v
            );
            // `/mutate` leaves policy denials to `/validate`.
            if !case.mutate_endpoint
                && let Some(expected) = case.expected_allowed()
            {
                prop_assert_eq!(
                    response["allowed"].as_bool(),
                    Some(expected),
                    "images {:?}: {}",
                    case.spec.images(KINDS[case.kind].1 == "Pod"),
                    v
                );
            }
        }
        Ok(())
    });
}

/// Bodies that are not reviews at all, and reviews whose envelope is wrong.
#[test]
fn admission_bodies() {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        odd_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (odd_value(), odd_value(), odd_value()).prop_map(|(a, k, r)| {
            serde_json::to_vec(&json!({"apiVersion": a, "kind": k, "request": r})).unwrap()
        }),
        (prop::sample::select(vec!["admission.k8s.io/v1", "admission.k8s.io/v1beta1", "admission.k8s.io/", "v1"]), odd_value())
            .prop_map(|(a, r)| serde_json::to_vec(&json!({"apiVersion": a, "kind": "AdmissionReview", "request": {"uid": "u-1", "operation": r}})).unwrap()),
    ];
    fuzz(
        "admission_bodies",
        1,
        (body, any::<bool>()),
        |(body, mutate)| {
            let (status, reply) = post(if mutate { "/mutate" } else { "/validate" }, body.clone());
            check_answer(status, &reply, &body)?;
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Image references against the runtime's grammar
// ---------------------------------------------------------------------------

/// distribution/reference v0.6.0's `ReferenceRegexp` and `anchoredNameRegexp`.
fn runtime_grammar() -> &'static (regex::Regex, regex::Regex) {
    static RE: OnceLock<(regex::Regex, regex::Regex)> = OnceLock::new();
    RE.get_or_init(|| {
        let alphanumeric = "[a-z0-9]+";
        let separator = "(?:[._]|__|[-]+)";
        let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain_name = format!(r"{domain_component}(?:\.{domain_component})*");
        let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
        let host = format!("(?:{domain_name}|{ipv6})");
        let domain_and_port = format!("{host}(?::[0-9]+)?");
        let tag = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
        let path_component = format!("{alphanumeric}(?:{separator}{alphanumeric})*");
        let remote_name = format!("{path_component}(?:/{path_component})*");
        let name = format!("(?:{domain_and_port}/)?{remote_name}");
        let reference =
            regex::Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$")).unwrap();
        let anchored_name =
            regex::Regex::new(&format!("^(?:({domain_and_port})/)?({remote_name})$")).unwrap();
        (reference, anchored_name)
    })
}

/// What the runtime makes of `s` (`ParseNormalizedNamed`): `Some((domain, path,
/// tag, digest))` when it accepts it.
#[allow(clippy::type_complexity)]
fn runtime_parse(s: &str) -> Option<(String, String, Option<String>, Option<String>)> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    // splitDockerDomain
    let (mut domain, mut remainder) = match s.find('/') {
        Some(i)
            if s[..i].contains(['.', ':'])
                || &s[..i] == "localhost"
                || s[..i].to_lowercase() != s[..i] =>
        {
            (s[..i].to_string(), s[i + 1..].to_string())
        }
        _ => ("docker.io".to_string(), s.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    let remote_name = remainder.split(':').next().unwrap_or_default();
    if remote_name.to_lowercase() != remote_name {
        return None;
    }
    let full = format!("{domain}/{remainder}");
    let (reference, anchored_name) = runtime_grammar();
    let caps = reference.captures(&full)?;
    let name = caps.get(1)?.as_str();
    let name_caps = anchored_name.captures(name)?;
    let path = name_caps.get(2)?.as_str();
    if path.len() > 255 {
        return None;
    }
    let digest = caps.get(3).map(|d| d.as_str().to_string());
    if let Some(d) = &digest {
        // go-digest v1.0.0: sha256, sha384, sha512 with lowercase hex of their size.
        let (alg, hex) = d.split_once(':')?;
        let len = match alg {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return None,
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
    }
    // The registry is what splitDockerDomain chose (containerd dials it), even
    // where the grammar reads it as a path component (`foo_bar.com/x`).
    let _ = name_caps;
    let repository = name[domain.len() + 1..].to_string();
    Some((
        domain,
        repository,
        caps.get(2).map(|t| t.as_str().to_string()),
        digest,
    ))
}

fn reference_from_grammar() -> impl Strategy<Value = String> {
    let component = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?";
    let host = prop_oneof![
        Just("localhost".to_string()),
        prop::sample::select(vec![
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "INDEX.DOCKER.IO",
            "Docker.io:443",
            "registry.example.com",
            "ghcr.io",
            "[::1]",
            "[2001:db8::1]",
            "[2001:DB8:0::1]",
            "[::ffff:1.2.3.4]",
            "[fe80::1%eth0]",
            "[zz]"
        ])
        .prop_map(str::to_string),
        prop::collection::vec(component, 2..4).prop_map(|v| v.join(".")),
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "\\[[a-fA-F0-9:]{1,24}\\]",
        "[A-Z][a-zA-Z0-9]{0,6}",
    ];
    let port = prop_oneof![
        Just(String::new()),
        "[0-9]{1,6}".prop_map(|p| format!(":{p}")),
        Just(":443".to_string()),
        Just(":05000".to_string())
    ];
    let path_component = "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}";
    let tag = prop_oneof![
        6 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        1 => "[A-Za-z0-9_][A-Za-z0-9_.-]{120,130}",
        1 => Just("latest".to_string()),
    ];
    let digest = prop_oneof![
        4 => "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
        1 => "[0-9a-f]{96}".prop_map(|h| format!("sha384:{h}")),
        1 => "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
        1 => "[0-9a-fA-F]{64}".prop_map(|h| format!("sha256:{h}")),
        1 => "[0-9a-f]{32,70}".prop_map(|h| format!("sha256:{h}")),
        1 => ("[a-z][a-z0-9]{0,6}([+._-][a-z][a-z0-9]{0,4})?", "[0-9a-f]{32,64}").prop_map(|(a, h)| format!("{a}:{h}")),
    ];
    (
        prop::option::weighted(0.6, (host, port)),
        prop::collection::vec(path_component, 1..5),
        prop::option::weighted(0.6, tag),
        prop::option::weighted(0.3, digest),
        prop_oneof![8 => Just(0usize), 1 => 1usize..300],
    )
        .prop_map(|(host, path, tag, digest, pad)| {
            let mut s = String::new();
            if let Some((h, p)) = host {
                s.push_str(&h);
                s.push_str(&p);
                s.push('/');
            }
            s.push_str(&path.join("/"));
            if pad > 0 {
                s.push('/');
                s.push_str(&"a".repeat(pad));
            }
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(d) = digest {
                s.push('@');
                s.push_str(&d);
            }
            s
        })
}

fn reference_input() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => reference_from_grammar(),
        4 => (reference_from_grammar(), prop::collection::vec(edit(), 1..4)).prop_map(|(s, e)| apply_text(&s, &e)),
        1 => "[a-zA-Z0-9:/@._\\-\\[\\]]{0,60}",
        1 => "\\PC{0,40}",
        1 => "[0-9a-f]{64}",
        1 => "(sha256|sha512|blake3|md5):[0-9a-f]{64}",
    ]
}

#[test]
fn image_references() {
    fuzz("image_references", 1, reference_input(), |input| {
        let runtime = runtime_parse(&input);
        match ImageRef::parse(&input) {
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                // The runtime refuses exactly what imagegate says it refuses; the
                // other refusals are imagegate's deliberate ones.
                prop_assert_eq!(
                    e.runtime_refuses(),
                    runtime.is_none(),
                    "{:?}: imagegate refuses with {:?} ({}), runtime_refuses() = {}, the runtime's grammar gives {:?}",
                    input,
                    e,
                    e,
                    e.runtime_refuses(),
                    runtime
                );
            }
            Ok(r) => {
                let Some((domain, path, tag, digest)) = runtime else {
                    return Err(TestCaseError::fail(format!(
                        "{input:?}: imagegate accepts {r:?}, the runtime refuses it"
                    )));
                };
                // Normalized as the rules say.
                let host = domain.to_ascii_lowercase();
                let bare = host.strip_suffix(":443").unwrap_or(&host);
                let hub = matches!(
                    bare,
                    "docker.io" | "index.docker.io" | "registry-1.docker.io"
                );
                let expected_registry = if hub {
                    "docker.io".to_string()
                } else {
                    host.clone()
                };
                prop_assert_eq!(r.registry(), expected_registry.as_str(), "{:?}", input);
                let expected_repo = if hub && !path.contains('/') {
                    format!("library/{path}")
                } else {
                    path.clone()
                };
                prop_assert_eq!(r.repository(), expected_repo.as_str(), "{:?}", input);
                prop_assert_eq!(r.digest(), digest.as_deref(), "{:?}", input);
                match &tag {
                    Some(t) => prop_assert_eq!(r.tag(), Some(t.as_str())),
                    None if digest.is_none() => {
                        prop_assert!(r.is_implicit_latest());
                        prop_assert_eq!(r.tag(), Some("latest"));
                    }
                    None => prop_assert_eq!(r.tag(), None),
                }
                // parse -> to_string -> parse is idempotent.
                let printed = r.to_string();
                let again = ImageRef::parse(&printed).map_err(|e| {
                    TestCaseError::fail(format!(
                        "{input:?} prints as {printed:?}, which does not parse: {e}"
                    ))
                })?;
                prop_assert_eq!(again.to_string(), printed.clone());
                prop_assert_eq!(again.registry(), r.registry());
                prop_assert_eq!(again.repository(), r.repository());
                prop_assert_eq!(again.name(), r.name());
                prop_assert_eq!(again.tag(), r.tag());
                prop_assert_eq!(again.digest(), r.digest());
                let cached = ImageRef::parse_cached(&input)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&*cached, &r);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Policy files
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Scalar {
    Plain(String),
    Quoted(String),
    Single(String),
}

impl Scalar {
    fn render(&self) -> String {
        match self {
            Scalar::Plain(s) => s.clone(),
            Scalar::Quoted(s) => serde_json::to_string(s).unwrap(),
            Scalar::Single(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

fn scalar(valid: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = Scalar> {
    prop_oneof![
        2 => valid.clone().prop_map(Scalar::Quoted),
        1 => valid.prop_map(Scalar::Single),
    ]
}

/// One field of a policy spec: (YAML key, rendered value lines, valid).
#[derive(Debug, Clone)]
struct Field {
    key: &'static str,
    value: FieldValue,
    valid: bool,
}

#[derive(Debug, Clone)]
enum FieldValue {
    Scalar(Scalar),
    List(Vec<Scalar>, bool),
    Map(Vec<(&'static str, FieldValue)>),
}

fn list(item: impl Strategy<Value = Scalar>, flow: bool) -> impl Strategy<Value = FieldValue> {
    prop::collection::vec(item, 0..4).prop_map(move |v| FieldValue::List(v, flow))
}

fn render_value(v: &FieldValue, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        FieldValue::Scalar(s) => {
            out.push(' ');
            out.push_str(&s.render());
            out.push('\n');
        }
        FieldValue::List(items, flow) => {
            if *flow || items.is_empty() {
                out.push_str(" [");
                out.push_str(
                    &items
                        .iter()
                        .map(Scalar::render)
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                out.push_str("]\n");
            } else {
                out.push('\n');
                for i in items {
                    out.push_str(&format!("{pad}- {}\n", i.render()));
                }
            }
        }
        FieldValue::Map(fields) => {
            out.push('\n');
            for (k, v) in fields {
                out.push_str(&format!("{pad}{k}:"));
                render_value(v, indent + 2, out);
            }
        }
    }
}

fn glob() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        Just("**".to_string()),
        "[a-z]{1,6}(/[a-z]{1,5}\\*?){0,2}",
        "[a-z]{1,6}\\.[a-z]{2,4}(/[a-z]{1,5}\\*?){1,2}(/\\*\\*)?",
        "registry\\.example\\.com(:[1-9][0-9]{1,3})?/[a-z]{1,5}/\\*\\*",
    ]
}

fn spec_field() -> impl Strategy<Value = Field> {
    let ns = "[a-z][a-z0-9*-]{0,8}";
    let regex_ok = prop_oneof![
        Just(r"^v\d+\.\d+\.\d+$".to_string()),
        Just("^[0-9]+$".to_string()),
        "[a-z]{1,4}"
    ];
    let regex_bad = prop_oneof![
        Just("(".to_string()),
        Just("[a-".to_string()),
        Just("\\".to_string()),
        Just("a{99999999}".to_string())
    ];
    let bool_or_not = |key: &'static str| {
        prop_oneof![
            any::<bool>().prop_map(move |b| Field {
                key,
                value: FieldValue::Scalar(Scalar::Plain(b.to_string())),
                valid: true
            }),
            Just(Field {
                key,
                value: FieldValue::Scalar(Scalar::Plain("maybe".into())),
                valid: false
            }),
        ]
    };
    prop_oneof![
        prop::sample::select(vec![
            ("Enforce", true),
            ("Audit", true),
            ("enforce", false),
            ("Off", false)
        ])
        .prop_map(|(m, valid)| Field {
            key: "mode",
            value: FieldValue::Scalar(Scalar::Plain(m.into())),
            valid
        }),
        (list(scalar(ns), false), any::<bool>()).prop_map(|(v, flow)| Field {
            key: "namespaces",
            value: reflow(v, flow),
            valid: true
        }),
        list(scalar(ns), true).prop_map(|v| Field {
            key: "excludeNamespaces",
            value: v,
            valid: true
        }),
        list(scalar(glob()), false).prop_map(|v| Field {
            key: "images",
            value: v,
            valid: true
        }),
        list(scalar(glob()), true).prop_map(|v| Field {
            key: "excludeImages",
            value: v,
            valid: true
        }),
        list(scalar(glob()), false).prop_map(|v| Field {
            key: "blockedImages",
            value: v,
            valid: true
        }),
        list(
            scalar(prop_oneof![
                Just("registry.example.com".to_string()),
                Just("*.corp.example.com".to_string()),
                Just("10.0.0.5:5000".to_string()),
                Just("ghcr.io/acme/**".to_string())
            ]),
            false
        )
        .prop_map(|v| Field {
            key: "registries",
            value: FieldValue::Map(vec![("allow", v)]),
            valid: true
        }),
        list(
            scalar(prop_oneof![
                Just("https://registry.example.com".to_string()),
                Just("".to_string()),
                Just("registry.example.com/[".to_string())
            ]),
            true
        )
        .prop_map(|v| {
            let valid = matches!(&v, FieldValue::List(items, _) if items.is_empty());
            Field {
                key: "registries",
                value: FieldValue::Map(vec![("allow", v)]),
                valid,
            }
        }),
        (
            list(
                scalar(prop_oneof![Just("latest".to_string()), "[a-z][a-z*-]{0,5}"]),
                true
            ),
            any::<bool>(),
            list(scalar(regex_ok), false)
        )
            .prop_map(|(forbid, digest, allow)| Field {
                key: "tags",
                value: FieldValue::Map(vec![
                    ("forbid", forbid),
                    (
                        "requireDigest",
                        FieldValue::Scalar(Scalar::Plain(digest.to_string()))
                    ),
                    ("allow", allow)
                ]),
                valid: true
            }),
        prop::collection::vec(scalar(regex_bad), 1..3).prop_map(|v| Field {
            key: "tags",
            value: FieldValue::Map(vec![("allow", FieldValue::List(v, true))]),
            valid: false
        }),
        "\\PC{0,40}".prop_map(|m| Field {
            key: "message",
            value: FieldValue::Scalar(Scalar::Quoted(m)),
            valid: true
        }),
        bool_or_not("preflight"),
        bool_or_not("pinDigests"),
        prop::sample::select(vec![("Deny", true), ("Warn", true), ("Ignore", false)]).prop_map(
            |(m, valid)| Field {
                key: "onRegistryError",
                value: FieldValue::Scalar(Scalar::Plain(m.into())),
                valid
            }
        ),
        prop::sample::select(vec![("amd64", true), ("arm64", true)]).prop_map(|(a, valid)| Field {
            key: "architectures",
            value: FieldValue::Map(vec![
                (
                    "require",
                    FieldValue::List(vec![Scalar::Plain(a.into())], true)
                ),
                (
                    "onMismatch",
                    FieldValue::Scalar(Scalar::Plain("Deny".into()))
                )
            ]),
            valid
        }),
        Just(Field {
            key: "unknownField",
            value: FieldValue::Scalar(Scalar::Plain("1".into())),
            valid: false
        }),
        Just(Field {
            key: "images",
            value: FieldValue::Scalar(Scalar::Plain("{a: [b".into())),
            valid: false
        }),
    ]
}

fn reflow(v: FieldValue, flow: bool) -> FieldValue {
    match v {
        FieldValue::List(items, _) => FieldValue::List(items, flow),
        other => other,
    }
}

#[derive(Debug, Clone)]
struct Doc {
    name: String,
    name_valid: bool,
    api_ok: bool,
    fields: Vec<Field>,
    comment: bool,
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop_oneof![
            8 => "[a-z][a-z0-9-]{0,12}[a-z0-9]".prop_map(|n| (n, true)),
            1 => prop::sample::select(vec!["Bad_Name", "", "-x", "ünï"]).prop_map(|n| (n.to_string(), false)),
        ],
        prop_oneof![9 => Just(true), 1 => Just(false)],
        prop::collection::vec(spec_field(), 0..6),
        any::<bool>(),
    )
        .prop_map(|((name, name_valid), api_ok, fields, comment)| Doc { name, name_valid, api_ok, fields, comment })
}

impl Doc {
    fn render(&self, out: &mut String) {
        if self.comment {
            out.push_str("# generated policy\n");
        }
        out.push_str(if self.api_ok {
            "apiVersion: imagegate.dev/v1alpha1\n"
        } else {
            "apiVersion: imagegate.dev/v2\n"
        });
        out.push_str("kind: ImagePolicy\nmetadata:\n");
        out.push_str(&format!(
            "  name: {}\n",
            serde_json::to_string(&self.name).unwrap()
        ));
        out.push_str("spec:");
        // Later fields of the same key would be duplicate keys; keep the first.
        let mut seen = BTreeSet::new();
        let fields: Vec<&Field> = self.fields.iter().filter(|f| seen.insert(f.key)).collect();
        if fields.is_empty() {
            out.push_str(" {}\n");
            return;
        }
        out.push('\n');
        for f in fields {
            out.push_str(&format!("  {}:", f.key));
            render_value(&f.value, 4, out);
        }
    }

    fn valid(&self) -> bool {
        let mut seen = BTreeSet::new();
        self.name_valid
            && self.api_ok
            && self
                .fields
                .iter()
                .filter(|f| seen.insert(f.key))
                .all(|f| f.valid)
    }
}

#[derive(Debug, Clone)]
struct PolicyCase {
    docs: Vec<Doc>,
    edits: Vec<Edit>,
    crlf: bool,
}

impl PolicyCase {
    fn text(&self) -> String {
        let mut text = String::new();
        for (i, d) in self.docs.iter().enumerate() {
            if i > 0 || d.comment {
                text.push_str("---\n");
            }
            d.render(&mut text);
        }
        if self.crlf {
            text = text.replace('\n', "\r\n");
        }
        apply_text(&text, &self.edits)
    }

    fn valid(&self) -> bool {
        let mut names = BTreeSet::new();
        self.edits.is_empty()
            && !self.docs.is_empty()
            && self.docs.iter().all(Doc::valid)
            && self.docs.iter().all(|d| names.insert(d.name.clone()))
    }
}

/// The lines of `text` as YAML counts them, and the one after a final break
/// (where an error at the end of the file is reported): a line break is CR LF,
/// LF or a lone CR. (The first long fuzz run found `str::lines` too few: it does
/// not break at a lone CR.)
fn yaml_lines(text: &str) -> u64 {
    let crlf = text.matches("\r\n").count();
    let breaks = text.matches('\r').count() + text.matches('\n').count() - crlf;
    breaks as u64 + 1
}

/// A parse error at the end of a file whose line breaks are lone CRs names a
/// line YAML counts (the first long fuzz run's finding, in the oracle).
#[test]
fn policy_errors_name_lines_as_yaml_counts_them() {
    for text in ["\r%!\n", "\r\n%!", "a: [\r", "\r\r\rkind: [", "%!"] {
        let sources = imagegate::policy::load_sources(&[("p.yaml", text)]);
        let errors = imagegate::policy::PolicySet::compile(&sources).unwrap_err();
        for e in &errors.0 {
            let line = e.line.expect("a parse error has a line");
            assert!(
                (1..=yaml_lines(text)).contains(&line),
                "{text:?}: line {line} of {}: {e}",
                yaml_lines(text)
            );
        }
    }
    assert_eq!(
        [
            yaml_lines(""),
            yaml_lines("a\n"),
            yaml_lines("a\r\nb"),
            yaml_lines("\r%!\n")
        ],
        [1, 2, 2, 3]
    );
}

fn policy_case() -> impl Strategy<Value = PolicyCase> {
    (
        prop::collection::vec(doc(), 0..4),
        prop_oneof![3 => Just(vec![]), 2 => prop::collection::vec(edit(), 1..5)],
        prop_oneof![5 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(docs, edits, crlf)| PolicyCase { docs, edits, crlf })
}

#[test]
fn policy_files() {
    fuzz("policy_files", 1, policy_case(), |case| {
        let text = case.text();
        let sources = imagegate::policy::load_sources(&[("policies/fuzz.yaml", &text)]);
        let lines = yaml_lines(&text);
        match imagegate::policy::PolicySet::compile(&sources) {
            Ok(set) => {
                prop_assert!(!set.is_empty(), "an empty set compiled from {text:?}");
                prop_assert!(
                    !case.valid() || set.policies.len() == case.docs.len(),
                    "{text}"
                );
            }
            Err(errors) => {
                prop_assert!(
                    !case.valid(),
                    "a valid policy file was refused: {errors}\n{text}"
                );
                prop_assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    prop_assert_eq!(e.file.to_str(), Some("policies/fuzz.yaml"));
                    prop_assert!(!e.message.trim().is_empty(), "{e:?}");
                    if e.message != imagegate::policy::compile::NO_DOCUMENT {
                        let line = e.line.ok_or_else(|| {
                            TestCaseError::fail(format!(
                                "an error without a line: {e}\n--- text:\n{text}"
                            ))
                        })?;
                        prop_assert!(
                            (1..=lines).contains(&line),
                            "line {line} of {lines}: {e}\n{text}"
                        );
                    }
                }
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Docker config files and pull secrets
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    username: String,
    password: String,
    /// How the credentials are written: `auth`, fields, both (auth wins), none.
    style: u8,
    field_case: bool,
    email: bool,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        prop_oneof![
            "https://[a-z]{1,8}\\.example\\.com(/v1/|/v2/|/)?",
            "[a-z]{1,8}\\.example\\.com(:[0-9]{2,5})?(/[a-z]{1,5}){0,2}",
            "\\*\\.[a-z]{1,6}\\.example\\.com",
            Just("https://index.docker.io/v1/".to_string()),
            Just("docker.io".to_string()),
            "\\PC{0,12}",
        ],
        "[a-zA-Z0-9$@._-]{0,12}",
        // Distinctive passwords, so that a leak is found by substring.
        "PW[A-Za-z0-9]{10,20}",
        0u8..4,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(key, username, password, style, field_case, email)| Entry {
                key,
                username,
                password,
                style,
                field_case,
                email,
            },
        )
}

#[derive(Debug, Clone)]
struct ConfigCase {
    entries: Vec<Entry>,
    /// 0: `{"auths": ...}`, 1: legacy `.dockercfg`, 2: config.json with helpers.
    shape: u8,
    edits: Vec<Edit>,
    lookups: Vec<String>,
}

impl ConfigCase {
    fn dedup(&self) -> Vec<&Entry> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<&Entry> = self
            .entries
            .iter()
            .rev()
            .filter(|e| seen.insert(e.key.clone()))
            .collect();
        out.reverse();
        out
    }

    fn json(&self) -> Value {
        let mut auths = serde_json::Map::new();
        for e in self.dedup() {
            let name = |n: &str| {
                if e.field_case {
                    n.to_uppercase()
                } else {
                    n.to_string()
                }
            };
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", e.username, e.password));
            let mut v = serde_json::Map::new();
            match e.style {
                0 => {
                    v.insert(name("auth"), json!(auth));
                }
                1 => {
                    v.insert(name("username"), json!(e.username));
                    v.insert(name("password"), json!(e.password));
                }
                2 => {
                    v.insert(name("username"), json!("ignored"));
                    v.insert(name("password"), json!("ignored-too"));
                    v.insert(name("auth"), json!(auth));
                }
                _ => {}
            }
            if e.email {
                v.insert("email".into(), json!("a@example.com"));
            }
            auths.insert(
                e.key.clone(),
                if e.style == 3 {
                    Value::Null
                } else {
                    Value::Object(v)
                },
            );
        }
        match self.shape {
            0 => json!({"auths": auths}),
            1 => Value::Object(auths),
            _ => {
                json!({"auths": auths, "credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}})
            }
        }
    }

    fn expected(&self) -> Vec<(String, String, String)> {
        self.dedup()
            .into_iter()
            .map(|e| match e.style {
                3 => (e.key.clone(), String::new(), String::new()),
                _ => (e.key.clone(), e.username.clone(), e.password.clone()),
            })
            .collect()
    }
}

fn config_case() -> impl Strategy<Value = ConfigCase> {
    (
        prop::collection::vec(entry(), 0..5),
        0u8..3,
        prop_oneof![3 => Just(vec![]), 2 => prop::collection::vec(edit(), 1..4)],
        prop::collection::vec(reference_input(), 0..3),
    )
        .prop_map(|(entries, shape, edits, lookups)| ConfigCase {
            entries,
            shape,
            edits,
            lookups,
        })
}

#[test]
fn docker_configs() {
    fuzz("docker_configs", 1, config_case(), |case| {
        let mut entries = case.entries.clone();
        // A legacy `.dockercfg` whose only key is `auths` is another shape; skip it.
        if case.shape == 1 {
            entries.retain(|e| {
                !e.key.eq_ignore_ascii_case("auths") && !e.key.eq_ignore_ascii_case("credsStore")
            });
        }
        let case = ConfigCase { entries, ..case };
        let clean = serde_json::to_vec(&case.json()).unwrap();
        let bytes = apply_bytes(clean.clone(), &case.edits);
        let passwords: Vec<&str> = case.entries.iter().map(|e| e.password.as_str()).collect();
        let leaks = |text: &str| {
            passwords
                .iter()
                .find(|p| text.contains(**p))
                .map(|p| p.to_string())
        };
        match imagegate::credentials::parse_docker_config(&bytes) {
            Err(e) => {
                prop_assert!(
                    !case.edits.is_empty(),
                    "a generated config was refused: {e}"
                );
                prop_assert_eq!(
                    leaks(&e.to_string()),
                    None,
                    "the error leaks a password: {}",
                    e
                );
                prop_assert_eq!(
                    leaks(&format!("{e:?}")),
                    None,
                    "the error's Debug leaks a password"
                );
            }
            Ok(config) => {
                prop_assert_eq!(
                    leaks(&format!("{config:?}")),
                    None,
                    "Debug leaks a password"
                );
                if case.edits.is_empty() {
                    let got: Vec<(String, String, String)> = config
                        .entries()
                        .iter()
                        .map(|e| (e.key.clone(), e.username.clone(), e.password.clone()))
                        .collect();
                    let mut expected = case.expected();
                    let mut got_sorted = got.clone();
                    expected.sort();
                    got_sorted.sort();
                    prop_assert_eq!(got_sorted, expected);
                }
                let mut keyring = imagegate::credentials::Keyring::new();
                keyring.add(&config, "pod imagePullSecret \"team/regcred\"");
                for image in &case.lookups {
                    if let Ok(r) = ImageRef::parse(image) {
                        for c in keyring.lookup(r.registry(), r.repository()) {
                            prop_assert_eq!(
                                leaks(&c.describe()),
                                None,
                                "describe() leaks a password"
                            );
                            prop_assert_eq!(
                                leaks(&format!("{c:?}")),
                                None,
                                "Debug leaks a password"
                            );
                        }
                    }
                }
                for (k, v) in keyring.keys() {
                    prop_assert_eq!(leaks(&k), None);
                    prop_assert_eq!(leaks(&v), None);
                }
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Manifests and indexes
// ---------------------------------------------------------------------------

use imagegate::registry::manifest::{self as m, Parsed};

#[derive(Debug, Clone)]
struct Desc {
    digest: String,
    digest_ok: bool,
    size: i64,
    platform: Option<(String, String, Option<String>)>,
}

fn desc() -> impl Strategy<Value = Desc> {
    (
        prop_oneof![
            6 => "[0-9a-f]{64}".prop_map(|h| (format!("sha256:{h}"), true)),
            1 => "[0-9a-f]{128}".prop_map(|h| (format!("sha512:{h}"), true)),
            1 => "[0-9A-F]{64}".prop_map(|h| (format!("sha256:{h}"), h.bytes().all(|b| b.is_ascii_digit()))),
            1 => "[0-9a-f]{63}".prop_map(|h| (format!("sha256:{h}"), false)),
            1 => "\\PC{0,20}".prop_map(|h| (h, false)),
        ],
        prop_oneof![8 => 0i64..100_000_000, 1 => Just(-1i64), 1 => Just(i64::MAX)],
        prop::option::of((
            prop::sample::select(vec!["linux", "windows", "", "LINUX", "unknown"]),
            prop::sample::select(vec!["amd64", "arm64", "arm", "x86_64", "aarch64", "", "unknown", "386"]),
            prop::option::of(prop::sample::select(vec!["v7", "v8", "", "V6"])),
        )),
    )
        .prop_map(|((digest, digest_ok), size, platform)| Desc {
            digest,
            digest_ok,
            size,
            platform: platform.map(|(o, a, v)| (o.to_string(), a.to_string(), v.map(str::to_string))),
        })
}

impl Desc {
    fn json(&self, media_type: &str) -> Value {
        let mut d = json!({"mediaType": media_type, "digest": self.digest, "size": self.size});
        if let Some((os, arch, variant)) = &self.platform {
            d["platform"] = json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                d["platform"]["variant"] = json!(v);
            }
        }
        d
    }

    fn ok(&self) -> bool {
        self.digest_ok && self.size >= 0
    }
}

#[derive(Debug, Clone)]
struct ManifestCase {
    /// The body's media type (`None`: the field is left out).
    body_type: Option<&'static str>,
    /// The Content-Type header (`None`: none sent); parameters and case varied.
    header: Option<String>,
    index: bool,
    schema: Option<i64>,
    entries: Vec<Desc>,
    accept: Vec<&'static str>,
    edits: Vec<Edit>,
    tree: Vec<TreeEdit>,
}

const MEDIA_TYPES: &[&str] = &[
    m::OCI_INDEX,
    m::OCI_MANIFEST,
    m::DOCKER_LIST,
    m::DOCKER_MANIFEST,
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];

fn manifest_case() -> impl Strategy<Value = ManifestCase> {
    (
        prop::option::weighted(0.8, prop::sample::select(MEDIA_TYPES.to_vec())),
        prop::option::weighted(
            0.8,
            prop_oneof![
                4 => prop::sample::select(MEDIA_TYPES.to_vec()).prop_map(str::to_string),
                1 => prop::sample::select(MEDIA_TYPES.to_vec()).prop_map(|t| format!("{}; charset=utf-8", t.to_uppercase())),
                1 => prop::sample::select(vec!["application/json", "application/octet-stream", "text/plain", "text/html", "application/xhtml+xml", ""]).prop_map(str::to_string),
                1 => "\\PC{0,30}",
            ],
        ),
        any::<bool>(),
        prop_oneof![8 => Just(Some(2i64)), 1 => Just(None), 1 => any::<i64>().prop_map(Some)],
        prop::collection::vec(desc(), 0..5),
        prop_oneof![
            4 => Just(m::ACCEPT.to_vec()),
            1 => prop::sample::subsequence(MEDIA_TYPES.to_vec(), 0..=MEDIA_TYPES.len()),
        ],
        prop_oneof![4 => Just(vec![]), 1 => prop::collection::vec(edit(), 1..4)],
        prop_oneof![4 => Just(vec![]), 1 => prop::collection::vec(tree_edit(), 1..3)],
    )
        .prop_map(|(body_type, header, index, schema, entries, accept, edits, tree)| ManifestCase {
            body_type,
            header,
            index,
            schema,
            entries,
            accept,
            edits,
            tree,
        })
}

impl ManifestCase {
    fn value(&self) -> Value {
        let mut v = json!({});
        if let Some(s) = self.schema {
            v["schemaVersion"] = json!(s);
        }
        if let Some(t) = self.body_type {
            v["mediaType"] = json!(t);
        }
        if self.index {
            v["manifests"] = self
                .entries
                .iter()
                .map(|d| d.json(m::OCI_MANIFEST))
                .collect();
        } else {
            let (config, layers) = match self.entries.split_first() {
                Some((c, l)) => (
                    c.json("application/vnd.oci.image.config.v1+json"),
                    l.iter()
                        .map(|d| d.json("application/vnd.oci.image.layer.v1.tar+gzip"))
                        .collect(),
                ),
                None => (
                    json!({"mediaType": "x", "digest": format!("sha256:{}", "a".repeat(64)), "size": 1}),
                    Value::Array(vec![]),
                ),
            };
            v["config"] = config;
            v["layers"] = layers;
        }
        v
    }

    /// What the rules say for the body as generated: `Some(media type)` when it
    /// is accepted, as an index or an image manifest.
    fn expected(&self) -> Result<(String, bool), ()> {
        let header = self.header.as_deref().map(m::essence).unwrap_or_default();
        if header == "text/html" || header == "application/xhtml+xml" {
            return Err(());
        }
        let generic = matches!(
            header.as_str(),
            "" | "application/json" | "application/octet-stream" | "text/plain"
        );
        let media_type = match (self.body_type, generic) {
            (Some(b), false) if b != header => return Err(()),
            (_, false) => header,
            (Some(b), true) => b.to_string(),
            (None, true) => return Err(()),
        };
        if !self.accept.contains(&media_type.as_str()) {
            return Err(());
        }
        if !m::is_known_manifest_type(&media_type) {
            return Ok((media_type, false));
        }
        if self.schema != Some(2) {
            return Err(());
        }
        let is_index = media_type == m::OCI_INDEX || media_type == m::DOCKER_LIST;
        if is_index {
            if !self.index || !self.entries.iter().all(Desc::ok) {
                return Err(());
            }
        } else {
            let config_ok = self.entries.first().is_none_or(Desc::ok);
            if self.index || !config_ok || !self.entries.iter().skip(1).all(Desc::ok) {
                return Err(());
            }
        }
        Ok((media_type, true))
    }
}

#[test]
fn manifests() {
    fuzz("manifests", 1, manifest_case(), |case| {
        let mutated = !case.edits.is_empty() || !case.tree.is_empty();
        let value = apply_tree(case.value(), &case.tree);
        let body = apply_bytes(serde_json::to_vec(&value).unwrap(), &case.edits);
        let result = m::judge(&body, case.header.as_deref(), &case.accept);
        if let Ok((media_type, parsed)) = &result {
            prop_assert!(
                case.accept.contains(&media_type.as_str()),
                "{media_type} was not asked for"
            );
            if let Parsed::Index(entries) = parsed {
                for e in entries {
                    prop_assert!(m::parse_digest(&e.digest).is_some() && e.size >= 0);
                    if let Some(p) = e.platform.clone() {
                        let _ = p.into_platform();
                    }
                }
            }
        }
        if let Err(e) = &result {
            prop_assert!(!e.to_string().is_empty());
        }
        if !mutated {
            match (case.expected(), &result) {
                (Err(()), Err(_)) => {}
                (Ok((t, known)), Ok((got, parsed))) => {
                    prop_assert_eq!(&t, got);
                    match parsed {
                        Parsed::Index(entries) => {
                            prop_assert!(known && entries.len() == case.entries.len())
                        }
                        Parsed::Image { .. } => prop_assert!(known && !case.index),
                        Parsed::Other => prop_assert!(!known),
                    }
                }
                (expected, got) => {
                    return Err(TestCaseError::fail(format!(
                        "the rules say {expected:?}, judge says {got:?}"
                    )));
                }
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Signature bundles and legacy layers
// ---------------------------------------------------------------------------

use imagegate::signature::{
    self as sig, Authority, BundleLayer, LegacyKind, LegacyLayer, Material, Options, PublicKey,
    Subject, TransparencyLog,
};

const REPO: &str = "registry.test/acme/app";

struct SigWorld {
    authority: Authority,
    digest: String,
    /// Valid material: a DSSE bundle, a message-signature bundle, a `.sig` layer.
    bundle_dsse: Vec<u8>,
    bundle_message: Vec<u8>,
    legacy: signer::LayerParts,
}

fn sig_world() -> &'static SigWorld {
    static WORLD: OnceLock<SigWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        let key = signer::TestKey::generate(signer::KeyKind::EcdsaP256);
        let manifest = b"the image manifest under admission";
        let digest = signer::digest_of(manifest);
        let statement = signer::statement(&digest, signer::COSIGN_SIGN_PREDICATE, json!({}));
        let dsse_sig = key.sign(&signer::pae(signer::IN_TOTO, &statement));
        let bundle_dsse = signer::dsse_bundle(
            signer::BUNDLE_V03_MEDIA_TYPE,
            signer::BundleSigner::Key(&key, true),
            &statement,
            &dsse_sig,
            &[],
        );
        let bundle_message = signer::message_bundle(
            signer::BUNDLE_V03_MEDIA_TYPE,
            signer::BundleSigner::Key(&key, true),
            &signer::sha256(manifest),
            &key.sign(manifest),
            &[],
        );
        let payload = signer::simple_signing(REPO, &digest, &[]);
        let legacy = signer::sig_layer(&payload, &key.sign(&payload), vec![]);
        let public = PublicKey::from_pem(key.public_pem().as_bytes()).unwrap();
        let authority = Authority::key("release", public, TransparencyLog::Optional, None).unwrap();
        let world = SigWorld {
            authority,
            digest,
            bundle_dsse,
            bundle_message,
            legacy,
        };
        // The unmutated material verifies: otherwise "never verifies" proves nothing.
        for material in world.materials_clean() {
            assert!(
                world.verifies(&material),
                "the valid material does not verify: {material:?}"
            );
        }
        world
    })
}

impl SigWorld {
    fn subject(&self) -> Subject {
        Subject::image(REPO, &self.digest).unwrap()
    }

    fn bundle(bytes: Vec<u8>) -> Material {
        Material::Bundle(BundleLayer {
            origin: "fuzz bundle".into(),
            media_type: signer::BUNDLE_V03_MEDIA_TYPE.into(),
            bytes,
        })
    }

    fn legacy_material(parts: signer::LayerParts) -> Material {
        Material::Legacy(LegacyLayer {
            origin: "fuzz .sig layer".into(),
            kind: LegacyKind::Signature,
            media_type: parts.media_type,
            digest: parts.digest,
            annotations: parts.annotations,
            bytes: parts.bytes,
        })
    }

    fn materials_clean(&self) -> Vec<Material> {
        vec![
            Self::bundle(self.bundle_dsse.clone()),
            Self::bundle(self.bundle_message.clone()),
            Self::legacy_material(self.legacy.clone()),
        ]
    }

    /// Whether the authority verifies `material` for the subject.
    fn verifies(&self, material: &Material) -> bool {
        match sig::verify(
            &self.subject(),
            std::slice::from_ref(material),
            std::slice::from_ref(&self.authority),
            &Options::default(),
        ) {
            Ok(report) => report
                .materials
                .iter()
                .flat_map(|m| &m.outcomes)
                .any(|o| o.result.is_ok()),
            Err(_) => false,
        }
    }
}

fn b64d(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The signed parts of a bundle, decoded: (payload or digest, signature).
///
/// A message signature is over the subject (the manifest under admission), not
/// over the bundle's `messageDigest`, which only claims it: a bundle without the
/// claim verifies, one with another digest must not. So for a message bundle the
/// digest part is the claim when present, and the original's when left out.
fn signed_parts(bytes: &[u8], original: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    if let Some(env) = v.get("dsseEnvelope") {
        return Some((
            proto_bytes(env["payload"].as_str()?)?,
            proto_bytes(env["signatures"][0]["sig"].as_str()?)?,
        ));
    }
    let ms = v.get("messageSignature")?;
    let digest = match ms.get("messageDigest") {
        None | Some(Value::Null) => signed_parts(original, original)?.0,
        Some(d) => proto_bytes(d["digest"].as_str()?)?,
    };
    Some((digest, proto_bytes(ms["signature"].as_str()?)?))
}

/// A `bytes` field of a bundle as protobuf's JSON mapping reads it (the bundle is
/// protobuf JSON): standard or URL-safe base64, with or without padding. The
/// first long fuzz run found the oracle stricter than the format: a signature
/// with one `=` of its padding deleted is the same bytes, and verifies.
fn proto_bytes(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(s)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, config).decode(s))
        .ok()
}

/// A signed field whose base64 lost its `=` padding is the same bytes: it
/// verifies, and the oracle reads the same signed parts (the first long
/// fuzz run's finding, in the oracle).
#[test]
fn a_signed_bundle_field_without_its_padding_is_the_same_bytes() {
    let w = sig_world();
    let mut v: Value = serde_json::from_slice(&w.bundle_message).unwrap();
    // A SHA-256 digest (32 bytes) always ends in one `=`.
    let digest = v["messageSignature"]["messageDigest"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(digest.ends_with('=') && !digest.ends_with("=="), "{digest}");
    v["messageSignature"]["messageDigest"]["digest"] = json!(digest[..digest.len() - 1]);
    let bytes = serde_json::to_vec(&v).unwrap();
    assert!(w.verifies(&SigWorld::bundle(bytes.clone())));
    assert_eq!(
        signed_parts(&bytes, &w.bundle_message),
        signed_parts(&w.bundle_message, &w.bundle_message)
    );
    assert!(signed_parts(&w.bundle_message, &w.bundle_message).is_some());
}

#[derive(Debug, Clone)]
enum SigCase {
    /// A signed part of material `which` changed: flip `bit` of byte `at` of the
    /// signature (0), the payload or digest (1), or (legacy) the descriptor digest (2).
    Signed {
        which: usize,
        part: u8,
        at: Index,
        bit: u8,
    },
    /// Byte edits anywhere in material `which`.
    Bytes { which: usize, edits: Vec<Edit> },
    /// JSON tree edits of bundle `which` (0 or 1).
    Tree { which: usize, edits: Vec<TreeEdit> },
    /// Legacy annotations replaced or added.
    Annotations(Vec<(String, String)>),
    /// Garbage as a bundle.
    GarbageBundle(Vec<u8>),
    /// Garbage as a legacy layer, with its digest correct.
    GarbageLegacy(Vec<u8>, Vec<(String, String)>),
}

fn sig_case() -> impl Strategy<Value = SigCase> {
    let annotation_key = prop_oneof![
        prop::sample::select(vec![
            "dev.cosignproject.cosign/signature",
            "dev.sigstore.cosign/certificate",
            "dev.sigstore.cosign/chain",
            "dev.sigstore.cosign/bundle",
            "dev.sigstore.cosign/rfc3161timestamp",
        ])
        .prop_map(str::to_string),
        "\\PC{0,10}",
    ];
    let annotation_value = prop_oneof![
        "[A-Za-z0-9+/=]{0,120}",
        odd_value().prop_map(|v| v.to_string()),
        Just("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_string()),
    ];
    prop_oneof![
        3 => (0usize..3, 0u8..3, any::<Index>(), 0u8..8).prop_map(|(which, part, at, bit)| SigCase::Signed { which, part, at, bit }),
        3 => (0usize..3, prop::collection::vec(edit(), 1..4)).prop_map(|(which, edits)| SigCase::Bytes { which, edits }),
        2 => (0usize..2, prop::collection::vec(tree_edit(), 1..3)).prop_map(|(which, edits)| SigCase::Tree { which, edits }),
        1 => prop::collection::vec((annotation_key, annotation_value), 1..4).prop_map(SigCase::Annotations),
        1 => prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            odd_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ].prop_map(SigCase::GarbageBundle),
        1 => (prop::collection::vec(any::<u8>(), 0..300), prop::collection::vec(("\\PC{0,40}", "\\PC{0,40}"), 0..3))
            .prop_map(|(b, a)| SigCase::GarbageLegacy(b, a)),
    ]
}

fn flip(bytes: &mut [u8], at: &Index, bit: u8) {
    if !bytes.is_empty() {
        bytes[at.index(bytes.len())] ^= 1 << bit;
    }
}

#[test]
fn signatures() {
    fuzz("signatures", 4, sig_case(), |case| {
        let w = sig_world();
        // (material, whether it must not verify, the bundle it came from)
        let (material, must_fail, origin): (Material, bool, Option<&[u8]>) = match &case {
            SigCase::Signed {
                which: 2,
                part,
                at,
                bit,
            } => {
                let mut parts = w.legacy.clone();
                match part {
                    0 => {
                        let key = "dev.cosignproject.cosign/signature";
                        let mut s = b64d(&parts.annotations[key]).unwrap();
                        flip(&mut s, at, *bit);
                        parts.annotations.insert(key.into(), b64e(&s));
                    }
                    1 => {
                        flip(&mut parts.bytes, at, *bit);
                        parts.digest = signer::digest_of(&parts.bytes);
                    }
                    _ => {
                        let mut d = parts.digest.into_bytes();
                        let n = d.len();
                        // Only the hex part: a flip there names another blob.
                        let i = 7 + at.index(n - 7);
                        d[i] = if d[i] == b'0' { b'1' } else { b'0' };
                        parts.digest = String::from_utf8(d).unwrap();
                    }
                }
                (SigWorld::legacy_material(parts), true, None)
            }
            SigCase::Signed {
                which,
                part,
                at,
                bit,
            } => {
                let clean = if *which == 0 {
                    &w.bundle_dsse
                } else {
                    &w.bundle_message
                };
                let mut v: Value = serde_json::from_slice(clean).unwrap();
                let pointer = match (which, part) {
                    (0, 0) => "/dsseEnvelope/signatures/0/sig",
                    (0, _) => "/dsseEnvelope/payload",
                    (_, 0) => "/messageSignature/signature",
                    _ => "/messageSignature/messageDigest/digest",
                };
                let slot = v.pointer_mut(pointer).unwrap();
                let mut bytes = b64d(slot.as_str().unwrap()).unwrap();
                flip(&mut bytes, at, *bit);
                *slot = json!(b64e(&bytes));
                (
                    SigWorld::bundle(serde_json::to_vec(&v).unwrap()),
                    true,
                    None,
                )
            }
            SigCase::Bytes { which: 2, edits } => {
                let mut parts = w.legacy.clone();
                parts.bytes = apply_bytes(parts.bytes, edits);
                let changed = parts.bytes != w.legacy.bytes;
                (SigWorld::legacy_material(parts), changed, None)
            }
            SigCase::Bytes { which, edits } => {
                let clean = if *which == 0 {
                    &w.bundle_dsse
                } else {
                    &w.bundle_message
                };
                (
                    SigWorld::bundle(apply_bytes(clean.clone(), edits)),
                    false,
                    Some(clean.as_slice()),
                )
            }
            SigCase::Tree { which, edits } => {
                let clean = if *which == 0 {
                    &w.bundle_dsse
                } else {
                    &w.bundle_message
                };
                let v = apply_tree(serde_json::from_slice(clean).unwrap(), edits);
                (
                    SigWorld::bundle(serde_json::to_vec(&v).unwrap()),
                    false,
                    Some(clean.as_slice()),
                )
            }
            SigCase::Annotations(pairs) => {
                let mut parts = w.legacy.clone();
                let mut must_fail = false;
                for (k, v) in pairs {
                    if k == "dev.cosignproject.cosign/signature"
                        && b64d(v) != b64d(&parts.annotations[k])
                    {
                        must_fail = true;
                    }
                    parts.annotations.insert(k.clone(), v.clone());
                }
                (SigWorld::legacy_material(parts), must_fail, None)
            }
            SigCase::GarbageBundle(bytes) => (SigWorld::bundle(bytes.clone()), true, None),
            SigCase::GarbageLegacy(bytes, annotations) => {
                let parts = signer::LayerParts {
                    media_type: signer::SIMPLE_SIGNING_MEDIA_TYPE.into(),
                    digest: signer::digest_of(bytes),
                    annotations: annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
                    bytes: bytes.clone(),
                };
                (SigWorld::legacy_material(parts), true, None)
            }
        };
        let verified = w.verifies(&material);
        if must_fail {
            prop_assert!(!verified, "changed material verified: {material:?}");
        }
        if verified && let (Some(clean), Material::Bundle(b)) = (origin, &material) {
            // Only what is not signed may have changed.
            prop_assert_eq!(
                signed_parts(&b.bytes, clean),
                signed_parts(clean, clean),
                "a bundle whose signed parts changed verified: {}",
                String::from_utf8_lossy(&b.bytes)
            );
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Pull secrets, read through the Kubernetes API
// ---------------------------------------------------------------------------

#[path = "support/kube.rs"]
#[allow(dead_code)]
mod kube_support;

struct Cluster {
    runtime: tokio::runtime::Runtime,
    api: kube_support::FakeApiServer,
    cluster: imagegate::cluster::Cluster,
    next: std::sync::atomic::AtomicU64,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (api, cluster) = runtime.block_on(async {
            let api = kube_support::FakeApiServer::start().await;
            let cluster = imagegate::cluster::Cluster::new(api.client(), Duration::from_secs(600));
            (api, cluster)
        });
        Cluster {
            runtime,
            api,
            cluster,
            next: Default::default(),
        }
    })
}

#[derive(Debug, Clone)]
struct SecretCase {
    /// `None`: no Secret of that name.
    secret: Option<(&'static str, &'static str)>,
    config: ConfigCase,
}

fn secret_case() -> impl Strategy<Value = SecretCase> {
    let types = prop::sample::select(vec![
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/dockercfg",
        "Opaque",
        "kubernetes.io/basic-auth",
        "",
        "kubernetes.io/DockerConfigJson",
    ]);
    let keys = prop::sample::select(vec![".dockerconfigjson", ".dockercfg", "config.json", ""]);
    (prop::option::weighted(0.9, (types, keys)), config_case())
        .prop_map(|(secret, config)| SecretCase { secret, config })
}

#[test]
fn pull_secrets() {
    use imagegate::cluster::PullSecret;
    fuzz("pull_secrets", 4, secret_case(), |case| {
        let c = cluster();
        let name = format!(
            "s{}",
            c.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let bytes = apply_bytes(
            serde_json::to_vec(&case.config.json()).unwrap(),
            &case.config.edits,
        );
        if let Some((type_, key)) = case.secret {
            c.api.add_secret("team", &name, type_, &[(key, &bytes)]);
        }
        let read = c
            .runtime
            .block_on(c.cluster.read_pull_secret("team", &name))
            .map_err(|e| TestCaseError::fail(format!("the read failed: {e:?}")))?;
        let passwords: Vec<&str> = case
            .config
            .entries
            .iter()
            .map(|e| e.password.as_str())
            .collect();
        let expected_key = match case.secret {
            None => None,
            Some(("kubernetes.io/dockerconfigjson", _)) => Some(".dockerconfigjson"),
            Some(("kubernetes.io/dockercfg", _)) => Some(".dockercfg"),
            Some(_) => Some(""),
        };
        match (&read, expected_key, case.secret) {
            (PullSecret::Missing, None, _) => {}
            (PullSecret::WrongType(t), Some(""), Some((type_, _))) => {
                prop_assert_eq!(t.as_str(), type_)
            }
            (PullSecret::Invalid(why), Some(k), Some((_, key))) if !k.is_empty() => {
                prop_assert!(!why.trim().is_empty());
                prop_assert!(
                    passwords.iter().all(|p| !why.contains(p)),
                    "the reason leaks a password: {why}"
                );
                prop_assert!(
                    k != key || imagegate::credentials::parse_docker_config(&bytes).is_err(),
                    "{why}"
                );
            }
            (PullSecret::Config(config), Some(k), Some((_, key))) if k == key => {
                let direct = imagegate::credentials::parse_docker_config(&bytes)
                    .map_err(|e| TestCaseError::fail(format!("read as a config, but: {e}")))?;
                prop_assert_eq!(config.entries(), direct.entries());
            }
            (read, k, s) => {
                let shown = match read {
                    PullSecret::Missing => "Missing".to_string(),
                    PullSecret::WrongType(t) => format!("WrongType({t:?})"),
                    PullSecret::Invalid(why) => format!("Invalid({why:?})"),
                    PullSecret::Config(_) => "Config".to_string(),
                };
                return Err(TestCaseError::fail(format!(
                    "secret {s:?} (key for its type {k:?}) read as {shown}"
                )));
            }
        }
        Ok(())
    });
}
