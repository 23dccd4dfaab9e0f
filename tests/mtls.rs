//! Client authentication (`serve --client-ca`): only a client with a certificate
//! from that CA completes the handshake, so only it can make imagegate look up
//! images and read the pull secrets of the namespace a request names. The real
//! binary, a real registry, and the Kubernetes API through a local server.

mod common;
mod support;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use support::images;
use support::kube::FakeApiServer;
use support::registry::{Kind, Registry};

/// A CA (PEM) and a client certificate it issued, as one PEM with its key.
struct ClientPki {
    ca_pem: String,
    identity_pem: Vec<u8>,
}

fn client_pki(name: &str) -> ClientPki {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{name} CA"));
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.distinguished_name = dn;
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    ClientPki {
        ca_pem: ca_cert.pem(),
        identity_pem: format!("{}{}", cert.pem(), key.serialize_pem()).into_bytes(),
    }
}

#[tokio::test]
async fn only_clients_with_a_certificate_from_the_client_ca_are_served() {
    let registry = Registry::start(Kind::Plain).await;
    let image = registry.reference("victim/app:v1");
    images::push_amd64(&registry, "victim/app:v1").await;
    registry.reset_counts();
    // Another namespace's pull secret, which a request naming that namespace makes
    // imagegate read.
    let api = FakeApiServer::start().await;
    api.add_pull_secret(
        "victim",
        "regcred",
        &json!({"auths": {registry.host(): {"username": "u", "password": "p"}}}),
    );
    api.add_service_account("victim", "default", &[]);
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    api.kubeconfig(kubeconfig.path());

    let right = client_pki("api server");
    let wrong = client_pki("intruder");
    let pki = tempfile::tempdir().unwrap();
    let ca_file = pki.path().join("client-ca.crt");
    std::fs::write(&ca_file, &right.ca_pem).unwrap();
    let config = format!(
        "registries:\n  - host: \"{}\"\n    insecure: true\n",
        registry.host()
    );
    let ig = Imagegate::start_custom(
        &[("p.yaml", &policy("preflight", "preflight: true"))],
        Some(&config),
        Some(kubeconfig.path()),
        &[
            "--client-ca".into(),
            ca_file.display().to_string(),
            "--health-listen".into(),
            "127.0.0.1:0".into(),
        ],
        Some(&right.identity_pem),
    )
    .await;

    let mut pod = object("Pod", "web", &[("app", &image)]);
    pod["metadata"]["namespace"] = json!("victim");
    pod["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let mut request = review("CREATE", &pod, None, None);
    request["request"]["namespace"] = json!("victim");
    let body = serde_json::to_vec(&request).unwrap();

    // (client certificate, served)
    let ca = ig.ca_pem();
    let attempts: [(&str, Option<&[u8]>); 2] = [
        ("none", None),
        ("from another CA", Some(&wrong.identity_pem)),
    ];
    for (label, identity) in attempts {
        let client = client_with(&ca, identity);
        let err = client
            .post(ig.url("/validate"))
            .body(body.clone())
            .send()
            .await
            .expect_err(label);
        assert!(
            err.is_connect() || err.is_request(),
            "{label}: the handshake fails: {err:?}"
        );
        let err = client.get(ig.url("/healthz")).send().await;
        assert!(err.is_err(), "{label}: every path is behind the handshake");
    }
    assert_eq!(
        api.count("/secrets/"),
        0,
        "no Secret was read for unauthenticated callers: {:?}",
        api.requests()
    );
    assert_eq!(registry.requests().len(), 0, "{:?}", registry.requests());

    // The right certificate: served, and the lookup reads the namespace's secret.
    let r = ig.review("/validate", &request).await;
    assert_eq!(r["allowed"], true, "{r}");
    assert!(api.count("/namespaces/victim/secrets/regcred") >= 1);
    assert_eq!(registry.count("HEAD", "/v2/victim/app/manifests/v1"), 1);

    // The kubelet's probes use the plain-HTTP health listener, which serves no
    // admission endpoint.
    let health = ig.log_field("health_addr").await;
    let plain = reqwest::Client::new();
    let ready = plain
        .get(format!("http://{health}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = plain
        .get(format!("http://{health}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("imagegate_admission_requests_total")
    );
    let validate = plain
        .post(format!("http://{health}/validate"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(validate.status(), 404);

    // The client CA is reloaded like the certificate: swap it, and the former
    // client is refused while the other is served.
    std::fs::write(&ca_file, &wrong.ca_pem).unwrap();
    ig.wait_for_log("TLS certificate reloaded").await;
    let before = client_with(&ca, Some(&right.identity_pem));
    assert!(before.get(ig.url("/healthz")).send().await.is_err());
    let after = client_with(&ca, Some(&wrong.identity_pem));
    let ok = after.get(ig.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}
