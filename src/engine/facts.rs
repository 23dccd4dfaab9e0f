//! Facts about images, gathered by the inspector before the engine runs, and what
//! the engine needs gathered for a workload.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::{Version, governs};
use crate::admission::Workload;
use crate::platform::{Node, Platform};
use crate::policy::signatures::Verifier;
use crate::policy::{Mode, PolicySet};
use crate::reference::ImageRef;

/// Everything the engine may read besides the policies and the workload.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// By image, as written in the pod spec.
    pub images: HashMap<String, ImageFacts>,
    /// The cluster's Nodes, when they were needed and imagegate reads the
    /// Kubernetes API.
    pub nodes: Option<ClusterNodes>,
    /// The pull secrets the policies name, and the ServiceAccount's.
    pub pull_secrets: PullSecretFacts,
    /// Signature facts, by image (as written) and authority-set id
    /// ([`crate::policy::signatures::Verifier::id`]). Empty offline.
    pub signatures: HashMap<(String, u64), SignatureFacts>,
    /// The time the facts were gathered (Unix seconds), for `maxAge`.
    pub now: Option<i64>,
}

/// What the inspector found about the signatures of one image digest for one set of
/// authorities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignatureFacts {
    /// The digest verified against (never a tag).
    pub digest: String,
    /// Where the inspector looked, in order (`referrers API`, `sha256-<hex>`,
    /// `sha256-<hex>.sig`, `sha256-<hex>.att`).
    pub looked_in: Vec<String>,
    /// How many pieces of signature material were found and verified.
    pub materials: usize,
    /// Lookups that failed on the way (a registry error on one location); material
    /// may hide behind them.
    pub errors: Vec<String>,
    /// Why nothing could be verified at all (the deadline passed, ...).
    pub unavailable: Option<String>,
    /// By authority name.
    pub authorities: BTreeMap<String, AuthorityFacts>,
}

/// What one authority verified on one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthorityFacts {
    /// Whether it verified at least one signature (not only attestations).
    pub signature_verified: bool,
    /// The failure that says most, when some material did not verify.
    pub failure: Option<SignatureFailure>,
    /// The attestations it verified.
    pub statements: Vec<Statement>,
}

/// Why material did not verify, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFailure {
    pub kind: SignatureFailureKind,
    /// What failed, for the application team.
    pub message: String,
}

/// The class of a signature failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFailureKind {
    /// Unreadable, too large or an unsupported format.
    Malformed,
    /// Signed by another key, or the signature does not verify.
    WrongKey,
    /// The content was changed after signing.
    Tampered,
    /// The certificate's subject or issuer is not the authority's.
    IdentityMismatch,
    /// The certificate does not chain, has expired, or its time is not proven.
    Certificate,
    /// The transparency log entry or timestamp is missing, untrusted or does not
    /// match.
    Log,
    /// The signature is for another digest, repository or annotations.
    Mismatch,
    /// Something imagegate does not verify (README: "Not supported").
    NotSupported,
}

impl SignatureFailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureFailureKind::Malformed => "malformed",
            SignatureFailureKind::WrongKey => "wrong-key",
            SignatureFailureKind::Tampered => "tampered",
            SignatureFailureKind::IdentityMismatch => "identity-mismatch",
            SignatureFailureKind::Certificate => "certificate",
            SignatureFailureKind::Log => "log",
            SignatureFailureKind::Mismatch => "mismatch",
            SignatureFailureKind::NotSupported => "not-supported",
        }
    }
}

/// A verified in-toto statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub predicate_type: String,
    /// The predicate; `None` when it was over the verifier's size limit.
    pub predicate: Option<std::sync::Arc<serde_json::Value>>,
    /// Its size as signed.
    pub predicate_bytes: usize,
}

/// What the Kubernetes API said about the cluster's Nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterNodes {
    /// What imagegate keeps of each Node (labels, taints, cordon).
    Listed(Arc<Vec<Node>>),
    /// They could not be read (the message says why: an error, or the deadline).
    Unavailable(String),
}

/// What the cluster says about the pull secrets the policies name for a workload.
/// Empty when nothing was gathered (offline, in `imagegate check`): the rules that
/// read it are then not evaluated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullSecretFacts {
    /// The `imagePullSecrets` of the pod's ServiceAccount, read when the pod names
    /// none (the ServiceAccount admission plugin copies them only into such pods).
    pub service_account: Option<ServiceAccountSecrets>,
    /// By Secret name, in the pod's namespace.
    pub secrets: HashMap<String, SecretFacts>,
}

/// A ServiceAccount and the pull secret names it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountSecrets {
    pub name: String,
    pub secrets: Vec<String>,
}

