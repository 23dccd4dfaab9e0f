//! The inspector gathers facts about a workload's images before the engine runs:
//! digests, platforms, whether the pull would succeed, the Nodes' architectures, and
//! the pull secrets the policies name (what each holds: its type and `auths` keys,
//! never its contents) with the ServiceAccount's list.
//!
//! Lookups use the credentials the node will use: the pod's pull secrets (or its
//! ServiceAccount's when it names none), then the ones imagegate adds to it
//! ([`Needs::injected_pull_secrets`]), then imagegate's own.
//!
//! Cost rules, because this is the admission hot path:
//! - a tag's digest is cached for `tag_ttl` (60 s by default); a failed lookup for
//!   `failure_ttl` (10 s); platforms are cached by digest, which never changes;
//! - identical lookups in flight are coalesced: fifty pods created at once with one
//!   new image cost one digest lookup (the caches' `get_with` runs one init and
//!   makes every other caller wait for it);
//! - everything for one admission runs concurrently under one deadline; a lookup
//!   still running when it passes becomes a `timeout` failure naming the lookup,
//!   and when reading the pull secrets from the Kubernetes API used the deadline
//!   up, the failure names those reads instead of the registry.
//!
//! Credentials are tried as the kubelet tries them: every matching one in turn,
//! whatever the error, until one gets an answer; with none, anonymously. An empty
//! `auths` entry means anonymous, as for containerd.
//!
//!
//! Registry answers are hostile input, and the OCI client can panic on some (it
//! unwraps a token into a header value). Each registry call (the digest resolution
//! and the manifest fetch) therefore runs under [`crate::unwind::catch`] inside the
//! cache's init future: a panic becomes an `unusable-answer` lookup failure, judged
//! by `onRegistryError` and cached like any failure, and the caches' coalescing
//! never sees it (moka would make every waiter retry the panicking init).

pub mod messages;
mod signatures;

pub use signatures::MAX_REFERRERS;

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use moka::Expiry;
use moka::future::Cache;

use crate::admission::Workload;
use crate::cluster::{Cluster, PullSecret};
use crate::credentials::{Credential, DockerConfig, Keyring, RegistryPattern};
use crate::engine::{
    ClusterNodes, Facts, ImageFacts, LookupFailure, Needs, NodeView, PullSecretFacts, SecretFacts,
    ServiceAccountSecrets, SignatureFacts, TagCheck,
};
use crate::reference::ImageRef;
use crate::registry::{FailureKind, ManifestFacts, RegistryClient, RegistryError};
use crate::telemetry::{Fact, Telemetry};

/// How the inspector caches and where it finds credentials.
#[derive(Debug, Clone)]
pub struct InspectorConfig {
    /// How long a tag's digest is trusted.
    pub tag_ttl: Duration,
    /// How long a failed lookup is remembered.
    pub failure_ttl: Duration,
    /// Pull secrets (`namespace`, `name`) tried for every pod after its own.
    pub pull_secrets: Vec<(String, String)>,
    /// A docker config file tried last (`~/.docker/config.json` format).
    pub docker_config: Option<PathBuf>,
    /// Registries the nodes pull with credentials imagegate cannot see.
    pub node_credentials: Vec<RegistryPattern>,
    /// Registries the nodes pull through a mirror.
    pub mirrors: Vec<RegistryPattern>,
    /// How long verified signatures of a digest are trusted before they are
    /// fetched again (a signature may be added or a key rotated).
    pub signature_ttl: Duration,
    /// How long a signature lookup that verified nothing, or failed, is remembered.
    pub signature_failure_ttl: Duration,
}

