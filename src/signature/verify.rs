//! The verification itself: every piece of material against every authority.
//!
//! sigstore-verify checks the cryptography of a bundle (signature or DSSE PAE,
//! Fulcio chain at the attested time, SCT, Rekor SET / inclusion proof / checkpoint,
//! Rekor v2, RFC 3161, and that the log entry describes this signature, key and
//! payload). Around it, imagegate adds what the admission needs: legacy cosign
//! layers turned into the bundle they are, key-based material without any log entry
//! or timestamp (sigstore-verify refuses such bundles; cosign accepts them with a
//! key), the transparency-log requirement per authority, identities matched exactly
//! or by regular expression against every SAN and both issuer extensions, the
//! subject digest and docker-reference against the image under admission, bounds
//! on every input, and a reason per failure that an application team can act on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use sigstore_verify::crypto::SigningScheme;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Artifact, Bundle, MediaType, Sha256Hash, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};

use super::authority::{Authority, Identity, Signer, TransparencyLog};
use super::cert::{self, CertFacts};
use super::failure::{Failure, FailureKind, InputError};
use super::keys::{PublicKey, sha256};
use super::limits::Limits;
use super::material::{BundleLayer, LegacyKind, Material, is_bundle_media_type};
use super::payload::{self, COSIGN_SIGN_PREDICATE};
use super::reasons::{Cx, key_signature_failure, map_error, tampered_keyless};
use super::report::{
    LogProof, MaterialKind, MaterialReport, Outcome, Report, SignerInfo, Verified,
    VerifiedStatement,
};
use crate::reference::ImageRef;

/// What is being admitted: an image digest and the repository the pod pulls it from
/// (the docker-reference rule compares against it), or, for `imagegate verify` on
/// a file, the blob itself.
#[derive(Debug, Clone)]
pub struct Subject {
    digest: String,
    digest_bytes: [u8; 32],
    repository: Option<String>,
    blob: Option<Arc<[u8]>>,
}

impl Subject {
    /// An image: `repository` as written in a pod spec or normalized
    /// (`nginx`, `docker.io/library/nginx`); a tag or digest on it is ignored.
    /// `digest` is `sha256:<hex>`.
    pub fn image(repository: &str, digest: &str) -> Result<Self, InputError> {
        let (digest, digest_bytes) = parse_digest(digest)?;
        Ok(Subject {
            digest,
            digest_bytes,
            repository: Some(normalize_repository(repository)?),
            blob: None,
        })
    }

    /// A digest with no repository: legacy signatures (which name a repository)
    /// then fail with the reason.
    pub fn digest(digest: &str) -> Result<Self, InputError> {
        let (digest, digest_bytes) = parse_digest(digest)?;
        Ok(Subject {
            digest,
            digest_bytes,
            repository: None,
            blob: None,
        })
    }

    /// A blob (any file): its SHA-256 is the digest, and message signatures over it
    /// are checked over the bytes themselves (Ed25519 needs them).
    pub fn blob(bytes: Vec<u8>) -> Self {
        let digest_bytes = sha256(&bytes);
        Subject {
            digest: format!("sha256:{}", hex::encode(digest_bytes)),
            digest_bytes,
            repository: None,
            blob: Some(bytes.into()),
        }
    }

    /// Sets the repository (for a digest or blob subject).
    pub fn with_repository(mut self, repository: &str) -> Result<Self, InputError> {
        self.repository = Some(normalize_repository(repository)?);
        Ok(self)
    }

    pub fn digest_str(&self) -> &str {
        &self.digest
    }

    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }
}

fn parse_digest(digest: &str) -> Result<(String, [u8; 32]), InputError> {
    let bad = || InputError::BadDigest(digest.chars().take(100).collect());
    let hex_part = digest.strip_prefix("sha256:").ok_or_else(bad)?;
    if hex_part.len() != 64 {
        return Err(bad());
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| bad())?;
    Ok((format!("sha256:{}", hex_part.to_ascii_lowercase()), bytes))
}

