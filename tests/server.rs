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
async fn bodies_with_no_uid_to_answer_get_400_with_a_message() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let pod = object("Pod", "web", &[("app", "nginx")]);
    let mut no_uid = review("CREATE", &pod, None, None);
    no_uid["request"]["uid"] = json!("");
    let mut not_a_review = review("CREATE", &pod, None, None);
    not_a_review["kind"] = json!("Pod");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "not a valid AdmissionReview"),
        (b"not json".to_vec(), "not a valid AdmissionReview"),
        (b"{\"apiVersion\":".to_vec(), "not a valid AdmissionReview"),
        (b"{}".to_vec(), "expected apiVersion admission.k8s.io/v1"),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no request",
        ),
        (serde_json::to_vec(&no_uid).unwrap(), "empty uid"),
        (serde_json::to_vec(&not_a_review).unwrap(), "kind \"Pod\""),
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

/// Fail closed, in-band: an AdmissionReview with a uid that cannot be judged is
/// answered HTTP 200, `allowed: false`, code 400, on both endpoints.
#[tokio::test]
async fn malformed_requests_with_a_uid_are_refused_in_band() {
    let ig = Imagegate::start(&[("a.yaml", &registries_policy())]).await;
    let pod = object("Pod", "web", &[("app", "harbor.example.com/team/web:v1")]);
    let with = |pointer: &str, value: Value| {
        let mut r = review("CREATE", &pod, None, None);
        *r.pointer_mut(pointer).unwrap() = value;
        r
    };
    let deployment = object(
        "Deployment",
        "web",
        &[("app", "harbor.example.com/team/web:v1")],
    );
    let mut no_template_spec = review("CREATE", &deployment, None, None);
    no_template_spec["request"]["object"]["spec"]["template"]
        .as_object_mut()
        .unwrap()
        .remove("spec");
    // (review, apiVersion echoed, message fragment)
    let cases: Vec<(Value, &str)> = vec![
        (
            with("/request/object/spec/containers", json!("nginx")),
            "imagegate cannot judge Pod \"web\" in namespace \"team\": the Pod's pod spec at /spec is malformed: spec.containers: invalid type: string \"nginx\", expected a sequence",
        ),
        (
            with("/request/object/spec/containers/0/image", json!(["nginx"])),
            "spec.containers[0].image: invalid type: sequence, expected a string",
        ),
        (
            no_template_spec,
            "imagegate cannot judge Deployment \"web\" in namespace \"team\": the Deployment has no pod spec at /spec/template/spec",
        ),
        (
            with("/request/object", Value::Null),
            "the CREATE request carries no object",
        ),
        (
            with("/apiVersion", json!("admission.k8s.io/v1beta1")),
            "imagegate answers AdmissionReview admission.k8s.io/v1 only, and this request is admission.k8s.io/v1beta1",
        ),
        (
            with("/request/object/metadata", json!("web")),
            "imagegate cannot read this AdmissionReview's request (request.object",
        ),
    ];
    for (review, fragment) in &cases {
        for path in ["/validate", "/mutate"] {
            let msg = ig.refused(path, review, 400).await;
            assert!(msg.contains(fragment), "{path}: {msg}\nlacks: {fragment}");
        }
    }
    let metrics = ig.metrics().await;
    for endpoint in ["validate", "mutate"] {
        let line = format!(
            "imagegate_admission_requests_total{{endpoint=\"{endpoint}\",decision=\"malformed\"}} {}",
            cases.len()
        );
        assert!(metrics.contains(&line), "{metrics}");
    }
    assert!(ig.log().contains("request refused in-band"));
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

/// A half-written ConfigMap never drops enforcement: an emptied, comments-only,
/// truncated or corrupted policy file (invalid YAML, invalid UTF-8), or a directory
/// left with no policy file, is refused and counted; the last good set keeps
/// denying; a valid change afterwards is picked up.
#[tokio::test]
async fn emptied_truncated_or_corrupted_policy_files_keep_the_last_good_set() {
    let good = registries_policy();
    let ig = Imagegate::start(&[("a.yaml", &good)]).await;
    let outside = object("Pod", "web", &[("app", "ghcr.io/org/app:v1")]);
    let inside = object("Pod", "web", &[("app", "harbor.example.com/team/web:v1")]);
    let judge = |pod: &Value| {
        let review = review("CREATE", pod, None, None);
        let ig = &ig;
        async move { ig.review("/validate", &review).await["allowed"] == true }
    };
    assert!(!judge(&outside).await && judge(&inside).await);

    // A byte that is not UTF-8 at the start of line 7.
    let line7 = good.match_indices('\n').nth(5).unwrap().0 + 1;
    let mut not_utf8 = good.clone().into_bytes();
    not_utf8.insert(line7, 0xff);
    let a = ig.policy_dir().join("a.yaml");
    // (what, bytes; None removes the file, the log's message)
    let cases: Vec<(&str, Option<Vec<u8>>, String)> = vec![
        (
            "emptied",
            Some(Vec::new()),
            format!("{}: the file holds no policy document", a.display()),
        ),
        (
            "comments only",
            Some(b"# policies moved\n\n".to_vec()),
            "holds no policy document".into(),
        ),
        (
            "truncated",
            Some(good.as_bytes()[..good.find("registry.k8s.io").unwrap()].to_vec()),
            format!("{}:8:", a.display()),
        ),
        (
            "invalid YAML",
            Some(
                b"apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: \"x}\n"
                    .to_vec(),
            ),
            format!("{}:3: unclosed quote", a.display()),
        ),
        (
            "not UTF-8",
            Some(not_utf8),
            format!(
                "{}:7: byte {line7}: the file is not valid UTF-8",
                a.display()
            ),
        ),
        (
            "removed",
            None,
            "the directory holds no .yaml or .yml policy file".into(),
        ),
    ];
    for (i, (what, bytes, log)) in cases.iter().enumerate() {
        match bytes {
            Some(bytes) => ig.replace_policy("a.yaml", bytes),
            None => std::fs::remove_file(&a).unwrap(),
        }
        ig.wait_for_metric(&format!(
            "imagegate_reloads_total{{what=\"policies\",result=\"failure\"}} {}",
            i + 1
        ))
        .await;
        // The log line is written before the counter moves, but reaches this
        // process through a pipe: wait for it (a failure names the case).
        eprintln!("case: {what}");
        ig.wait_for_log(log).await;
        assert!(
            !judge(&outside).await,
            "{what}: the last good policies still deny"
        );
        assert!(judge(&inside).await, "{what}");
    }
    assert!(
        !ig.metrics().await.contains("result=\"success\""),
        "no reload succeeded"
    );

    // A valid change afterwards is picked up.
    ig.replace_policy(
        "a.yaml",
        policy(
            "registries",
            "registries:\n  allow: [harbor.example.com, ghcr.io]",
        )
        .as_bytes(),
    );
    ig.wait_for_metric("imagegate_reloads_total{what=\"policies\",result=\"success\"} 1")
        .await;
    assert!(judge(&outside).await);
    // Each refused change was counted once, not on every poll.
    assert!(ig.metrics().await.contains(&format!(
        "imagegate_reloads_total{{what=\"policies\",result=\"failure\"}} {}",
        cases.len()
    )));
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

/// The rules of a reload hold at start-up: no empty, unreadable or invalid file.
#[tokio::test]
async fn a_server_with_invalid_or_empty_policies_does_not_start() {
    // (file content, message fragment)
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            policy("bad", "tags:\n  allow: ['(']").into_bytes(),
            "bad.yaml:7: spec.tags.allow[0]: invalid regular expression",
        ),
        (Vec::new(), "bad.yaml: the file holds no policy document"),
        (
            b"# nothing yet\n".to_vec(),
            "bad.yaml: the file holds no policy document",
        ),
        (
            b"kind: Image\xffPolicy\n".to_vec(),
            "bad.yaml:1: byte 11: the file is not valid UTF-8",
        ),
    ];
    for (bytes, fragment) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), &bytes).unwrap();
        let out = std::process::Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--kubernetes",
                "false",
                "--policies",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(fragment), "{err}\nlacks: {fragment}");
    }
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
