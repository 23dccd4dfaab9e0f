//! The real binary against a real registry: digest pinning through `/mutate`,
//! architectures with the cluster's Nodes, pull secrets read through the Kubernetes
//! API, fifty concurrent admissions of one new image, and a token server whose
//! tokens make the registry client panic.

mod common;
mod support;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use support::images::{self, Format};
use support::kube::{FakeApiServer, node};
use support::registry::{Kind, Registry};
use support::token::{Grant, TokenFault, TokenServer, TokenServerConfig};

fn insecure(registry: &Registry) -> String {
    format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\n",
        registry.host()
    )
}

fn decoded_patch(response: &Value) -> Value {
    let b64 = response["patch"].as_str().expect("a patch");
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn pins_tags_to_digests_on_pods_only_and_reports_audit_pins() {
    let registry = Registry::start(Kind::Plain).await;
    let digest = images::push_amd64(&registry, "team/web:v1").await;
    let pin = policy(
        "pin",
        "namespaces: [team]\npinDigests: true\nskipPinning: [\"*/sidecars/**\"]",
    );
    let audit = policy(
        "audit-pin",
        "namespaces: [audit]\nmode: Audit\npinDigests: true",
    );
    let ig = Imagegate::start_with(
        &[("pin.yaml", &pin), ("audit.yaml", &audit)],
        Some(&insecure(&registry)),
        None,
    )
    .await;
    let image = registry.reference("team/web:v1");

    let pod = object(
        "Pod",
        "web",
        &[("app", &image), ("init", &format!("{image}@{digest}"))],
    );
    let r = ig
        .review("/mutate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["patchType"], "JSONPatch");
    assert_eq!(
        decoded_patch(&r),
        json!([{"op": "replace", "path": "/spec/containers/0/image", "value": format!("{image}@{digest}")}]),
        "only the tag is pinned; the image with a digest is left alone"
    );

    // A Deployment's template is not pinned by default (GitOps drift).
    let deploy = object("Deployment", "web", &[("app", &image)]);
    let r = ig
        .review("/mutate", &review("CREATE", &deploy, None, None))
        .await;
    assert!(r.get("patch").is_none(), "{r}");

    // An Audit policy reports the would-be pin and changes nothing.
    let mut audited = object("Pod", "web", &[("app", &image)]);
    audited["metadata"]["namespace"] = json!("audit");
    let mut req = review("CREATE", &audited, None, None);
    req["request"]["namespace"] = json!("audit");
    let r = ig.review("/mutate", &req).await;
    assert!(r.get("patch").is_none(), "{r}");
    assert!(
        r["warnings"][0].as_str().unwrap().starts_with(&format!(
            "would pin: container \"app\" image \"{image}\" to {image}@{digest}"
        )),
        "{r}"
    );

    // A tag that does not exist is denied by /validate with the fix.
    let missing = object("Pod", "web", &[("app", &registry.reference("team/web:v2"))]);
    let r = ig
        .review("/validate", &review("CREATE", &missing, None, None))
        .await;
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "manifest unknown: {} has no {}/team/web:v2",
            registry.host(),
            registry.host()
        )),
        "{msg}"
    );
    let metrics = ig.metrics().await;
    let line = "imagegate_registry_lookup_failures_total{kind=\"manifest-unknown\"} 1";
    assert!(metrics.contains(line), "{metrics}");
    // The pinned pod the API server sends back to /validate passes: the digest exists.
    let pinned = object("Pod", "web", &[("app", &format!("{image}@{digest}"))]);
    assert_eq!(
        ig.review("/validate", &review("CREATE", &pinned, None, None))
            .await["allowed"],
        true
    );
}

#[tokio::test]
async fn fifty_concurrent_admissions_of_a_new_image_cost_one_digest_lookup() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/new:v1").await;
    let pre = policy("preflight", "preflight: true");
    let ig = Imagegate::start_with(&[("p.yaml", &pre)], Some(&insecure(&registry)), None).await;
    let image = registry.reference("team/new:v1");
    registry.reset_counts();
    let ig = std::sync::Arc::new(ig);
    let admissions = (0..50).map(|i| {
        let ig = ig.clone();
        let image = image.clone();
        tokio::spawn(async move {
            let pod = object("Pod", &format!("web-{i}"), &[("app", &image)]);
            ig.review("/validate", &review("CREATE", &pod, None, None))
                .await["allowed"]
                == true
        })
    });
    for allowed in futures::future::join_all(admissions).await {
        assert!(allowed.unwrap());
    }
    assert_eq!(
        registry.count("HEAD", "/v2/team/new/manifests/v1"),
        1,
        "{:?}",
        registry.requests()
    );
}