/// `registry/repository`, normalized as the runtime does (`nginx` is
/// `docker.io/library/nginx`, `index.docker.io` is `docker.io`).
pub fn normalize_repository(repository: &str) -> Result<String, InputError> {
    ImageRef::parse(repository)
        .map(|r| r.name().to_string())
        .map_err(|e| {
            InputError::BadRepository(repository.chars().take(200).collect(), e.to_string())
        })
}

/// What a call may accept beyond the authorities.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Other repositories a legacy signature's docker-reference may name (mirrors),
    /// normalized with [`normalize_repository`].
    pub allowed_repositories: Vec<String>,
    /// Annotations a signature must carry (cosign's `-a key=value`: the
    /// simple-signing `optional` map, or the statement subject's annotations of a
    /// `cosign sign` bundle). Not applied to attestations.
    pub required_annotations: std::collections::BTreeMap<String, String>,
    pub limits: Limits,
}

/// Verifies every piece of material against every authority. Pure and
/// synchronous (CPU only, no I/O): call it from `spawn_blocking` in async code.
///
/// An empty authority list is refused: it would otherwise verify nothing and pass.
/// A failure of one piece of material never hides another's success: the result
/// has one outcome per material and authority.
pub fn verify(
    subject: &Subject,
    materials: &[Material],
    authorities: &[Authority],
    options: &Options,
) -> Result<Report, InputError> {
    let limits = &options.limits;
    if authorities.is_empty() {
        return Err(InputError::NoAuthorities);
    }
    if authorities.len() > limits.max_authorities {
        return Err(InputError::TooManyAuthorities {
            count: authorities.len(),
            max: limits.max_authorities,
        });
    }
    if materials.len() > limits.max_materials {
        return Err(InputError::TooManyMaterials {
            count: materials.len(),
            max: limits.max_materials,
        });
    }
    for (i, a) in authorities.iter().enumerate() {
        if authorities[..i].iter().any(|b| b.name() == a.name()) {
            return Err(InputError::DuplicateAuthority(a.name().to_string()));
        }
    }
    let mut report = Report::default();
    for material in materials {
        let prepared = guard(|| prepare(material, limits));
        let (format, outcomes) = match prepared {
            Ok((format, candidates)) => {
                let outcomes = authorities
                    .iter()
                    .map(|a| Outcome {
                        authority: a.name().to_string(),
                        result: verify_candidates(&candidates, a, subject, options),
                    })
                    .collect();
                (format, outcomes)
            }
            Err(failure) => (
                describe_material(material),
                authorities
                    .iter()
                    .map(|a| Outcome {
                        authority: a.name().to_string(),
                        result: Err(failure.clone()),
                    })
                    .collect(),
            ),
        };
        report.materials.push(MaterialReport {
            origin: material.origin().to_string(),
            format,
            outcomes,
        });
    }
    Ok(report)
}

/// Runs `f`, turning a panic in it (a bug in imagegate or a dependency) into a
/// refusal of this material instead of a crashed admission.
fn guard<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Failure::new(
            FailureKind::Internal,
            "the verifier failed on this material (a bug in imagegate); it is refused",
        ))
    })
}

fn describe_material(material: &Material) -> String {
    match material {
        Material::Bundle(_) => "bundle".into(),
        Material::Legacy(l) => legacy_format(l.kind).into(),
    }
}

pub(super) fn legacy_format(kind: LegacyKind) -> &'static str {
    match kind {
        LegacyKind::Signature => "legacy .sig layer",
        LegacyKind::Attestation => "legacy .att layer",
    }
}

/// What was signed, and so how the signature is checked and what the payload
/// check reads.
#[derive(Debug, Clone)]
pub(super) enum Signed {
    /// A legacy simple-signing payload: the signed message.
    SimpleSigning(Vec<u8>),
    /// A DSSE envelope holding a statement about the subject.
    Dsse,
    /// A message signature over the subject itself.
    Message,
}

