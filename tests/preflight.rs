//! Registry lookups against a real registry (Debian's docker-registry 2.8): pull
//! pre-flight classes and their messages, credentials, coalescing, Accept headers.
//! The inspector and the engine run in-process, exactly as the server wires them.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use imagegate::admission::Workload;
use imagegate::cluster::Cluster;
use imagegate::engine::{self, Decision, ImageFacts};
use imagegate::inspector::{Inspector, InspectorConfig};
use imagegate::policy::{PolicySet, load_sources};
use imagegate::registry::{RegistryClient, RegistryConfig, RegistrySettings};
use serde_json::{Value, json};
use support::images::{self, Format};
use support::kube::FakeApiServer;
use support::registry::{Kind, Registry};
use support::token::{Grant, TokenFault, TokenServer, TokenServerConfig};
use tempfile::TempPath;

const PREFLIGHT: &str = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: preflight}\nspec:\n  preflight: true\n";

fn settings_for(registry: &Registry, with_ca: bool) -> RegistrySettings {
    RegistrySettings {
        host: registry.host(),
        ca_pem: if with_ca {
            registry.ca_pem().map(String::into_bytes)
        } else {
            None
        },
        insecure: !registry.kind().is_tls(),
    }
}

struct Gate {
    inspector: Inspector,
    policies: PolicySet,
    deadline: Duration,
}

impl Gate {
    fn new(
        policy: &str,
        registries: Vec<RegistrySettings>,
        cluster: Option<Arc<Cluster>>,
        config: InspectorConfig,
    ) -> Gate {
        let registry = RegistryClient::new(RegistryConfig {
            registries,
            connect_timeout: Duration::from_secs(2),
            ..RegistryConfig::default()
        });
        Gate {
            inspector: Inspector::new(registry, cluster, config).unwrap(),
            policies: PolicySet::compile(&load_sources(&[("p.yaml", policy)])).unwrap(),
            deadline: Duration::from_secs(5),
        }
    }

    /// A gate whose only credentials are a docker config file holding `config`;
    /// returns the file's path too (for messages that name it).
    fn with_docker_config(registries: Vec<RegistrySettings>, config: Value) -> (Gate, TempPath) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), config.to_string()).unwrap();
        let path = file.into_temp_path();
        let inspector = InspectorConfig {
            docker_config: Some(path.to_path_buf()),
            ..InspectorConfig::default()
        };
        (Gate::new(PREFLIGHT, registries, None, inspector), path)
    }

    fn simple(registries: Vec<RegistrySettings>) -> Gate {
        Gate::new(PREFLIGHT, registries, None, InspectorConfig::default())
    }

    async fn admit(&self, pod: &Value) -> (Decision, Workload) {
        let w = Workload::from_object("", "Pod", "team", pod)
            .unwrap()
            .unwrap();
        let needs = engine::needs(&self.policies, &w);
        let facts = self.inspector.gather(&needs, &w, self.deadline).await;
        (engine::decide(&self.policies, &w, &facts), w)
    }

    /// What the inspector finds out for a one-container pod running `image`.
    async fn facts(&self, image: &str) -> engine::Facts {
        let w = Workload::from_object("", "Pod", "team", &pod(&[image], None))
            .unwrap()
            .unwrap();
        self.inspector
            .gather(&engine::needs(&self.policies, &w), &w, self.deadline)
            .await
    }

    /// The denial message for a one-container pod running `image`.
    async fn deny(&self, image: &str) -> String {
        let (d, w) = self.admit(&pod(&[image], None)).await;
        assert!(!d.allowed(), "{image} should be denied");
        d.denial_message(&w)
    }
}

fn pod(images: &[&str], pull_secret: Option<&str>) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    let mut spec = json!({"containers": containers});
    if let Some(s) = pull_secret {
        spec["imagePullSecrets"] = json!([{"name": s}]);
    }
    json!({"metadata": {"name": "web", "namespace": "team"}, "spec": spec})
}

#[tokio::test]
async fn resolves_with_one_head_and_caches_by_tag() {
    let registry = Registry::start(Kind::Plain).await;
    let digest = images::push_amd64(&registry, "team/app:v1").await;
    let gate = Gate::simple(vec![settings_for(&registry, false)]);
    let image = registry.reference("team/app:v1");
    registry.reset_counts();
    let (d, _) = gate.admit(&pod(&[&image], None)).await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert_eq!(registry.count("HEAD", "/v2/team/app/manifests/v1"), 1);
    assert_eq!(
        registry.count("GET", "/manifests/"),
        0,
        "no manifest body for a digest"
    );
    // Warm: no request at all.
    registry.reset_counts();
    for _ in 0..5 {
        assert!(gate.admit(&pod(&[&image], None)).await.0.allowed());
    }
    assert_eq!(registry.requests().len(), 0, "{:?}", registry.requests());
    // The digest that was found is the pushed one.
    let facts = gate.facts(&image).await;
    assert!(matches!(&facts.images[&image], ImageFacts::Found { digest: d, .. } if *d == digest));
}

