//! The real binary over HTTPS: decisions, the v1 contract, reloads, shutdown.

mod common;

use common::*;
use serde_json::{Value, json};

fn registries_policy() -> String {
    policy(
        "registries",
        "excludeNamespaces: [kube-system]\nregistries:\n  allow: [harbor.example.com, registry.k8s.io/**]\ntags:\n  forbid: [latest]\nmessage: \"Ask #platform.\"",
    )
}

fn audit_policy() -> String {
    policy("digests", "mode: Audit\ntags:\n  requireDigest: true")
}

#[tokio::test]
async fn allows_and_denies_pods_with_actionable_messages() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let ok = object(
        "Pod",
        "web",
        &[("app", "harbor.example.com/team/web:v1.2.3")],
    );
    let r = ig
        .review("/validate", &review("CREATE", &ok, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");

    let bad = object(
        "Pod",
        "web",
        &[
            ("app", "nginx"),
            ("side", "harbor.example.com.evil.com/x:v1"),
        ],
    );
    let r = ig
        .review("/validate", &review("CREATE", &bad, None, None))
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    for fragment in [
        "imagegate denied Pod \"web\" in namespace \"team\": 3 image policy violations",
        "container \"app\" image \"nginx\": registry \"docker.io\" is not allowed here; allowed: harbor.example.com, registry.k8s.io/**",
        "no tag means \"latest\", which is forbidden",
        "container \"side\" image \"harbor.example.com.evil.com/x:v1\": registry \"harbor.example.com.evil.com\" is not allowed",
        "mirror there). Ask #platform. [policy registries, rule registries.allow]",
    ] {
        assert!(msg.contains(fragment), "{msg}\nlacks: {fragment}");
    }

    // An invalid reference is denied with the parse error.
    let invalid = object("Pod", "web", &[("app", "Harbor.example.com/Team/App:v1")]);
    let r = ig
        .review("/validate", &review("CREATE", &invalid, None, None))
        .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("must be lowercase"),
        "{r}"
    );

    // A server-side dry run is judged the same way.
    let mut dry = review("CREATE", &bad, None, None);
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(ig.review("/validate", &dry).await["allowed"], false);

    // The mutating endpoint never denies for the static rules and sends no patch.
    let r = ig
        .review("/mutate", &review("CREATE", &bad, None, None))
        .await;
    assert_eq!(r["allowed"], true);
    assert!(r.get("patch").is_none());
}