/// One Secret as the kubelet would see it. Never its contents: only the `auths`
/// keys, which name registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretFacts {
    /// No Secret of that name in the namespace.
    Missing,
    /// A Secret of another type (as found; empty when it has none), which the
    /// kubelet ignores for pulls.
    WrongType(String),
    /// Of a docker-config type, but it holds no usable docker config (why).
    Invalid(String),
    /// A docker config.
    DockerConfig {
        /// The `auths` keys as written, in order.
        keys: Vec<String>,
        /// For each image (as written in the pod spec) the `auths` key that
        /// matches it, as the kubelet matches them; absent when none does.
        matches: HashMap<String, String>,
    },
    /// The Secret could not be read (why): the check fails closed.
    Unreadable(String),
}

/// What the registry said about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFacts {
    Found {
        /// The digest the reference points to (the index digest when multi-platform).
        /// For a reference with a digest, that digest, checked to exist.
        digest: String,
        /// For a reference with both a tag and a digest: where the tag points now.
        tag_check: Option<TagCheck>,
        /// Platforms, when they were needed.
        manifest: Option<ManifestFacts>,
    },
    Failed(LookupFailure),
}

/// Where the tag of a `repo:tag@digest` reference points in the registry now. The
/// runtime pulls the digest and ignores the tag; only a tag that points to that
/// digest tells which version runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCheck {
    /// The tag resolves to this digest.
    PointsTo(String),
    /// The tag could not be resolved (the message says why).
    Unresolved(String),
}

/// A lookup that failed, with the message a user acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupFailure {
    pub kind: FailureKind,
    pub message: String,
    /// Why the node may pull what imagegate could not (then even `manifest unknown`
    /// and `unauthorized` follow `onRegistryError`).
    pub node_view: Option<NodeView>,
}

impl LookupFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> LookupFailure {
        LookupFailure {
            kind,
            message: message.into(),
            node_view: None,
        }
    }

    /// Whether the node's pull is certain to fail the same way.
    pub fn is_definitive(&self) -> bool {
        self.kind.is_definitive() && self.node_view.is_none()
    }
}

/// Why imagegate's view of a registry is not the node's (from the webhook's
/// configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeView {
    /// The nodes pull from registries matching `pattern` with credentials imagegate
    /// cannot see: a kubelet credential provider (ECR, GAR, ACR) or the node's own
    /// `config.json` (`nodeCredentials`).
    NodeCredentials { pattern: String },
    /// The nodes' container runtime pulls registries matching `pattern` through a
    /// mirror (`mirrors`).
    Mirror { pattern: String },
}

impl NodeView {
    /// Why the node's pull may still work, for messages.
    pub fn explain(&self, registry: &str) -> String {
        match self {
            NodeView::NodeCredentials { pattern } => format!(
                "the nodes pull from {registry} with credentials imagegate cannot see (it matches \"{pattern}\" in nodeCredentials of imagegate's configuration: a kubelet credential provider or the node's own config.json), so the node's pull may still succeed"
            ),
            NodeView::Mirror { pattern } => format!(
                "the nodes pull {registry} through a mirror (it matches \"{pattern}\" in mirrors of imagegate's configuration), which may hold this image and grant access the registry itself does not, so the node's pull may still succeed"
            ),
        }
    }
}

/// What the inspector must find out for one workload.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Images to look up (as written), and whether their platforms are needed.
    pub images: BTreeMap<String, bool>,
    /// Whether the cluster's Nodes are needed (where the pod can land).
    pub nodes: bool,
    /// Pull secrets `requirePullSecret` checks, with the images (as written) each
    /// must have an `auths` entry for.
    pub pull_secrets: BTreeMap<String, BTreeSet<String>>,
    /// Whether the ServiceAccount's pull secrets are needed: the pod names none, and
    /// a policy names a secret for one of its images.
    pub service_account: bool,
    /// Pull secrets imagegate adds to the pod (now, or to its Pods when they are
    /// created), in order: the node will pull with them, so the lookups use them too.
    pub injected_pull_secrets: Vec<String>,
    /// Images (as written) whose signatures must be verified, by authority set: the
    /// compiled authorities to verify with.
    pub signatures: BTreeMap<(String, u64), Arc<Verifier>>,
}

impl Needs {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
            && !self.nodes
            && self.pull_secrets.is_empty()
            && !self.service_account
            && self.injected_pull_secrets.is_empty()
            && self.signatures.is_empty()
    }
}