#[tokio::test]
async fn tags_expire_after_their_ttl_and_failures_are_remembered_briefly() {
    let registry = Registry::start(Kind::Plain).await;
    let first = images::push_amd64(&registry, "team/app:v1").await;
    let config = InspectorConfig {
        tag_ttl: Duration::from_millis(300),
        failure_ttl: Duration::from_millis(300),
        ..InspectorConfig::default()
    };
    let gate = Gate::new(
        PREFLIGHT,
        vec![settings_for(&registry, false)],
        None,
        config,
    );
    let image = registry.reference("team/app:v1");
    let missing = registry.reference("team/app:v9");
    registry.reset_counts();
    for _ in 0..3 {
        assert!(gate.admit(&pod(&[&image], None)).await.0.allowed());
        assert!(!gate.admit(&pod(&[&missing], None)).await.0.allowed());
    }
    assert_eq!(registry.count("HEAD", "/manifests/v1"), 1);
    assert_eq!(
        registry.count("HEAD", "/manifests/v9"),
        1,
        "the failure is cached"
    );
    // The tag is overwritten in the registry; after the TTL imagegate sees the new digest.
    let client = images::client(&registry);
    let second = images::push_single(
        &client,
        &images::auth(&registry),
        &images::reference(&registry, "team/app:v1"),
        "linux/arm64",
        Format::Oci,
    )
    .await
    .unwrap();
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let facts = gate.facts(&image).await;
    assert!(matches!(&facts.images[&image], ImageFacts::Found { digest: d, .. } if *d == second));
    assert!(!gate.admit(&pod(&[&missing], None)).await.0.allowed());
    assert_eq!(registry.count("HEAD", "/manifests/v1"), 2);
    assert_eq!(
        registry.count("HEAD", "/manifests/v9"),
        2,
        "and expires too"
    );
}

#[tokio::test]
async fn eight_containers_and_fifty_concurrent_admissions_cost_one_lookup() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/app:v1").await;
    images::push_amd64(&registry, "team/app:v2").await;
    let gate = Arc::new(Gate::simple(vec![settings_for(&registry, false)]));
    let image = registry.reference("team/app:v1");
    registry.reset_counts();
    let (d, _) = gate.admit(&pod(&[image.as_str(); 8], None)).await;
    assert!(d.allowed());
    assert_eq!(
        registry.count("HEAD", "/manifests/v1"),
        1,
        "{:?}",
        registry.requests()
    );

    let image = registry.reference("team/app:v2");
    registry.reset_counts();
    let admissions = (0..50).map(|_| {
        let gate = gate.clone();
        let image = image.clone();
        tokio::spawn(async move { gate.admit(&pod(&[&image], None)).await.0.allowed() })
    });
    for allowed in futures::future::join_all(admissions).await {
        assert!(allowed.unwrap());
    }
    assert_eq!(
        registry.count("HEAD", "/manifests/v2"),
        1,
        "{:?}",
        registry.requests()
    );
}

#[tokio::test]
async fn multi_platform_images_resolve_to_the_index_digest_with_the_full_accept_list() {
    let registry = Registry::start(Kind::Plain).await;
    let client = images::client(&registry);
    let auth = images::auth(&registry);
    let platforms = [
        ("linux", "amd64", None),
        ("linux", "arm64", None),
        ("linux", "arm", Some("v7")),
    ];
    let policy = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: arch}\nspec:\n  architectures:\n    require: [amd64, arm64, s390x]\n";
    let gate = Gate::new(
        policy,
        vec![settings_for(&registry, false)],
        None,
        InspectorConfig::default(),
    );
    for (format, repo) in [
        (Format::Oci, "oci/app:v1"),
        (Format::Docker, "docker/app:v1"),
    ] {
        let (index, children) = images::push_index(
            &client,
            &auth,
            &images::reference(&registry, repo),
            &platforms,
            format,
            true,
        )
        .await
        .unwrap();
        let image = registry.reference(repo);
        let facts = gate.facts(&image).await;
        match &facts.images[&image] {
            ImageFacts::Found {
                digest, manifest, ..
            } => {
                // Not the amd64 child (Docker v2 only), not a schema1 rewrite (no Accept).
                assert_eq!(digest, &index, "{format:?}");
                assert!(!children.contains(digest));
                let m = manifest.as_ref().unwrap();
                assert!(m.is_index);
                let names: Vec<String> = m.platforms.iter().map(|p| p.to_string()).collect();
                assert_eq!(
                    names,
                    ["linux/amd64", "linux/arm64", "linux/arm/v7"],
                    "attestations are not platforms"
                );
            }
            other => panic!("{format:?}: {other:?}"),
        }
        let msg = gate.deny(&image).await;
        assert!(
            msg.contains("the image has no linux/s390x variant (it has linux/amd64, linux/arm64, linux/arm/v7); the pod may run on s390x nodes (from policy), where it would crash with \"exec format error\""),
            "{msg}"
        );
    }
    // A single-platform image: the platform comes from its config.
    images::push_amd64(&registry, "single/app:v1").await;
    let msg = gate.deny(&registry.reference("single/app:v1")).await;
    assert!(
        msg.contains("the image has no linux/arm64, linux/s390x variant (it has linux/amd64)"),
        "{msg}"
    );
}

#[tokio::test]
async fn manifest_unknown_and_connection_refused_and_dns() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let gate = Gate::simple(vec![
        settings_for(&registry, false),
        RegistrySettings {
            host: "127.0.0.1:9".into(),
            insecure: true,
            ca_pem: None,
        },
    ]);
    let host = registry.host();
    // (image, fragments of the message)
    let table: Vec<(String, Vec<String>)> = vec![
        (registry.reference("team/app:v2"), vec![format!("manifest unknown: {host} has no {host}/team/app:v2; check the image name and tag for typos"), "[policy preflight, rule preflight]".into()]),
        (registry.reference("team/nope:v1"), vec![format!("manifest unknown: {host} has no {host}/team/nope:v1")]),
        (format!("{}@sha256:{}", registry.reference("team/app"), "a".repeat(64)), vec![format!("has no {host}/team/app@sha256:aaaa")]),
        ("127.0.0.1:9/team/app:v1".into(), vec!["connection refused: nothing answers at 127.0.0.1:9; check the registry host and port".into()]),
        ("registry.invalid/team/app:v1".into(), vec!["DNS: the registry host \"registry.invalid\" does not resolve".into()]),
    ];
    for (image, fragments) in table {
        let msg = gate.deny(&image).await;
        for f in fragments {
            assert!(msg.contains(&f), "{image}: {msg}\nlacks {f}");
        }
    }
}

