//! The policy file format, exactly as users write it.
//!
//! Stage one of loading: strict deserialization. Every struct refuses unknown fields,
//! so a typo (`blockedImage:`) is an error with its line instead of a rule that
//! silently does nothing. Strings that later stages check carry their location
//! (`Spanned`) so that a validation error can name the line.
//!
//! The doc comments here are the field reference: they become the JSON Schema
//! (`imagegate policy schema`) that editors use.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub const API_VERSION: &str = "imagegate.dev/v1alpha1";
pub const KIND: &str = "ImagePolicy";

/// An ImagePolicy: which images it governs and the rules they must follow.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "ImagePolicy")]
pub struct PolicyDocument {
    /// Always `imagegate.dev/v1alpha1`.
    #[schemars(with = "String")]
    pub api_version: Spanned<String>,
    /// Always `ImagePolicy`.
    #[schemars(with = "String")]
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: PolicySpec,
}

/// Identifies the policy in denials, warnings, logs and metrics.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// A unique name across all loaded policy files (a DNS label: lowercase letters,
    /// digits and `-`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
}

/// Whether a violated policy denies the request or only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
pub enum Mode {
    /// Deny requests that violate the policy.
    #[default]
    Enforce,
    /// Dry run: never deny and never mutate; report what would have been denied as a
    /// warning, an audit annotation, a log record and a metric.
    Audit,
}

