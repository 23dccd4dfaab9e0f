//! The registry client: a small OCI distribution READ client of imagegate's own,
//! over reqwest (rustls with aws-lc-rs, TLS 1.2 and 1.3).
//!
//! Why not `oci-client` (the one sigstore builds on)? Version 0.18 cannot do what
//! a webhook facing hostile registries must:
//! - it reads manifest bodies, token responses and error bodies whole, with no size
//!   limit (`pull_manifest_raw`, the token fetch), and a HEAD without
//!   `Docker-Content-Digest` falls back to an unbounded GET;
//! - it builds its reqwest client internally: no DNS resolver of ours (needed for
//!   the outbound address checks), no redirect policy of ours;
//! - it panics on a token that is not a valid header value;
//! - it pings `GET /v2/` before every request to an anonymous registry.
//!
//! So this module does the few reads imagegate needs itself:
//! - HEAD and GET of manifests with the full Accept list ([`ACCEPT`]), GET of blobs
//!   by digest, and the referrers API ([`RegistryClient::get_manifest`],
//!   [`RegistryClient::get_blob`], [`RegistryClient::referrers`]); the inspector's
//!   [`RegistryClient::resolve_digest`] and [`RegistryClient::manifest_facts`] sit
//!   on them.
//! - Every body is size-bounded, checked against `Content-Length` and a
//!   descriptor's `size` before reading and counted while reading (manifests
//!   [`MANIFEST_LIMIT`], configs [`CONFIG_LIMIT`], tokens [`auth::TOKEN_LIMIT`],
//!   error bodies [`ERROR_LIMIT`]); over the limit is [`FailureKind::TooLarge`].
//! - Every body is digest-verified, and only a manifest is a manifest (see
//!   [`manifest`]): a digest is pinned only when a HEAD stated it in
//!   `Docker-Content-Digest` with a manifest media type, or a GET's body is a
//!   well-formed manifest of a known type that hashes to it.
//! - Authentication ([`auth`]): the challenge is remembered per registry, so an
//!   anonymous registry costs one request per lookup; Basic and bearer tokens, the
//!   tokens cached per registry, credential and scope for their lifetime.
//! - Outbound address checks ([`net`]): no connection to loopback, link-local or
//!   unspecified addresses (nor configured denied networks) unless the registry is
//!   configured; checked on DNS answers, IP literals, redirects and token realms.
//!   An image on `localhost:5000` is the node's registry: [`FailureKind::NodeLocal`].
//! - Credentials go only to their registry (and the token realm it names): the
//!   `Authorization` header is set per request, reqwest drops it on redirects to
//!   another host, and a redirect from HTTPS to plain HTTP is refused.
//! - One reqwest client per registry host (its CA bundle, plain HTTP only when
//!   configured `insecure`), and a semaphore per registry bounds concurrent
//!   lookups. Every cache here is bounded in bytes (moka weighers).
//! - Large bodies are parsed on the blocking pool ([`PARSE_INLINE_LIMIT`]), so the
//!   async workers keep running and deadlines keep firing.

pub mod auth;
mod error;
pub mod manifest;
pub mod net;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT as ACCEPT_HEADER, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use sha2::Digest as _;
use tokio::sync::Semaphore;

pub use crate::engine::ManifestFacts;
pub use error::{
    DETAIL_CHARS, FailureKind, RegistryError, chain, classify_io, classify_tls, human_bytes,
    rate_limit_headers, sanitize,
};
pub use manifest::{ACCEPT, Descriptor, Parsed};
pub use net::AddressPolicy;

use crate::credentials::Credential;
use crate::reference::ImageRef;
use auth::{Challenge, Token};

/// The largest manifest read: the OCI distribution specification lets registries
/// refuse bigger ones.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// The largest image config read for its platform.
pub const CONFIG_LIMIT: u64 = 1024 * 1024;
/// The most bytes of an error body read (the rest is dropped).
pub const ERROR_LIMIT: u64 = 16 * 1024;
/// Bodies larger than this are parsed on the blocking pool.
pub const PARSE_INLINE_LIMIT: usize = 64 * 1024;
/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// How to reach one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `host[:port]`, as in image references.
    pub host: String,
    /// Extra CA certificates (PEM) trusted for this registry.
    pub ca_pem: Option<Vec<u8>>,
    /// Plain HTTP. Only for registries explicitly configured so.
    pub insecure: bool,
}

/// Settings for all registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub registries: Vec<RegistrySettings>,
    /// Concurrent lookups per registry.
    pub max_concurrent_per_registry: usize,
    pub connect_timeout: Duration,
    /// A backstop for one request; the admission deadline usually ends it first.
    pub request_timeout: Duration,
    /// Networks lookups may reach besides the defaults (see [`net`]).
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Networks lookups may not reach besides the defaults.
    pub deny_networks: Vec<ipnet::IpNet>,
    /// Host names answered without DNS (still checked), like `/etc/hosts` lines.
    pub static_hosts: Vec<(String, IpAddr)>,
    /// Bytes the token, challenge and client caches may hold, each.
    pub cache_bytes: u64,
    /// Bytes of response bodies held at once across all lookups: a read waits for
    /// room, so that many hostile registries at once cannot add up past it.
    pub body_budget: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            registries: Vec::new(),
            max_concurrent_per_registry: 16,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            allow_networks: Vec::new(),
            deny_networks: Vec::new(),
            static_hosts: Vec::new(),
            cache_bytes: 8 * 1024 * 1024,
            body_budget: 32 * 1024 * 1024,
        }
    }
}