/// An IPv6 literal host reaches the registry client whole: `[::1]:PORT/...` is looked
/// up on a real registry listening on the IPv6 loopback only; its other spellings are
/// refused before any request; a port nobody listens on is a refused connection.
#[tokio::test]
async fn ipv6_hosts_are_looked_up_on_the_ipv6_loopback() {
    let registry = Registry::start_ipv6(Kind::Plain).await;
    let host = registry.host();
    assert_eq!(host, format!("[::1]:{}", registry.port()));
    let digest = images::push_amd64(&registry, "team/app:v1").await;
    let gate = Gate::simple(vec![
        settings_for(&registry, false),
        RegistrySettings {
            host: "[::1]:9".into(),
            insecure: true,
            ca_pem: None,
        },
    ]);
    let image = registry.reference("team/app:v1");
    registry.reset_counts();
    let (d, _) = gate.admit(&pod(&[&image], None)).await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert_eq!(registry.count("HEAD", "/v2/team/app/manifests/v1"), 1);
    let facts = gate.facts(&image).await;
    assert!(matches!(&facts.images[&image], ImageFacts::Found { digest: d, .. } if *d == digest));

    // (image, fragments of the message); none of them reaches the registry.
    registry.reset_counts();
    let port = registry.port();
    let table: Vec<(String, Vec<String>)> = vec![
        (
            registry.reference("team/app:v2"),
            vec![format!(
                "manifest unknown: {host} has no {host}/team/app:v2"
            )],
        ),
        (
            format!("[0:0:0:0:0:0:0:1]:{port}/team/app:v1"),
            vec!["write the IPv6 address in its canonical form, `[::1]`".into()],
        ),
        (
            format!("[::1]:0{port}/team/app:v1"),
            vec![format!("has a leading zero: write `{port}`")],
        ),
        (
            "[::1]:9/team/app:v1".into(),
            vec!["connection refused: nothing answers at [::1]:9".into()],
        ),
    ];
    for (image, fragments) in table {
        let msg = gate.deny(&image).await;
        for f in fragments {
            assert!(msg.contains(&f), "{image}: {msg}\nlacks {f}");
        }
    }
    // Only the missing tag was asked for; the other spellings never left imagegate.
    let requests = registry.requests();
    assert!(
        requests
            .iter()
            .any(|(_, uri)| uri == "/v2/team/app/manifests/v2")
            && requests
                .iter()
                .all(|(_, uri)| uri == "/v2/" || uri == "/v2/team/app/manifests/v2"),
        "{requests:?}"
    );
}

#[tokio::test]
async fn tls_unknown_authority_and_missing_ip_san() {
    let tls = Registry::start(Kind::Tls).await;
    let no_ip = Registry::start(Kind::TlsWithoutIpSan).await;
    images::push_amd64(&tls, "team/app:v1").await;
    // Without the CA: unknown authority. With it: found.
    let msg = Gate::simple(vec![settings_for(&tls, false)])
        .deny(&tls.reference("team/app:v1"))
        .await;
    assert!(msg.contains(&format!("x509: certificate signed by unknown authority: the TLS certificate of {} is not signed by a CA imagegate trusts; add the registry's CA to imagegate's registry configuration (registries[].caFile)", tls.host())), "{msg}");
    let (d, _) = Gate::simple(vec![settings_for(&tls, true)])
        .admit(&pod(&[&tls.reference("team/app:v1")], None))
        .await;
    assert!(d.allowed(), "{:?}", d.violations);
    // The certificate names localhost only; the registry is reached by 127.0.0.1.
    let msg = Gate::simple(vec![settings_for(&no_ip, true)])
        .deny(&no_ip.reference("team/app:v1"))
        .await;
    assert!(msg.contains(&format!("TLS: the certificate of {} is not valid for \"127.0.0.1\" (a registry reached by IP address needs that IP in the certificate's subject alternative names)", no_ip.host())), "{msg}");
}

