//! The Kubernetes reads, through a real kube Client against a local server that
//! serves the API's JSON shapes.

#[path = "support/kube.rs"]
#[allow(dead_code)]
mod kube_api;

use std::time::Duration;

use imagegate::cluster::{Cluster, NODE_PAGE};
use imagegate::platform::{Node, Taint, TaintEffect};
use imagegate::telemetry::Telemetry;
use kube_api::{FakeApiServer, node};
use serde_json::json;

#[tokio::test]
async fn reads_pull_secrets_service_accounts_and_nodes_and_caches_them() {
    let api = FakeApiServer::start().await;
    api.add_pull_secret(
        "team",
        "regcred",
        &json!({"auths": {"harbor.example.com": {"username": "robot", "password": "p:w"}}}),
    );
    api.add_opaque_secret("team", "opaque");
    api.add_service_account("team", "builder", &["regcred", "missing"]);
    api.add_node("n1", "amd64");
    api.add_node("n2", "arm64");
    api.add_node("n3", "amd64");
    let cluster = Cluster::new(api.client(), Duration::from_secs(30));

    let config = cluster
        .pull_secret("team", "regcred")
        .await
        .unwrap()
        .expect("a pull secret");
    let mut keyring = imagegate::credentials::Keyring::default();
    keyring.add(&config, "test");
    let creds = keyring.lookup("harbor.example.com", "team/app");
    assert_eq!(creds.len(), 1);
    assert_eq!(
        (creds[0].username.as_str(), creds[0].password.as_str()),
        ("robot", "p:w")
    );

    assert!(
        cluster
            .pull_secret("team", "opaque")
            .await
            .unwrap()
            .is_none(),
        "an Opaque secret is no pull secret"
    );
    assert!(
        cluster.pull_secret("team", "nope").await.unwrap().is_none(),
        "404 is no secret"
    );
    let names = cluster
        .service_account_pull_secrets("team", "builder")
        .await
        .unwrap();
    assert_eq!(*names, ["regcred", "missing"]);
    assert!(
        cluster
            .service_account_pull_secrets("team", "ghost")
            .await
            .unwrap()
            .is_empty()
    );
    let nodes = cluster.nodes().await.unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| format!("{} {}", n.name, n.arch().unwrap()))
            .collect::<Vec<_>>(),
        ["n1 amd64", "n2 arm64", "n3 amd64"]
    );

    // Cached: the second round asks nothing.
    let before = api.requests().len();
    cluster.pull_secret("team", "regcred").await.unwrap();
    cluster
        .service_account_pull_secrets("team", "builder")
        .await
        .unwrap();
    cluster.nodes().await.unwrap();
    assert_eq!(api.requests().len(), before, "{:?}", api.requests());

    // Coalesced: many concurrent reads of one thing cost one request.
    let fresh = Cluster::new(api.client(), Duration::from_secs(30));
    let reads = (0..20).map(|_| fresh.pull_secret("team", "regcred"));
    for r in futures::future::join_all(reads).await {
        assert!(r.unwrap().is_some());
    }
    assert_eq!(
        api.count("/secrets/regcred"),
        2,
        "one for each Cluster: {:?}",
        api.requests()
    );
}

#[tokio::test]
async fn an_unreachable_api_is_an_error_not_a_panic() {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let cluster = Cluster::new(
        kube::Client::try_from(config).unwrap(),
        Duration::from_secs(30),
    );
    let err = cluster.pull_secret("team", "regcred").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read Secret \"team/regcred\""),
        "{err}"
    );
}

#[tokio::test]
async fn nodes_are_listed_in_pages_and_only_labels_taints_and_cordons_are_kept() {
    let api = FakeApiServer::start().await;
    let total = NODE_PAGE as usize * 2 + 17;
    for i in 0..total {
        let mut n = node(&format!("n{i:03}"), "amd64", "linux");
        if i == 1 {
            n["spec"]["unschedulable"] = json!(true);
            n["spec"]["taints"] = json!([
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2026-11-01T10:00:00Z"},
                {"key": "dedicated", "value": "gpu", "effect": "NoExecute"},
                {"key": "soft", "value": "x", "effect": "PreferNoSchedule"}
            ]);
            n["metadata"]["labels"]["pool"] = json!("gpu");
        }
        api.add_node_object(n);
    }
    let telemetry = Telemetry::default();
    let cluster =
        Cluster::new(api.client(), Duration::from_secs(30)).with_telemetry(telemetry.clone());
    let nodes = cluster.nodes().await.unwrap();
    assert_eq!(nodes.len(), total);
    assert_eq!(
        api.count("/api/v1/nodes?limit=100"),
        3,
        "paged: {:?}",
        api.requests()
    );
    let cordoned = &nodes[1];
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        *cordoned,
        Node {
            name: "n001".into(),
            labels: [
                label("beta.kubernetes.io/arch", "amd64"),
                label("beta.kubernetes.io/os", "linux"),
                label("kubernetes.io/arch", "amd64"),
                label("kubernetes.io/hostname", "n001"),
                label("kubernetes.io/os", "linux"),
                label("pool", "gpu"),
            ]
            .into(),
            taints: vec![
                Taint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    value: String::new(),
                    effect: TaintEffect::NoSchedule
                },
                Taint {
                    key: "dedicated".into(),
                    value: "gpu".into(),
                    effect: TaintEffect::NoExecute
                },
            ],
            unschedulable: true,
        },
        "PreferNoSchedule is dropped, status and images are not kept"
    );
    assert!(!nodes[0].unschedulable && nodes[0].taints.is_empty());
    // A second read is cached; both are counted.
    cluster.nodes().await.unwrap();
    assert_eq!(api.count("/api/v1/nodes"), 3);
    let mut registry = prometheus_client::registry::Registry::default();
    telemetry.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("cache_requests_total{fact=\"nodes\",result=\"miss\"} 1")
            && text.contains("cache_requests_total{fact=\"nodes\",result=\"hit\"} 1"),
        "{text}"
    );

    // The kept list is bounded in bytes: a budget below it is an error that says so.
    let small = Cluster::new(api.client(), Duration::from_secs(30)).with_node_bytes(10_000);
    let err = small.nodes().await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read Nodes: the Nodes take more than"),
        "{err}"
    );
}