#[tokio::test]
async fn audit_mode_warns_and_annotates_but_never_denies() {
    let ig = Imagegate::start(&[("audit.yaml", &audit_policy())]).await;
    let pod = object("Pod", "web", &[("app", "harbor.example.com/team/web:v1")]);
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    let w = warnings[0].as_str().unwrap();
    assert!(w.starts_with("would deny: container \"app\" image \"harbor.example.com/team/web:v1\": a digest is required"), "{w}");
    assert!(w.len() <= 256);
    assert!(
        r["auditAnnotations"]["would-deny"]
            .as_str()
            .unwrap()
            .contains("tags.requireDigest"),
        "{r}"
    );
    ig.wait_for_log("\"action\":\"would deny\"").await;
    let metrics = ig.metrics().await;
    assert!(
        metrics.contains("imagegate_policy_violations_total{endpoint=\"validate\",policy=\"digests\",rule=\"tags.requireDigest\",mode=\"Audit\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "imagegate_admission_requests_total{endpoint=\"validate\",decision=\"allowed\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("imagegate_admission_duration_seconds_count{endpoint=\"validate\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_workload_kind_is_judged_by_its_pod_template() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    for kind in [
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
        "CronJob",
    ] {
        let good = object(kind, "web", &[("app", "registry.k8s.io/pause:3.9")]);
        let r = ig
            .review("/validate", &review("CREATE", &good, None, None))
            .await;
        assert_eq!(r["allowed"], true, "{kind}: {r}");
        let bad = object(kind, "web", &[("app", "ghcr.io/org/app:v1")]);
        let r = ig
            .review("/validate", &review("CREATE", &bad, None, None))
            .await;
        assert_eq!(r["allowed"], false, "{kind}: {r}");
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("imagegate denied {kind} \"web\"")),
            "{msg}"
        );
    }
    // Kinds imagegate does not cover are allowed untouched.
    let mut cm = object("Pod", "cfg", &[("app", "nginx")]);
    cm["kind"] = json!("ConfigMap");
    let r = ig
        .review("/validate", &review("CREATE", &cm, None, None))
        .await;
    assert_eq!(r["allowed"], true);
}

#[tokio::test]
async fn updates_and_the_ephemeral_containers_subresource() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    // A pod admitted before the policy existed: its old images are not re-judged.
    let old = object("Pod", "web", &[("app", "nginx:1.25")]);
    let mut with_debug = old.clone();
    with_debug["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox:1.36"}]);
    let r = ig
        .review(
            "/validate",
            &review(
                "UPDATE",
                &with_debug,
                Some(&old),
                Some("ephemeralcontainers"),
            ),
        )
        .await;
    assert_eq!(r["allowed"], false, "{r}");
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ephemeral container \"debug\" image \"busybox:1.36\""),
        "{msg}"
    );
    assert!(
        !msg.contains("\"app\""),
        "old containers are not re-judged: {msg}"
    );

    let mut good_debug = old.clone();
    good_debug["spec"]["ephemeralContainers"] =
        json!([{"name": "debug", "image": "harbor.example.com/tools/debug:v1"}]);
    let r = ig
        .review(
            "/validate",
            &review(
                "UPDATE",
                &good_debug,
                Some(&old),
                Some("ephemeralcontainers"),
            ),
        )
        .await;
    assert_eq!(r["allowed"], true, "{r}");

    // A label change leaves the images alone: allowed. A changed image is judged.
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"tier": "web"});
    assert_eq!(
        ig.review(
            "/validate",
            &review("UPDATE", &relabelled, Some(&old), None)
        )
        .await["allowed"],
        true
    );
    let changed = object("Pod", "web", &[("app", "nginx:1.26")]);
    assert_eq!(
        ig.review("/validate", &review("UPDATE", &changed, Some(&old), None))
            .await["allowed"],
        false
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_message() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let pod = object("Pod", "web", &[("app", "nginx")]);
    let mut no_uid = review("CREATE", &pod, None, None);
    no_uid["request"]["uid"] = json!("");
    let mut v1beta1 = review("CREATE", &pod, None, None);
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut broken_spec = review("CREATE", &pod, None, None);
    broken_spec["request"]["object"]["spec"]["containers"] = json!("nginx");
    let mut no_object = review("CREATE", &pod, None, None);
    no_object["request"]["object"] = Value::Null;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "not a valid AdmissionReview"),
        (b"not json".to_vec(), "not a valid AdmissionReview"),
        (b"{\"apiVersion\":".to_vec(), "not a valid AdmissionReview"),
        (b"{}".to_vec(), "not a valid AdmissionReview"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no request",
        ),
        (serde_json::to_vec(&no_uid).unwrap(), "empty uid"),
        (
            serde_json::to_vec(&v1beta1).unwrap(),
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            serde_json::to_vec(&broken_spec).unwrap(),
            "pod spec at /spec is malformed",
        ),
        (serde_json::to_vec(&no_object).unwrap(), "no object"),
        (vec![0xff, 0xfe, 0x00], "not a valid AdmissionReview"),
    ];
    for (body, fragment) in cases {
        for path in ["/validate", "/mutate"] {
            let (status, text) = ig.post(path, body.clone()).await;
            assert_eq!(
                status,
                400,
                "{path} {}: {text}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                text.contains(fragment),
                "{path}: {text:?} lacks {fragment:?}"
            );
        }
    }
    // Still serving.
    assert_eq!(
        ig.review("/validate", &review("CREATE", &pod, None, None))
            .await["allowed"],
        false
    );
    let (status, _) = ig.post("/validate", vec![b'x'; 9 * 1024 * 1024]).await;
    assert_eq!(status, 413, "a body over the limit is refused");
}