#[tokio::test]
async fn basic_auth_credentials_from_pod_secrets_service_accounts_and_docker_config() {
    let registry = Registry::start(Kind::htpasswd("robot", "s3cr:t p@ss")).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let host = registry.host();
    let image = registry.reference("team/app:v1");
    let api = FakeApiServer::start().await;
    api.add_pull_secret("team", "right", &json!({"auths": {format!("https://{host}"): {"username": "robot", "password": "s3cr:t p@ss"}}}));
    api.add_pull_secret(
        "team",
        "wrong",
        &json!({"auths": {host.clone(): {"auth": base64("robot:nope")}}}),
    );
    api.add_pull_secret(
        "team",
        "elsewhere",
        &json!({"auths": {"harbor.example.com": {"username": "x", "password": "y"}}}),
    );
    api.add_service_account("team", "default", &[]);
    api.add_service_account("team", "builder", &["right"]);
    let cluster = Arc::new(Cluster::new(api.client(), Duration::from_secs(30)));
    let gate = Gate::new(
        PREFLIGHT,
        vec![settings_for(&registry, true)],
        Some(cluster.clone()),
        InspectorConfig::default(),
    );

    // No secret: anonymous, refused, and the message says what was seen.
    let msg = gate.deny(&image).await;
    assert!(msg.contains(&format!("unauthorized: {host} refused anonymous access, and no pull secret has an auths key matching {host} (the pod has no pull secret); add a kubernetes.io/dockerconfigjson imagePullSecret for {host} to the pod or its ServiceAccount")), "{msg}");
    // A secret for another registry is not sent, and is named.
    let (d, w) = gate.admit(&pod(&[&image], Some("elsewhere"))).await;
    let msg = d.denial_message(&w);
    assert!(
        msg.contains(
            "auths keys seen: \"harbor.example.com\" in pod imagePullSecret \"team/elsewhere\""
        ),
        "{msg}"
    );
    // Wrong password: the secret and its key are named, never the password.
    let (d, w) = gate.admit(&pod(&[&image], Some("wrong"))).await;
    let msg = d.denial_message(&w);
    assert!(msg.contains(&format!("unauthorized: {host} refused the credentials of user \"robot\" from pod imagePullSecret \"team/wrong\" (auths key \"{host}\")")), "{msg}");
    assert!(!msg.contains("nope"), "{msg}");
    // A missing secret is noted.
    let (d, w) = gate.admit(&pod(&[&image], Some("ghost"))).await;
    assert!(
        d.denial_message(&w)
            .contains("note: pod imagePullSecret \"team/ghost\" does not exist"),
        "{}",
        d.denial_message(&w)
    );
    // The right secret, on the pod; then on the ServiceAccount.
    assert!(gate.admit(&pod(&[&image], Some("right"))).await.0.allowed());
    let mut sa_pod = pod(&[&image], None);
    sa_pod["spec"]["serviceAccountName"] = json!("builder");
    assert!(gate.admit(&sa_pod).await.0.allowed());
    // A pod that names its own pull secrets does not get its ServiceAccount's (the
    // ServiceAccount admission plugin copies them only into pods that name none).
    sa_pod["spec"]["imagePullSecrets"] = json!([{"name": "wrong"}]);
    assert!(!gate.admit(&sa_pod).await.0.allowed());
    // Several matches are tried in order: the wrong one first, then the right one.
    let mut both = pod(&[&image], None);
    both["spec"]["imagePullSecrets"] = json!([{"name": "wrong"}, {"name": "right"}]);
    assert!(gate.admit(&both).await.0.allowed());

    // A docker config file, tried last.
    let (gate, _config) = Gate::with_docker_config(
        vec![settings_for(&registry, true)],
        json!({"auths": {format!("{host}/team"): {"auth": base64("robot:s3cr:t p@ss")}}}),
    );
    assert!(gate.admit(&pod(&[&image], None)).await.0.allowed());
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn token_auth_and_insufficient_scope() {
    let tokens = TokenServer::start(TokenServerConfig::default().user(
        "ci",
        "ci-pass",
        &[Grant::new("team/app", &["pull", "push"])],
    ));
    let registry = Registry::start(tokens.kind()).await;
    let client = images::client(&registry);
    let ci = images::basic("ci", "ci-pass");
    images::push_single(
        &client,
        &ci,
        &images::reference(&registry, "team/app:v1"),
        "linux/amd64",
        Format::Oci,
    )
    .await
    .unwrap();
    let host = registry.host();
    let (gate, config) = Gate::with_docker_config(
        vec![settings_for(&registry, true)],
        json!({"auths": {host.clone(): {"username": "ci", "password": "ci-pass"}}}),
    );
    tokens.reset_count();
    let (d, _) = gate
        .admit(&pod(&[&registry.reference("team/app:v1")], None))
        .await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert!(
        tokens.count() >= 1,
        "the bearer flow went through the token server"
    );
    // The token grants team/app only: other/app is refused (insufficient_scope).
    let msg = gate.deny(&registry.reference("other/app:v1")).await;
    assert!(
        msg.contains(&format!(
            "unauthorized: {host} refused the credentials of user \"ci\" from docker config {}",
            config.display()
        )),
        "{msg}"
    );
}

/// A token server that answers a token with a line break makes oci-client 0.18
/// panic (it unwraps the token into a header value). Each registry call is isolated:
/// the panic is an `unusable-answer` lookup failure judged by `onRegistryError`, on
/// the digest resolution and on the manifest fetch, and the inspector keeps working.
#[tokio::test]
async fn a_token_with_a_line_break_is_a_failed_lookup_not_a_panic() {
    let tokens = TokenServer::start(TokenServerConfig {
        // Short-lived tokens, so that a later lookup needs a new one.
        expires_in: Duration::from_secs(1),
        ..TokenServerConfig::default()
            .user("ci", "ci-pass", &[Grant::new("*", &["pull", "push"])])
            .anonymous(&[Grant::new("*", &["pull"])])
    });
    let registry = Registry::start(tokens.kind()).await;
    let client = images::client(&registry);
    let ci = images::basic("ci", "ci-pass");
    for repo in ["team/app:v1", "team/other:v1"] {
        images::push_single(
            &client,
            &ci,
            &images::reference(&registry, repo),
            "linux/amd64",
            Format::Oci,
        )
        .await
        .unwrap();
    }
    let policies = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: deny}\nspec:\n  namespaces: [deny]\n  preflight: true\n---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: warn}\nspec:\n  namespaces: [warn]\n  preflight: true\n  onRegistryError: Warn\n---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: arch}\nspec:\n  namespaces: [arch]\n  architectures:\n    require: [amd64]\n";
    let gate = Gate::new(
        policies,
        vec![settings_for(&registry, true)],
        None,
        InspectorConfig::default(),
    );
    let admit = |namespace: &str, image: &str| {
        let w = Workload::from_object("", "Pod", namespace, &pod(&[image], None))
            .unwrap()
            .unwrap();
        let mut w = w;
        w.namespace = namespace.to_string();
        let gate = &gate;
        async move {
            let needs = engine::needs(&gate.policies, &w);
            let facts = gate.inspector.gather(&needs, &w, gate.deadline).await;
            let d = engine::decide(&gate.policies, &w, &facts);
            let msg = d.denial_message(&w);
            (d, facts, msg)
        }
    };
    let host = registry.host();
    let unusable = format!(
        "the answer of {host} could not be used (its token, or another value it sent, is not a valid HTTP header value: it has a line break or another control character); this is a fault of the registry or its token server"
    );

    // The digest resolution.
    tokens.set_fault(Some(TokenFault::Newline));
    let app = registry.reference("team/app:v1");
    let (d, facts, msg) = admit("deny", &app).await;
    assert!(
        matches!(&facts.images[&app], ImageFacts::Failed(f) if f.kind == imagegate::registry::FailureKind::UnusableAnswer),
        "{facts:?}"
    );
    assert!(!d.allowed());
    assert!(msg.contains(&unusable), "{msg}");
    assert!(msg.contains("[policy deny, rule preflight]"), "{msg}");
    let (d, _, _) = admit("warn", &app).await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert!(
        d.warnings[0].contains(&unusable)
            && d.warnings[0].ends_with("(admitted because policy warn has onRegistryError: Warn)"),
        "{:?}",
        d.warnings
    );

    // The manifest fetch: the digest is resolved with a good token, and the token
    // the manifest fetch needs once that one expired has a line break.
    tokens.set_fault(None);
    let other = registry.reference("team/other:v1");
    let (d, _, msg) = admit("deny", &other).await;
    assert!(d.allowed(), "{msg}");
    tokens.set_fault(Some(TokenFault::Newline));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    tokens.reset_count();
    let (d, facts, msg) = admit("arch", &other).await;
    assert!(tokens.count() >= 1, "a new token was fetched");
    assert!(
        matches!(&facts.images[&other], ImageFacts::Failed(f) if f.kind == imagegate::registry::FailureKind::UnusableAnswer),
        "{facts:?}"
    );
    assert!(!d.allowed());
    assert!(msg.contains(&unusable), "{msg}");

    // The registry behaves again: the inspector, its caches and clients still work.
    tokens.set_fault(None);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (d, _, msg) = admit("arch", &other).await;
    assert!(d.allowed(), "{msg}");
}