/// A repository of a registry, as in `registry/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// `host[:port]` as in image references (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path, e.g. `library/nginx`.
    pub name: String,
}

impl Repository {
    pub fn of(image: &ImageRef) -> Self {
        Repository {
            registry: image.registry().to_string(),
            name: image.repository().to_string(),
        }
    }
}

/// A manifest as fetched: its bytes, its media type and its (verified) digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
}

/// What the referrers API answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Referrers {
    /// The registry has no referrers API (404): look for the tag scheme instead.
    Unsupported,
    /// The referrers (possibly none), and the first index they came in.
    Found {
        index: Manifest,
        descriptors: Vec<Descriptor>,
        /// Why the registry's further pages were not (all) read, if they were
        /// not: past the bounds, a next page elsewhere, or its failure.
        unread: Option<String>,
    },
}

/// The token cache's key: a credential's fingerprint, never the credential.
#[derive(Hash, PartialEq, Eq, Clone)]
struct TokenKey {
    registry: String,
    credential: Option<[u8; 32]>,
    scope: String,
}

/// One registry's HTTP client and base URL.
struct Transport {
    http: reqwest::Client,
    /// The address checks for this registry: a configured registry's own host is
    /// trusted (its realm and redirects may use other ports of it).
    policy: Arc<AddressPolicy>,
    /// `https://host:port` or `http://host:port` (Docker Hub: its API host).
    base: String,
    insecure: bool,
}

pub struct RegistryClient {
    config: RegistryConfig,
    policy: Arc<AddressPolicy>,
    transports: moka::sync::Cache<String, Arc<Transport>>,
    /// How each registry asked to be authenticated (absent: it did not).
    challenges: moka::sync::Cache<String, Arc<Challenge>>,
    tokens: moka::future::Cache<TokenKey, Arc<Token>>,
    /// A semaphore per registry host, dropped when the host is not asked for a while.
    limits: moka::sync::Cache<String, Arc<Semaphore>>,
    /// The body budget, one permit per KiB.
    budget: Arc<Semaphore>,
}

struct TokenExpiry;

impl moka::Expiry<TokenKey, Arc<Token>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _: &TokenKey,
        token: &Arc<Token>,
        _: Instant,
    ) -> Option<Duration> {
        Some(token.lifetime)
    }
}

/// A cache weight: bytes, saturating at `u32::MAX`.
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// What one reqwest client costs, besides its CA bundle: its pool and TLS state.
const CLIENT_WEIGHT: usize = 64 * 1024;