/// One signature to check, as a bundle (legacy layers are converted).
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) bundle: Bundle,
    pub(super) signed: Signed,
    /// A legacy log entry of a kind imagegate cannot verify (why).
    pub(super) unsupported_entry: Option<String>,
}

fn prepare(material: &Material, limits: &Limits) -> Result<(String, Vec<Candidate>), Failure> {
    match material {
        Material::Bundle(layer) => prepare_bundle(layer, limits),
        Material::Legacy(layer) => super::legacy::prepare_legacy(layer, limits),
    }
}

pub(super) fn too_large(what: &str, size: usize, max: usize) -> Failure {
    Failure::new(
        FailureKind::TooLarge,
        format!("{what} is {size} bytes; at most {max} are read"),
    )
}

fn prepare_bundle(
    layer: &BundleLayer,
    limits: &Limits,
) -> Result<(String, Vec<Candidate>), Failure> {
    if !is_bundle_media_type(&layer.media_type) {
        return Err(Failure::new(
            FailureKind::Unsupported,
            format!(
                "the layer's media type `{}` is not a Sigstore bundle",
                layer.media_type.chars().take(200).collect::<String>()
            ),
        ));
    }
    if layer.bytes.len() > limits.max_material_bytes {
        return Err(too_large(
            "the bundle",
            layer.bytes.len(),
            limits.max_material_bytes,
        ));
    }
    let text = std::str::from_utf8(&layer.bytes)
        .map_err(|_| Failure::new(FailureKind::Malformed, "the bundle is not UTF-8 JSON"))?;
    let bundle = Bundle::from_json(text).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("Invalid media type") {
            Failure::new(
                FailureKind::Unsupported,
                format!(
                    "the bundle's version is not one imagegate reads (v0.1, v0.2, v0.3): {msg}"
                ),
            )
        } else {
            Failure::new(
                FailureKind::Malformed,
                format!("the bundle cannot be read: {msg}"),
            )
        }
    })?;
    check_bundle_bounds(&bundle, limits)?;
    let signed = match &bundle.content {
        SignatureContent::MessageSignature(_) => Signed::Message,
        SignatureContent::DsseEnvelope(_) => Signed::Dsse,
        _ => {
            return Err(Failure::new(
                FailureKind::Unsupported,
                "the bundle holds neither a message signature nor a DSSE envelope",
            ));
        }
    };
    let format = match bundle.media_type {
        MediaType::Bundle0_1 => "bundle v0.1",
        MediaType::Bundle0_2 => "bundle v0.2",
        _ => "bundle v0.3",
    };
    Ok((
        format.into(),
        vec![Candidate {
            bundle,
            signed,
            unsupported_entry: None,
        }],
    ))
}

fn check_bundle_bounds(bundle: &Bundle, limits: &Limits) -> Result<(), Failure> {
    let vm = &bundle.verification_material;
    let count = |what: &str, n: usize, max: usize| {
        if n > max {
            Err(Failure::new(
                FailureKind::TooLarge,
                format!("the bundle has {n} {what}; at most {max} are read"),
            ))
        } else {
            Ok(())
        }
    };
    count(
        "transparency log entries",
        vm.tlog_entries.len(),
        limits.max_tlog_entries,
    )?;
    count(
        "RFC 3161 timestamps",
        vm.timestamp_verification_data.rfc3161_timestamps.len(),
        limits.max_timestamps,
    )?;
    if let VerificationMaterialContent::X509CertificateChain { certificates } = &vm.content {
        count(
            "certificates",
            certificates.len(),
            limits.max_chain_certificates,
        )?;
    }
    Ok(())
}

