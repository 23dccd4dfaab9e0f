//! The Kubernetes reads, through a real kube Client against a local server that
//! serves the API's JSON shapes.

#[path = "support/kube.rs"]
#[allow(dead_code)]
mod kube_api;

use std::time::Duration;

use imagegate::cluster::Cluster;
use kube_api::FakeApiServer;
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
    let archs = cluster.node_architectures().await.unwrap();
    assert_eq!(
        archs.iter().map(String::as_str).collect::<Vec<_>>(),
        ["amd64", "arm64"]
    );

    // Cached: the second round asks nothing.
    let before = api.requests().len();
    cluster.pull_secret("team", "regcred").await.unwrap();
    cluster
        .service_account_pull_secrets("team", "builder")
        .await
        .unwrap();
    cluster.node_architectures().await.unwrap();
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