/// A registry stand-in that answers every request with `status`, `headers` and
/// `body`, and records the Authorization headers it was sent.
async fn fake_registry(
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), count.clone());
    let app = Router::new().fallback(move |h: HeaderMap| {
        let (s, c, headers) = (s.clone(), c.clone(), headers.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            if let Some(a) = h.get("authorization") {
                s.lock()
                    .unwrap()
                    .push(a.to_str().unwrap_or_default().to_string());
            }
            let mut resp = (status, body).into_response();
            for (k, v) in headers {
                resp.headers_mut().insert(k, v.parse().unwrap());
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), seen, count)
}

#[tokio::test]
async fn rate_limits_and_slow_registries() {
    let (limited, _, _) = fake_registry(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("ratelimit-limit", "100;w=21600".into()), ("ratelimit-remaining", "0;w=21600".into()), ("retry-after", "3600".into())],
        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading"}]}"#,
    )
    .await;
    let gate = Gate::simple(vec![RegistrySettings {
        host: limited.clone(),
        insecure: true,
        ca_pem: None,
    }]);
    let msg = gate.deny(&format!("{limited}/library/nginx:1.27")).await;
    assert!(
        msg.contains(&format!(
            "429 toomanyrequests: {limited} is rate-limiting pulls (ratelimit-limit: 100;w=21600, ratelimit-remaining: 0;w=21600, retry-after: 3600; "
        )),
        "{msg}"
    );
    assert!(
        msg.contains("You have reached your pull rate limit"),
        "{msg}"
    );
    assert!(msg.contains("pull with credentials (an imagePullSecret; authenticated pulls have higher limits) or through a mirror"), "{msg}");

    // A registry that accepts connections and never answers: the deadline decides.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let mut gate = Gate::simple(vec![RegistrySettings {
        host: silent_addr.clone(),
        insecure: true,
        ca_pem: None,
    }]);
    gate.deadline = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let msg = gate.deny(&format!("{silent_addr}/team/app:v1")).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline holds: {:?}",
        started.elapsed()
    );
    assert!(msg.contains(&format!("timeout: the registry lookup of \"{silent_addr}/team/app:v1\" (its digest) did not finish within the admission deadline of 0.5 s")), "{msg}");
    // onRegistryError: Warn admits it with a warning instead.
    let warn = PREFLIGHT.replace(
        "preflight: true",
        "preflight: true\n  onRegistryError: Warn",
    );
    let mut gate = Gate::new(
        &warn,
        vec![RegistrySettings {
            host: silent_addr.clone(),
            insecure: true,
            ca_pem: None,
        }],
        None,
        InspectorConfig::default(),
    );
    gate.deadline = Duration::from_millis(300);
    let (d, _) = gate
        .admit(&pod(&[&format!("{silent_addr}/team/app:v1")], None))
        .await;
    assert!(d.allowed());
    assert!(
        d.warnings[0].contains("admitted because policy preflight has onRegistryError: Warn"),
        "{:?}",
        d.warnings
    );
    drop(silent);
}

