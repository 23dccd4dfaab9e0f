//! imagegate's registry client on its own, against Debian's docker-registry 2.8
//! (plain and token auth) and, for what no registry does, small local servers: the
//! generic bounded API (`get_manifest`, `get_blob`, `referrers`), the bearer flow
//! and its token cache, and no `GET /v2/` ping per lookup.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use imagegate::credentials::Credential;
use imagegate::reference::ImageRef;
use imagegate::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use imagegate::registry::{
    Descriptor, FailureKind, Referrers, RegistryClient, RegistryConfig, RegistrySettings,
    Repository,
};
use serde_json::{Value, json};
use support::images;
use support::registry::{Kind, Registry};
use support::token::{Grant, TokenServer, TokenServerConfig};

fn client_for(hosts: &[(&str, bool)]) -> RegistryClient {
    support::registry::install_crypto_provider();
    RegistryClient::new(RegistryConfig {
        registries: hosts
            .iter()
            .map(|(host, insecure)| RegistrySettings {
                host: host.to_string(),
                insecure: *insecure,
                ca_pem: None,
            })
            .collect(),
        ..RegistryConfig::default()
    })
}

fn tls_client(registry: &Registry) -> RegistryClient {
    support::registry::install_crypto_provider();
    RegistryClient::new(RegistryConfig {
        registries: vec![RegistrySettings {
            host: registry.host(),
            insecure: false,
            ca_pem: registry.ca_pem().map(String::into_bytes),
        }],
        ..RegistryConfig::default()
    })
}

fn repo(registry: &Registry, name: &str) -> Repository {
    Repository {
        registry: registry.host(),
        name: name.to_string(),
    }
}

fn image(reference: &str) -> ImageRef {
    ImageRef::parse(reference).unwrap()
}

