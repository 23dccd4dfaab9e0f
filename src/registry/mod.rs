//! The registry client: one OCI distribution client for the whole project
//! (`oci-client`, the one sigstore builds on), with imagegate's rules around it.
//!
//! - Digests are resolved with HEAD; a body is fetched with GET only when it is
//!   needed (platforms), and then by digest, so it can be cached for good.
//! - Every manifest request sends the full Accept list (OCI index, OCI manifest,
//!   Docker manifest list, Docker v2 manifest): `oci-client` does this.
//! - TLS uses rustls; a registry may have its own CA bundle; plain HTTP only for a
//!   registry configured as insecure.
//! - `oci-client` keeps the first credentials it is given per registry, for the
//!   life of the client. imagegate therefore keeps one client per registry and
//!   credential, so that one pod's pull secret is never used for another pod's
//!   image. Credentials go only to the registry they belong to: the client does not
//!   authenticate requests addressed elsewhere and drops them on cross-host redirects.
//! - Requests to one registry are bounded by a semaphore.

mod error;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use tokio::sync::Semaphore;

pub use crate::engine::ManifestFacts;
pub use error::{FailureKind, RegistryError, chain};

use crate::credentials::Credential;
use crate::platform::Platform;
use crate::reference::ImageRef;

/// The manifest media types imagegate reads.
pub const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

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
    /// Concurrent requests per registry.
    pub max_concurrent_per_registry: usize,
    pub connect_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            registries: Vec::new(),
            max_concurrent_per_registry: 16,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Hash, PartialEq, Eq, Clone)]
struct ClientKey {
    host: String,
    /// A hash of the credential (never logged, never stored in clear here).
    credential: u64,
}

pub struct RegistryClient {
    config: RegistryConfig,
    clients: moka::sync::Cache<ClientKey, Arc<Client>>,
    /// A semaphore per registry host, dropped when the host is not asked for a while.
    limits: moka::sync::Cache<String, Arc<Semaphore>>,
}

impl RegistryClient {
    pub fn new(config: RegistryConfig) -> Self {
        RegistryClient {
            config,
            clients: moka::sync::Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            limits: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    fn settings(&self, host: &str) -> Option<&RegistrySettings> {
        self.config.registries.iter().find(|r| r.host == host)
    }

    fn client(&self, host: &str, credential: Option<&Credential>) -> Arc<Client> {
        let key = ClientKey {
            host: host.to_string(),
            credential: credential.map_or(0, |c| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (&c.username, &c.password).hash(&mut h);
                h.finish() | 1
            }),
        };
        self.clients.get_with(key, || {
            let settings = self.settings(host);
            let mut config = ClientConfig {
                connect_timeout: Some(self.config.connect_timeout),
                ..ClientConfig::default()
            };
            if let Some(s) = settings {
                if s.insecure {
                    config.protocol = ClientProtocol::HttpsExcept(vec![host.to_string()]);
                }
                if let Some(ca) = &s.ca_pem {
                    config.extra_root_certificates = vec![Certificate {
                        encoding: CertificateEncoding::Pem,
                        data: ca.clone(),
                    }];
                }
            }
            Arc::new(Client::new(config))
        })
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

    /// The digest the reference points to (the index digest for a multi-platform
    /// image), by HEAD. For a reference with a digest, checks that it exists.
    pub async fn resolve_digest(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let reference = to_reference(image);
        let client = self.client(image.registry(), credential);
        let _permit = self.permit(image.registry()).await;
        let result = client
            .fetch_manifest_digest(&reference, &auth(credential))
            .await
            .map_err(|e| RegistryError::classify(&e));
        match result {
            Err(mut e) if e.kind == FailureKind::RateLimited => {
                if let Some(headers) = self.rate_limit_headers(&reference).await {
                    e.detail = format!("{headers}; {}", e.detail);
                }
                Err(e)
            }
            other => other,
        }
    }

    /// The rate-limit headers of a registry that answered 429. The OCI client keeps
    /// only the body of an error, so this sends one more HEAD, anonymous (no
    /// credential goes anywhere), only on this failure path; Docker Hub does not
    /// count HEAD requests against its limit.
    async fn rate_limit_headers(&self, reference: &Reference) -> Option<String> {
        let host = reference.resolve_registry();
        let settings = self.settings(reference.registry());
        let scheme = if settings.is_some_and(|s| s.insecure) {
            "http"
        } else {
            "https"
        };
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = settings.and_then(|s| s.ca_pem.as_ref()) {
            for cert in reqwest::Certificate::from_pem_bundle(ca).ok()? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let target = reference
            .digest()
            .or(reference.tag())
            .unwrap_or(crate::reference::IMPLICIT_TAG);
        let url = format!(
            "{scheme}://{host}/v2/{}/manifests/{target}",
            reference.repository()
        );
        let response = builder
            .build()
            .ok()?
            .head(url)
            .header(reqwest::header::ACCEPT, ACCEPT.join(", "))
            .send()
            .await
            .ok()?;
        let found: Vec<String> = [
            "ratelimit-limit",
            "ratelimit-remaining",
            "retry-after",
            "docker-ratelimit-source",
        ]
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?;
            Some(format!("{name}: {value}"))
        })
        .collect();
        (!found.is_empty()).then(|| found.join(", "))
    }

    /// The platforms of the manifest `digest` of `image`'s repository: from the
    /// index entries, or for a single manifest from its config blob.
    pub async fn manifest_facts(
        &self,
        image: &ImageRef,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Result<ManifestFacts, RegistryError> {
        let reference = Reference::with_digest(
            image.registry().to_string(),
            image.repository().to_string(),
            digest.to_string(),
        );
        let client = self.client(image.registry(), credential);
        let auth = auth(credential);
        let _permit = self.permit(image.registry()).await;
        let (body, _) = client
            .pull_manifest_raw(&reference, &auth, ACCEPT)
            .await
            .map_err(|e| RegistryError::classify(&e))?;
        let manifest: RawManifest = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::new(
                FailureKind::Other,
                format!("the manifest is not valid JSON: {e}"),
            )
        })?;
        if let Some(entries) = manifest.manifests {
            let platforms = entries
                .into_iter()
                .filter_map(|m| m.platform)
                .map(RawPlatform::into_platform)
                .filter(|p| !crate::platform::is_attestation(p))
                .collect();
            return Ok(ManifestFacts {
                is_index: true,
                platforms,
            });
        }
        let Some(config) = manifest.config else {
            return Err(RegistryError::new(
                FailureKind::Other,
                format!("manifest {digest} is neither an index nor an image manifest"),
            ));
        };
        let descriptor = oci_client::manifest::OciDescriptor {
            media_type: config.media_type.unwrap_or_default(),
            digest: config.digest,
            size: config.size.unwrap_or_default(),
            ..Default::default()
        };
        let mut blob = Vec::new();
        client
            .pull_blob(&reference, &descriptor, &mut blob)
            .await
            .map_err(|e| RegistryError::classify(&e))?;
        let config: RawPlatform = serde_json::from_slice(&blob).map_err(|e| {
            RegistryError::new(
                FailureKind::Other,
                format!("the image config is not valid JSON: {e}"),
            )
        })?;
        Ok(ManifestFacts {
            is_index: false,
            platforms: vec![config.into_platform()],
        })
    }
}