/// The best outcome of one material's candidates for one authority: the first that
/// verifies, else the failure that says most.
fn verify_candidates(
    candidates: &[Candidate],
    authority: &Authority,
    subject: &Subject,
    options: &Options,
) -> Result<Verified, Failure> {
    let mut best: Option<Failure> = None;
    for candidate in candidates {
        match guard(|| verify_candidate(candidate, authority, subject, options)) {
            Ok(v) => return Ok(v),
            Err(f) => {
                if best.as_ref().is_none_or(|b| f.kind.rank() > b.kind.rank()) {
                    best = Some(f);
                }
            }
        }
    }
    Err(best
        .unwrap_or_else(|| Failure::new(FailureKind::Malformed, "no signature in this material")))
}

fn verify_candidate(
    candidate: &Candidate,
    authority: &Authority,
    subject: &Subject,
    options: &Options,
) -> Result<Verified, Failure> {
    let mut bundle = candidate.bundle.clone();
    let mode = authority.transparency_log();
    if mode == TransparencyLog::Off && !bundle.verification_material.tlog_entries.is_empty() {
        bundle.verification_material.tlog_entries.clear();
        if bundle.media_type == MediaType::Bundle0_1 {
            // v0.1 requires a SET; without its log entry it is a v0.2 bundle.
            bundle.media_type = MediaType::Bundle0_2;
        }
    }
    let key_material = matches!(
        bundle.verification_material.content,
        VerificationMaterialContent::PublicKey(_)
    );
    let leaf = if key_material {
        None
    } else {
        Some(chain_checks(&bundle)?)
    };
    match (authority.signer(), leaf) {
        (Signer::Key(key), None) => {
            verify_with_key(candidate, bundle, key, authority, subject, options)
        }
        (Signer::Keyless(id), Some(leaf)) => {
            verify_keyless(candidate, bundle, leaf, id, authority, subject, options)
        }
        (Signer::Key(key), Some(leaf)) => Err(Failure::new(
            FailureKind::KindMismatch,
            format!(
                "signed keyless, by the certificate of {}, not with the key {}",
                list_or_none(&leaf.facts.sans),
                key.fingerprint()
            ),
        )),
        (Signer::Keyless(id), None) => Err(Failure::new(
            FailureKind::KindMismatch,
            format!(
                "signed with a key, not keyless by {} from {}",
                id.subject, id.issuer
            ),
        )),
    }
}

struct Leaf {
    der: Vec<u8>,
    facts: CertFacts,
}

/// The signing certificate, and the rule that a bundle never ships the root it
/// would chain to (the sigstore-conformance suite expects the refusal).
fn chain_checks(bundle: &Bundle) -> Result<Leaf, Failure> {
    let certs: Vec<&[u8]> = match &bundle.verification_material.content {
        VerificationMaterialContent::Certificate(c) => vec![c.raw_bytes.as_bytes()],
        VerificationMaterialContent::X509CertificateChain { certificates } => certificates
            .iter()
            .map(|c| c.raw_bytes.as_bytes())
            .collect(),
        _ => Vec::new(),
    };
    let Some((leaf, rest)) = certs.split_first() else {
        return Err(Failure::new(
            FailureKind::Malformed,
            "the bundle's certificate chain is empty",
        ));
    };
    for der in rest {
        let facts = cert::parse(der).map_err(|e| {
            Failure::new(
                FailureKind::Malformed,
                format!("a certificate of the chain: {e}"),
            )
        })?;
        if facts.self_signed {
            return Err(Failure::new(
                FailureKind::UntrustedCertificate,
                format!(
                    "the material ships its own root certificate ({}); roots come only from the trust root",
                    facts.subject
                ),
            ));
        }
    }
    let facts = cert::parse(leaf).map_err(|e| {
        Failure::new(
            FailureKind::Malformed,
            format!("the signing certificate: {e}"),
        )
    })?;
    Ok(Leaf {
        der: leaf.to_vec(),
        facts,
    })
}