#[tokio::test]
async fn an_anonymous_registry_costs_one_head_per_lookup_and_no_ping() {
    let registry = Registry::start(Kind::Plain).await;
    let d1 = images::push_amd64(&registry, "team/app:v1").await;
    let d2 = images::push_amd64(&registry, "team/other:v2").await;
    let client = client_for(&[(&registry.host(), true)]);
    registry.reset_counts();
    let found1 = client
        .resolve_digest(&image(&registry.reference("team/app:v1")), None)
        .await
        .unwrap();
    let found2 = client
        .resolve_digest(&image(&registry.reference("team/other:v2")), None)
        .await
        .unwrap();
    assert_eq!((found1, found2), (d1, d2));
    assert_eq!(
        registry.requests(),
        [
            ("HEAD".to_string(), "/v2/team/app/manifests/v1".to_string()),
            (
                "HEAD".to_string(),
                "/v2/team/other/manifests/v2".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn get_manifest_and_get_blob_are_bounded_and_digest_verified() {
    let registry = Registry::start(Kind::Plain).await;
    let digest = images::push_amd64(&registry, "team/app:v1").await;
    let client = client_for(&[(&registry.host(), true)]);
    let r = repo(&registry, "team/app");
    let accept = [OCI_MANIFEST];
    let by_tag = client.get_manifest(&r, "v1", &accept, None).await.unwrap();
    assert_eq!(by_tag.digest, digest);
    assert_eq!(by_tag.media_type, OCI_MANIFEST);
    let by_digest = client
        .get_manifest(&r, &digest, &accept, None)
        .await
        .unwrap();
    assert_eq!(by_digest, by_tag);
    // The registry only has what was asked for in another media type: refused.
    let e = client
        .get_manifest(&r, "v1", &[OCI_INDEX], None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind,
            FailureKind::NotAManifest | FailureKind::ManifestUnknown
        ),
        "{e}"
    );

    let manifest: Value = serde_json::from_slice(&by_tag.bytes).unwrap();
    let config: Descriptor = serde_json::from_value(manifest["config"].clone()).unwrap();
    let blob = client.get_blob(&r, &config, 1 << 20, None).await.unwrap();
    assert_eq!(blob.len() as i64, config.size);
    assert_eq!(
        serde_json::from_slice::<Value>(&blob).unwrap()["architecture"],
        "amd64"
    );
    // A descriptor over the caller's limit is refused before any request.
    registry.reset_counts();
    let e = client
        .get_blob(&r, &config, (config.size - 1) as u64, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::TooLarge);
    assert!(registry.requests().is_empty(), "{:?}", registry.requests());
    // A descriptor whose size lies is caught by the count, its digest by the hash.
    let mut short = config.clone();
    short.size -= 1;
    let e = client
        .get_blob(&r, &short, 1 << 20, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::DigestMismatch, "{e}");
    let e = client
        .get_manifest(&r, &format!("sha256:{}", "0".repeat(64)), &accept, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::ManifestUnknown, "{e}");
}

/// A server for the referrers API, which distribution 2.8 lacks: `/v2/<repo>/referrers/<digest>`
/// answers an index for repository `with`, an empty one for `empty`, and 404 elsewhere.
/// Paged answers (a `Link` to the next page, `?page=N`): `paged` has 3 pages of
/// 2, 2 and 1 referrers; `endless` always has a next page; `elsewhere` links its
/// next page on another host, `broken` to a page that fails with a 500, `again`
/// to itself; `wide` lists 5,000 on its first page.
async fn referrers_server() -> String {
    let app = Router::new().fallback(|uri: Uri| async move {
        let path = uri.path().to_string();
        let page: usize = uri
            .query()
            .and_then(|q| q.strip_prefix("page="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let paged = |entries: usize, next: Option<String>| {
            let manifests: Vec<Value> = (0..entries)
                .map(|i| json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{:064x}", page * 10 + i), "size": 300}))
                .collect();
            let mut response = (
                StatusCode::OK,
                [("content-type", OCI_INDEX)],
                json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).to_string(),
            )
                .into_response();
            if let Some(next) = next {
                response.headers_mut().insert(
                    "link",
                    format!("<{next}>; rel=\"next\"").parse().unwrap(),
                );
            }
            response
        };
        let here = |page: usize| format!("{path}?page={page}");
        if path.starts_with("/v2/paged/referrers/") {
            return match page {
                1 => paged(2, Some(here(2))),
                2 => paged(2, Some(here(3))),
                _ => paged(1, None),
            };
        }
        if path.starts_with("/v2/endless/referrers/") {
            return paged(1, Some(here(page + 1)));
        }
        if path.starts_with("/v2/elsewhere/referrers/") {
            return paged(1, Some(format!("http://other.example{}", here(2))));
        }
        if path.starts_with("/v2/wide/referrers/") {
            return paged(5_000, Some(here(2)));
        }
        if path.starts_with("/v2/again/referrers/") {
            return paged(1, Some(format!("{path}?page=1")));
        }
        if path.starts_with("/v2/broken/referrers/") {
            return match page {
                1 => paged(1, Some(here(2))),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            };
        }
        let entry = json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "b".repeat(64)), "size": 321,
                           "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                           "annotations": {"org.opencontainers.image.created": "2026-11-30T00:00:00Z"}});
        let index = |entries: Vec<Value>| {
            (
                StatusCode::OK,
                [("content-type", OCI_INDEX)],
                json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).to_string(),
            )
                .into_response()
        };
        if path.starts_with("/v2/with/referrers/") {
            index(vec![entry])
        } else if path.starts_with("/v2/empty/referrers/") {
            index(vec![])
        } else if path.starts_with("/v2/html/referrers/") {
            (StatusCode::OK, [("content-type", "text/html")], "<html>hi</html>").into_response()
        } else {
            (StatusCode::NOT_FOUND, "404 page not found").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn referrers_tell_no_api_from_no_referrers() {
    let subject = format!("sha256:{}", "a".repeat(64));
    // A real registry without the API.
    let registry = Registry::start(Kind::Plain).await;
    images::push_amd64(&registry, "team/app:v1").await;
    let client = client_for(&[(&registry.host(), true)]);
    let got = client
        .referrers(&repo(&registry, "team/app"), &subject, None)
        .await
        .unwrap();
    assert_eq!(got, Referrers::Unsupported);

    let server = referrers_server().await;
    let client = client_for(&[(&server, true)]);
    let at = |name: &str| Repository {
        registry: server.clone(),
        name: name.into(),
    };
    match client.referrers(&at("with"), &subject, None).await.unwrap() {
        Referrers::Found {
            index,
            descriptors,
            unread,
        } => {
            assert_eq!(unread, None);
            assert_eq!(index.media_type, OCI_INDEX);
            assert_eq!(descriptors.len(), 1);
            assert_eq!(
                descriptors[0].artifact_type.as_deref(),
                Some("application/vnd.dev.sigstore.bundle.v0.3+json")
            );
            assert_eq!(descriptors[0].size, 321);
        }
        other => panic!("{other:?}"),
    }
    match client
        .referrers(&at("empty"), &subject, None)
        .await
        .unwrap()
    {
        Referrers::Found { descriptors, .. } => assert!(descriptors.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client.referrers(&at("none"), &subject, None).await.unwrap(),
        Referrers::Unsupported
    );
    let e = client
        .referrers(&at("html"), &subject, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::NotAManifest);
    let e = client
        .referrers(&at("with"), "sha256:nope", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, FailureKind::Other);
}

#[tokio::test]
async fn paged_referrers_are_followed_on_the_same_registry_and_bounded() {
    let subject = format!("sha256:{}", "a".repeat(64));
    let server = referrers_server().await;
    let client = client_for(&[(&server, true)]);
    let at = |name: &str| Repository {
        registry: server.clone(),
        name: name.into(),
    };
    // Each row: repository, referrers kept, and what the note on the unread says.
    let table: &[(&str, usize, Option<&str>)] = &[
        ("paged", 5, None),
        (
            "endless",
            imagegate::registry::MAX_REFERRER_PAGES,
            Some("the registry lists more than 4 pages of referrers; the first 4 were read"),
        ),
        ("elsewhere", 1, Some("is on another host; it was not read")),
        ("broken", 1, Some("page 2 of the referrers: ")),
        // Page 1 names itself as the next page (with an explicit `?page=1`): it is
        // read again once, and its referrer kept once.
        (
            "again",
            1,
            Some("is one already read; it was not read again"),
        ),
        // 5,000 on the first page: the first 4,096 are kept, and page 2 is not read.
        (
            "wide",
            imagegate::registry::MAX_REFERRER_DESCRIPTORS,
            Some("more than 4096 referrers are listed; the first 4096 were kept"),
        ),
    ];
    for (repository, kept, note) in table {
        match client
            .referrers(&at(repository), &subject, None)
            .await
            .unwrap()
        {
            Referrers::Found {
                descriptors,
                unread,
                ..
            } => {
                assert_eq!(descriptors.len(), *kept, "{repository}");
                match note {
                    None => assert_eq!(unread, None, "{repository}"),
                    Some(note) => assert!(
                        unread.as_deref().unwrap_or_default().contains(note),
                        "{repository}: {unread:?}"
                    ),
                }
            }
            other => panic!("{repository}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn tokens_are_cached_per_credential_and_scope_for_their_lifetime() {
    let tokens = TokenServer::start(TokenServerConfig {
        expires_in: Duration::from_secs(2),
        ..TokenServerConfig::default()
            .user("ci", "ci-pass", &[Grant::new("*", &["pull", "push"])])
            .anonymous(&[Grant::new("public/*", &["pull"])])
    });
    let registry = Registry::start(tokens.kind()).await;
    let client_push = images::client(&registry);
    let ci = images::basic("ci", "ci-pass");
    for repo in ["public/a:v1", "public/b:v1", "private/c:v1"] {
        images::push_single(
            &client_push,
            &ci,
            &images::reference(&registry, repo),
            "linux/amd64",
            images::Format::Oci,
        )
        .await
        .unwrap();
    }
    let client = tls_client(&registry);
    let credential = Credential {
        username: "ci".into(),
        password: "ci-pass".into(),
        source: "test".into(),
        key: registry.host(),
    };
    tokens.reset_count();
    registry.reset_counts();
    let a = image(&registry.reference("public/a:v1"));
    // Anonymous: the first lookup learns the challenge (one 401) and fetches a
    // token; the second uses both.
    client.resolve_digest(&a, None).await.unwrap();
    client.resolve_digest(&a, None).await.unwrap();
    assert_eq!(tokens.count(), 1, "{:?}", tokens.requests());
    assert_eq!(
        registry.count("HEAD", "/manifests/v1"),
        3,
        "{:?}",
        registry.requests()
    );
    assert_eq!(registry.count("GET", "/v2/"), 0, "no ping");
    // Another scope: another token, and the challenge is already known.
    client
        .resolve_digest(&image(&registry.reference("public/b:v1")), None)
        .await
        .unwrap();
    assert_eq!(tokens.count(), 2);
    // A credential: its own token, never the anonymous one, and the private
    // repository the anonymous caller cannot see.
    let c = image(&registry.reference("private/c:v1"));
    let e = client.resolve_digest(&c, None).await.unwrap_err();
    assert_eq!(e.kind, FailureKind::Unauthorized, "{e}");
    client.resolve_digest(&c, Some(&credential)).await.unwrap();
    client.resolve_digest(&a, Some(&credential)).await.unwrap();
    let users: Vec<Option<String>> = tokens.requests().iter().map(|r| r.user.clone()).collect();
    assert_eq!(
        users.iter().filter(|u| u.as_deref() == Some("ci")).count(),
        2,
        "{users:?}"
    );
    // After the lifetime, a new token.
    let before = tokens.count();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    client.resolve_digest(&a, None).await.unwrap();
    assert_eq!(tokens.count(), before + 1);
}

/// A registry whose token service answers `token` (JSON-escaped) with status 200.
async fn bad_token_registry(token: &'static str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (me, h) = (addr.clone(), hits.clone());
    let app = Router::new().fallback(move |uri: Uri| {
        let (me, h) = (me.clone(), h.clone());
        async move {
            if uri.path() == "/token" {
                h.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::OK, json!({"token": token}).to_string()).into_response();
            }
            (
                StatusCode::UNAUTHORIZED,
                [(
                    "www-authenticate",
                    format!("Bearer realm=\"http://{me}/token\""),
                )],
            )
                .into_response()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_an_error_not_a_panic() {
    for token in ["a\nb", "a\u{0}b", "tok en", "ünïcode"] {
        let (addr, hits) = bad_token_registry(token).await;
        let client = client_for(&[(&addr, true)]);
        let e = client
            .resolve_digest(&image(&format!("{addr}/team/app:v1")), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FailureKind::UnusableAnswer, "{token:?}: {e}");
        assert!(
            e.detail.contains("is not a valid HTTP header value") && !e.detail.contains(token),
            "{token:?}: {e}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_read_larger_than_the_whole_body_budget_fails_instead_of_waiting_forever() {
    // A blob of 5 MiB, served with its length.
    let blob = vec![b'x'; 5 << 20];
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&blob))
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = blob.clone();
    let app = Router::new().fallback(move || {
        let served = served.clone();
        async move { (StatusCode::OK, served).into_response() }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let descriptor: Descriptor = serde_json::from_value(
        json!({"mediaType": "application/octet-stream", "digest": digest, "size": blob.len()}),
    )
    .unwrap();
    let repo = Repository {
        registry: addr.clone(),
        name: "team/app".into(),
    };
    support::registry::install_crypto_provider();
    let config = |budget: u64| RegistryConfig {
        registries: vec![RegistrySettings {
            host: addr.clone(),
            insecure: true,
            ca_pem: None,
        }],
        body_budget: budget,
        ..RegistryConfig::default()
    };
    // The smallest budget (one manifest's worth, 4 MiB) cannot hold it: refused.
    let small = RegistryClient::new(config(1));
    let e = tokio::time::timeout(
        Duration::from_secs(5),
        small.get_blob(&repo, &descriptor, 8 << 20, None),
    )
    .await
    .expect("no wait for room that can never come")
    .unwrap_err();
    assert_eq!(e.kind, FailureKind::TooLarge, "{e}");
    // With room, the same read succeeds and is verified.
    let roomy = RegistryClient::new(config(16 << 20));
    let got = roomy
        .get_blob(&repo, &descriptor, 8 << 20, None)
        .await
        .unwrap();
    assert_eq!(got, blob);
}
