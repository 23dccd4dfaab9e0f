//! Pull secrets from the cluster: `requirePullSecret` against Secrets served as the
//! API's JSON to a real kube Client, and the secret imagegate adds used for its own
//! lookups against a real registry with basic auth. The inspector and the engine run
//! in-process, as the server wires them.

mod support;

use std::sync::Arc;
use std::time::Duration;

use imagegate::admission::Workload;
use imagegate::cluster::Cluster;
use imagegate::engine::{self, Decision};
use imagegate::inspector::{Inspector, InspectorConfig};
use imagegate::policy::{PolicySet, load_sources};
use imagegate::registry::{RegistryClient, RegistryConfig, RegistrySettings};
use serde_json::{Value, json};
use support::kube::FakeApiServer;
use support::registry::{Kind, Registry};

/// A password that must never appear in any answer, message or log.
const PASSWORD: &str = "Xk9-never-print-me";

struct Gate {
    inspector: Inspector,
    policies: PolicySet,
}

impl Gate {
    fn new(policy: &str, registries: Vec<RegistrySettings>, cluster: Option<Arc<Cluster>>) -> Gate {
        let registry = RegistryClient::new(RegistryConfig {
            registries,
            connect_timeout: Duration::from_secs(2),
            ..RegistryConfig::default()
        });
        Gate {
            inspector: Inspector::new(registry, cluster, InspectorConfig::default()).unwrap(),
            policies: PolicySet::compile(&load_sources(&[("p.yaml", policy)])).unwrap(),
        }
    }

    async fn admit(&self, kind: &str, object: &Value) -> (Decision, Workload) {
        let group = if kind == "Pod" { "" } else { "apps" };
        let w = Workload::from_object(group, kind, "team", object)
            .unwrap()
            .unwrap();
        let needs = engine::needs(&self.policies, &w);
        let facts = self
            .inspector
            .gather(&needs, &w, Duration::from_secs(5))
            .await;
        (engine::decide(&self.policies, &w, &facts), w)
    }
}

fn pod(image: &str, secrets: &[&str]) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": image}]});
    if !secrets.is_empty() {
        spec["imagePullSecrets"] = secrets.iter().map(|s| json!({"name": s})).collect();
    }
    json!({"metadata": {"name": "web", "namespace": "team"}, "spec": spec})
}

fn dockerconfigjson(key: &str) -> Vec<u8> {
    json!({"auths": {key: {"username": "robot", "password": PASSWORD}}})
        .to_string()
        .into_bytes()
}

fn cluster(api: &FakeApiServer) -> Arc<Cluster> {
    Arc::new(Cluster::new(api.client(), Duration::from_secs(30)))
}