fn artifact<'a>(candidate: &'a Candidate, subject: &'a Subject) -> Artifact<'a> {
    match (&candidate.signed, &subject.blob) {
        (Signed::SimpleSigning(payload), _) => Artifact::from_blob(payload),
        (_, Some(blob)) => Artifact::from_blob(blob),
        (_, None) => Artifact::from(Sha256Hash::new(subject.digest_bytes)),
    }
}

fn has_timestamps(bundle: &Bundle) -> bool {
    !bundle
        .verification_material
        .timestamp_verification_data
        .rfc3161_timestamps
        .is_empty()
}

fn verify_keyless(
    candidate: &Candidate,
    bundle: Bundle,
    leaf: Leaf,
    identity: &Identity,
    authority: &Authority,
    subject: &Subject,
    options: &Options,
) -> Result<Verified, Failure> {
    let Some(root) = authority.trust_root() else {
        return Err(Failure::new(
            FailureKind::NoTrustRoot,
            "a keyless authority needs a trust root",
        ));
    };
    let has_entries = !bundle.verification_material.tlog_entries.is_empty();
    // The signature over the content first, with the certificate's key: a changed
    // payload is the first thing to say, whatever else is wrong.
    check_key_signature(candidate, &bundle, &leaf_key(&leaf)?, subject, true)?;
    if let Some(why) = &candidate.unsupported_entry
        && authority.transparency_log() != TransparencyLog::Off
    {
        return Err(Failure::new(
            FailureKind::NotSupported,
            format!("this signature cannot be checked: {why}"),
        ));
    }
    let mut policy = VerificationPolicy::any_identity();
    if !root.has_ct_logs() {
        policy = policy.skip_sct();
    }
    if !has_entries {
        policy = policy.skip_tlog_unsafe();
    }
    let cx = Cx {
        candidate,
        bundle: &bundle,
        subject,
        key: None,
        leaf: Some(&leaf.facts),
        authority,
    };
    let result = root
        .verifier()
        .verify(artifact(candidate, subject), &bundle, &policy)
        .map_err(|e| map_error(e, &cx))?;
    check_identity(&leaf.facts, identity)?;
    let (kind, statement) = check_payload(candidate, &bundle, subject, options)?;
    let log = log_requirement(&bundle, &result, authority.transparency_log(), has_entries)?;
    let claims = result
        .certificate()
        .map(|c| ci_claims(&c.ci_claims))
        .unwrap_or_default();
    Ok(Verified {
        kind,
        statement,
        signer: SignerInfo::Certificate {
            subject: leaf.facts.sans.clone(),
            issuer: leaf.facts.issuer.clone(),
            claims,
        },
        log,
        verified_times: verified_times(&result),
        sct_verified: result.sct_verified(),
    })
}

fn leaf_key(leaf: &Leaf) -> Result<PublicKey, Failure> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(&leaf.der).map_err(|e| {
        Failure::new(
            FailureKind::Malformed,
            format!("the signing certificate: {e}"),
        )
    })?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| {
            Failure::new(
                FailureKind::Malformed,
                format!("the signing certificate's key: {e}"),
            )
        })?;
    PublicKey::from_der(&spki).map_err(|e| {
        Failure::new(
            FailureKind::Unsupported,
            format!("the signing certificate's key: {e}"),
        )
    })
}