#[tokio::test]
async fn architectures_from_the_clusters_nodes_deny_or_add_a_node_affinity() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/amd64-only:v1").await;
    let client = images::client(&registry);
    images::push_index(
        &client,
        &images::auth(&registry),
        &images::reference(&registry, "team/multi:v1"),
        &[("linux", "amd64", None), ("linux", "arm64", None)],
        Format::Docker,
        true,
    )
    .await
    .unwrap();
    let api = FakeApiServer::start().await;
    api.add_node("node-a", "amd64");
    api.add_node("node-b", "arm64");
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());
    let deny = policy("arch", "namespaces: [team]\narchitectures: {}");
    let mutate = policy(
        "arch-affinity",
        "namespaces: [mutating]\narchitectures:\n  onMismatch: AddNodeAffinity",
    );
    let ig = Imagegate::start_with(
        &[("a.yaml", &deny), ("b.yaml", &mutate)],
        Some(&insecure(&registry)),
        Some(kubeconfig.path()),
    )
    .await;

    let amd64_only = registry.reference("team/amd64-only:v1");
    let pod = object("Pod", "web", &[("app", &amd64_only)]);
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.contains("the image has no linux/arm64 variant (it has linux/amd64); the pod may run on arm64 nodes (from the 2 of the cluster's 2 nodes the pod can be scheduled on), where it would crash with \"exec format error\""), "{msg}");
    assert!(api.count("/api/v1/nodes") >= 1);

    let multi = object(
        "Pod",
        "web",
        &[("app", &registry.reference("team/multi:v1"))],
    );
    assert_eq!(
        ig.review("/validate", &review("CREATE", &multi, None, None))
            .await["allowed"],
        true
    );
    let mut pinned_to_amd64 = pod.clone();
    pinned_to_amd64["spec"]["nodeSelector"] = json!({"kubernetes.io/arch": "amd64"});
    assert_eq!(
        ig.review("/validate", &review("CREATE", &pinned_to_amd64, None, None))
            .await["allowed"],
        true
    );

    // AddNodeAffinity: /mutate keeps the pod off the arm64 nodes.
    let mut req = review("CREATE", &pod, None, None);
    req["request"]["namespace"] = json!("mutating");
    req["request"]["object"]["metadata"]["namespace"] = json!("mutating");
    let r = ig.review("/mutate", &req).await;
    assert_eq!(
        decoded_patch(&r),
        json!([{"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}}}]),
        "{r}"
    );
}

#[tokio::test]
async fn pull_secrets_are_read_through_the_kubernetes_api() {
    let registry = Registry::start(Kind::htpasswd("robot", "Zq7-unique-pw")).await;
    images::push_amd64(&registry, "team/private:v1").await;
    let host = registry.host();
    let api = FakeApiServer::start().await;
    api.add_pull_secret(
        "team",
        "regcred",
        &json!({"auths": {host.clone(): {"username": "robot", "password": "Zq7-unique-pw"}}}),
    );
    api.add_service_account("team", "default", &[]);
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), registry.ca_pem().unwrap()).unwrap();
    let config = format!(
        "registries:\n  - host: \"{host}\"\n    caFile: \"{}\"\n",
        ca.path().display()
    );
    let ig = Imagegate::start_with(
        &[("p.yaml", &policy("preflight", "preflight: true"))],
        Some(&config),
        Some(kubeconfig.path()),
    )
    .await;
    let image = registry.reference("team/private:v1");

    let bare = object("Pod", "web", &[("app", &image)]);
    let r = ig
        .review("/validate", &review("CREATE", &bare, None, None))
        .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("unauthorized: {host} refused anonymous access")),
        "{r}"
    );

    let mut with_secret = bare.clone();
    with_secret["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    assert_eq!(
        ig.review("/validate", &review("CREATE", &with_secret, None, None))
            .await["allowed"],
        true
    );
    assert!(api.count("/secrets/regcred") >= 1);
    // The password is never logged.
    let log = ig.log();
    let basic = base64::engine::general_purpose::STANDARD.encode("robot:Zq7-unique-pw");
    assert!(
        !log.contains("Zq7-unique-pw") && !log.contains(&basic),
        "credentials in the log"
    );
    assert!(log.contains("policies loaded"), "the log was captured");
}