/// The rules of one policy. Every rule is optional; a policy with no rules governs
/// images without restricting them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// `Enforce` (default) denies violations; `Audit` only reports them.
    #[serde(default)]
    pub mode: Mode,
    /// Namespaces the policy applies to, as globs (`prod-*`). Default: every namespace.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub namespaces: Vec<Spanned<String>>,
    /// Namespaces the policy never applies to, as globs. Wins over `namespaces`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exclude_namespaces: Vec<Spanned<String>>,
    /// Image patterns the policy governs (`registry/repository[:tag]`, `*` within a
    /// path segment, `**` across segments; Docker Hub shorthand such as `nginx` is
    /// normalized like an image). Default: `["**"]`, every image.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub images: Option<Vec<Spanned<String>>>,
    /// Image patterns the policy does not govern, even when `images` matches them.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub exclude_images: Vec<Spanned<String>>,
    /// Where governed images may come from.
    #[serde(default)]
    pub registries: Option<RegistryRules>,
    /// Image patterns that are always denied (`vulnerable-image:*`, `ghcr.io/evil/**`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub blocked_images: Vec<Spanned<String>>,
    /// Rules on tags and digests.
    #[serde(default)]
    pub tags: Option<TagRules>,
    /// Extra text appended to every denial of this policy, such as where to ask for
    /// help (`See https://wiki.example.com/images or ask #platform`).
    #[serde(default)]
    pub message: Option<String>,
    /// Ask the registry whether every governed image can be pulled (the name, the
    /// tag, the pull credentials, TLS), and deny what would end in ImagePullBackOff.
    /// Implied by `pinDigests` and `architectures`.
    #[serde(default)]
    pub preflight: bool,
    /// Mutate `repo:tag` into `repo:tag@sha256:<digest>` (the index digest for a
    /// multi-platform image), so that a tag overwritten in the registry cannot make
    /// nodes run different code under one name. Images that already carry a digest
    /// are checked to exist.
    #[serde(default)]
    pub pin_digests: bool,
    /// The kinds whose images are pinned. Default: `[Pod]`, because GitOps tools see
    /// drift when a workload's template changes under them. Add `Deployment`,
    /// `StatefulSet`, ... to pin templates too.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub pin_digests_on: Option<Vec<Spanned<String>>>,
    /// Image patterns that are never pinned (`registry.example.com/sidecars/**`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub skip_pinning: Vec<Spanned<String>>,
    /// Check that each image has the architectures of the nodes the pod may land on.
    #[serde(default)]
    pub architectures: Option<ArchitectureRules>,
    /// What to do when the registry cannot be asked in time (timeout, connection
    /// refused, DNS, TLS, 429, 5xx, a Kubernetes API read that used up the
    /// deadline). A missing image or refused credentials deny: the pull would fail
    /// for certain, except on registries the webhook configuration lists in
    /// `nodeCredentials` or `mirrors`, where the node may see more than imagegate.
    #[serde(default)]
    pub on_registry_error: RegistryErrorAction,
    /// The pull secret each registry needs (`registry` a host with an optional port,
    /// `*.corp.example.com` globs allowed, as in `registries.allow`). On `/mutate` a
    /// pod whose containers use a matching registry gets the secret added to
    /// `spec.imagePullSecrets` unless it already has it (from its own list, or from
    /// its ServiceAccount when it names none). The first entry that matches an image
    /// is the one it needs. A pod never gets a secret for a registry none of its
    /// containers uses. The same secret is used for imagegate's own lookups.
    #[serde(default)]
    pub image_pull_secrets: Vec<PullSecretEntry>,
    /// Whether the named pull secret must exist in the pod's namespace, be of type
    /// `kubernetes.io/dockerconfigjson` (or `kubernetes.io/dockercfg`) and hold an
    /// `auths` entry for the registry: `Off` (default), `Warn` or `Deny`. Also judges
    /// a pod that lacks the secret where imagegate cannot add it (`kubectl debug`,
    /// an UPDATE of a Pod, a kind not in `injectPullSecretsOn` whose Pods do not
    /// get it either).
    #[serde(default)]
    #[schemars(with = "RequirePullSecret")]
    pub require_pull_secret: Option<Spanned<RequirePullSecret>>,
    /// The kinds that get the pull secrets of `imagePullSecrets` added. Default:
    /// `[Pod]`, because GitOps tools see drift when a workload's template changes
    /// under them. `[]` checks (with `requirePullSecret`) without adding.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub inject_pull_secrets_on: Option<Vec<Spanned<String>>>,
    /// Shorthand for `registries: {allow: [...]}`, as image-policy guides write it.
    /// A policy may use one or the other, not both.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub allowed_registries: Option<Vec<Spanned<String>>>,
    /// Cosign signatures governed images must carry: who must have signed (keys or
    /// keyless identities) and how many of them. Verified offline against the digest
    /// the pod runs (resolved from the tag), never against the tag.
    #[serde(default)]
    pub signatures: Option<SignatureRules>,
    /// Signed attestations (in-toto statements) governed images must carry, and
    /// what their predicates must say (vulnerability scans, SLSA provenance).
    #[serde(default)]
    pub attestations: Vec<AttestationRule>,
    /// Shorthand from image-policy guides, answered at load with the `signatures:`
    /// block to write instead (imagegate has no implicit default authority).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub required_signatures: Option<Spanned<bool>>,
    /// Shorthand from image-policy guides, answered at load with the
    /// `attestations:` block to write instead.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub minimum_severity: Option<Spanned<String>>,
}

/// Signature rules.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureRules {
    /// Whether a verified signature is required (default `true`). `false` keeps the
    /// authorities for `attestations` only.
    #[serde(default)]
    pub required: Option<bool>,
    /// How many distinct authorities must have verified a signature (default 1;
    /// between 1 and the number of authorities).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub threshold: Option<Spanned<i64>>,
    /// Who may sign: keys and keyless identities, each with a unique name.
    #[serde(default)]
    pub authorities: Vec<AuthoritySpec>,
}