impl RegistryClient {
    pub fn new(config: RegistryConfig) -> Self {
        let policy = Arc::new(AddressPolicy {
            allow: config.allow_networks.clone(),
            deny: config.deny_networks.clone(),
            trusted_hosts: Vec::new(),
        });
        let bytes = config.cache_bytes;
        RegistryClient {
            policy,
            transports: moka::sync::Cache::builder()
                .max_capacity(bytes.max(CLIENT_WEIGHT as u64 * 4))
                .weigher(|host: &String, t: &Arc<Transport>| {
                    weight(host.len() + t.base.len() + CLIENT_WEIGHT)
                })
                .time_to_idle(Duration::from_secs(600))
                .build(),
            challenges: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|host: &String, c: &Arc<Challenge>| weight(host.len() + c.weight()))
                .time_to_live(Duration::from_secs(3600))
                .build(),
            tokens: moka::future::Cache::builder()
                .max_capacity(bytes)
                .weigher(|k: &TokenKey, t: &Arc<Token>| {
                    weight(k.registry.len() + k.scope.len() + 32 + t.header.len() + 64)
                })
                .expire_after(TokenExpiry)
                .build(),
            limits: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|host: &String, _: &Arc<Semaphore>| weight(host.len() + 128))
                .time_to_idle(Duration::from_secs(600))
                .build(),
            budget: Arc::new(Semaphore::new(budget_permits(config.body_budget))),
            config,
        }
    }

    fn settings(&self, host: &str) -> Option<&RegistrySettings> {
        self.config
            .registries
            .iter()
            .find(|r| r.host.eq_ignore_ascii_case(host))
    }

    /// The client for a registry, built once per host.
    fn transport(&self, registry: &str) -> Result<Arc<Transport>, RegistryError> {
        let key = registry.to_ascii_lowercase();
        if let Some(t) = self.transports.get(&key) {
            return Ok(t);
        }
        let t = Arc::new(self.build_transport(&key)?);
        self.transports.insert(key, t.clone());
        Ok(t)
    }

    fn build_transport(&self, registry: &str) -> Result<Transport, RegistryError> {
        let settings = self.settings(registry);
        let insecure = settings.is_some_and(|s| s.insecure);
        let policy = Arc::new(AddressPolicy {
            trusted_hosts: settings
                .map(|_| net::host_without_port(registry).to_string())
                .into_iter()
                .collect(),
            ..(*self.policy).clone()
        });
        let transport_policy = policy.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let url = attempt.url();
            let from_https = attempt
                .previous()
                .last()
                .is_some_and(|u| u.scheme() == "https");
            let refusal = match url.scheme() {
                "https" => None,
                "http" if !from_https => None,
                "http" => Some(format!(
                    "a redirect from HTTPS to plain HTTP ({}) was refused",
                    sanitize(url.as_str(), 120)
                )),
                other => Some(format!("a redirect to a {other}: URL was refused")),
            };
            let checked = policy.check_url(url);
            match (refusal, checked) {
                (Some(why), _) => attempt.error(why),
                (None, Err(refused)) => attempt.error(refused),
                (None, Ok(())) => attempt.follow(),
            }
        });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.config.connect_timeout)
            .timeout(self.config.request_timeout)
            .redirect(redirects)
            .referer(false)
            .no_proxy()
            .tls_version_min(reqwest::tls::Version::TLS_1_2)
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(90))
            .dns_resolver(net::Resolver::new(
                transport_policy.clone(),
                Arc::new(self.config.static_hosts.clone()),
            ));
        // No `https_only`: the scheme of every URL is chosen here (the registry's
        // by its settings, a token realm's by `fetch_token`), and the redirect
        // policy refuses a step down from HTTPS.
        if let Some(ca) = settings.and_then(|s| s.ca_pem.as_ref()) {
            let certs = reqwest::Certificate::from_pem_bundle(ca).map_err(|e| {
                RegistryError::new(
                    FailureKind::Tls,
                    format!("the CA bundle configured for {registry} cannot be read: {e}"),
                )
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            RegistryError::new(
                FailureKind::Other,
                format!("cannot build an HTTP client for {registry}: {}", chain(&e)),
            )
        })?;
        Ok(Transport {
            http,
            policy: transport_policy,
            base: base_url(registry, insecure),
            insecure,
        })
    }

    /// Refuses, before any connection, a registry on the local machine that is not
    /// configured: `localhost:5000` is the node's registry, not imagegate's.
    fn check_registry(&self, registry: &str) -> Result<(), RegistryError> {
        let host = net::host_without_port(registry);
        if net::is_local_name(host) && self.settings(registry).is_none() {
            return Err(RegistryError::new(
                FailureKind::NodeLocal,
                format!("{registry} is the node's own loopback"),
            ));
        }
        Ok(())
    }

    async fn permit(&self, host: &str) -> tokio::sync::OwnedSemaphorePermit {
        let max = self.config.max_concurrent_per_registry;
        let sem = self
            .limits
            .get_with(host.to_string(), || Arc::new(Semaphore::new(max)));
        sem.acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Sends one request to a registry's API, authenticating as its challenge asks:
    /// up front when the registry's challenge is known, else after a 401 (once).
    /// Returns the final response, whatever its status.
    async fn send(
        &self,
        t: &Transport,
        repo: &Repository,
        method: Method,
        path: &str,
        accept: Option<&str>,
        credential: Option<&Credential>,
    ) -> Result<Response, RegistryError> {
        let url = Url::parse(&format!("{}{path}", t.base)).map_err(|e| {
            RegistryError::new(
                FailureKind::Other,
                format!("{} is not a valid registry URL: {e}", sanitize(path, 200)),
            )
        })?;
        t.policy
            .check_url(&url)
            .map_err(|e| RegistryError::new(FailureKind::AddressRefused, e.to_string()))?;
        let scope = format!("repository:{}:pull", repo.name);
        let known = self.challenges.get(&repo.registry);
        // A remembered challenge is answered up front. If that fails (the realm
        // moved, or answers garbage), the challenge is forgotten and the request
        // goes out bare: the registry's 401 then says what it wants now.
        let mut authorization = match &known {
            Some(c) => match self
                .authorization(t, repo, c, credential, &scope, false)
                .await
            {
                Ok(a) => a,
                Err(_) => {
                    self.challenges.invalidate(&repo.registry);
                    None
                }
            },
            None => None,
        };
        let mut retried = false;
        loop {
            let mut request = t.http.request(method.clone(), url.clone());
            if let Some(a) = &authorization {
                request = request.header(AUTHORIZATION, a.clone());
            }
            if let Some(accept) = accept {
                request = request.header(ACCEPT_HEADER, accept);
            }
            let response = request
                .send()
                .await
                .map_err(|e| RegistryError::from_transport(&e))?;
            if response.status() != StatusCode::UNAUTHORIZED || retried {
                return Ok(response);
            }
            let Some(challenge) = auth::challenge(response.headers()) else {
                return Ok(response);
            };
            let challenge = Arc::new(challenge);
            if known.as_deref() != Some(&*challenge)
                || self.challenges.get(&repo.registry).is_none()
            {
                self.challenges
                    .insert(repo.registry.clone(), challenge.clone());
            }
            // A token that was refused is fetched anew; Basic is not sent twice.
            let next = self
                .authorization(t, repo, &challenge, credential, &scope, true)
                .await?;
            if next.is_none() || next == authorization {
                return Ok(response);
            }
            authorization = next;
            retried = true;
        }
    }

    /// The `Authorization` value for a challenge: Basic with the credential (none
    /// without one), or a bearer token (anonymous or with the credential).
    async fn authorization(
        &self,
        t: &Transport,
        repo: &Repository,
        challenge: &Challenge,
        credential: Option<&Credential>,
        scope: &str,
        refresh: bool,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match challenge {
            Challenge::Basic => Ok(credential.map(|c| auth::basic(&c.username, &c.password))),
            Challenge::Bearer { realm, service } => {
                let key = TokenKey {
                    registry: repo.registry.clone(),
                    credential: credential.map(fingerprint),
                    scope: scope.to_string(),
                };
                if refresh {
                    self.tokens.invalidate(&key).await;
                }
                let token = self
                    .tokens
                    .try_get_with(key, async {
                        self.fetch_token(t, repo, realm, service.as_deref(), scope, credential)
                            .await
                            .map(Arc::new)
                    })
                    .await
                    .map_err(|e: Arc<RegistryError>| (*e).clone())?;
                Ok(Some(token.header.clone()))
            }
        }
    }

    /// Fetches a token from the realm a registry named: checked like any outbound
    /// URL, plain HTTP only for an insecure or configured registry's host, the
    /// answer bounded.
    async fn fetch_token(
        &self,
        t: &Transport,
        repo: &Repository,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<Token, RegistryError> {
        let shown = sanitize(realm, 200);
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::new(
                FailureKind::Other,
                format!(
                    "{} named a token realm that is not a URL (\"{shown}\"): {e}",
                    repo.registry
                ),
            )
        })?;
        let realm_host = url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        match url.scheme() {
            "https" => {}
            "http" if t.insecure || t.policy.is_trusted(&realm_host) => {}
            _ => {
                return Err(RegistryError::new(
                    FailureKind::Other,
                    format!(
                        "{} named the token realm \"{shown}\", which is not HTTPS; imagegate sends no credentials or token requests in clear (list the realm's host in registries[] if this is intended)",
                        repo.registry
                    ),
                ));
            }
        }
        if net::is_local_name(&realm_host) && !t.policy.is_trusted(&realm_host) {
            return Err(RegistryError::new(
                FailureKind::AddressRefused,
                format!(
                    "the token realm of {} is on imagegate's own loopback (\"{shown}\")",
                    repo.registry
                ),
            ));
        }
        t.policy.check_url(&url).map_err(|e| {
            RegistryError::new(
                FailureKind::AddressRefused,
                format!("the token realm of {} (\"{shown}\"): {e}", repo.registry),
            )
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let mut request = t.http.get(url);
        if let Some(c) = credential {
            request = request.header(AUTHORIZATION, auth::basic(&c.username, &c.password));
        }
        let response = request.send().await.map_err(|e| {
            let mut e = RegistryError::from_transport(&e);
            if e.kind != FailureKind::AddressRefused {
                e.detail = format!("the token service of {}: {}", repo.registry, e.detail);
            }
            e
        })?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = read_prefix(response, ERROR_LIMIT).await;
            let mut e = RegistryError::from_status(status, &headers, &body);
            e.detail = format!(
                "the token service of {} answered {}",
                repo.registry, e.detail
            );
            return Err(e);
        }
        let body = self
            .read_bounded(response, auth::TOKEN_LIMIT, "a token response")
            .await?;
        auth::parse_token(&body.bytes)
    }

    /// GETs a manifest (by tag or digest) with `accept`, bounded, judged and
    /// digest-verified: for a digest reference against it, for a tag against the
    /// `Docker-Content-Digest` the registry sent (when it sent one).
    pub async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        accept: &[&str],
        credential: Option<&Credential>,
    ) -> Result<Manifest, RegistryError> {
        self.check_registry(&repo.registry)?;
        let _permit = self.permit(&repo.registry).await;
        self.fetch_manifest(repo, reference, accept, credential)
            .await
            .map(|(m, _)| m)
    }

    async fn fetch_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        accept: &[&str],
        credential: Option<&Credential>,
    ) -> Result<(Manifest, Parsed), RegistryError> {
        let t = self.transport(&repo.registry)?;
        let path = format!("/v2/{}/manifests/{reference}", repo.name);
        let response = self
            .send(
                &t,
                repo,
                Method::GET,
                &path,
                Some(&accept.join(", ")),
                credential,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(error_of(response).await);
        }
        let content_type = header(&response, CONTENT_TYPE.as_str());
        // For a digest reference the body must hash to it; for a tag, to the
        // digest the registry stated (if it stated one).
        let expected = match manifest::parse_digest(reference) {
            Some(_) => Some(reference.to_string()),
            None => header(&response, "docker-content-digest")
                .filter(|d| manifest::parse_digest(d).is_some()),
        };
        let Body {
            bytes,
            budget: _budget,
        } = self
            .read_bounded(response, MANIFEST_LIMIT, "a manifest")
            .await?;
        let accept: Vec<String> = accept.iter().map(|s| s.to_string()).collect();
        let (bytes, media_type, parsed, digest) = off_reactor(bytes, move |bytes| {
            let accept: Vec<&str> = accept.iter().map(String::as_str).collect();
            let (media_type, parsed) = manifest::judge(&bytes, content_type.as_deref(), &accept)?;
            let digest = match expected {
                Some(d) => {
                    manifest::verify(&d, &bytes, "a manifest")?;
                    d
                }
                None => manifest::digest_of(manifest::Algorithm::Sha256, &bytes),
            };
            Ok((bytes, media_type, parsed, digest))
        })
        .await?;
        Ok((
            Manifest {
                bytes,
                media_type,
                digest,
            },
            parsed,
        ))
    }

    /// GETs a blob by its descriptor: refused before the request when its `size`
    /// is over `max_bytes`, read bounded by both, digest-verified.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        descriptor: &Descriptor,
        max_bytes: u64,
        credential: Option<&Credential>,
    ) -> Result<Vec<u8>, RegistryError> {
        self.check_registry(&repo.registry)?;
        let _permit = self.permit(&repo.registry).await;
        self.fetch_blob(repo, descriptor, max_bytes, credential, "a blob")
            .await
    }

    async fn fetch_blob(
        &self,
        repo: &Repository,
        descriptor: &Descriptor,
        max_bytes: u64,
        credential: Option<&Credential>,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        if manifest::parse_digest(&descriptor.digest).is_none() {
            return Err(RegistryError::new(
                FailureKind::NotAManifest,
                format!(
                    "{what} has an invalid digest (\"{}\")",
                    sanitize(&descriptor.digest, 80)
                ),
            ));
        }
        let size = u64::try_from(descriptor.size).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(RegistryError::too_large(what, max_bytes));
        }
        let t = self.transport(&repo.registry)?;
        let path = format!("/v2/{}/blobs/{}", repo.name, descriptor.digest);
        let response = self
            .send(&t, repo, Method::GET, &path, None, credential)
            .await?;
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        // The descriptor's size is the cap when it is smaller: a blob is exactly it.
        let Body {
            bytes,
            budget: _budget,
        } = self
            .read_bounded(response, size, what)
            .await
            .map_err(|e| match e.kind {
                // More than the descriptor said (not the budget refusing).
                FailureKind::TooLarge
                    if size < max_bytes && e == RegistryError::too_large(what, size) =>
                {
                    RegistryError::new(
                    FailureKind::DigestMismatch,
                    format!(
                        "the registry sent {what} longer than the {size} bytes its descriptor says"
                    ),
                    )
                }
                _ => e,
            })?;
        if bytes.len() as u64 != size {
            return Err(RegistryError::new(
                FailureKind::DigestMismatch,
                format!(
                    "the registry sent {what} of {} bytes where its descriptor says {size}",
                    bytes.len()
                ),
            ));
        }
        let (digest, what) = (descriptor.digest.clone(), what.to_string());
        off_reactor(bytes, move |bytes| {
            manifest::verify(&digest, &bytes, &what)?;
            Ok(bytes)
        })
        .await
    }

    /// The referrers of `digest` (OCI distribution 1.1): [`Referrers::Unsupported`]
    /// when the registry has no referrers API (404), else the indexes it answered,
    /// each bounded like a manifest and judged as an OCI index. A registry that
    /// pages its answer (a `Link` header with `rel="next"`) is followed for at most
    /// [`MAX_REFERRER_PAGES`] pages and [`MAX_REFERRER_DESCRIPTORS`] referrers, and
    /// only to a next page on the same registry and path (credentials go nowhere
    /// else); [`Referrers::Found::unread`] says why the rest was not read.
    pub async fn referrers(
        &self,
        repo: &Repository,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<Referrers, RegistryError> {
        self.check_registry(&repo.registry)?;
        if manifest::parse_digest(digest).is_none() {
            return Err(RegistryError::new(
                FailureKind::Other,
                format!("{} is not a digest", sanitize(digest, 80)),
            ));
        }
        let _permit = self.permit(&repo.registry).await;
        let t = self.transport(&repo.registry)?;
        let first = format!("/v2/{}/referrers/{digest}", repo.name);
        let Some((index, listed, mut next)) =
            self.referrers_page(&t, repo, &first, credential).await?
        else {
            return Ok(Referrers::Unsupported);
        };
        let mut kept = Kept::default();
        let mut unread = kept.add(listed);
        let mut read = vec![first.clone()];
        while unread.is_none()
            && let Some(link) = next.take()
        {
            if read.len() == MAX_REFERRER_PAGES {
                unread = Some(format!(
                    "the registry lists more than {MAX_REFERRER_PAGES} pages of referrers; the first {MAX_REFERRER_PAGES} were read"
                ));
                break;
            }
            let path = next_page(&t.base, &first, &link).and_then(|path| {
                if read.contains(&path) {
                    Err(format!(
                        "the next page of the referrers ({}) is one already read; it was not read again",
                        sanitize(&link, 200)
                    ))
                } else {
                    Ok(path)
                }
            });
            let path = match path {
                Ok(path) => path,
                Err(why) => {
                    unread = Some(why);
                    break;
                }
            };
            read.push(path.clone());
            let page = read.len();
            match self.referrers_page(&t, repo, &path, credential).await {
                Ok(Some((_, listed, link))) => {
                    unread = kept.add(listed);
                    next = link;
                }
                Ok(None) => unread = Some(format!("page {page} of the referrers: 404")),
                Err(e) => unread = Some(format!("page {page} of the referrers: {e}")),
            }
        }
        Ok(Referrers::Found {
            index,
            descriptors: kept.descriptors,
            unread,
        })
    }

    /// One page of the referrers API: `None` on 404, else the index, its
    /// referrers and the `Link` header's `rel="next"` target, if any.
    async fn referrers_page(
        &self,
        t: &Transport,
        repo: &Repository,
        path: &str,
        credential: Option<&Credential>,
    ) -> Result<Option<(Manifest, Vec<Descriptor>, Option<String>)>, RegistryError> {
        let response = self
            .send(
                t,
                repo,
                Method::GET,
                path,
                Some(manifest::OCI_INDEX),
                credential,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        let content_type = header(&response, CONTENT_TYPE.as_str());
        let next = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(link_next);
        let Body {
            bytes,
            budget: _budget,
        } = self
            .read_bounded(response, MANIFEST_LIMIT, "a referrers index")
            .await?;
        let (bytes, media_type, descriptors, digest) = off_reactor(bytes, move |bytes| {
            let (media_type, parsed) =
                manifest::judge(&bytes, content_type.as_deref(), &[manifest::OCI_INDEX])?;
            let Parsed::Index(descriptors) = parsed else {
                return Err(RegistryError::new(
                    FailureKind::NotAManifest,
                    "the referrers answer is not an OCI index",
                ));
            };
            let digest = manifest::digest_of(manifest::Algorithm::Sha256, &bytes);
            Ok((bytes, media_type, descriptors, digest))
        })
        .await?;
        Ok(Some((
            Manifest {
                bytes,
                media_type,
                digest,
            },
            descriptors,
            next,
        )))
    }

    /// The digest the reference points to (the index digest for a multi-platform
    /// image). By HEAD, trusted only when the registry states the digest for a
    /// manifest media type; otherwise (no `Docker-Content-Digest`, another media
    /// type, or an error status other than 401 and 404) by a bounded, judged GET.
    /// For a reference with a digest, checks that it exists.
    pub async fn resolve_digest(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let repo = Repository::of(image);
        self.check_registry(&repo.registry)?;
        let reference = manifest_reference(image);
        let _permit = self.permit(&repo.registry).await;
        let t = self.transport(&repo.registry)?;
        let path = format!("/v2/{}/manifests/{reference}", repo.name);
        let response = self
            .send(
                &t,
                &repo,
                Method::HEAD,
                &path,
                Some(&ACCEPT.join(", ")),
                credential,
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            let content_type =
                header(&response, CONTENT_TYPE.as_str()).map(|c| manifest::essence(&c));
            let stated = header(&response, "docker-content-digest")
                .filter(|d| manifest::parse_digest(d).is_some());
            if let (Some(ct), Some(digest)) = (content_type, stated)
                && manifest::is_known_manifest_type(&ct)
            {
                if image.digest().is_some_and(|d| d != digest) {
                    return Err(RegistryError::new(
                        FailureKind::DigestMismatch,
                        format!("the registry answered for {reference} with the digest {digest}"),
                    ));
                }
                return Ok(digest);
            }
        } else if matches!(status.as_u16(), 401 | 403 | 404) {
            return Err(RegistryError::from_status(status, response.headers(), &[]));
        }
        drop(response);
        self.fetch_manifest(&repo, &reference, ACCEPT, credential)
            .await
            .map(|(m, _)| m.digest)
    }

    /// The platforms of the manifest `digest` of `image`'s repository: from the
    /// index entries, or for a single manifest from its config blob.
    pub async fn manifest_facts(
        &self,
        image: &ImageRef,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<ManifestFacts, RegistryError> {
        let repo = Repository::of(image);
        self.check_registry(&repo.registry)?;
        let _permit = self.permit(&repo.registry).await;
        let (_, parsed) = self
            .fetch_manifest(&repo, digest, ACCEPT, credential)
            .await?;
        match parsed {
            Parsed::Index(entries) => Ok(ManifestFacts {
                is_index: true,
                platforms: entries
                    .into_iter()
                    .filter_map(|m| m.platform)
                    .map(manifest::RawPlatform::into_platform)
                    .filter(|p| !crate::platform::is_attestation(p))
                    .collect(),
            }),
            Parsed::Image { config } => {
                let blob = self
                    .fetch_blob(&repo, &config, CONFIG_LIMIT, credential, "an image config")
                    .await?;
                let platform: manifest::RawPlatform = parse_json(blob, "the image config").await?;
                Ok(ManifestFacts {
                    is_index: false,
                    platforms: vec![platform.into_platform()],
                })
            }
            Parsed::Other => Err(RegistryError::new(
                FailureKind::NotAManifest,
                format!("{digest} is not an image manifest or index"),
            )),
        }
    }
}

/// A body read, and its share of the body budget (released on drop).
struct Body {
    bytes: Vec<u8>,
    budget: tokio::sync::OwnedSemaphorePermit,
}

const KIB: u64 = 1024;

fn budget_permits(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(KIB))
        .unwrap_or(usize::MAX)
        .clamp(
            MANIFEST_LIMIT.div_ceil(KIB) as usize,
            Semaphore::MAX_PERMITS,
        )
}

impl RegistryClient {
    /// Reads a body of at most `limit` bytes: refused at once when
    /// `Content-Length` says more, and as soon as more arrives. Every KiB held
    /// counts against the body budget, waiting for room when it is spent.
    async fn read_bounded(
        &self,
        mut response: Response,
        limit: u64,
        what: &str,
    ) -> Result<Body, RegistryError> {
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(RegistryError::too_large(what, limit));
        }
        let expected = response.content_length().unwrap_or(0).min(limit);
        let mut budget = self.reserve(expected.max(1), what, limit).await?;
        let mut held = expected.max(1).div_ceil(KIB) * KIB;
        let mut body: Vec<u8> = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| RegistryError::from_transport(&e))?
        {
            let len = (body.len() + chunk.len()) as u64;
            if len > limit {
                return Err(RegistryError::too_large(what, limit));
            }
            // Grow by doubling, never past the limit, and budget the allocation.
            if len > body.capacity() as u64 {
                let capacity = (body.capacity() as u64 * 2).max(len).min(limit);
                if capacity > held {
                    budget.merge(self.reserve(capacity - held, what, limit).await?);
                    held = capacity.div_ceil(KIB) * KIB;
                }
                body.reserve_exact(capacity as usize - body.len());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Body {
            bytes: body,
            budget,
        })
    }

    /// Permits for `bytes` of the body budget; a read that could never fit in
    /// the whole budget is too large.
    async fn reserve(
        &self,
        bytes: u64,
        what: &str,
        limit: u64,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, RegistryError> {
        let permits = bytes.div_ceil(KIB);
        if permits > budget_permits(self.config.body_budget) as u64 {
            return Err(RegistryError::too_large(
                what,
                limit.min(budget_permits(self.config.body_budget) as u64 * KIB),
            ));
        }
        Ok(self
            .budget
            .clone()
            .acquire_many_owned(permits as u32)
            .await
            .expect("the budget semaphore is never closed"))
    }
}

/// The URL a registry's API is reached at: Docker Hub's API host for `docker.io`.
fn base_url(registry: &str, insecure: bool) -> String {
    let endpoint = if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    };
    let scheme = if insecure { "http" } else { "https" };
    format!("{scheme}://{endpoint}")
}