#[tokio::test]
async fn credentials_go_only_to_their_registry_never_to_a_redirect_target() {
    // The target records what it is sent.
    let (target, target_seen, target_count) =
        fake_registry(StatusCode::NOT_FOUND, vec![], "{}").await;
    // The registry asks for basic auth, then redirects every authenticated request
    // to the target (another host:port).
    let (registry, registry_seen, _) = redirecting_registry(&target).await;
    let (gate, _config) = Gate::with_docker_config(
        vec![RegistrySettings {
            host: registry.clone(),
            insecure: true,
            ca_pem: None,
        }],
        json!({"auths": {registry.clone(): {"username": "robot", "password": "only-for-registry"}}}),
    );
    let (d, _) = gate
        .admit(&pod(&[&format!("{registry}/team/app:v1")], None))
        .await;
    assert!(!d.allowed());
    let basic = format!("Basic {}", base64("robot:only-for-registry"));
    assert!(
        registry_seen.lock().unwrap().contains(&basic),
        "the registry got its credentials: {:?}",
        registry_seen.lock().unwrap()
    );
    assert!(
        target_count.load(Ordering::SeqCst) > 0,
        "the redirect was followed"
    );
    assert!(
        target_seen.lock().unwrap().is_empty(),
        "credentials reached another host: {:?}",
        target_seen.lock().unwrap()
    );
}

/// A registry that challenges for basic auth, and redirects authenticated manifest
/// requests to `target`. It records the Authorization headers it was sent.
async fn redirecting_registry(
    target: &str,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (s, c, target) = (seen.clone(), count.clone(), target.to_string());
    let app = Router::new().fallback(move |uri: axum::http::Uri, h: HeaderMap| {
        let (s, c, target) = (s.clone(), c.clone(), target.clone());
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            let auth = h
                .get("authorization")
                .map(|a| a.to_str().unwrap_or_default().to_string());
            if let Some(a) = &auth {
                s.lock().unwrap().push(a.clone());
            }
            match auth {
                None => (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"test\"".to_string())],
                )
                    .into_response(),
                Some(_) if uri.path() == "/v2/" => StatusCode::OK.into_response(),
                Some(_) => (
                    StatusCode::TEMPORARY_REDIRECT,
                    [("location", format!("http://{target}{}", uri.path()))],
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), seen, count)
}

/// The attack of issue 6: `nginx:1.25@<digest of 1.14.2>` against a policy that blocks
/// `nginx:1.14.*`. The node pulls the digest; the tag beside it counts only when the
/// registry says it points there, and the denial names both digests.
#[tokio::test]
async fn a_tag_beside_a_digest_counts_only_when_it_points_to_that_digest() {
    let registry = Registry::start(Kind::Plain).await;
    let (client, auth) = (images::client(&registry), images::auth(&registry));
    let push = |tag: &'static str, platform: &'static str| {
        let reference = images::reference(&registry, &format!("team/nginx:{tag}"));
        let (client, auth) = (&client, &auth);
        async move {
            images::push_single(client, auth, &reference, platform, Format::Oci)
                .await
                .unwrap()
        }
    };
    let old = push("1.14.2", "linux/amd64").await;
    let new = push("1.25", "linux/arm64").await;
    assert_ne!(old, new);
    let host = registry.host();
    let policy = format!(
        "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: versions}}\nspec:\n  preflight: true\n  blockedImages: [\"{host}/team/nginx:1.14.*\"]\n"
    );
    let gate = Gate::new(
        &policy,
        vec![settings_for(&registry, false)],
        None,
        InspectorConfig::default(),
    );
    // The decorative tag: denied, naming where the tag points and what is pulled.
    let attack = registry.reference(&format!("team/nginx:1.25@{old}"));
    let msg = gate.deny(&attack).await;
    assert!(
        msg.contains(&format!(
            "tag \"1.25\" points to {new} in the registry, not to {old}"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("[policy versions, rule blockedImages]"),
        "{msg}"
    );
    // The honest spellings: the tag that points to the digest is admitted, the
    // blocked one is denied without asking the registry about it.
    let honest = registry.reference(&format!("team/nginx:1.25@{new}"));
    let (d, _) = gate.admit(&pod(&[&honest], None)).await;
    assert!(d.allowed(), "{:?}", d.violations);
    registry.reset_counts();
    let blocked = registry.reference(&format!("team/nginx:1.14.2@{old}"));
    let msg = gate.deny(&blocked).await;
    assert!(msg.contains("is blocked (pattern"), "{msg}");
    assert_eq!(registry.count("HEAD", "/manifests/"), 0, "refused by name");
    // A digest that does not exist fails the pre-flight whatever the tag says.
    let missing = format!("sha256:{}", "0".repeat(64));
    let msg = gate
        .deny(&registry.reference(&format!("team/nginx:1.25@{missing}")))
        .await;
    assert!(msg.contains("manifest unknown"), "{msg}");
    // The pinned form the mutating webhook writes is answered from the cache.
    let tag_only = registry.reference("team/nginx:1.25");
    let (d, _) = gate.admit(&pod(&[&tag_only], None)).await;
    assert!(d.allowed(), "{:?}", d.violations);
    registry.reset_counts();
    let (d, _) = gate
        .admit(&pod(&[&format!("{tag_only}@{new}")], None))
        .await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert_eq!(
        registry.count("HEAD", "/manifests/"),
        0,
        "pinned form cached"
    );
}

/// A registry stand-in for a fault no real registry shows on demand: it challenges
/// for basic auth, answers a HEAD of a manifest with `status_for(user)` (and a
/// digest on 200), and records the users it was sent, in order.
async fn per_user_registry(
    status_for: fn(&str) -> StatusCode,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = Router::new().fallback(move |uri: axum::http::Uri, h: HeaderMap| {
        let s = s.clone();
        async move {
            let user = h
                .get("authorization")
                .and_then(|a| a.to_str().ok())
                .and_then(|a| a.strip_prefix("Basic "))
                .and_then(|b| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.decode(b).ok()
                })
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|d| d.split_once(':').map(|(u, _)| u.to_string()));
            let Some(user) = user else {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", "Basic realm=\"test\"".to_string())],
                )
                    .into_response();
            };
            if uri.path() == "/v2/" {
                return StatusCode::OK.into_response();
            }
            s.lock().unwrap().push(user.clone());
            let status = status_for(&user);
            let mut resp = status.into_response();
            if status == StatusCode::OK {
                let h = resp.headers_mut();
                h.insert(
                    "docker-content-digest",
                    format!("sha256:{}", "d".repeat(64)).parse().unwrap(),
                );
                h.insert("content-type", images::DOCKER_MANIFEST.parse().unwrap());
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), seen)
}