/// One authority: a public key, or a keyless identity under a trust root.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthoritySpec {
    /// A name unique in the policy (a DNS label), used in denials and by
    /// `attestations[].authority`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// A PEM public key (ECDSA P-256/P-384, RSA, Ed25519): `{path: keys/release.pub}`
    /// (relative to the policy file) or `{inline: "-----BEGIN PUBLIC KEY-----..."}`.
    #[serde(default)]
    pub key: Option<KeySource>,
    /// A keyless identity: the certificate's OIDC issuer and subject (SAN), each
    /// exact or a regular expression (`issuerRegExp`, `subjectRegExp`; matched
    /// anywhere, write `^...$` to anchor).
    #[serde(default)]
    pub keyless: Option<KeylessSpec>,
    /// `Required` (a verified log entry must be present), `Optional` (an entry that
    /// is present must verify) or `Off` (entries ignored). Default: `Optional` for
    /// keys, `Required` for keyless.
    #[serde(default)]
    pub transparency_log: Option<TransparencyLogSpec>,
    /// The Sigstore trust root (Fulcio CAs, Rekor and CT log keys, TSAs): required
    /// for keyless; for a key, what its log entries are checked against.
    #[serde(default)]
    pub trust_root: Option<TrustRootSource>,
    /// Other repositories a legacy signature's `docker-reference` may name
    /// (mirrors), such as `mirror.example.com/acme/app`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed_repositories: Vec<Spanned<String>>,
}

/// Where a public key is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeySource {
    /// A PEM file, relative to the policy file. `k8s://namespace/name` (a Secret)
    /// is not supported yet.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// The PEM text itself.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub inline: Option<Spanned<String>>,
}

/// A keyless identity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeylessSpec {
    /// The exact OIDC issuer (`https://token.actions.githubusercontent.com`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub issuer: Option<Spanned<String>>,
    /// A regular expression on the OIDC issuer.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub issuer_reg_exp: Option<Spanned<String>>,
    /// The exact certificate subject (email or URI SAN).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub subject: Option<Spanned<String>>,
    /// A regular expression on the certificate subject.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub subject_reg_exp: Option<Spanned<String>>,
}

/// Whether a transparency log entry is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum TransparencyLogSpec {
    /// A verified log entry must be present.
    Required,
    /// A log entry that is present must verify.
    Optional,
    /// Log entries are ignored (cosign's `--insecure-ignore-tlog`).
    Off,
}

/// Where the trust root is: a Sigstore `trusted_root.json`, or PEM files.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustRootSource {
    /// A `trusted_root.json` (what `cosign trusted-root create` writes), relative to
    /// the policy file.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// PEM files, relative to the policy file.
    #[serde(default)]
    pub pem: Option<TrustRootPemFiles>,
}

/// The PEM files of a trust root, each relative to the policy file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustRootPemFiles {
    /// The Fulcio certificate chain (intermediates and root).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub fulcio: Option<Spanned<String>>,
    /// The Rekor public key(s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub rekor: Option<Spanned<String>>,
    /// The CT log public key(s).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ctlog: Option<Spanned<String>>,
    /// The timestamp authority's certificate chain.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tsa: Option<Spanned<String>>,
}

/// A signed attestation an image must carry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationRule {
    /// A name unique in the policy (a DNS label), for denials.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The in-toto predicate type (`https://cosign.sigstore.dev/attestation/vuln/v1`,
    /// `https://slsa.dev/provenance/v1`, `https://slsa.dev/provenance/v0.2`, ...).
    #[schemars(with = "String")]
    pub predicate_type: Spanned<String>,
    /// The authority (of `signatures.authorities`) that must have signed it.
    #[schemars(with = "String")]
    pub authority: Spanned<String>,
    /// Vulnerability scans: deny a finding at or above this severity (`LOW`,
    /// `MEDIUM`, `HIGH`, `CRITICAL`). Findings of severity `UNKNOWN` are not counted.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub minimum_severity: Option<Spanned<String>>,
    /// Vulnerability scans: deny when `metadata.scanFinishedOn` is older than this
    /// (`168h`, `7d`, `30m`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Spanned<String>>,
    /// SLSA provenance: a regular expression on the builder id (v1
    /// `runDetails.builder.id`, v0.2 `builder.id`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub builder_id: Option<Spanned<String>>,
    /// SLSA provenance: a regular expression on the source repository (v1
    /// `buildDefinition.externalParameters.workflow.repository`, else the first
    /// `resolvedDependencies` URI; v0.2 `invocation.configSource.uri`, else the
    /// first `materials` URI).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub source_repository: Option<Spanned<String>>,
}