impl Default for InspectorConfig {
    fn default() -> Self {
        InspectorConfig {
            tag_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(10),
            pull_secrets: Vec::new(),
            docker_config: None,
            node_credentials: Vec::new(),
            mirrors: Vec::new(),
            signature_ttl: Duration::from_secs(300),
            signature_failure_ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InspectorError {
    #[error("cannot read the docker config {path}: {message}")]
    DockerConfig { path: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TagKey {
    /// The normalized reference, with tag and/or digest.
    image: String,
    /// A hash of the candidate credentials, so that a lookup made with one pod's
    /// secret never answers for another pod without it.
    credentials: u64,
}

/// A resolved tag, and the credential that was let in. Compact: one per cached
/// digest (the credential, mostly absent, is boxed).
#[derive(Debug)]
struct Resolved {
    digest: Box<str>,
    credential: Option<Box<Credential>>,
}

/// A failed resolution: the error and the credentials the registry refused. The
/// message is written per admission, since it names that pod's secrets.
#[derive(Debug)]
struct Refused {
    error: RegistryError,
    tried: Vec<Credential>,
}

type TagResult = Result<Arc<Resolved>, Arc<Refused>>;

/// Successes live for the tag TTL, failures for the failure TTL.
struct TagExpiry {
    ok: Duration,
    failed: Duration,
}

impl Expiry<TagKey, TagResult> for TagExpiry {
    fn expire_after_create(
        &self,
        _: &TagKey,
        value: &TagResult,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(if value.is_ok() { self.ok } else { self.failed })
    }
}

pub struct Inspector {
    registry: RegistryClient,
    cluster: Option<Arc<Cluster>>,
    config: InspectorConfig,
    docker_config: Option<Arc<DockerConfig>>,
    tags: Cache<TagKey, TagResult>,
    manifests: Cache<(String, String), Arc<ManifestFacts>>,
    signatures: Cache<signatures::SignatureKey, Arc<SignatureFacts>>,
    telemetry: Telemetry,
}

/// Verified signatures live for the signature TTL, anything else briefly.
struct SignatureExpiry {
    ok: Duration,
    failed: Duration,
}

impl Expiry<signatures::SignatureKey, Arc<SignatureFacts>> for SignatureExpiry {
    fn expire_after_create(
        &self,
        _: &signatures::SignatureKey,
        value: &Arc<SignatureFacts>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(if signatures::is_lasting(value) {
            self.ok
        } else {
            self.failed
        })
    }
}

/// The credentials for one workload, and what went wrong finding them.
struct Credentials {
    keyring: Keyring,
    notes: Vec<String>,
}

/// The Kubernetes API reads in flight for one admission, so that a deadline that
/// passes during them names them.
#[derive(Default)]
struct Pending(Mutex<BTreeSet<String>>);

impl Pending {
    async fn track<T>(&self, what: String, read: impl Future<Output = T>) -> T {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what.clone());
        let out = read.await;
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&what);
        out
    }

    fn list(&self) -> Vec<String> {
        let pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pending.iter().cloned().collect()
    }
}

impl Credentials {
    /// What a message about refused `tried` credentials may say.
    fn context<'a>(&'a self, tried: &'a [Credential]) -> messages::CredentialContext<'a> {
        messages::CredentialContext {
            tried,
            keys: self.keyring.keys(),
            notes: &self.notes,
        }
    }
}

impl Inspector {
    pub fn new(
        registry: RegistryClient,
        cluster: Option<Arc<Cluster>>,
        config: InspectorConfig,
    ) -> Result<Self, InspectorError> {
        let docker_config = match &config.docker_config {
            Some(path) => {
                let err = |message: String| InspectorError::DockerConfig {
                    path: path.display().to_string(),
                    message,
                };
                let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
                let parsed = crate::credentials::parse_docker_config(&bytes)
                    .map_err(|e| err(e.to_string()))?;
                Some(Arc::new(parsed))
            }
            None => None,
        };
        Ok(Inspector {
            // Bounded in bytes: keys and details come from pod specs and registries.
            tags: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &TagKey, v: &TagResult| {
                    weight(match v {
                        Ok(r) => {
                            digest_entry_charge(&k.image, r.digest.len())
                                + r.credential.as_deref().map_or(0, credential_bytes)
                        }
                        Err(f) => {
                            digest_entry_charge(&k.image, f.error.detail.len())
                                + f.tried.iter().map(credential_bytes).sum::<usize>()
                        }
                    })
                })
                .expire_after(TagExpiry {
                    ok: config.tag_ttl,
                    failed: config.failure_ttl,
                })
                .build(),
            manifests: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &(String, String), v: &Arc<ManifestFacts>| {
                    let platforms: usize = v
                        .platforms
                        .iter()
                        .map(|p| {
                            p.os.len()
                                + p.architecture.len()
                                + p.variant.as_ref().map_or(0, String::len)
                                + 72
                        })
                        .sum();
                    weight(k.0.len() + k.1.len() + platforms + 64)
                })
                .build(),
            signatures: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|k: &signatures::SignatureKey, v: &Arc<SignatureFacts>| {
                    weight(signatures::weight(k, v))
                })
                .expire_after(SignatureExpiry {
                    ok: config.signature_ttl,
                    failed: config.signature_failure_ttl,
                })
                .build(),
            registry,
            cluster,
            config,
            docker_config,
            telemetry: Telemetry::default(),
        })
    }