#[tokio::test]
async fn require_pull_secret_reads_each_secret_through_the_kubernetes_api() {
    let api = FakeApiServer::start().await;
    let json_type = "kubernetes.io/dockerconfigjson";
    api.add_secret(
        "team",
        "fits",
        json_type,
        &[(
            ".dockerconfigjson",
            &dockerconfigjson("https://fits.example.com"),
        )],
    );
    let legacy = json!({"legacy.example.com": {"auth": base64(&format!("robot:{PASSWORD}"))}});
    api.add_secret(
        "team",
        "legacy",
        "kubernetes.io/dockercfg",
        &[(".dockercfg", legacy.to_string().as_bytes())],
    );
    api.add_secret(
        "team",
        "opaque",
        "Opaque",
        &[("password", PASSWORD.as_bytes())],
    );
    api.add_secret(
        "team",
        "elsewhere",
        json_type,
        &[(".dockerconfigjson", &dockerconfigjson("quay.io"))],
    );
    let broken = format!("{{\"auths\": {{\"broken.example.com\": {{\"password\": \"{PASSWORD}");
    api.add_secret(
        "team",
        "broken",
        json_type,
        &[(".dockerconfigjson", broken.as_bytes())],
    );
    api.add_secret(
        "other-team",
        "missing",
        json_type,
        &[(
            ".dockerconfigjson",
            &dockerconfigjson("missing.example.com"),
        )],
    );
    let policy = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: secrets}\nspec:\n  requirePullSecret: Deny\n  imagePullSecrets:\n    - {registry: fits.example.com, secretName: fits}\n    - {registry: legacy.example.com, secretName: legacy}\n    - {registry: opaque.example.com, secretName: opaque}\n    - {registry: elsewhere.example.com, secretName: elsewhere}\n    - {registry: broken.example.com, secretName: broken}\n    - {registry: missing.example.com, secretName: missing}\n";
    let gate = Gate::new(policy, vec![], Some(cluster(&api)));
    // (registry, the secret the pod lists, None: admitted, Some(fragment of the denial))
    let table: &[(&str, &str, Option<&str>)] = &[
        ("fits.example.com", "fits", None),
        ("legacy.example.com", "legacy", None),
        (
            "missing.example.com",
            "missing",
            Some(
                "pull secret \"missing\" (for registry missing.example.com) does not exist in namespace \"team\", so the node pulls without credentials and fails with \"authentication required\"; create it: kubectl create secret docker-registry missing --docker-server=missing.example.com",
            ),
        ),
        (
            "opaque.example.com",
            "opaque",
            Some(
                "pull secret \"opaque\" in namespace \"team\" has type \"Opaque\", not kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg), and the kubelet uses only those",
            ),
        ),
        (
            "elsewhere.example.com",
            "elsewhere",
            Some(
                "pull secret \"elsewhere\" in namespace \"team\" has no auths entry matching elsewhere.example.com (its auths keys: \"quay.io\")",
            ),
        ),
        (
            "broken.example.com",
            "broken",
            Some(
                "pull secret \"broken\" in namespace \"team\" holds no usable docker config (docker config is not valid JSON",
            ),
        ),
    ];
    for (registry, secret, expected) in table {
        let image = format!("{registry}/app/web:v1");
        let (d, w) = gate.admit("Pod", &pod(&image, &[secret])).await;
        let msg = d.denial_message(&w);
        match expected {
            None => assert!(d.allowed(), "{image}: {msg}"),
            Some(fragment) => {
                assert!(!d.allowed(), "{image}");
                assert!(msg.contains(fragment), "{image}: {msg}\nlacks {fragment}");
                assert!(
                    msg.ends_with("[policy secrets, rule requirePullSecret]"),
                    "{msg}"
                );
            }
        }
        assert!(!msg.contains(PASSWORD), "{msg}");
        assert_eq!(
            api.count(&format!("/namespaces/team/secrets/{secret}")),
            1,
            "{:?}",
            api.requests()
        );
    }
    // Read once, then from the cache.
    for _ in 0..3 {
        gate.admit("Pod", &pod("fits.example.com/app/web:v1", &["fits"]))
            .await;
    }
    assert_eq!(api.count("/secrets/fits"), 1, "{:?}", api.requests());
    // A pod that names none gets the secret from the mutating webhook; until it
    // lands, the validating webhook denies it (unless_mutated), and the
    // ServiceAccount was asked whether it provides it.
    api.add_service_account("team", "default", &["fits"]);
    let (d, _) = gate
        .admit("Pod", &pod("fits.example.com/app/web:v1", &[]))
        .await;
    assert!(
        d.allowed() && d.unless_mutated.is_empty() && d.patches.is_empty(),
        "{:?}",
        d.patches
    );
    assert_eq!(api.count("/serviceaccounts/default"), 1);
    let (d, _) = gate
        .admit("Pod", &pod("opaque.example.com/app/web:v1", &[]))
        .await;
    assert_eq!(
        serde_json::to_value(&d.patches).unwrap(),
        json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "fits"}, {"name": "opaque"}]}])
    );
    assert_eq!(d.unless_mutated.len(), 1);
}