/// What a lookup asks the registry for: the digest when there is one (what the
/// node pulls), else the tag, else the implied `latest`.
fn manifest_reference(image: &ImageRef) -> String {
    image
        .digest()
        .or(image.tag())
        .unwrap_or(crate::reference::IMPLICIT_TAG)
        .to_string()
}

/// A credential's fingerprint for cache keys: SHA-256 of user and password.
fn fingerprint(c: &Credential) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update((c.username.len() as u64).to_be_bytes());
    h.update(c.username.as_bytes());
    h.update(c.password.as_bytes());
    h.finalize().into()
}

/// Pages of the referrers API read per image.
pub const MAX_REFERRER_PAGES: usize = 4;
/// Referrers listed per image that are kept, over all pages.
pub const MAX_REFERRER_DESCRIPTORS: usize = 4_096;

/// The referrers kept over the pages: each digest once (a list that changed
/// between two pages may repeat one), at most [`MAX_REFERRER_DESCRIPTORS`].
#[derive(Default)]
struct Kept {
    descriptors: Vec<Descriptor>,
    seen: std::collections::HashSet<String>,
}

impl Kept {
    /// Adds a page's referrers; why the rest is dropped, once the bound is passed.
    fn add(&mut self, listed: Vec<Descriptor>) -> Option<String> {
        for d in listed {
            if self.seen.contains(&d.digest) {
                continue;
            }
            if self.descriptors.len() == MAX_REFERRER_DESCRIPTORS {
                return Some(format!(
                    "more than {MAX_REFERRER_DESCRIPTORS} referrers are listed; the first {MAX_REFERRER_DESCRIPTORS} were kept"
                ));
            }
            self.seen.insert(d.digest.clone());
            self.descriptors.push(d);
        }
        None
    }
}