    /// Counts cache hits and misses and lookup latencies in `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Where this inspector counts.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Gathers what `needs` asks for, within `deadline`.
    pub async fn gather(&self, needs: &Needs, workload: &Workload, deadline: Duration) -> Facts {
        let mut facts = Facts::default();
        if needs.is_empty() {
            return facts;
        }
        let started = Instant::now();
        let until = tokio::time::Instant::now() + deadline;
        let nodes = async {
            if !needs.nodes {
                return None;
            }
            let cluster = self.cluster.as_ref()?;
            Some(
                match tokio::time::timeout_at(until, cluster.nodes()).await {
                    Ok(Ok(nodes)) => ClusterNodes::Listed(nodes),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot list Nodes");
                        ClusterNodes::Unavailable(e.to_string())
                    }
                    Err(_) => ClusterNodes::Unavailable(format!(
                        "listing the Nodes from the Kubernetes API server took the whole admission deadline of {:.1} s",
                        deadline.as_secs_f64()
                    )),
                },
            )
        };
        let secrets = async {
            match tokio::time::timeout_at(until, self.pull_secret_facts(needs, workload)).await {
                Ok(facts) => facts,
                Err(_) => late_secrets(needs),
            }
        };
        let images = async {
            if needs.images.is_empty() {
                return Vec::new();
            }
            let pending = Pending::default();
            let credentials = match tokio::time::timeout_at(
                until,
                self.credentials(workload, &needs.injected_pull_secrets, &pending),
            )
            .await
            {
                Ok(c) => c,
                Err(_) => {
                    let reads = pending.list();
                    tracing::warn!(
                        ?reads,
                        "the Kubernetes API reads used up the admission deadline"
                    );
                    return needs
                        .images
                        .keys()
                        .map(|written| {
                            let failure = messages::kubernetes_late(written, &reads, deadline);
                            (written.clone(), ImageFacts::Failed(failure), Vec::new())
                        })
                        .collect();
                }
            };
            let api_time = started.elapsed();
            let credentials = &credentials;
            join_all(needs.images.iter().map(|(written, platforms)| async move {
                let (facts, credential) = match tokio::time::timeout_at(
                    until,
                    self.lookup(written, *platforms, credentials),
                )
                .await
                {
                    Ok(found) => found,
                    Err(_) => {
                        self.telemetry.lookup("timeout", deadline.as_secs_f64());
                        let late = messages::late(written, *platforms, deadline, api_time);
                        (ImageFacts::Failed(late), None)
                    }
                };
                // Signatures are verified against the digest just resolved, with the
                // credential that resolved it (they live in the same repository).
                let mut signatures = Vec::new();
                if let (ImageFacts::Found { digest, .. }, Ok(image)) =
                    (&facts, ImageRef::parse_cached(written))
                {
                    let wanted = needs
                        .signatures
                        .iter()
                        .filter(|((w, _), _)| w == written)
                        .map(|((_, id), verifier)| {
                            let image = &image;
                            let credential = sendable(credential.as_ref());
                            async move {
                                let found = tokio::time::timeout_at(
                                    until,
                                    self.signature_facts(image, digest, credential, verifier),
                                )
                                .await
                                .map(|f| f.as_ref().clone())
                                .unwrap_or_else(|_| SignatureFacts {
                                    digest: digest.clone(),
                                    unavailable: Some(format!(
                                        "could not fetch the signatures of {written} ({digest}) within the admission deadline of {:.1} s; the registry is slow or unreachable",
                                        deadline.as_secs_f64()
                                    )),
                                    ..SignatureFacts::default()
                                });
                                ((written.clone(), *id), found)
                            }
                        });
                    signatures = join_all(wanted).await;
                }
                (
                    written.clone(),
                    self.judged_by_node_view(written, facts),
                    signatures,
                )
            }))
            .await
        };
        let (nodes, images, pull_secrets) = futures::join!(nodes, images, secrets);
        facts.nodes = nodes;
        for (written, image, signatures) in images {
            facts.images.insert(written, image);
            facts.signatures.extend(signatures);
        }
        facts.now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        facts.pull_secrets = pull_secrets;
        facts
    }

    /// What the cluster says about the pull secrets `requirePullSecret` checks, and
    /// the ServiceAccount's list when the pod names none.
    async fn pull_secret_facts(&self, needs: &Needs, workload: &Workload) -> PullSecretFacts {
        let mut facts = PullSecretFacts::default();
        let ns = workload.namespace.as_str();
        let Some(cluster) = &self.cluster else {
            for name in needs.pull_secrets.keys() {
                facts.secrets.insert(
                    name.clone(),
                    SecretFacts::Unreadable(
                        "imagegate has no Kubernetes API access (serve --kubernetes false, or no in-cluster or KUBECONFIG configuration)".into(),
                    ),
                );
            }
            return facts;
        };
        let sa = async {
            if !needs.service_account {
                return None;
            }
            let name = service_account_name(workload);
            match cluster.service_account_pull_secrets(ns, &name).await {
                Ok(secrets) => Some(ServiceAccountSecrets {
                    name,
                    secrets: secrets.as_ref().clone(),
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the ServiceAccount's pull secrets");
                    None
                }
            }
        };
        let secrets = join_all(needs.pull_secrets.iter().map(|(name, images)| async move {
            let facts = match cluster.read_pull_secret(ns, name).await {
                Err(e) => SecretFacts::Unreadable(e.message),
                Ok(PullSecret::Missing) => SecretFacts::Missing,
                Ok(PullSecret::WrongType(t)) => SecretFacts::WrongType(t),
                Ok(PullSecret::Invalid(why)) => SecretFacts::Invalid(why),
                Ok(PullSecret::Config(config)) => docker_config_facts(&config, images),
            };
            (name.clone(), facts)
        }));
        let (sa, secrets) = futures::join!(sa, secrets);
        facts.service_account = sa;
        facts.secrets = secrets.into_iter().collect();
        facts
    }

    /// Marks a `manifest unknown` or `unauthorized` for a registry the nodes see
    /// differently (node credentials, a mirror): the node's pull may still work.
    fn judged_by_node_view(&self, written: &str, facts: ImageFacts) -> ImageFacts {
        let ImageFacts::Failed(mut failure) = facts else {
            return facts;
        };
        if failure.kind.is_definitive()
            && let Ok(image) = ImageRef::parse_cached(written)
        {
            let matching = |patterns: &[RegistryPattern]| {
                patterns
                    .iter()
                    .find(|p| p.matches(image.registry(), image.repository()))
                    .map(|p| p.source().to_string())
            };
            failure.node_view = matching(&self.config.node_credentials)
                .map(|pattern| NodeView::NodeCredentials { pattern })
                .or_else(|| {
                    matching(&self.config.mirrors).map(|pattern| NodeView::Mirror { pattern })
                });
        }
        ImageFacts::Failed(failure)
    }

    async fn lookup(
        &self,
        written: &str,
        platforms: bool,
        credentials: &Credentials,
    ) -> (ImageFacts, Option<Credential>) {
        let image = match ImageRef::parse_cached(written) {
            Ok(image) => image,
            Err(e) => {
                let failure = LookupFailure::new(FailureKind::Other, e.to_string());
                return (ImageFacts::Failed(failure), None);
            }
        };
        let candidates = credentials
            .keyring
            .lookup(image.registry(), image.repository());
        let fingerprint = fingerprint(&candidates);
        // `repo:tag@digest` is two facts: whether the digest (what the node pulls)
        // exists, and where the tag points now (whether the tag says which version
        // that digest is). Each is cached on its own key, shared with `repo@digest`
        // and `repo:tag`.
        let (resolved, tag_check) = match (image.tag(), image.digest()) {
            (Some(tag), Some(digest)) => {
                let by_digest = format!("{}@{digest}", image.name());
                let by_tag = format!("{}:{tag}", image.name());
                let (resolved, by_tag) = futures::join!(
                    self.resolve_cached(&by_digest, &candidates, fingerprint),
                    self.resolve_cached(&by_tag, &candidates, fingerprint),
                );
                let check = match by_tag {
                    Ok(r) => TagCheck::PointsTo(r.digest.to_string()),
                    Err(refused) if refused.error.kind == FailureKind::ManifestUnknown => {
                        TagCheck::Unresolved(format!("{} has no tag \"{tag}\"", image.registry()))
                    }
                    Err(refused) => TagCheck::Unresolved(format!(
                        "the registry could not be asked: {}",
                        refused.error.kind.as_str()
                    )),
                };
                (resolved, Some(check))
            }
            _ => (
                self.resolve_cached(&image.to_string(), &candidates, fingerprint)
                    .await,
                None,
            ),
        };
        if let (Ok(r), None) = (&resolved, image.digest()) {
            // The mutating webhook pins `repo:tag` to `repo:tag@digest`, and the
            // validating webhook then asks about that form: the tag is cached, and
            // this answers for the digest.
            let pinned = TagKey {
                image: format!("{}@{}", image.name(), r.digest),
                credentials: fingerprint,
            };
            if !self.tags.contains_key(&pinned) {
                self.tags.insert(pinned, Ok(r.clone())).await;
            }
        }
        let resolved = match resolved {
            Ok(r) => r,
            Err(refused) => {
                let failure =
                    messages::failure(&image, &refused.error, &credentials.context(&refused.tried));
                return (ImageFacts::Failed(failure), None);
            }
        };
        let credential = resolved.credential.as_deref().cloned();
        if !platforms {
            let found = ImageFacts::Found {
                digest: resolved.digest.to_string(),
                tag_check,
                manifest: None,
            };
            return (found, credential);
        }
        let key = (image.name().to_string(), resolved.digest.to_string());
        let fetched = self
            .manifests
            .entry(key)
            .or_try_insert_with(async {
                let credential = sendable(resolved.credential.as_deref());
                let fetch = self
                    .registry
                    .manifest_facts(&image, &resolved.digest, credential);
                match crate::unwind::catch(fetch).await {
                    Ok(fetched) => fetched.map(Arc::new),
                    Err(panic) => Err(unusable(&image, &panic)),
                }
            })
            .await;
        self.telemetry.cache(
            Fact::Platforms,
            fetched.as_ref().is_ok_and(|e| !e.is_fresh()),
        );
        match fetched {
            Ok(manifest) => (
                ImageFacts::Found {
                    digest: resolved.digest.to_string(),
                    tag_check,
                    manifest: Some(manifest.value().as_ref().clone()),
                },
                credential,
            ),
            Err(e) => {
                let tried: Vec<Credential> = resolved
                    .credential
                    .as_deref()
                    .into_iter()
                    .cloned()
                    .collect();
                let failure = messages::failure(&image, &e, &credentials.context(&tried));
                (ImageFacts::Failed(failure), None)
            }
        }
    }

    /// Resolves `reference` (a normalized reference) through the cache: one lookup
    /// per reference and credential set, however many ask at once.
    async fn resolve_cached(
        &self,
        reference: &str,
        candidates: &[Credential],
        fingerprint: u64,
    ) -> TagResult {
        let image = match ImageRef::parse_cached(reference) {
            Ok(image) => image,
            Err(e) => {
                let error = RegistryError::new(FailureKind::Other, e.to_string());
                return Err(Arc::new(Refused {
                    error,
                    tried: Vec::new(),
                }));
            }
        };
        let key = TagKey {
            image: reference.to_string(),
            credentials: fingerprint,
        };
        let entry = self
            .tags
            .entry(key)
            .or_insert_with(async {
                match crate::unwind::catch(self.resolve(&image, candidates.to_vec())).await {
                    Ok(resolved) => resolved,
                    Err(panic) => Err(refused(&image, unusable(&image, &panic), Vec::new())),
                }
            })
            .await;
        self.telemetry.cache(Fact::Digest, !entry.is_fresh());
        entry.into_value()
    }

    /// Resolves the digest with each candidate credential in turn (anonymously when
    /// there is none), as the kubelet tries them: every one, whatever the error,
    /// until one gets an answer.
    async fn resolve(&self, image: &ImageRef, candidates: Vec<Credential>) -> TagResult {
        let started = Instant::now();
        let result = self.resolve_uncounted(image, candidates).await;
        let outcome = match &result {
            Ok(_) => "found",
            Err(refused) => refused.error.kind.as_str(),
        };
        self.telemetry
            .lookup(outcome, started.elapsed().as_secs_f64());
        result
    }

    async fn resolve_uncounted(&self, image: &ImageRef, candidates: Vec<Credential>) -> TagResult {
        if candidates.is_empty() {
            return match self.registry.resolve_digest(image, None).await {
                Ok(digest) => Ok(Arc::new(Resolved {
                    digest: digest.into(),
                    credential: None,
                })),
                Err(e) => Err(refused(image, e, Vec::new())),
            };
        }
        let mut failures: Vec<(RegistryError, Credential)> = Vec::new();
        for credential in &candidates {
            match self
                .registry
                .resolve_digest(image, sendable(Some(credential)))
                .await
            {
                Ok(digest) => {
                    return Ok(Arc::new(Resolved {
                        digest: digest.into(),
                        credential: Some(Box::new(credential.clone())),
                    }));
                }
                Err(e) => failures.push((e, credential.clone())),
            }
        }
        // What the node's pull would report. A credential that was let in and found
        // no manifest: the image is missing. One the registry did not answer for:
        // the node may get through with it. Only when every credential was refused
        // is the pull unauthorized.
        let rank = |kind: &FailureKind| match kind {
            FailureKind::ManifestUnknown => 0,
            FailureKind::Unauthorized => 2,
            _ => 1,
        };
        let best = failures
            .iter()
            .enumerate()
            .min_by_key(|(i, (e, _))| (rank(&e.kind), *i))
            .map(|(i, _)| i)
            .expect("at least one candidate was tried");
        let (error, credential) = failures.swap_remove(best);
        let tried = match error.kind {
            FailureKind::Unauthorized => candidates,
            _ => vec![credential],
        };
        Err(refused(image, error, tried))
    }

    /// The keyring for a workload, in the order the node tries them: its pod's pull
    /// secrets (or, when it names none, its ServiceAccount's), the ones imagegate
    /// adds to it, then the configured ones and the docker config file.
    async fn credentials(
        &self,
        workload: &Workload,
        injected: &[String],
        pending: &Pending,
    ) -> Credentials {
        let mut keyring = Keyring::default();
        let mut notes = Vec::new();
        let ns = workload.namespace.as_str();
        let pod_secrets: Vec<String> = workload
            .pod_spec
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .collect();
        match &self.cluster {
            None => {
                if !pod_secrets.is_empty()
                    || !injected.is_empty()
                    || !self.config.pull_secrets.is_empty()
                {
                    notes.push(
                        "pull secrets were not read: imagegate has no Kubernetes API access".into(),
                    );
                }
            }
            Some(cluster) => {
                let sa = service_account_name(workload);
                // The ServiceAccount admission plugin copies the ServiceAccount's
                // pull secrets into a pod only when the pod names none: the node
                // pulls with one list or the other, never both.
                let sa_secrets = if !pod_secrets.is_empty() {
                    Vec::new()
                } else {
                    let read = cluster.service_account_pull_secrets(ns, &sa);
                    match pending
                        .track(format!("ServiceAccount \"{ns}/{sa}\""), read)
                        .await
                    {
                        Ok(names) => names.as_ref().clone(),
                        Err(e) => {
                            notes.push(e.to_string());
                            Vec::new()
                        }
                    }
                };
                let wanted = pod_secrets
                    .iter()
                    .map(|n| {
                        (
                            ns.to_string(),
                            n.clone(),
                            format!("pod imagePullSecret \"{ns}/{n}\""),
                        )
                    })
                    .chain(sa_secrets.iter().map(|n| {
                        (
                            ns.to_string(),
                            n.clone(),
                            format!("ServiceAccount \"{sa}\" imagePullSecret \"{ns}/{n}\""),
                        )
                    }))
                    .chain(
                        injected
                            .iter()
                            .filter(|n| !pod_secrets.contains(n) && !sa_secrets.contains(n))
                            .map(|n| {
                                (
                                    ns.to_string(),
                                    n.clone(),
                                    format!("imagePullSecret \"{ns}/{n}\" (added by imagegate)"),
                                )
                            }),
                    )
                    .chain(self.config.pull_secrets.iter().map(|(sns, n)| {
                        (
                            sns.clone(),
                            n.clone(),
                            format!("imagegate pull secret \"{sns}/{n}\""),
                        )
                    }))
                    .collect::<Vec<_>>();
                let read = join_all(wanted.iter().map(|(sns, n, _)| {
                    pending.track(
                        format!("Secret \"{sns}/{n}\""),
                        cluster.read_pull_secret(sns, n),
                    )
                }))
                .await;
                for ((sns, n, label), result) in wanted.iter().zip(read) {
                    match result {
                        Ok(PullSecret::Config(config)) => keyring.add(&config, label.clone()),
                        Ok(PullSecret::Missing) => notes.push(format!(
                            "{label} does not exist (Secret \"{sns}/{n}\")"
                        )),
                        Ok(PullSecret::WrongType(t)) => notes.push(format!(
                            "{label} is of type {t:?}, not kubernetes.io/dockerconfigjson, so the kubelet ignores it (Secret \"{sns}/{n}\")"
                        )),
                        Ok(PullSecret::Invalid(why)) => notes.push(format!(
                            "{label} holds no usable docker config: {why} (Secret \"{sns}/{n}\")"
                        )),
                        Err(e) => notes.push(e.to_string()),
                    }
                }
            }
        }
        if let (Some(config), Some(path)) = (&self.docker_config, &self.config.docker_config) {
            keyring.add(config, format!("docker config {}", path.display()));
        }
        Credentials { keyring, notes }
    }
}