fn check_identity(facts: &CertFacts, identity: &Identity) -> Result<(), Failure> {
    if let Some((v1, v8)) = &facts.issuer_conflict {
        return Err(Failure::new(
            FailureKind::IssuerMismatch,
            format!(
                "the certificate names two different issuers: {v1} (1.3.6.1.4.1.57264.1.1) and {v8} (1.3.6.1.4.1.57264.1.8)"
            ),
        ));
    }
    if !facts.sans.iter().any(|san| identity.subject.matches(san)) {
        return Err(Failure::new(
            FailureKind::IdentityMismatch,
            format!(
                "identity mismatch: got {}, expected {}",
                list_or_none(&facts.sans),
                identity.subject
            ),
        ));
    }
    match &facts.issuer {
        None => Err(Failure::new(
            FailureKind::IssuerMismatch,
            format!(
                "issuer mismatch: the certificate names no OIDC issuer, expected {}",
                identity.issuer
            ),
        )),
        Some(issuer) if !identity.issuer.matches(issuer) => Err(Failure::new(
            FailureKind::IssuerMismatch,
            format!(
                "issuer mismatch: got {issuer}, expected {}",
                identity.issuer
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn list_or_none(values: &[String]) -> String {
    if values.is_empty() {
        "no email or URI subject".into()
    } else {
        values.join(", ")
    }
}

fn ci_claims(
    c: &sigstore_verify::crypto::FulcioCiClaims,
) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v.clone());
        }
    };
    put("buildSignerURI", &c.build_signer_uri);
    put("buildSignerDigest", &c.build_signer_digest);
    put("runnerEnvironment", &c.runner_environment);
    put("sourceRepositoryURI", &c.source_repository_uri);
    put("sourceRepositoryDigest", &c.source_repository_digest);
    put("sourceRepositoryRef", &c.source_repository_ref);
    put("buildConfigURI", &c.build_config_uri);
    put("buildTrigger", &c.build_trigger);
    put("runInvocationURI", &c.run_invocation_uri);
    m
}

fn verify_with_key(
    candidate: &Candidate,
    mut bundle: Bundle,
    key: &PublicKey,
    authority: &Authority,
    subject: &Subject,
    options: &Options,
) -> Result<Verified, Failure> {
    // The signature first, with imagegate's own check: it covers every scheme the key
    // allows and names the failure precisely (another key, or changed content).
    let scheme = check_key_signature(candidate, &bundle, key, subject, false)?;
    let has_entries = !bundle.verification_material.tlog_entries.is_empty();
    if let Some(why) = &candidate.unsupported_entry
        && authority.transparency_log() != TransparencyLog::Off
    {
        return Err(Failure::new(
            FailureKind::NotSupported,
            format!("this signature cannot be checked: {why}"),
        ));
    }
    let root = authority
        .trust_root()
        .filter(|r| r.has_rekor() || r.has_tsa());
    if has_entries && root.is_none_or(|r| !r.has_rekor()) {
        return Err(Failure::new(
            FailureKind::NoTrustRoot,
            format!(
                "the signature carries a transparency log entry, and authority {} has no trust root with a Rekor key to check it: give it one, or set transparencyLog: Off",
                authority.name()
            ),
        ));
    }
    if root.is_none_or(|r| !r.has_tsa()) {
        // Timestamps prove when a signature was made; a key has no validity window
        // for them to prove anything about, and there is no TSA to check them with.
        // With TSAs in the trust root, a timestamp that is present must verify.
        bundle
            .verification_material
            .timestamp_verification_data
            .rfc3161_timestamps
            .clear();
    }
    let mut log = None;
    let mut times = Vec::new();
    if has_entries || has_timestamps(&bundle) {
        let Some(root) = root else {
            return Err(Failure::new(
                FailureKind::Internal,
                "a log entry or timestamp to check and no trust root",
            ));
        };
        if matches!(
            scheme,
            SigningScheme::RsaPssSha256 | SigningScheme::RsaPssSha384 | SigningScheme::RsaPssSha512
        ) && has_entries
        {
            return Err(Failure::new(
                FailureKind::NotSupported,
                "an RSA-PSS signature with a Rekor entry: Rekor records RSA signatures as PKCS#1 v1.5, so imagegate cannot match the entry to this signature",
            ));
        }
        let mut policy = PublicKeyVerificationPolicy::new(key.der().clone());
        if !has_entries {
            policy = policy.skip_tlog_unsafe();
        }
        let cx = Cx {
            candidate,
            bundle: &bundle,
            subject,
            key: Some(key),
            leaf: None,
            authority,
        };
        let result = root
            .verifier()
            .verify(artifact(candidate, subject), &bundle, &policy)
            .map_err(|e| map_error(e, &cx))?;
        log = log_requirement(&bundle, &result, authority.transparency_log(), has_entries)?;
        times = verified_times(&result);
    }
    let (kind, statement) = check_payload(candidate, &bundle, subject, options)?;
    if authority.transparency_log() == TransparencyLog::Required && log.is_none() {
        return Err(log_required());
    }
    Ok(Verified {
        kind,
        statement,
        signer: SignerInfo::Key {
            fingerprint: key.fingerprint(),
        },
        log,
        verified_times: times,
        sct_verified: false,
    })
}

fn log_required() -> Failure {
    Failure::new(
        FailureKind::LogRequired,
        "the signature has no verified transparency log entry, and the authority requires one (transparencyLog: Required)",
    )
}

fn log_requirement(
    bundle: &Bundle,
    result: &VerificationResult,
    mode: TransparencyLog,
    has_entries: bool,
) -> Result<Option<LogProof>, Failure> {
    let proof = if has_entries && result.tlog_verified() {
        bundle
            .verification_material
            .tlog_entries
            .first()
            .map(|e| LogProof {
                log_index: e.log_index.get(),
                entry: format!("{}/{}", e.kind_version.kind(), e.kind_version.version()),
                integrated_time: e.integrated_time.map(format_time),
            })
    } else {
        None
    };
    if mode == TransparencyLog::Required && proof.is_none() {
        return Err(log_required());
    }
    Ok(proof)
}

/// Every verified time, in order, each once (a TSA and the log often agree to the second).
fn verified_times(result: &VerificationResult) -> Vec<String> {
    let mut times: Vec<_> = result.verified_timestamps().to_vec();
    times.sort();
    times.dedup();
    times.into_iter().map(format_time).collect()
}

pub(super) fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Checks the signature with `key` alone (no log, no timestamp), over what was
/// signed: the simple-signing payload, the DSSE PAE, or the subject.
fn check_key_signature(
    candidate: &Candidate,
    bundle: &Bundle,
    key: &PublicKey,
    subject: &Subject,
    keyless: bool,
) -> Result<SigningScheme, Failure> {
    let verified = match (&candidate.signed, &bundle.content) {
        (Signed::SimpleSigning(payload), SignatureContent::MessageSignature(m)) => {
            key.verify(payload, m.signature.as_bytes())
        }
        (Signed::Message, SignatureContent::MessageSignature(m)) => {
            if let Some(d) = &m.message_digest
                && d.algorithm == sigstore_verify::types::HashAlgorithm::Sha2256
                && d.digest.as_bytes() != subject.digest_bytes
            {
                return Err(Failure::new(
                    FailureKind::DigestMismatch,
                    format!(
                        "the signature is for sha256:{}, not {}",
                        hex::encode(d.digest.as_bytes()),
                        subject.digest
                    ),
                ));
            }
            match &subject.blob {
                Some(blob) => key.verify(blob, m.signature.as_bytes()),
                None => {
                    if key.algorithm_name() == "Ed25519" {
                        return Err(Failure::new(
                            FailureKind::NotSupported,
                            "an Ed25519 signature over the image manifest itself needs the manifest's bytes, which imagegate does not fetch; sign with cosign (a DSSE statement)",
                        ));
                    }
                    key.verify_sha256_prehashed(&subject.digest_bytes, m.signature.as_bytes())
                }
            }
        }
        (Signed::Dsse, SignatureContent::DsseEnvelope(env)) => {
            key.verify(&env.pae(), env.signature.sig.as_bytes())
        }
        _ => None,
    };
    verified.ok_or_else(|| {
        if keyless {
            tampered_keyless()
        } else {
            key_signature_failure(bundle, key)
        }
    })
}

/// What was signed, checked against the image under admission.
fn check_payload(
    candidate: &Candidate,
    bundle: &Bundle,
    subject: &Subject,
    options: &Options,
) -> Result<(MaterialKind, Option<VerifiedStatement>), Failure> {
    match &candidate.signed {
        Signed::SimpleSigning(payload) => {
            let p = payload::parse_simple_signing(payload)?;
            if !p.digest.eq_ignore_ascii_case(&subject.digest) {
                return Err(Failure::new(
                    FailureKind::DigestMismatch,
                    format!(
                        "the signature names {}, not {}: it was made for another image",
                        p.digest.chars().take(80).collect::<String>(),
                        subject.digest
                    ),
                ));
            }
            let signed_repo = normalize_repository(&p.docker_reference).map_err(|_| {
                Failure::new(
                    FailureKind::Malformed,
                    format!(
                        "the signed docker-reference `{}` is not an image reference",
                        p.docker_reference.chars().take(200).collect::<String>()
                    ),
                )
            })?;
            match &subject.repository {
                Some(repo) if *repo == signed_repo => {}
                Some(_) if options.allowed_repositories.contains(&signed_repo) => {}
                Some(repo) => {
                    return Err(Failure::new(
                        FailureKind::RepositoryMismatch,
                        format!(
                            "the signature was made for repository {signed_repo}, not {repo}: it was copied from another repository (if {signed_repo} is a mirror, allow it)"
                        ),
                    ));
                }
                None => {
                    return Err(Failure::new(
                        FailureKind::RepositoryMismatch,
                        format!(
                            "the signature was made for repository {signed_repo}, and no repository was given to compare it with"
                        ),
                    ));
                }
            }
            check_annotations(&p.annotations, options)?;
            Ok((MaterialKind::Signature, None))
        }
        Signed::Dsse => {
            let SignatureContent::DsseEnvelope(env) = &bundle.content else {
                return Err(Failure::new(
                    FailureKind::Internal,
                    "a DSSE candidate without an envelope",
                ));
            };
            let st = payload::parse_statement(&env.payload_type, env.payload.as_bytes())?;
            if !st.subject_digests.contains(&subject.digest) {
                return Err(digest_mismatch(&st.subject_digests, subject));
            }
            let kind = if st.predicate_type == COSIGN_SIGN_PREDICATE {
                MaterialKind::Signature
            } else {
                MaterialKind::Attestation
            };
            if kind == MaterialKind::Signature {
                let empty = Default::default();
                check_annotations(
                    st.subject_annotations
                        .get(&subject.digest)
                        .unwrap_or(&empty),
                    options,
                )?;
            }
            let size = env.payload.len();
            let predicate = (size <= options.limits.max_predicate_bytes).then_some(st.predicate);
            Ok((
                kind,
                Some(VerifiedStatement {
                    predicate_type: st.predicate_type,
                    predicate,
                    predicate_bytes: size,
                }),
            ))
        }
        Signed::Message => {
            check_annotations(&Default::default(), options)?;
            Ok((MaterialKind::Signature, None))
        }
    }
}

pub(super) fn digest_mismatch(named: &[String], subject: &Subject) -> Failure {
    Failure::new(
        FailureKind::DigestMismatch,
        format!(
            "the statement names {}, not {}: it was made for another image",
            payload::list_digests(named),
            subject.digest
        ),
    )
}

fn check_annotations(
    have: &std::collections::BTreeMap<String, String>,
    options: &Options,
) -> Result<(), Failure> {
    for (k, v) in &options.required_annotations {
        match have.get(k) {
            Some(got) if got == v => {}
            Some(got) => {
                return Err(Failure::new(
                    FailureKind::AnnotationMismatch,
                    format!("the signature's annotation {k} is `{got}`, not `{v}`"),
                ));
            }
            None => {
                return Err(Failure::new(
                    FailureKind::AnnotationMismatch,
                    format!("the signature has no annotation {k} (expected `{v}`)"),
                ));
            }
        }
    }
    Ok(())
}