fn auth(credential: Option<&Credential>) -> RegistryAuth {
    match credential {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// The OCI client's reference for an image (tag and/or digest as written).
pub fn to_reference(image: &ImageRef) -> Reference {
    let (registry, repository) = (image.registry().to_string(), image.repository().to_string());
    match (image.tag(), image.digest()) {
        (Some(tag), Some(digest)) => {
            Reference::with_tag_and_digest(registry, repository, tag.into(), digest.into())
        }
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.into()),
        (tag, None) => Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or(crate::reference::IMPLICIT_TAG).into(),
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    manifests: Option<Vec<RawEntry>>,
    config: Option<RawDescriptor>,
}

#[derive(Deserialize)]
struct RawEntry {
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: Option<i64>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl RawPlatform {
    fn into_platform(self) -> Platform {
        Platform {
            os: self.os,
            architecture: self.architecture,
            variant: self.variant.filter(|v| !v.is_empty()),
        }
        .normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_reference_keeps_host_tag_and_digest() {
        let d = format!("sha256:{}", "ab".repeat(32));
        // (image, registry the client dials, repository, tag, digest)
        type Row<'a> = (String, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let table: Vec<Row> = vec![
            (
                "nginx".into(),
                "index.docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "INDEX.DOCKER.IO/a/b:1".into(),
                "index.docker.io",
                "a/b",
                Some("1"),
                None,
            ),
            (
                "[::1]:5000/team/app:v1".into(),
                "[::1]:5000",
                "team/app",
                Some("v1"),
                None,
            ),
            (
                "[2001:DB8::1]/r".into(),
                "[2001:db8::1]",
                "r",
                Some("latest"),
                None,
            ),
            (
                format!("[::1]:5000/r@{d}"),
                "[::1]:5000",
                "r",
                None,
                Some(d.as_str()),
            ),
            (
                format!("h.io/r:v@{d}"),
                "h.io",
                "r",
                Some("v"),
                Some(d.as_str()),
            ),
        ];
        for (image, registry, repository, tag, digest) in table {
            let r = to_reference(&ImageRef::parse(&image).unwrap());
            assert_eq!(r.resolve_registry(), registry, "{image}");
            assert_eq!(r.repository(), repository, "{image}");
            assert_eq!(r.tag(), tag, "{image}");
            assert_eq!(r.digest(), digest, "{image}");
        }
    }
}