/// The ServiceAccount the pod runs as.
fn service_account_name(workload: &Workload) -> String {
    workload
        .pod_spec
        .service_account_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The `auths` keys of a pull secret and, for each image, the key that matches it
/// as the kubelet matches them. Never a username or password.
pub(crate) fn docker_config_facts(
    config: &DockerConfig,
    images: &std::collections::BTreeSet<String>,
) -> SecretFacts {
    let mut keyring = Keyring::default();
    keyring.add(config, "");
    let matches = images
        .iter()
        .filter_map(|written| {
            let image = ImageRef::parse_cached(written).ok()?;
            let first = keyring
                .lookup(image.registry(), image.repository())
                .into_iter()
                .next()?;
            Some((written.clone(), first.key))
        })
        .collect();
    SecretFacts::DockerConfig {
        keys: config.entries().iter().map(|e| e.key.clone()).collect(),
        matches,
    }
}

/// The secrets still being read when the admission deadline passed.
fn late_secrets(needs: &Needs) -> PullSecretFacts {
    PullSecretFacts {
        service_account: None,
        secrets: needs
            .pull_secrets
            .keys()
            .map(|n| {
                let why = "reading it took longer than the admission deadline".to_string();
                (n.clone(), SecretFacts::Unreadable(why))
            })
            .collect(),
    }
}

fn refused(image: &ImageRef, error: RegistryError, tried: Vec<Credential>) -> Arc<Refused> {
    tracing::info!(image = %image, kind = error.kind.as_str(), detail = %error.detail, "registry lookup failed");
    Arc::new(Refused { error, tried })
}

/// The credential to send: none for an empty `auths` entry, which means anonymous
/// (containerd does the same), never empty Basic credentials.
fn sendable(credential: Option<&Credential>) -> Option<&Credential> {
    credential.filter(|c| !c.is_anonymous())
}

/// The bytes each of the inspector's caches may hold.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// What one cached digest costs beyond its two strings: moka's entry (key and
/// value in a shared entry, its access-order and expiry nodes, the hash table
/// slot), the `Resolved` behind its `Arc`, and the parsed reference the lookup
/// leaves in [`ImageRef::parse_cached`]'s cache (another moka entry, while it is
/// among that cache's last 2,048). Measured in the real binary by
/// `tests/cache_memory.rs`: 534 to 571 bytes of RSS per cached fact in a release
/// build, about 1,100 in a debug build; the test fails if the growth passes this
/// charge.
pub const DIGEST_ENTRY_OVERHEAD: usize = 1536;

/// What the digest cache's weigher charges for `reference` resolved to a digest
/// of `digest_len` bytes (anonymously; a credential adds its own bytes).
pub fn digest_entry_charge(reference: &str, digest_len: usize) -> usize {
    reference.len() + digest_len + DIGEST_ENTRY_OVERHEAD
}

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

fn credential_bytes(c: &Credential) -> usize {
    c.username.len() + c.password.len() + c.source.len() + c.key.len() + 96
}

/// The failure for a registry call that panicked on the registry's answer.
fn unusable(image: &ImageRef, panic: &str) -> RegistryError {
    tracing::error!(
        image = %image,
        panic,
        "the registry client failed on a registry's answer; the lookup counts as failed"
    );
    // The one such panic known (oci-client 0.18 unwraps the token into a header
    // value) says `InvalidHeaderValue`; say it in the user's terms.
    let detail = if panic.contains("InvalidHeaderValue") {
        "its token, or another value it sent, is not a valid HTTP header value: it has a line break or another control character".to_string()
    } else {
        let mut detail = String::from("imagegate's registry client failed on it: ");
        detail.extend(panic.chars().take(200));
        detail
    };
    RegistryError::new(FailureKind::UnusableAnswer, detail)
}

fn fingerprint(credentials: &[Credential]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in credentials {
        (&c.username, &c.password).hash(&mut h);
    }
    h.finish()
}
