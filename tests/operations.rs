//! Operating the real binary: the configuration file reloaded with its CA bundles
//! and docker config, the metrics after traffic that moves them, and a SIGTERM
//! during which a client keeps sending and is never refused within the grace period.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use support::images;
use support::kube::FakeApiServer;
use support::registry::{Kind, Registry};

#[tokio::test]
async fn the_configuration_file_its_ca_files_and_docker_config_reload() {
    let registry = Registry::start(Kind::htpasswd("robot", "right-pw")).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let host = registry.host();
    let files = tempfile::tempdir().unwrap();
    let ca = files.path().join("ca.pem");
    let docker = files.path().join("config.json");
    // A CA that did not sign the registry's certificate, and a wrong password.
    let other = imagegate::certs::generate(&["localhost".to_string()], 1).unwrap();
    std::fs::write(&ca, &other.ca_cert_pem).unwrap();
    let auths = |pw: &str| {
        json!({"auths": {host.clone(): {"username": "robot", "password": pw}}}).to_string()
    };
    std::fs::write(&docker, auths("wrong-pw")).unwrap();
    let config = |extra: &str| {
        format!(
            "registries:\n  - host: \"{host}\"\n    caFile: {}\ndockerConfig: {}\n{extra}",
            ca.display(),
            docker.display()
        )
    };
    let pre = policy("preflight", "preflight: true");
    let ig = Imagegate::start_with(&[("p.yaml", &pre)], Some(&config("")), None).await;
    let pod = object("Pod", "web", &[("app", &registry.reference("team/app:v1"))]);
    let judge = || async {
        let r = ig
            .review("/validate", &review("CREATE", &pod, None, None))
            .await;
        (
            r["allowed"] == true,
            r["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let (allowed, msg) = judge().await;
    assert!(
        !allowed && msg.contains("invalid peer certificate"),
        "{msg}"
    );

    // The caFile changes (only it): the right CA is trusted, the password is wrong.
    std::fs::write(&ca, registry.ca_pem().unwrap()).unwrap();
    ig.wait_for_log_count("configuration reloaded", 1).await;
    let (allowed, msg) = judge().await;
    assert!(
        !allowed && msg.contains(&format!("unauthorized: {host} refused the credentials of user \"robot\" from docker config {}", docker.display())),
        "{msg}"
    );
    // The dockerConfig changes: admitted.
    std::fs::write(&docker, auths("right-pw")).unwrap();
    ig.wait_for_log_count("configuration reloaded", 2).await;
    let (allowed, msg) = judge().await;
    assert!(allowed, "{msg}");

    // An invalid change is refused with file, line and field; the last good stays.
    std::fs::write(
        ig.config_path(),
        config("nodeCredentials: [\"localhost:abc\"]\n"),
    )
    .unwrap();
    ig.wait_for_log_count("invalid configuration change refused", 1)
        .await;
    let log = ig.log();
    assert!(
        log.contains(&format!(
            "{}:5: nodeCredentials[0]: `localhost:abc` is not a registry pattern",
            ig.config_path().display()
        )),
        "{log}"
    );
    assert!(judge().await.0, "the last good configuration is in force");
    std::fs::write(ig.config_path(), config("deadlineSecond: 3\n")).unwrap();
    ig.wait_for_log_count("invalid configuration change refused", 2)
        .await;
    assert!(
        ig.log().contains("unknown field `deadlineSecond`"),
        "{}",
        ig.log()
    );
    // A valid change is taken, with its new deadline.
    std::fs::write(ig.config_path(), config("deadlineSeconds: 3\n")).unwrap();
    ig.wait_for_log_count("configuration reloaded", 3).await;
    assert!(
        ig.log().contains("\"deadline_seconds\":3.0"),
        "{}",
        ig.log()
    );
    assert!(judge().await.0);
    let metrics = ig.metrics().await;
    for line in [
        "imagegate_reloads_total{what=\"config\",result=\"success\"} 3",
        "imagegate_reloads_total{what=\"config\",result=\"failure\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

/// The value of the sample `name` (the full name with labels) in `metrics`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let api = FakeApiServer::start().await;
    api.add_node("n1", "amd64");
    api.add_service_account("team", "default", &[]);
    api.add_pull_secret(
        "team",
        "regcred",
        &json!({"auths": {"elsewhere.example.com": {"username": "u", "password": "p"}}}),
    );
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());
    // A registry that accepts connections and never answers: a request in flight.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    let config = format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\n  - host: \"{silent_host}\"\n    insecure: true\ndeadlineSeconds: 1.5\n",
        registry.host()
    );
    let arch = policy("arch", "architectures: {}");
    let ig =
        Imagegate::start_with(&[("a.yaml", &arch)], Some(&config), Some(kubeconfig.path())).await;
    let before = ig.metrics().await;
    assert_eq!(
        sample(&before, "imagegate_policy_generation"),
        Some(1.0),
        "{before}"
    );
    let hash_line = before
        .lines()
        .find(|l| l.starts_with("imagegate_policy_set{hash=\""))
        .unwrap_or_else(|| panic!("{before}"))
        .to_string();
    assert!(hash_line.ends_with(" 1"), "{hash_line}");
    assert!(
        before.contains(&format!(
            "imagegate_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )),
        "{before}"
    );
    let cert = std::fs::read(ig.tls_dir().join("tls.crt")).unwrap();
    let expiry = imagegate::server::tls::not_after(&cert).unwrap() as f64;
    assert_eq!(
        sample(
            &before,
            "imagegate_tls_certificate_expiry_timestamp_seconds"
        ),
        Some(expiry),
        "{before}"
    );

    // Traffic: the same image twice (misses, then hits), and a missing tag.
    let image = registry.reference("team/app:v1");
    // Pods a and b name a pull secret (read once, then cached); c names none, so
    // its ServiceAccount is read.
    for name in ["a", "b"] {
        let mut pod = object("Pod", name, &[("app", &image)]);
        pod["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
        let r = ig
            .review("/validate", &review("CREATE", &pod, None, None))
            .await;
        assert_eq!(r["allowed"], true, "{r}");
    }
    let missing = object("Pod", "c", &[("app", &registry.reference("team/app:v9"))]);
    assert_eq!(
        ig.review("/validate", &review("CREATE", &missing, None, None))
            .await["allowed"],
        false
    );
    let m = ig.metrics().await;
    for (name, want) in [
        (
            "imagegate_cache_requests_total{fact=\"digest\",result=\"miss\"}",
            2.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"digest\",result=\"hit\"}",
            1.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"platforms\",result=\"miss\"}",
            1.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"platforms\",result=\"hit\"}",
            1.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"nodes\",result=\"miss\"}",
            1.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"nodes\",result=\"hit\"}",
            2.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"serviceaccount\",result=\"miss\"}",
            1.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"secret\",result=\"miss\"}",
            1.0,
        ),
        (
            "imagegate_cache_requests_total{fact=\"secret\",result=\"hit\"}",
            1.0,
        ),
        (
            "imagegate_registry_lookup_duration_seconds_count{outcome=\"found\"}",
            1.0,
        ),
        (
            "imagegate_registry_lookup_duration_seconds_count{outcome=\"manifest-unknown\"}",
            1.0,
        ),
        (
            "imagegate_registry_lookup_duration_seconds_bucket{le=\"8.192\",outcome=\"found\"}",
            1.0,
        ),
        (
            "imagegate_admission_requests_in_flight{endpoint=\"validate\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&m, name), Some(want), "{name} in\n{m}");
    }

    // A request held by a registry that never answers is in flight until the
    // deadline (1.5 s), and its duration lands past 1.024 s.
    let slow = object(
        "Pod",
        "d",
        &[("app", &format!("{silent_host}/team/app:v1"))],
    );
    let ig = std::sync::Arc::new(ig);
    let held = {
        let ig = ig.clone();
        tokio::spawn(async move {
            ig.review("/validate", &review("CREATE", &slow, None, None))
                .await
        })
    };
    let until = Instant::now() + Duration::from_millis(1200);
    let mut seen = false;
    while Instant::now() < until && !seen {
        let m = ig.metrics().await;
        seen = sample(
            &m,
            "imagegate_admission_requests_in_flight{endpoint=\"validate\"}",
        ) == Some(1.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the held request was never counted in flight");
    let r = held.await.unwrap();
    assert_eq!(r["allowed"], false, "{r}");
    let m = ig.metrics().await;
    assert_eq!(
        sample(
            &m,
            "imagegate_admission_requests_in_flight{endpoint=\"validate\"}"
        ),
        Some(0.0)
    );
    let count = sample(
        &m,
        "imagegate_admission_duration_seconds_count{endpoint=\"validate\"}",
    )
    .unwrap();
    let bucket = |le: &str| {
        let name = format!(
            "imagegate_admission_duration_seconds_bucket{{le=\"{le}\",endpoint=\"validate\"}}"
        );
        sample(&m, &name).unwrap_or_else(|| panic!("{name} in\n{m}"))
    };
    // The held one took longer than a second; every one is inside the last finite
    // bucket (30 s), past any deadline.
    assert!(count - bucket("1.024") >= 1.0, "{m}");
    assert_eq!(bucket("30.0"), count, "{m}");
    assert!(bucket("8.192") <= count, "{m}");
    assert_eq!(
        sample(
            &m,
            "imagegate_registry_lookup_duration_seconds_count{outcome=\"timeout\"}"
        ),
        Some(1.0),
        "{m}"
    );
    drop(silent);

    // A policy change: the next generation, another hash, the old one gone.
    std::fs::write(
        ig.policy_dir().join("a.yaml"),
        policy("arch", "architectures: {require: [amd64]}"),
    )
    .unwrap();
    ig.wait_for_log("policies reloaded").await;
    let m = ig.metrics().await;
    assert_eq!(sample(&m, "imagegate_policy_generation"), Some(2.0), "{m}");
    // The held pod read the ServiceAccount again, from the cache.
    assert_eq!(
        sample(
            &m,
            "imagegate_cache_requests_total{fact=\"serviceaccount\",result=\"hit\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(!m.contains(&hash_line), "{m}");
    assert_eq!(m.matches("imagegate_policy_set{hash=").count(), 1, "{m}");
}

#[tokio::test]
async fn sigterm_keeps_serving_for_the_grace_period_then_drains() {
    let grace = Duration::from_secs(4);
    let mut ig = Imagegate::launch(Launch {
        policies: &[("a.yaml", &policy("no-latest", "tags:\n  forbid: [latest]"))],
        args: &["--shutdown-grace", "4", "--drain-timeout", "2"],
        ..Launch::default()
    })
    .await;
    // A new connection for every request, as a client that does not reuse them:
    // each one must be accepted.
    let ca = std::fs::read(ig.tls_dir().join("ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let body = serde_json::to_vec(&review(
        "CREATE",
        &object("Pod", "web", &[("app", "nginx:1.27")]),
        None,
        None,
    ))
    .unwrap();
    let started = Instant::now();
    ig.sigterm();
    // Requests go on for the whole grace period. One that fails must have failed
    // after it (the listener closes then); none may be refused within it.
    let (mut sent, mut not_ready) = (0, 0);
    let within = |what: &str, e: reqwest::Error, ig: &Imagegate| {
        let at = started.elapsed();
        assert!(
            at >= grace,
            "{what} refused {at:?} after SIGTERM: {e:?}\n{}",
            ig.log()
        );
    };
    while started.elapsed() < grace {
        match client
            .post(ig.url("/validate"))
            .body(body.clone())
            .send()
            .await
        {
            Ok(resp) => assert_eq!(resp.status(), 200),
            Err(e) => {
                within("/validate", e, &ig);
                break;
            }
        }
        sent += 1;
        match client.get(ig.url("/readyz")).send().await {
            Ok(ready) => not_ready += usize::from(ready.status() == 503),
            Err(e) => {
                within("/readyz", e, &ig);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // (Each request opens a TLS connection: a handful on a busy machine.)
    assert!(sent >= 2, "{sent} requests");
    assert!(not_ready > 0, "readiness never turned false");
    ig.wait_for_log("not ready; still serving for the shutdown grace period")
        .await;
    // Then the listener closes and the process exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = ig.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit:\n{}", ig.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= grace,
        "exited before the grace period: {:?}",
        started.elapsed()
    );
    let err = client.get(ig.url("/healthz")).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
}
