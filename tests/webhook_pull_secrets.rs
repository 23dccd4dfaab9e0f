//! The real binary: `/mutate` adds the pull secret a policy names, in the same
//! JSON Patch as the digest pin; `/validate` judges `requirePullSecret`; the
//! password of the secret appears in no answer and no log line.

mod common;
mod support;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use support::images;
use support::kube::FakeApiServer;
use support::registry::{Kind, Registry};

const PASSWORD: &str = "Qv4-not-in-any-output";

fn decoded_patch(response: &Value) -> Option<Value> {
    let b64 = response.get("patch")?.as_str().expect("a base64 patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn in_namespace(mut object: Value, ns: &str) -> Value {
    object["metadata"]["namespace"] = json!(ns);
    object
}

#[tokio::test]
async fn mutate_adds_the_pull_secret_with_the_pin_and_validate_judges_it() {
    let registry = Registry::start(Kind::htpasswd("robot", PASSWORD)).await;
    let digest = images::push_amd64(&registry, "team/private:v1").await;
    let host = registry.host();
    let image = registry.reference("team/private:v1");
    let api = FakeApiServer::start().await;
    for ns in ["team", "audit"] {
        api.add_pull_secret(
            ns,
            "registry-local",
            &json!({"auths": {host.clone(): {"username": "robot", "password": PASSWORD}}}),
        );
        api.add_service_account(ns, "default", &[]);
    }
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), registry.ca_pem().unwrap()).unwrap();
    let config = format!(
        "registries:\n  - host: \"{host}\"\n    caFile: \"{}\"\n",
        ca.path().display()
    );
    let enforce = policy(
        "pull",
        &format!(
            "namespaces: [team]\npinDigests: true\nrequirePullSecret: Deny\nimagePullSecrets:\n  - {{registry: \"{host}\", secretName: registry-local}}"
        ),
    );
    let audit = policy(
        "pull-audit",
        &format!(
            "namespaces: [audit]\nmode: Audit\nimagePullSecrets:\n  - {{registry: \"{host}\", secretName: registry-local}}"
        ),
    );
    let ig = Imagegate::start_with(
        &[("a.yaml", &enforce), ("b.yaml", &audit)],
        Some(&config),
        Some(kubeconfig.path()),
    )
    .await;
    let mut outputs: Vec<String> = Vec::new();

    // /mutate: one patch, the pin and the secret; applied, the pod is admitted.
    let pod = object("Pod", "web", &[("app", &image)]);
    let r = ig
        .review("/mutate", &review("CREATE", &pod, None, None))
        .await;
    outputs.push(r.to_string());
    let patch = decoded_patch(&r).expect("a patch");
    assert_eq!(
        patch,
        json!([
            {"op": "replace", "path": "/spec/containers/0/image", "value": format!("{image}@{digest}")},
            {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "registry-local"}]}
        ]),
        "{r}"
    );
    let mut patched = pod.clone();
    let ops: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut patched, &ops).unwrap();
    // Reinvocation: nothing more to do.
    let r = ig
        .review("/mutate", &review("CREATE", &patched, None, None))
        .await;
    outputs.push(r.to_string());
    assert!(r.get("patch").is_none(), "{r}");
    let r = ig
        .review("/validate", &review("CREATE", &patched, None, None))
        .await;
    outputs.push(r.to_string());
    assert_eq!(r["allowed"], true, "{r}");

    // The mutating webhook's patch never landed: the validating one denies.
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    outputs.push(r.to_string());
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the pod does not list pull secret \"registry-local\""),
        "{msg}"
    );
    assert!(
        msg.contains("[policy pull, rule requirePullSecret]"),
        "{msg}"
    );

    // kubectl debug on a pod without the secret: it cannot be added there.
    let mut existing = object("Pod", "web", &[("app", "busybox:1.36")]);
    let mut debugged = existing.clone();
    debugged["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": image}]);
    existing["spec"]["ephemeralContainers"] = json!([]);
    let req = review(
        "UPDATE",
        &debugged,
        Some(&existing),
        Some("ephemeralcontainers"),
    );
    let r = ig.review("/mutate", &req).await;
    outputs.push(r.to_string());
    let patch = decoded_patch(&r).unwrap_or(json!([]));
    assert!(
        patch
            .as_array()
            .unwrap()
            .iter()
            .all(|op| op["path"] != "/spec/imagePullSecrets"),
        "{patch}"
    );
    let r = ig.review("/validate", &req).await;
    outputs.push(r.to_string());
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(msg.contains("ephemeral container \"debug\""), "{msg}");
    assert!(msg.contains("a kubectl debug request (pods/ephemeralcontainers) changes only the ephemeral containers; add {\"name\": \"registry-local\"} to spec.imagePullSecrets"), "{msg}");

    // Audit: the would-be change is a warning, and nothing changes.
    let audited = in_namespace(pod.clone(), "audit");
    let mut req = review("CREATE", &audited, None, None);
    req["request"]["namespace"] = json!("audit");
    let r = ig.review("/mutate", &req).await;
    outputs.push(r.to_string());
    assert!(r.get("patch").is_none(), "{r}");
    let warning = r["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "would add imagePullSecret \"registry-local\" to Pod \"web\": container \"app\" image \"{image}\" needs it for registry {host}"
        )),
        "{warning}"
    );

    // No output carries the secret's password, in clear or as basic auth.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("robot:{PASSWORD}"));
    outputs.push(ig.log());
    for out in &outputs {
        assert!(
            !out.contains(PASSWORD) && !out.contains(&basic),
            "a credential leaked: {out}"
        );
    }
    assert!(
        ig.log().contains("image policy violation"),
        "the log was captured"
    );
}