/// Where the pod can land, from Nodes read through the API: cordoned, tainted,
/// Windows and label-excluded Nodes do not count; tolerations and selectors bring
/// them back; a Pod UPDATE never gets an affinity patch.
#[tokio::test]
async fn architectures_from_the_nodes_the_pod_can_land_on() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/amd64-only:v1").await;
    let client = images::client(&registry);
    images::push_index(
        &client,
        &images::auth(&registry),
        &images::reference(&registry, "team/linux-multi:v1"),
        &[("linux", "amd64", None), ("linux", "arm64", None)],
        Format::Oci,
        false,
    )
    .await
    .unwrap();
    let api = FakeApiServer::start().await;
    let add = |name: &str, arch: &str, os: &str, pool: &str, spec: Value| {
        let mut n = node(name, arch, os);
        n["metadata"]["labels"]["pool"] = json!(pool);
        n["spec"]
            .as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        api.add_node_object(n);
    };
    add("general-1", "amd64", "linux", "general", json!({}));
    add(
        "arm-1",
        "arm64",
        "linux",
        "general",
        json!({"taints": [{"key": "dedicated", "value": "arm", "effect": "NoSchedule"}]}),
    );
    add(
        "arm-2",
        "arm64",
        "linux",
        "general",
        json!({"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}),
    );
    add(
        "win-1",
        "amd64",
        "windows",
        "general",
        json!({"taints": [{"key": "os", "value": "windows", "effect": "NoExecute"}]}),
    );
    add("z-1", "s390x", "linux", "mainframe", json!({}));
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());
    let deny = policy("arch", "namespaces: [team]\narchitectures: {}");
    let mutate = policy(
        "arch-affinity",
        "namespaces: [mutating]\narchitectures:\n  onMismatch: AddNodeAffinity",
    );
    let ig = Imagegate::start_with(
        &[("a.yaml", &deny), ("b.yaml", &mutate)],
        Some(&insecure(&registry)),
        Some(kubeconfig.path()),
    )
    .await;
    let amd64 = registry.reference("team/amd64-only:v1");
    let multi = registry.reference("team/linux-multi:v1");
    let pod = |image: &str, extra: Value| {
        let mut p = object("Pod", "web", &[("app", image)]);
        p["spec"]
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let tolerate = |key: &str| json!({"tolerations": [{"key": key, "operator": "Exists"}], "nodeSelector": {"pool": "general"}});
    let everything =
        json!({"tolerations": [{"operator": "Exists"}], "nodeSelector": {"pool": "general"}});
    // (case, image, pod extras, missing platforms or None for admitted)
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, Option<&str>)> = vec![
        ("tainted, cordoned, Windows (NoExecute) and other pools are out", &amd64, json!({"nodeSelector": {"pool": "general"}}), None),
        ("without the selector the s390x pool is in", &amd64, json!({}), Some("no linux/s390x variant (it has linux/amd64); the pod may run on s390x nodes (from the 2 of the cluster's 5 nodes the pod can be scheduled on)")),
        ("required affinity keeps it off the mainframe pool", &amd64, json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["mainframe"]}]}]}}}}), None),
        ("tolerating the arm taint brings arm-1 in", &amd64, tolerate("dedicated"), Some("no linux/arm64 variant")),
        ("tolerating everything brings the cordoned and Windows nodes in", &multi, everything.clone(), Some("no windows/amd64 variant (it has linux/amd64, linux/arm64); the pod may run on windows/amd64 nodes (from the 4 of the cluster's 5 nodes the pod can be scheduled on)")),
        ("a Linux pod stays off Windows nodes", &multi, json!({"os": {"name": "linux"}, "tolerations": [{"operator": "Exists"}], "nodeSelector": {"pool": "general"}}), None),
    ];
    for (case, image, extra, missing) in cases {
        let r = ig
            .review(
                "/validate",
                &review("CREATE", &pod(image, extra), None, None),
            )
            .await;
        match missing {
            None => assert_eq!(r["allowed"], true, "{case}: {r}"),
            Some(fragment) => {
                assert_eq!(r["allowed"], false, "{case}");
                let msg = r["status"]["message"].as_str().unwrap();
                assert!(msg.contains(fragment), "{case}: {msg}");
            }
        }
    }
    // Listed once, in pages, and cached.
    assert_eq!(api.count("/api/v1/nodes"), 1, "{:?}", api.requests());

    // AddNodeAffinity: only the part of affinity that changes is patched, so the
    // fields the API server sent that imagegate does not know survive.
    let in_ns = |mut p: Value, ns: &str| {
        p["metadata"]["namespace"] = json!(ns);
        p
    };
    let anti = json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}, "futureAffinity": {"keep": true}}});
    let created = in_ns(pod(&amd64, anti), "mutating");
    let mut req = review("CREATE", &created, None, None);
    req["request"]["namespace"] = json!("mutating");
    let r = ig.review("/mutate", &req).await;
    assert_eq!(
        decoded_patch(&r),
        json!([{"op": "add", "path": "/spec/affinity/nodeAffinity", "value": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}}]),
        "{r}"
    );
    // A Pod UPDATE that changes the image: affinity is immutable, so no patch, and
    // the validating webhook denies with the reason.
    let old = in_ns(pod(&multi, json!({})), "mutating");
    let changed = in_ns(pod(&amd64, json!({})), "mutating");
    for path in ["/mutate", "/validate"] {
        let mut req = review("UPDATE", &changed, Some(&old), None);
        req["request"]["namespace"] = json!("mutating");
        let r = ig.review(path, &req).await;
        assert!(r.get("patch").is_none(), "{path}: {r}");
        if path == "/validate" {
            assert_eq!(r["allowed"], false);
            let msg = r["status"]["message"].as_str().unwrap();
            assert!(msg.contains("a Pod's spec cannot change after it is created, but for its images, so imagegate adds no node affinity to this request"), "{msg}");
        }
    }
}