/// As the kubelet: every matching credential is tried, whatever the error of the
/// ones before, and what is reported is what the node would see.
#[tokio::test]
async fn every_matching_credential_is_tried_whatever_the_error() {
    let (host, seen) = per_user_registry(|user| match user {
        "flaky" => StatusCode::SERVICE_UNAVAILABLE,
        "good" => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    })
    .await;
    let api = FakeApiServer::start().await;
    for (name, user) in [("flaky", "flaky"), ("good", "good"), ("stale", "stale")] {
        api.add_pull_secret(
            "team",
            name,
            &json!({"auths": {host.clone(): {"username": user, "password": "p"}}}),
        );
    }
    api.add_service_account("team", "default", &[]);
    let cluster = Arc::new(Cluster::new(api.client(), Duration::from_secs(30)));
    let settings = RegistrySettings {
        host: host.clone(),
        insecure: true,
        ca_pem: None,
    };
    let warn = PREFLIGHT.replace(
        "preflight: true",
        "preflight: true\n  onRegistryError: Warn",
    );
    let gate = Gate::new(
        &warn,
        vec![settings],
        Some(cluster),
        InspectorConfig::default(),
    );
    let image = format!("{host}/team/app:v1");
    let with = |secrets: &[&str]| {
        let mut p = pod(&[&image], None);
        p["spec"]["imagePullSecrets"] = json!(
            secrets
                .iter()
                .map(|s| json!({"name": s}))
                .collect::<Vec<_>>()
        );
        p
    };
    // A 503 for the first credential does not stop the second.
    let (d, _) = gate.admit(&with(&["flaky", "good"])).await;
    assert!(
        d.allowed() && d.warnings.is_empty(),
        "{:?} {:?}",
        d.violations,
        d.warnings
    );
    // (The client follows a HEAD without a digest with a GET: same credential.)
    let tried = |seen: &std::sync::Mutex<Vec<String>>| {
        let mut users = seen.lock().unwrap().clone();
        users.dedup();
        users
    };
    assert_eq!(tried(&seen), ["flaky", "good"]);
    // All fail: one was refused, one could not be answered. The node may still get
    // through with the one that was not answered, so it is not `unauthorized`:
    // onRegistryError (Warn here) decides.
    seen.lock().unwrap().clear();
    let (d, _) = gate.admit(&with(&["stale", "flaky"])).await;
    assert_eq!(tried(&seen), ["stale", "flaky"]);
    assert!(d.allowed(), "{:?}", d.violations);
    assert!(
        d.warnings[0].contains("answered HTTP 503"),
        "{:?}",
        d.warnings
    );
    // Only refusals: unauthorized, naming each credential refused.
    let (d, w) = gate.admit(&with(&["stale"])).await;
    assert!(!d.allowed());
    let msg = d.denial_message(&w);
    assert!(
        msg.contains(
            "refused the credentials of user \"stale\" from pod imagePullSecret \"team/stale\""
        ),
        "{msg}"
    );
}

/// `{"auths": {"host": {}}}` (what `kubectl create secret --from-file` often
/// writes) means anonymous, as for containerd: never empty Basic credentials.
#[tokio::test]
async fn an_empty_auths_entry_means_anonymous() {
    let tokens = TokenServer::start(
        TokenServerConfig::default()
            .anonymous(&[Grant::new("public/*", &["pull"])])
            .user("ci", "ci-pass", &[Grant::new("*", &["pull", "push"])]),
    );
    let registry = Registry::start(tokens.kind()).await;
    let client = images::client(&registry);
    for repo in ["public/app:v1", "private/app:v1"] {
        images::push_single(
            &client,
            &images::basic("ci", "ci-pass"),
            &images::reference(&registry, repo),
            "linux/amd64",
            Format::Oci,
        )
        .await
        .unwrap();
    }
    let host = registry.host();
    let (gate, config) = Gate::with_docker_config(
        vec![settings_for(&registry, true)],
        json!({"auths": {format!("https://{host}/v1/"): {}}}),
    );
    tokens.reset_count();
    let (d, _) = gate
        .admit(&pod(&[&registry.reference("public/app:v1")], None))
        .await;
    assert!(d.allowed(), "{:?}", d.violations);
    let requests = tokens.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.user.is_none()),
        "no Basic credentials for an empty entry: {requests:?}"
    );
    // Where anonymous is not enough, the message says the entry was empty.
    let msg = gate.deny(&registry.reference("private/app:v1")).await;
    assert!(
        msg.contains(&format!(
            "unauthorized: {host} refused anonymous access (the empty entry in docker config {} (auths key \"https://{host}/v1/\")); an empty auths entry means anonymous access (as for the container runtime): put the user and password or token for {host} in that secret",
            config.display()
        )),
        "{msg}"
    );
}