/// The lookups `decide` will read, so that nothing else is asked of the registry.
pub fn needs(policies: &PolicySet, workload: &Workload) -> Needs {
    let mut needs = Needs::default();
    super::pull_secrets::needs(policies, workload, &mut needs);
    let applicable: Vec<_> = policies
        .policies
        .iter()
        .filter(|p| p.needs_registry() && p.applies_to_namespace(&workload.namespace))
        .collect();
    if applicable.is_empty() {
        return needs;
    }
    for container in &workload.containers {
        // `imagePullPolicy: Never`: the node never pulls it, so no registry is asked.
        if container.never_pulled {
            continue;
        }
        let Ok(image) = ImageRef::parse_cached(&container.image) else {
            continue;
        };
        // An image an Enforce policy refuses on its name alone is never looked up:
        // a pod's image must not make imagegate reach hosts the policy forbids.
        // Before any lookup a tag beside a digest is unchecked: govern as widely as
        // the unknown version allows, and skip only what no lookup could admit.
        let version = Version::of(&image, None);
        if refused_by_name(policies, workload, &image, &version) {
            continue;
        }
        for policy in applicable.iter().filter(|p| governs(p, &image, &version)) {
            let platforms = policy.architectures.is_some();
            let entry = needs.images.entry(container.image.clone()).or_insert(false);
            *entry |= platforms;
            if let Some(sig) = &policy.signatures {
                needs
                    .signatures
                    .entry((container.image.clone(), sig.verifier.id))
                    .or_insert_with(|| sig.verifier.clone());
            }
            needs.nodes |= platforms;
        }
    }
    needs
}

/// Whether an Enforce policy refuses `image` on its name alone, whatever a lookup
/// could say: such an image is never looked up and gets no pull secret.
pub(super) fn refused_by_name(
    policies: &PolicySet,
    workload: &Workload,
    image: &ImageRef,
    version: &Version<'_>,
) -> bool {
    policies.policies.iter().any(|p| {
        p.mode == Mode::Enforce
            && p.applies_to_namespace(&workload.namespace)
            && governs(p, image, version)
            && super::rules::refuses_by_name(p, image)
    })
}

/// What went wrong when asking a registry about an image. The registry client
/// classifies its errors into these; the engine reads only the class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The repository or tag does not exist (`manifest unknown`).
    ManifestUnknown,
    /// The registry refused the credentials, or anonymous access (`unauthorized`).
    Unauthorized,
    /// The registry's certificate is signed by an authority imagegate does not trust.
    TlsUnknownAuthority,
    /// The certificate does not name the host (or IP address) the registry is reached by.
    TlsWrongName,
    /// Another TLS failure (expired certificate, plain HTTP on a TLS port, ...).
    Tls,
    ConnectionRefused,
    Dns,
    Timeout,
    /// 429 `toomanyrequests`.
    RateLimited,
    /// The registry answered with an unexpected HTTP status.
    Server(u16),
    /// The registry was not asked: reading from the Kubernetes API server (pull
    /// secrets, ServiceAccounts) used up the admission deadline.
    KubernetesApi,
    /// The registry sent a body over imagegate's limit for its kind (a manifest
    /// over 4 MiB, a config or token over theirs).
    TooLarge,
    /// What came back for a manifest is not one (an HTML page from a proxy, JSON
    /// of another kind, a media type imagegate does not know).
    NotAManifest,
    /// The body does not hash to the digest it was asked for or announced with.
    DigestMismatch,
    /// The registry, its token realm or a redirect points at an address imagegate
    /// does not connect to (loopback, link-local, a denied network).
    AddressRefused,
    /// `localhost[:port]` or a loopback IP: the node's own registry, which the
    /// kubelet reaches on each node and imagegate cannot see.
    NodeLocal,
    /// The registry (or its token server) answered something the registry client
    /// could not use and failed on, such as a token that is not a valid HTTP
    /// header value.
    UnusableAnswer,
    Other,
}

impl FailureKind {
    /// A short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::ManifestUnknown => "manifest-unknown",
            FailureKind::Unauthorized => "unauthorized",
            FailureKind::TlsUnknownAuthority => "tls-unknown-authority",
            FailureKind::TlsWrongName => "tls-wrong-name",
            FailureKind::Tls => "tls",
            FailureKind::ConnectionRefused => "connection-refused",
            FailureKind::Dns => "dns",
            FailureKind::Timeout => "timeout",
            FailureKind::RateLimited => "rate-limited",
            FailureKind::Server(_) => "server-error",
            FailureKind::KubernetesApi => "kubernetes-api",
            FailureKind::TooLarge => "too-large",
            FailureKind::NotAManifest => "not-a-manifest",
            FailureKind::DigestMismatch => "digest-mismatch",
            FailureKind::AddressRefused => "address-refused",
            FailureKind::NodeLocal => "node-local",
            FailureKind::UnusableAnswer => "unusable-answer",
            FailureKind::Other => "other",
        }
    }

    /// Whether the pull is certain to fail the same way on a node (the image or the
    /// credentials are wrong), as opposed to the registry not answering in time.
    pub fn is_definitive(&self) -> bool {
        matches!(
            self,
            FailureKind::ManifestUnknown | FailureKind::Unauthorized
        )
    }
}

/// What a manifest says about platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFacts {
    /// True for an OCI index or a Docker manifest list.
    pub is_index: bool,
    /// The platforms the image has (attestation entries left out).
    pub platforms: Vec<Platform>,
}