#[tokio::test]
async fn without_kubernetes_access_require_pull_secret_fails_closed_and_says_why() {
    let policy = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: secrets}\nspec:\n  requirePullSecret: Deny\n  imagePullSecrets: [{registry: fits.example.com, secretName: fits}]\n";
    let gate = Gate::new(policy, vec![], None);
    let (d, w) = gate
        .admit("Pod", &pod("fits.example.com/app/web:v1", &["fits"]))
        .await;
    assert!(!d.allowed());
    let msg = d.denial_message(&w);
    assert!(msg.contains("pull secret \"fits\" in namespace \"team\" could not be read (imagegate has no Kubernetes API access"), "{msg}");
    // An unreachable API server: the same, with the error.
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let unreachable = Arc::new(Cluster::new(
        kube::Client::try_from(config).unwrap(),
        Duration::from_secs(30),
    ));
    let gate = Gate::new(policy, vec![], Some(unreachable));
    let (d, w) = gate
        .admit("Pod", &pod("fits.example.com/app/web:v1", &["fits"]))
        .await;
    let msg = d.denial_message(&w);
    assert!(msg.contains("could not be read ("), "{msg}");
    assert!(
        msg.contains("check that imagegate may get Secrets in \"team\""),
        "{msg}"
    );
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn the_secret_imagegate_adds_is_the_one_its_lookups_use() {
    let registry = Registry::start(Kind::htpasswd("robot", PASSWORD)).await;
    support::images::push_amd64(&registry, "team/private:v1").await;
    let host = registry.host();
    let image = registry.reference("team/private:v1");
    let api = FakeApiServer::start().await;
    api.add_pull_secret(
        "team",
        "registry-local",
        &json!({"auths": {host.clone(): {"username": "robot", "password": PASSWORD}}}),
    );
    api.add_pull_secret(
        "team",
        "wrong",
        &json!({"auths": {host.clone(): {"username": "robot", "password": "nope"}}}),
    );
    api.add_service_account("team", "default", &[]);
    let settings = vec![RegistrySettings {
        host: host.clone(),
        ca_pem: registry.ca_pem().map(String::into_bytes),
        insecure: false,
    }];
    let inject = |name: &str, mode: &str| {
        format!(
            "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: preflight}}\nspec:\n  preflight: true\n---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: secrets}}\nspec:\n  mode: {mode}\n  imagePullSecrets: [{{registry: \"{host}\", secretName: {name}}}]\n"
        )
    };
    // The pod names no secret: imagegate adds registry-local, and its lookup uses it.
    let gate = Gate::new(
        &inject("registry-local", "Enforce"),
        settings.clone(),
        Some(cluster(&api)),
    );
    let (d, w) = gate.admit("Pod", &pod(&image, &[])).await;
    assert!(d.allowed(), "{}", d.denial_message(&w));
    assert_eq!(
        serde_json::to_value(&d.patches).unwrap(),
        json!([{"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "registry-local"}]}])
    );
    // A Deployment's template is not changed (its Pods get the secret when they
    // are created), and the lookup already uses it.
    let deployment = json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": pod(&image, &[])["spec"]}}});
    let (d, w) = gate.admit("Deployment", &deployment).await;
    assert!(d.allowed(), "{}", d.denial_message(&w));
    assert!(d.patches.is_empty());
    // The added secret is named when the registry refuses it.
    let gate = Gate::new(
        &inject("wrong", "Enforce"),
        settings.clone(),
        Some(cluster(&api)),
    );
    let (d, w) = gate.admit("Pod", &pod(&image, &[])).await;
    let msg = d.denial_message(&w);
    assert!(msg.contains(&format!("unauthorized: {host} refused the credentials of user \"robot\" from imagePullSecret \"team/wrong\" (added by imagegate)")), "{msg}");
    // An Audit policy adds nothing, so the pod's pull (and the lookup) is anonymous.
    let gate = Gate::new(
        &inject("registry-local", "Audit"),
        settings,
        Some(cluster(&api)),
    );
    let (d, w) = gate.admit("Pod", &pod(&image, &[])).await;
    assert!(!d.allowed());
    let msg = d.denial_message(&w);
    assert!(
        msg.contains(&format!("unauthorized: {host} refused anonymous access")),
        "{msg}"
    );
    assert!(d.patches.is_empty(), "{:?}", d.patches);
    assert!(!format!("{d:?}").contains(PASSWORD));
}