#[tokio::test]
async fn pull_policy_never_is_not_looked_up_and_the_audit_says_so() {
    let registry = Registry::start(Kind::Plain).await;
    let ig = Imagegate::start_with(
        &[("p.yaml", &policy("preflight", "preflight: true"))],
        Some(&insecure(&registry)),
        None,
    )
    .await;
    let image = registry.reference("team/built-on-node:dev");
    let mut pod = object("Pod", "web", &[("app", &image)]);
    pod["spec"]["containers"][0]["imagePullPolicy"] = json!("Never");
    registry.reset_counts();
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(registry.requests().len(), 0, "{:?}", registry.requests());
    let note = r["auditAnnotations"]["not-checked"]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.starts_with(&format!("container \"app\" image \"{image}\": imagePullPolicy: Never, so the registry was not asked")),
        "{r}"
    );
    ig.wait_for_log("\"action\":\"not checked\"").await;
}

/// A token with a line break makes oci-client panic; through the binary the
/// admission is still answered (HTTP 200): denied under `onRegistryError: Deny`,
/// admitted with a warning under `Warn`, on both endpoints, and the server keeps
/// serving.
#[tokio::test]
async fn a_token_server_answering_a_token_with_a_line_break_gets_an_answer_not_a_dropped_connection()
 {
    let tokens = TokenServer::start(
        TokenServerConfig::default()
            .user("ci", "ci-pass", &[Grant::new("*", &["pull", "push"])])
            .anonymous(&[Grant::new("*", &["pull"])]),
    );
    let registry = Registry::start(tokens.kind()).await;
    images::push_single(
        &images::client(&registry),
        &images::basic("ci", "ci-pass"),
        &images::reference(&registry, "team/app:v1"),
        "linux/amd64",
        Format::Oci,
    )
    .await
    .unwrap();
    tokens.set_fault(Some(TokenFault::Newline));
    let host = registry.host();
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), registry.ca_pem().unwrap()).unwrap();
    let config = format!(
        "registries:\n  - host: \"{host}\"\n    caFile: \"{}\"\n",
        ca.path().display()
    );
    let deny = policy("deny", "namespaces: [team]\npreflight: true");
    let warn = policy(
        "warn",
        "namespaces: [relaxed]\npreflight: true\nonRegistryError: Warn",
    );
    let ig = Imagegate::start_with(
        &[("deny.yaml", &deny), ("warn.yaml", &warn)],
        Some(&config),
        None,
    )
    .await;
    let image = registry.reference("team/app:v1");
    let unusable = format!("unusable answer: the answer of {host} could not be used (its token");

    let pod = object("Pod", "web", &[("app", &image)]);
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&unusable) && msg.contains("[policy deny, rule preflight]"),
        "{msg}"
    );
    // /mutate answers too (it never denies for a lookup failure).
    let r = ig
        .review("/mutate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");

    let mut relaxed = pod.clone();
    relaxed["metadata"]["namespace"] = json!("relaxed");
    let r = ig
        .review("/validate", &review("CREATE", &relaxed, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!("container \"app\" image \"{image}\": {unusable}")),
        "{warning}"
    );

    let metrics = ig.metrics().await;
    assert!(
        metrics.contains("imagegate_registry_lookup_failures_total{kind=\"unusable-answer\"} 2"),
        "{metrics}"
    );
    let log = ig.log();
    // imagegate's own registry client checks the token before it becomes a header:
    // no panic at all (oci-client's used to be caught and logged here), the lookup
    // is logged as failed with its class.
    assert!(!log.contains("\"message\":\"panic\""), "{log}");
    assert!(
        log.contains("\"message\":\"registry lookup failed\"")
            && log.contains("\"kind\":\"unusable-answer\""),
        "{log}"
    );
    // Still serving.
    let h = ig.client.get(ig.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
}