/// A registry and the pull secret its images need.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullSecretEntry {
    /// A registry pattern: `harbor.example.com`, `10.0.0.5:5000`,
    /// `*.dkr.ecr.eu-west-1.amazonaws.com`, optionally with a repository glob
    /// (`harbor.example.com/team-a/**`). A host, never a URL.
    #[schemars(with = "String")]
    pub registry: Spanned<String>,
    /// The name of a Secret of type `kubernetes.io/dockerconfigjson` in the pod's
    /// namespace.
    #[schemars(with = "String")]
    pub secret_name: Spanned<String>,
}

/// What happens when a pod's pull secret is missing or does not fit its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
pub enum RequirePullSecret {
    /// No check (default).
    #[default]
    Off,
    /// Admit with a warning saying what is wrong with the secret.
    Warn,
    /// Deny, saying what is wrong with the secret and how to fix it.
    Deny,
}

/// What happens when the registry cannot be asked in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
pub enum RegistryErrorAction {
    /// Deny the request, saying which lookup failed and how to fix it (default).
    #[default]
    Deny,
    /// Admit the request with a warning.
    Warn,
}

/// Architecture rules.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchitectureRules {
    /// Architectures (`amd64`, `arm64`, ...) to require when they cannot be derived
    /// from where the pod may run: the cluster's Nodes it can land on (selector,
    /// affinity, taints and tolerations, cordons, OS), else its own nodeSelector or
    /// required node affinity on `kubernetes.io/arch`. In the pod's OS.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub require: Vec<Spanned<String>>,
    /// `Deny` (default) refuses an image that lacks an architecture; `AddNodeAffinity`
    /// mutates the pod instead, adding a required node affinity on
    /// `kubernetes.io/arch` (and `kubernetes.io/os` when it matters) for the
    /// platforms its images have (only where the pod does not constrain its
    /// architecture itself, and never on a Pod UPDATE, where affinity is immutable).
    #[serde(default)]
    pub on_mismatch: ArchMismatchAction,
}

/// What happens when an image lacks an architecture the pod may land on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
pub enum ArchMismatchAction {
    /// Deny, naming the missing platforms and the ones the image has.
    #[default]
    Deny,
    /// Add a required node affinity on `kubernetes.io/arch`.
    AddNodeAffinity,
}

/// Registry rules.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryRules {
    /// Registry patterns an image must match: a host (`harbor.example.com`, every
    /// repository on it), optionally with a port and a path glob
    /// (`harbor.example.com:8443/team/**`). A host, never a URL, and never a prefix:
    /// `myregistry.io` does not allow `myregistry.io.evil.com`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<Spanned<String>>,
}

/// Tag and digest rules.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagRules {
    /// Tag globs that are refused (`latest`, `*-dev`). `latest` also refuses the
    /// implicit `latest` of an image written without tag or digest. The tag is judged
    /// as written, even beside a digest.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub forbid: Vec<Spanned<String>>,
    /// Require every image to carry a digest (`repo@sha256:...` or
    /// `repo:tag@sha256:...`).
    #[serde(default)]
    pub require_digest: bool,
    /// Regular expressions, at least one of which the version must match
    /// (`^v\d+\.\d+\.\d+$`). A tag beside a digest counts only when pre-flight
    /// checked that it points to that digest; a digest alone names no version and
    /// does not pass.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<Spanned<String>>,
}

/// The JSON Schema of a policy document, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(PolicyDocument);
    serde_json::to_value(schema).expect("a schema is always JSON")
}