/// Registries the nodes pull with credentials imagegate cannot see (a kubelet
/// credential provider), or through a mirror: `unauthorized` and `manifest unknown`
/// follow onRegistryError, and the message says why.
#[tokio::test]
async fn node_credential_and_mirrored_registries_follow_on_registry_error() {
    let registry = Registry::start(Kind::htpasswd("robot", "node-only")).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let plain = Registry::start(Kind::Plain).await;
    let host = registry.host();
    let patterns = |p: &[String]| {
        p.iter()
            .map(|p| imagegate::credentials::RegistryPattern::parse(p).unwrap())
            .collect()
    };
    let config = InspectorConfig {
        node_credentials: patterns(std::slice::from_ref(&host)),
        mirrors: patterns(&[plain.host()]),
        ..InspectorConfig::default()
    };
    let registries = vec![settings_for(&registry, true), settings_for(&plain, false)];
    let warn = PREFLIGHT.replace(
        "preflight: true",
        "preflight: true\n  onRegistryError: Warn",
    );
    let warning = Gate::new(&warn, registries.clone(), None, config.clone());
    let denying = Gate::new(PREFLIGHT, registries.clone(), None, config);
    let image = registry.reference("team/app:v1");
    let (d, _) = warning.admit(&pod(&[&image], None)).await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert!(
        d.warnings[0].contains(&format!("unauthorized: {host} refused anonymous access"))
            && d.warnings[0].contains(&format!("the nodes pull from {host} with credentials imagegate cannot see (it matches \"{host}\" in nodeCredentials of imagegate's configuration"))
            && d.warnings[0].ends_with("(admitted because policy preflight has onRegistryError: Warn)"),
        "{:?}",
        d.warnings
    );
    let msg = denying.deny(&image).await;
    assert!(
        msg.contains("so the node's pull may still succeed: denied because policy preflight has onRegistryError: Deny (Warn admits such images with a warning)"),
        "{msg}"
    );
    // A mirrored registry: the tag is not upstream, the mirror may have it.
    let mirrored = plain.reference("library/nginx:1.27");
    let (d, _) = warning.admit(&pod(&[&mirrored], None)).await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert!(
        d.warnings[0].contains("manifest unknown") && d.warnings[0].contains("through a mirror"),
        "{:?}",
        d.warnings
    );
    // Other registries are judged as before: a missing tag always denies.
    let other = Gate::new(&warn, registries, None, InspectorConfig::default());
    assert!(!other.admit(&pod(&[&mirrored], None)).await.0.allowed());
}

#[tokio::test]
async fn pull_policy_never_asks_no_registry() {
    let registry = Registry::start(Kind::Plain).await;
    let gate = Gate::simple(vec![settings_for(&registry, false)]);
    let missing = registry.reference("team/local-only:dev");
    let mut p = pod(&[&missing], None);
    p["spec"]["containers"][0]["imagePullPolicy"] = json!("Never");
    registry.reset_counts();
    let (d, _) = gate.admit(&p).await;
    assert!(d.allowed(), "{:?}", d.violations);
    assert_eq!(registry.requests().len(), 0, "{:?}", registry.requests());
    assert!(
        d.not_checked[0].contains("imagePullPolicy: Never"),
        "{:?}",
        d.not_checked
    );
    // The same image pulled is looked up and denied.
    p["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    assert!(!gate.admit(&p).await.0.allowed());
}

/// When reading from the Kubernetes API server uses up the deadline, the denial
/// blames it, not the registry (which is never asked).
#[tokio::test]
async fn a_slow_kubernetes_api_is_blamed_not_the_registry() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let api = FakeApiServer::start().await;
    api.add_service_account("team", "default", &[]);
    api.add_node("n1", "amd64");
    api.set_delay(Duration::from_secs(6));
    let cluster = Arc::new(Cluster::new(api.client(), Duration::from_secs(30)));
    let arch = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: arch}\nspec:\n  architectures: {}\n";
    let mut gate = Gate::new(
        arch,
        vec![settings_for(&registry, false)],
        Some(cluster),
        InspectorConfig::default(),
    );
    gate.deadline = Duration::from_secs(2);
    let image = registry.reference("team/app:v1");
    registry.reset_counts();
    let (d, w) = gate.admit(&pod(&[&image], Some("regcred"))).await;
    assert!(!d.allowed());
    let msg = d.denial_message(&w);
    assert!(
        msg.contains(&format!("timeout: reading Secret \"team/regcred\" from the Kubernetes API server took the whole admission deadline of 2.0 s, so the registry was not asked about \"{image}\"")),
        "{msg}"
    );
    assert_eq!(registry.requests().len(), 0, "{:?}", registry.requests());
    let facts = gate.facts(&image).await;
    match &facts.images[&image] {
        ImageFacts::Failed(f) => assert_eq!(f.kind, engine::FailureKind::KubernetesApi),
        other => panic!("{other:?}"),
    }
    // Only the Node list is slow: the image is found, and where the pod may run is
    // unknown because of the API server, which the denial says.
    api.set_delay(Duration::ZERO);
    api.set_node_delay(Duration::from_secs(6));
    let msg = gate.deny(&image).await;
    assert!(
        msg.contains("cannot tell which architectures the pod may run on: listing the Nodes from the Kubernetes API server took the whole admission deadline of 2.0 s; the pod names none (nodeSelector kubernetes.io/arch) and policy arch requires none (architectures.require) [policy arch, rule architectures]"),
        "{msg}"
    );
}