/// The target of a `Link` header's `rel="next"` (RFC 8288, as the distribution
/// spec uses it: `<URL>; rel="next"`), if the value holds one. Commas and
/// semicolons inside `<...>` and inside quoted parameters do not split.
fn link_next(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let (target, after) = rest[rest.find('<')? + 1..].split_once('>')?;
        let params = split_unquoted(after, ',').next().unwrap_or_default();
        let is_next = split_unquoted(params, ';').any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params.len()..];
    }
}

/// The parts of `text` between the `sep`s that are not inside double quotes.
fn split_unquoted(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    text.split(move |c: char| {
        if c == '"' {
            quoted = !quoted;
        }
        c == sep && !quoted
    })
}

/// The path (and query) of the next page of the referrers at `first`
/// (`/v2/<repo>/referrers/<digest>`), from a `Link` target: that path with
/// another query, relative or as a URL on the registry's `base`
/// (`scheme://host:port`). Any other target is refused: the pull credentials are
/// sent with it, and a page elsewhere is not this image's referrers.
fn next_page(base: &str, first: &str, target: &str) -> Result<String, String> {
    let refused = |why: &str| {
        Err(format!(
            "the next page of the referrers ({}) {why}; it was not read",
            sanitize(target, 200)
        ))
    };
    // A relative target is resolved against the page that named it.
    let Ok(page) = Url::parse(base).and_then(|base| base.join(first)) else {
        return refused("cannot be resolved");
    };
    let Ok(url) = page.join(target) else {
        return refused("is not a URL");
    };
    if url.origin() != page.origin() {
        return refused("is on another host");
    }
    if url.path() != first
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return refused("is not this image's referrers");
    }
    Ok(match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    })
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()
        .map(str::to_string)
}

