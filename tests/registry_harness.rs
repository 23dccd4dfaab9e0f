//! Tests of the registry harness itself, against the real `docker-registry` 2.8.2:
//! if these pass, the registry, token server and image pushing the other tests rely
//! on behave as those tests assume.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use oci_client::RegistryOperation;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use serde_json::Value;
use support::images::{self, Format};
use support::registry::{Kind, Registry};
use support::token::{Grant, TokenFault, TokenServer, TokenServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AMD64: (&str, &str, Option<&str>) = ("linux", "amd64", None);
const ARM64: (&str, &str, Option<&str>) = ("linux", "arm64", Some("v8"));

/// The error and all its sources, Debug and Display, for matching on causes.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{err:?}");
    let mut cur = Some(err);
    while let Some(e) = cur {
        out.push_str(" | ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// The HTTP status behind an oci-client error, if there is one.
fn status_of(err: &OciDistributionError) -> Option<u16> {
    match err {
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::RequestError(e) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

/// A GET over a bare HTTP/1.1 connection, with no Accept header at all (reqwest
/// always sends `Accept: */*`). Returns status, headers (lower-case names) and body.
async fn raw_get(host: &str, path: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: imagegate-tests\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("response within 10 s")
        .expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn plain_registry_push_then_head_is_counted_once() {
    let registry = Registry::start(Kind::Plain).await;
    let client = images::client(&registry);
    let auth = images::auth(&registry);
    let reference = images::reference(&registry, "harness/single:v1");

    let pushed = images::push_single(&client, &auth, &reference, "linux/amd64", Format::Oci)
        .await
        .unwrap();
    assert_eq!(
        registry.count("PUT", "/v2/harness/single/manifests/v1"),
        1,
        "{:#?}",
        registry.requests()
    );

    let heads_before = registry.count("HEAD", "/manifests/");
    let got = client
        .fetch_manifest_digest(&reference, &auth)
        .await
        .unwrap();
    assert_eq!(got, pushed);
    // No waiting: the registry logs a small response before it sends it.
    assert_eq!(
        registry.count("HEAD", "/manifests/") - heads_before,
        1,
        "{:#?}",
        registry.requests()
    );
    let head = registry
        .logged_requests()
        .into_iter()
        .rfind(|r| r.method == "HEAD")
        .unwrap();
    assert_eq!(head.uri, "/v2/harness/single/manifests/v1");
    assert_eq!(head.status, Some(200));

    // reset_counts hides what came before; wait_for_count sees new requests.
    registry.reset_counts();
    assert_eq!(registry.count("HEAD", "/manifests/"), 0);
    assert!(registry.requests().is_empty(), "{:#?}", registry.requests());
    client
        .fetch_manifest_digest(&reference, &auth)
        .await
        .unwrap();
    assert_eq!(
        registry
            .wait_for_count("HEAD", "/manifests/v1", 1, Duration::from_secs(5))
            .await,
        1
    );
    // The count is exact right after each response, many times over.
    for n in 2..=20 {
        client
            .fetch_manifest_digest(&reference, &auth)
            .await
            .unwrap();
        assert_eq!(registry.count("HEAD", "/manifests/v1"), n);
    }

    // A missing tag is counted too, with its 404.
    let missing = images::reference(&registry, "harness/single:missing");
    let err = client
        .fetch_manifest_digest(&missing, &auth)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), None, "a 404 is a registry error: {err}");
    assert!(err.to_string().contains("manifest unknown"), "{err}");
    let gets: Vec<_> = registry
        .logged_requests()
        .into_iter()
        .filter(|r| r.uri.ends_with("/manifests/missing"))
        .collect();
    assert_eq!(gets.len(), 2, "HEAD then GET: {gets:#?}");
    assert!(gets.iter().all(|r| r.status == Some(404)), "{gets:#?}");

    // Each platform and format has its own digest; the same inputs give the same one.
    let arm = images::push_single(
        &client,
        &auth,
        &images::reference(&registry, "harness/single:arm"),
        "linux/arm64/v8",
        Format::Oci,
    )
    .await
    .unwrap();
    let docker = images::push_single(
        &client,
        &auth,
        &images::reference(&registry, "harness/single:docker"),
        "linux/amd64",
        Format::Docker,
    )
    .await
    .unwrap();
    let again = images::push_single(
        &client,
        &auth,
        &images::reference(&registry, "harness/single:again"),
        "linux/amd64",
        Format::Oci,
    )
    .await
    .unwrap();
    assert_ne!(arm, pushed);
    assert_ne!(docker, pushed);
    assert_eq!(again, pushed);

    // The pushed image is a real one: config and layer come back through a pull.
    let image = images::pull(
        &client,
        &auth,
        &images::reference(&registry, "harness/single:docker"),
    )
    .await
    .unwrap();
    assert_eq!(image.digest.as_deref(), Some(docker.as_str()));
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.layers[0].media_type, images::DOCKER_LAYER_GZIP);
    assert_eq!(image.config.media_type, images::DOCKER_CONFIG);
    let config: Value = serde_json::from_slice(&image.config.data).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().unwrap().len(),
        71,
        "sha256:<64 hex>"
    );
}

#[tokio::test]
async fn distribution_2_8_answers_by_accept_header() {
    let registry = Registry::start(Kind::Plain).await;
    let client = images::client(&registry);
    let auth = images::auth(&registry);
    let (oci_index, _) = images::push_index(
        &client,
        &auth,
        &images::reference(&registry, "accept/oci:v1"),
        &[AMD64, ARM64],
        Format::Oci,
        false,
    )
    .await
    .unwrap();
    let (docker_list, docker_children) = images::push_index(
        &client,
        &auth,
        &images::reference(&registry, "accept/docker:v1"),
        &[AMD64, ARM64],
        Format::Docker,
        false,
    )
    .await
    .unwrap();
    let oci_single = images::push_single(
        &client,
        &auth,
        &images::reference(&registry, "accept/single:v1"),
        "linux/amd64",
        Format::Oci,
    )
    .await
    .unwrap();
    let host = registry.host();
    let http = registry.http_client();
    let url = |path: &str| format!("{}{path}", registry.url());

    // 1. An OCI index without Accept: 404 MANIFEST_UNKNOWN (and so for an OCI
    //    manifest); reqwest's default `Accept: */*` is the same as none.
    for path in [
        "/v2/accept/oci/manifests/v1",
        "/v2/accept/single/manifests/v1",
    ] {
        let (status, _, body) = raw_get(&host, path).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("MANIFEST_UNKNOWN"), "{path}: {body}");
        let res = http.get(url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} with Accept: */*");
    }

    // 2. A Docker list with Accept only Docker v2: the linux/amd64 child.
    let res = http
        .get(url("/v2/accept/docker/manifests/v1"))
        .header("Accept", images::DOCKER_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), images::DOCKER_MANIFEST);
    assert_eq!(header(&res, "docker-content-digest"), docker_children[0]);
    let body = res.bytes().await.unwrap();
    assert_eq!(images::sha256_digest(&body), docker_children[0]);

    // 3. A Docker list without Accept: rewritten to schema 1, another digest.
    let (status, headers, body) = raw_get(&host, "/v2/accept/docker/manifests/v1").await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{text}");
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    assert_eq!(content_type, images::DOCKER_SCHEMA1_SIGNED);
    let digest = headers.get("docker-content-digest").cloned().unwrap();
    assert_ne!(digest, docker_list);
    assert!(!docker_children.contains(&digest));
    let schema1: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(schema1["schemaVersion"], 1, "{text}");
    assert_eq!(schema1["architecture"], "amd64", "{text}");

    // 4. With every manifest type accepted: the real index or list, same digest.
    for (path, digest, media_type) in [
        ("/v2/accept/oci/manifests/v1", &oci_index, images::OCI_INDEX),
        (
            "/v2/accept/docker/manifests/v1",
            &docker_list,
            images::DOCKER_LIST,
        ),
        (
            "/v2/accept/single/manifests/v1",
            &oci_single,
            images::OCI_MANIFEST,
        ),
    ] {
        let res = http
            .get(url(path))
            .header("Accept", images::ALL_MANIFEST_TYPES.join(", "))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(header(&res, "content-type"), media_type, "{path}");
        assert_eq!(header(&res, "docker-content-digest"), digest, "{path}");
        let body = res.bytes().await.unwrap();
        assert_eq!(&images::sha256_digest(&body), digest, "{path}");
    }
}

#[tokio::test]
async fn tls_registry_needs_the_test_ca_and_the_right_name() {
    let registry = Registry::start(Kind::Tls).await;
    assert!(registry.url().starts_with("https://"));
    let client = images::client(&registry);
    let auth = images::auth(&registry);
    let reference = images::reference(&registry, "tls/app:v1");
    let pushed = images::push_single(&client, &auth, &reference, "linux/amd64", Format::Oci)
        .await
        .unwrap();
    assert_eq!(
        client
            .fetch_manifest_digest(&reference, &auth)
            .await
            .unwrap(),
        pushed
    );
    assert_eq!(registry.count("HEAD", "/v2/tls/app/manifests/v1"), 1);
    // Over HTTP/2 too, the count is exact right after each response.
    for n in 2..=20 {
        client
            .fetch_manifest_digest(&reference, &auth)
            .await
            .unwrap();
        assert_eq!(registry.count("HEAD", "/v2/tls/app/manifests/v1"), n);
    }

    let err = images::client_without_ca(&registry)
        .fetch_manifest_digest(&reference, &auth)
        .await
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("unknown authority"),
        "{chain}"
    );

    let no_ip = Registry::start(Kind::TlsWithoutIpSan).await;
    let client = images::client(&no_ip);
    let by_ip = images::reference(&no_ip, "tls/app:v1");
    let err = images::push_single(&client, &auth, &by_ip, "linux/amd64", Format::Oci)
        .await
        .unwrap_err();
    let chain = error_chain(&err);
    assert!(chain.contains("NotValidForName"), "{chain}");
    // The same certificate is fine by the name it has.
    let by_name = format!("localhost:{}/tls/app:v1", no_ip.port())
        .parse()
        .unwrap();
    let pushed = images::push_single(&client, &auth, &by_name, "linux/amd64", Format::Oci)
        .await
        .unwrap();
    assert_eq!(
        client.fetch_manifest_digest(&by_name, &auth).await.unwrap(),
        pushed
    );
}

#[tokio::test]
async fn htpasswd_registry_wants_the_right_password() {
    let registry = Registry::start(Kind::htpasswd("alice", "s3cret")).await;
    let reference = images::reference(&registry, "private/app:v1");
    let http = registry.http_client();

    // Anonymous: 401 with a Basic challenge, and the 401 is counted.
    let res = http
        .get(format!("{}/v2/", registry.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(header(&res, "www-authenticate").starts_with("Basic "));
    let logged = registry.logged_requests();
    let last = logged.last().expect("the 401 is logged");
    assert_eq!((last.method.as_str(), last.uri.as_str()), ("GET", "/v2/"));
    let anonymous = images::client(&registry);
    let err = images::push_single(
        &anonymous,
        &RegistryAuth::Anonymous,
        &reference,
        "linux/amd64",
        Format::Oci,
    )
    .await
    .unwrap_err();
    assert_eq!(status_of(&err), Some(401), "{err}");

    // The right password: push and pull.
    let alice = images::client(&registry);
    let auth = images::auth(&registry);
    let pushed = images::push_single(&alice, &auth, &reference, "linux/arm64/v8", Format::Docker)
        .await
        .unwrap();
    let image = images::pull(&alice, &auth, &reference).await.unwrap();
    assert_eq!(image.digest.as_deref(), Some(pushed.as_str()));
    let config: Value = serde_json::from_slice(&image.config.data).unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(
        alice
            .fetch_manifest_digest(&reference, &auth)
            .await
            .unwrap(),
        pushed
    );

    // A wrong password: 401.
    let eve = images::client(&registry);
    let err = eve
        .fetch_manifest_digest(&reference, &images::basic("alice", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(401), "{err}");
    let res = http
        .get(format!("{}/v2/", registry.url()))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Anonymous reads are refused too.
    let err = anonymous
        .fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(401), "{err}");
}

#[tokio::test]
async fn token_registry_grants_what_the_token_server_allows() {
    let tokens = TokenServer::start(
        TokenServerConfig::default()
            .user(
                "alice",
                "s3cret",
                &[Grant::new("team/app", &["pull", "push"])],
            )
            .user("admin", "adm1n", &[Grant::new("*", &["*"])])
            .anonymous(&[Grant::new("public/*", &["pull"])]),
    );
    assert_eq!(tokens.key_id().len(), 59, "12 groups of 4 and 11 colons");
    let registry = Registry::start(tokens.kind()).await;
    let http = registry.http_client();
    let team = images::reference(&registry, "team/app:v1");
    let other = images::reference(&registry, "other/app:v1");
    let public = images::reference(&registry, "public/app:v1");

    // admin ("*") fills the other repositories.
    let admin = images::client(&registry);
    let admin_auth = images::basic("admin", "adm1n");
    for r in [&other, &public] {
        images::push_single(&admin, &admin_auth, r, "linux/amd64", Format::Oci)
            .await
            .unwrap();
    }

    // alice pushes and pulls team/app.
    tokens.reset_count();
    let alice = images::client(&registry);
    let alice_auth = images::basic("alice", "s3cret");
    let pushed = images::push_single(&alice, &alice_auth, &team, "linux/amd64", Format::Oci)
        .await
        .unwrap();
    assert_eq!(
        alice
            .fetch_manifest_digest(&team, &alice_auth)
            .await
            .unwrap(),
        pushed
    );
    let image = images::pull(&alice, &alice_auth, &team).await.unwrap();
    assert_eq!(image.digest.as_deref(), Some(pushed.as_str()));
    assert!(tokens.count() >= 2, "a push and a pull token");
    let requests = tokens.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.status == 200 && r.user.as_deref() == Some("alice"))
    );
    assert!(
        requests.iter().any(|r| r
            .granted
            .iter()
            .any(|a| a.name == "team/app" && a.actions == ["pull", "push"])),
        "{requests:#?}"
    );

    // alice pulling other/app: a token without access, so 401.
    tokens.reset_count();
    let err = alice
        .fetch_manifest_digest(&other, &alice_auth)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(401), "{err}");
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].scopes, ["repository:other/app:pull"]);
    assert!(requests[0].granted.is_empty());

    // A token for team/app presented for other/app: insufficient_scope.
    let res = http
        .get(tokens.realm())
        .query(&[
            ("service", tokens.service()),
            ("scope", "repository:team/app:pull"),
        ])
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["token"], body["access_token"]);
    let token = body["token"].as_str().unwrap().to_string();
    let get = |path: &str| {
        http.get(format!("{}{path}", registry.url()))
            .bearer_auth(&token)
            .header("Accept", images::ALL_MANIFEST_TYPES.join(", "))
            .send()
    };
    let res = get("/v2/other/app/manifests/v1").await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = header(&res, "www-authenticate").to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("repository:other/app:pull"),
        "{challenge}"
    );
    assert!(registry.json_log().contains("insufficient scope"));
    let res = get("/v2/team/app/manifests/v1").await.unwrap();
    assert_eq!(res.status(), 200, "the same token is good for team/app");
    assert_eq!(header(&res, "docker-content-digest"), pushed);

    // Anonymous: public/* may be pulled, team/app may not.
    let anonymous = images::client(&registry);
    assert!(
        anonymous
            .fetch_manifest_digest(&public, &RegistryAuth::Anonymous)
            .await
            .is_ok()
    );
    let err = anonymous
        .fetch_manifest_digest(&team, &RegistryAuth::Anonymous)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(401), "{err}");
    let last = tokens.requests().pop().unwrap();
    assert_eq!(last.user, None);
    assert!(last.granted.is_empty());

    // A wrong password: the token server says 401, the client fails.
    tokens.reset_count();
    let eve = images::client(&registry);
    let err = eve
        .auth(
            &team,
            &images::basic("alice", "wrong"),
            RegistryOperation::Pull,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, OciDistributionError::AuthenticationFailure(_)),
        "{err:?}"
    );
    assert_eq!(tokens.requests()[0].status, 401);
    let err = eve
        .fetch_manifest_digest(&team, &images::basic("alice", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(401), "{err}");
}

#[tokio::test]
async fn index_with_attestations_has_unknown_unknown_entries() {
    let registry = Registry::start(Kind::Plain).await;
    let client = images::client(&registry);
    let auth = images::auth(&registry);

    for (repo, format) in [
        ("multi/oci:v1", Format::Oci),
        ("multi/docker:v1", Format::Docker),
    ] {
        let reference = images::reference(&registry, repo);
        let (index, children) =
            images::push_index(&client, &auth, &reference, &[AMD64, ARM64], format, true)
                .await
                .unwrap();
        assert_eq!(children.len(), 2);

        let (json, digest) = images::fetch_manifest_json(&client, &auth, &reference)
            .await
            .unwrap();
        assert_eq!(digest, index);
        assert_eq!(json["mediaType"], format.index_type());
        let entries = json["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 4, "{json:#}");
        assert_eq!(entries[0]["digest"], children[0].as_str());
        assert_eq!(entries[0]["platform"]["architecture"], "amd64");
        assert_eq!(entries[1]["digest"], children[1].as_str());
        assert_eq!(entries[1]["platform"]["variant"], "v8");

        let attestations: Vec<&Value> = entries
            .iter()
            .filter(|e| {
                e["platform"]["os"] == "unknown" && e["platform"]["architecture"] == "unknown"
            })
            .collect();
        assert_eq!(attestations.len(), 2, "{json:#}");
        let mut referenced = BTreeSet::new();
        for entry in &attestations {
            let annotations = images::annotations(entry);
            assert_eq!(
                annotations[images::REFERENCE_TYPE_ANNOTATION],
                images::ATTESTATION_MANIFEST
            );
            referenced.insert(annotations[images::REFERENCE_DIGEST_ANNOTATION].clone());
            // The attestation manifest is in the registry, with its in-toto layer.
            let at = images::by_digest(&reference, entry["digest"].as_str().unwrap());
            let (manifest, _) = images::fetch_manifest_json(&client, &auth, &at)
                .await
                .unwrap();
            assert_eq!(manifest["layers"][0]["mediaType"], images::IN_TOTO);
        }
        assert_eq!(referenced, children.iter().cloned().collect());

        // oci-client resolves the index to linux/amd64, past the attestations.
        let (_, platform_digest, list_digest) = client
            .pull_image_manifest_and_list_digest(&reference, &auth)
            .await
            .unwrap();
        assert_eq!(platform_digest, children[0]);
        assert_eq!(list_digest.as_deref(), Some(index.as_str()));
    }
}

#[tokio::test]
async fn the_token_server_can_issue_tokens_with_a_line_break() {
    let tokens =
        TokenServer::start(TokenServerConfig::default().anonymous(&[Grant::new("*", &["pull"])]));
    let token = |tokens: &TokenServer| {
        let url = tokens.realm();
        let service = tokens.service().to_string();
        async move {
            let body: serde_json::Value = reqwest::Client::new()
                .get(url)
                .query(&[
                    ("service", service.as_str()),
                    ("scope", "repository:team/app:pull"),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["token"].as_str().unwrap().to_string()
        }
    };
    let good = token(&tokens).await;
    assert!(
        !good.contains('\n') && good.split('.').count() == 3,
        "{good}"
    );
    tokens.set_fault(Some(TokenFault::Newline));
    let bad = token(&tokens).await;
    assert_eq!(bad.matches('\n').count(), 1, "{bad}");
    assert!(reqwest::header::HeaderValue::from_str(&format!("Bearer {bad}")).is_err());
    tokens.set_fault(None);
    assert!(!token(&tokens).await.contains('\n'));
}