#[tokio::test]
async fn policy_changes_are_reloaded_and_invalid_ones_refused() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let pod = object("Pod", "web", &[("app", "ghcr.io/org/app:v1")]);
    assert_eq!(
        ig.review("/validate", &review("CREATE", &pod, None, None))
            .await["allowed"],
        false
    );

    // A valid change: ghcr.io is now allowed.
    let relaxed = policy(
        "registries",
        "registries:\n  allow: [harbor.example.com, ghcr.io]",
    );
    std::fs::write(ig.policy_dir().join("a.yaml"), relaxed).unwrap();
    ig.wait_for_log("policies reloaded").await;
    assert_eq!(
        ig.review("/validate", &review("CREATE", &pod, None, None))
            .await["allowed"],
        true
    );

    // An invalid change is refused with file, line and field; the last good set stays.
    let broken = policy("registries", "registries:\n  allow: ['https://quay.io']");
    std::fs::write(ig.policy_dir().join("a.yaml"), broken).unwrap();
    ig.wait_for_log("invalid policy change refused").await;
    let log = ig.log();
    assert!(
        log.contains(
            "a.yaml:7: spec.registries.allow[0]: a registry pattern takes a host, not a URL"
        ),
        "{log}"
    );
    assert_eq!(
        ig.review("/validate", &review("CREATE", &pod, None, None))
            .await["allowed"],
        true
    );
    let metrics = ig.metrics().await;
    assert!(
        metrics.contains("imagegate_reloads_total{what=\"policies\",result=\"failure\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("imagegate_reloads_total{what=\"policies\",result=\"success\"} 1"),
        "{metrics}"
    );

    // A new file with an Audit policy joins the set.
    std::fs::write(
        ig.policy_dir().join("a.yaml"),
        policy("registries", "registries:\n  allow: [ghcr.io]"),
    )
    .unwrap();
    std::fs::write(ig.policy_dir().join("b.yaml"), audit_policy()).unwrap();
    ig.wait_for_log("\"policies\":2").await;
    let r = ig
        .review("/validate", &review("CREATE", &pod, None, None))
        .await;
    assert_eq!(r["allowed"], true);
    assert!(
        r["warnings"][0].as_str().unwrap().starts_with("would deny"),
        "{r}"
    );
}

#[tokio::test]
async fn the_certificate_is_reloaded_without_a_restart() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let fresh = tempfile::tempdir().unwrap();
    generate_certs(fresh.path());
    let new_ca = std::fs::read(fresh.path().join("ca.crt")).unwrap();
    let new_client = client_trusting(&new_ca);
    assert!(
        new_client.get(ig.url("/healthz")).send().await.is_err(),
        "the new CA is not served yet"
    );

    std::fs::copy(fresh.path().join("tls.key"), ig.tls_dir().join("tls.key")).unwrap();
    std::fs::copy(fresh.path().join("tls.crt"), ig.tls_dir().join("tls.crt")).unwrap();
    ig.wait_for_log("TLS certificate reloaded").await;
    let resp = new_client
        .get(ig.url("/healthz"))
        .send()
        .await
        .expect("served with the new certificate");
    assert_eq!(resp.text().await.unwrap(), "ok");
    // The old certificate is gone for new connections.
    let old_client = client_trusting(&std::fs::read(ig.tls_dir().join("ca.crt")).unwrap());
    assert!(old_client.get(ig.url("/healthz")).send().await.is_err());
}

#[tokio::test]
async fn health_readiness_and_graceful_termination() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let h = ig.client.get(ig.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (h.status().as_u16(), h.text().await.unwrap()),
        (200, "ok".to_string())
    );
    let r = ig.client.get(ig.url("/readyz")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (200, "ready".to_string())
    );
    // HTTP/2, as the API server may speak it.
    let h2 = ig
        .client
        .get(ig.url("/healthz"))
        .version(reqwest::Version::HTTP_2)
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let status = ig.terminate().await;
    assert!(status.success(), "exit after SIGTERM: {status:?}");
}

#[tokio::test]
async fn a_server_with_invalid_policies_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        policy("bad", "tags:\n  allow: ['(']"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:7: spec.tags.allow[0]: invalid regular expression"),
        "{err}"
    );
}

/// `openssl s_client` speaking exactly `version` to the server: whether the
/// handshake completed.
fn handshake(addr: &str, ca: &std::path::Path, version: &str) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            addr,
            version,
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-CAfile",
        ])
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        text,
    )
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_spoken() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let ca = ig.tls_dir().join("ca.crt");
    for (version, expected) in [
        ("-tls1_3", true),
        ("-tls1_2", true),
        ("-tls1_1", false),
        ("-tls1", false),
    ] {
        let (ok, text) = handshake(&ig.addr, &ca, version);
        assert_eq!(ok, expected, "{version}:\n{text}");
        if !expected {
            assert!(
                text.contains("alert protocol version") || text.contains("alert handshake failure"),
                "{version} must be refused by the server with an alert: {text}"
            );
        }
    }
}