/// The classified error of a non-success answer, its body read bounded.
async fn error_of(response: Response) -> RegistryError {
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_prefix(response, ERROR_LIMIT).await;
    RegistryError::from_status(status, &headers, &body)
}

/// The first `limit` bytes of a body (an error's): the rest is not read.
async fn read_prefix(mut response: Response, limit: u64) -> Vec<u8> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == limit {
            break;
        }
    }
    body
}

/// Runs `f` on `bytes`: on the blocking pool when they are large (parsing and
/// hashing megabytes would hold an async worker, and with it other admissions'
/// deadlines), inline otherwise.
async fn off_reactor<T: Send + 'static>(
    bytes: Vec<u8>,
    f: impl FnOnce(Vec<u8>) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    if bytes.len() <= PARSE_INLINE_LIMIT {
        return f(bytes);
    }
    tokio::task::spawn_blocking(move || f(bytes))
        .await
        .map_err(|e| RegistryError::new(FailureKind::Other, format!("parsing failed: {e}")))?
}

/// Parses JSON, on the blocking pool when it is large.
async fn parse_json<T: DeserializeOwned + Send + 'static>(
    bytes: Vec<u8>,
    what: &'static str,
) -> Result<T, RegistryError> {
    off_reactor(bytes, move |b| {
        serde_json::from_slice::<T>(&b).map_err(|e| {
            RegistryError::new(
                FailureKind::Other,
                format!(
                    "{what} is not valid JSON: {}",
                    sanitize(&e.to_string(), 200)
                ),
            )
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_of_referrers_is_read_only_on_the_same_registry_and_path() {
        let first = "/v2/team/app/referrers/sha256:aa";
        let base = "https://r.example:5000";
        // (Link header value, the path read next or the start of the refusal)
        let table: &[(&str, Result<&str, &str>)] = &[
            (
                r#"</v2/team/app/referrers/sha256:aa?n=2&last=x>; rel="next""#,
                Ok("/v2/team/app/referrers/sha256:aa?n=2&last=x"),
            ),
            (
                r#"<https://r.example:5000/v2/team/app/referrers/sha256:aa?p=2>; rel=next"#,
                Ok("/v2/team/app/referrers/sha256:aa?p=2"),
            ),
            (
                r#"<?p=3>; rel="next""#,
                Ok("/v2/team/app/referrers/sha256:aa?p=3"),
            ),
            (
                r#"</x>; rel="prev", </v2/team/app/referrers/sha256:aa?p=2>; REL="Next""#,
                Ok("/v2/team/app/referrers/sha256:aa?p=2"),
            ),
            (
                r#"<https://evil.example/v2/team/app/referrers/sha256:aa?p=2>; rel="next""#,
                Err("is on another host"),
            ),
            (
                r#"<http://r.example:5000/v2/team/app/referrers/sha256:aa>; rel="next""#,
                Err("is on another host"),
            ),
            (
                r#"<https://r.example/v2/team/app/referrers/sha256:aa>; rel="next""#,
                Err("is on another host"),
            ),
            (
                r#"</v2/team/other/referrers/sha256:aa>; rel="next""#,
                Err("is not this image's referrers"),
            ),
            (
                r#"</v2/team/app/referrers/sha256:aa/../../../other/manifests/x>; rel="next""#,
                Err("is not this image's referrers"),
            ),
            (
                r#"<https://u:p@r.example:5000/v2/team/app/referrers/sha256:aa>; rel="next""#,
                Err("is not this image's referrers"),
            ),
            (
                r#"<https://:p@r.example:5000/v2/team/app/referrers/sha256:aa>; rel="next""#,
                Err("is not this image's referrers"),
            ),
            (
                r#"<//evil.example/v2/team/app/referrers/sha256:aa>; rel="next""#,
                Err("is on another host"),
            ),
            (
                r#"</v2/team/app/referrers/sha256%3Aaa>; rel="next""#,
                Err("is not this image's referrers"),
            ),
            (
                r#"<HTTPS://R.EXAMPLE:5000/v2/team/app/referrers/sha256:aa?p=4>; rel="next""#,
                Ok("/v2/team/app/referrers/sha256:aa?p=4"),
            ),
            (r#"<>; rel="next""#, Ok("/v2/team/app/referrers/sha256:aa")),
        ];
        for (link, want) in table {
            let target = link_next(link).unwrap_or_else(|| panic!("{link}: no next"));
            match (next_page(base, first, &target), want) {
                (Ok(path), Ok(want)) => assert_eq!(path, *want, "{link}"),
                (Err(why), Err(want)) => assert!(why.contains(want), "{link}: {why}"),
                (got, _) => panic!("{link}: {got:?}"),
            }
        }
        for no_next in [
            "",
            "</x>; rel=\"prev\"",
            "garbage",
            "<a>; rel",
            "a; rel=next",
            "<x>; title=\"a;rel=next\"",
            "<x>; title=\"a, <y>; rel=next\"",
            "<unclosed; rel=next",
        ] {
            assert_eq!(link_next(no_next), None, "{no_next}");
        }
        // Commas and semicolons inside the target or a quoted parameter.
        for (value, target) in [
            ("</p?last=a,b>; rel=\"next\"", "/p?last=a,b"),
            ("<u>; title=\"a, b\"; rel=\"next\"", "u"),
            ("<u>; title=\"x;y\", <v>; rel=next", "v"),
            ("<a>; rel=\"prev next\"", "a"),
        ] {
            assert_eq!(link_next(value).as_deref(), Some(target), "{value}");
        }
    }

    #[test]
    fn lookups_dial_the_registry_host_and_ask_for_the_digest_first() {
        let d = format!("sha256:{}", "ab".repeat(32));
        // (image, URL of the manifest asked for)
        let table: Vec<(String, String)> = vec![
            (
                "nginx".into(),
                "https://registry-1.docker.io/v2/library/nginx/manifests/latest".into(),
            ),
            (
                "INDEX.DOCKER.IO/a/b:1".into(),
                "https://registry-1.docker.io/v2/a/b/manifests/1".into(),
            ),
            (
                "[::1]:5000/team/app:v1".into(),
                "https://[::1]:5000/v2/team/app/manifests/v1".into(),
            ),
            (
                "[2001:DB8::1]/r".into(),
                "https://[2001:db8::1]/v2/r/manifests/latest".into(),
            ),
            (
                format!("[::1]:5000/r@{d}"),
                format!("https://[::1]:5000/v2/r/manifests/{d}"),
            ),
            (
                format!("h.io/r:v@{d}"),
                format!("https://h.io/v2/r/manifests/{d}"),
            ),
        ];
        for (image, want) in table {
            let parsed = ImageRef::parse(&image).unwrap();
            let repo = Repository::of(&parsed);
            let url = format!(
                "{}/v2/{}/manifests/{}",
                base_url(&repo.registry, false),
                repo.name,
                manifest_reference(&parsed)
            );
            assert_eq!(url, want, "{image}");
            assert!(Url::parse(&url).is_ok(), "{url}");
        }
        assert_eq!(base_url("10.0.0.5:5000", true), "http://10.0.0.5:5000");
    }
}
