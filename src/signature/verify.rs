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
use std::time::SystemTime;

use base64::Engine;
use serde_json::json;
use sigstore_verify::crypto::SigningScheme;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Artifact, Bundle, MediaType, Sha256Hash, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};

use super::authority::{Authority, Identity, Signer, TransparencyLog};
use super::cert::{self, CertFacts};
use super::failure::{Failure, FailureKind, InputError};
use super::keys::{PublicKey, sha256};
use super::limits::Limits;
use super::material::{
    BundleLayer, LegacyKind, LegacyLayer, Material, annotations, is_bundle_media_type,
};
use super::payload::{self, COSIGN_SIGN_PREDICATE};
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

fn legacy_format(kind: LegacyKind) -> &'static str {
    match kind {
        LegacyKind::Signature => "legacy .sig layer",
        LegacyKind::Attestation => "legacy .att layer",
    }
}

/// What was signed, and so how the signature is checked and what the payload
/// check reads.
#[derive(Debug, Clone)]
enum Signed {
    /// A legacy simple-signing payload: the signed message.
    SimpleSigning(Vec<u8>),
    /// A DSSE envelope holding a statement about the subject.
    Dsse,
    /// A message signature over the subject itself.
    Message,
}

/// One signature to check, as a bundle (legacy layers are converted).
#[derive(Debug, Clone)]
struct Candidate {
    bundle: Bundle,
    signed: Signed,
    /// A legacy log entry of a kind imagegate cannot verify (why).
    unsupported_entry: Option<String>,
}

fn prepare(material: &Material, limits: &Limits) -> Result<(String, Vec<Candidate>), Failure> {
    match material {
        Material::Bundle(layer) => prepare_bundle(layer, limits),
        Material::Legacy(layer) => prepare_legacy(layer, limits),
    }
}

fn too_large(what: &str, size: usize, max: usize) -> Failure {
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

/// Turns a legacy `.sig` or `.att` layer into the bundle(s) it amounts to: the
/// signature (or each DSSE signature), the certificate and chain, the Rekor entry of
/// `dev.sigstore.cosign/bundle` (SET, integrated time, body), and the RFC 3161
/// timestamp. sigstore-verify then checks the SET AND that the logged body is this
/// signature, key and payload (sigstore-rs 0.15 accepted a SET over `{}`).
fn prepare_legacy(
    layer: &LegacyLayer,
    limits: &Limits,
) -> Result<(String, Vec<Candidate>), Failure> {
    let format = legacy_format(layer.kind).to_string();
    let expected = LegacyKind::from_media_type(&layer.media_type);
    if expected != Some(layer.kind) {
        return Err(Failure::new(
            FailureKind::Unsupported,
            format!(
                "the {format} has media type `{}`, not {}",
                layer.media_type.chars().take(200).collect::<String>(),
                match layer.kind {
                    LegacyKind::Signature => super::material::SIMPLE_SIGNING_MEDIA_TYPE,
                    LegacyKind::Attestation => super::material::DSSE_MEDIA_TYPE,
                }
            ),
        ));
    }
    if layer.bytes.len() > limits.max_material_bytes {
        return Err(too_large(
            &format!("the {format}"),
            layer.bytes.len(),
            limits.max_material_bytes,
        ));
    }
    if layer.annotations.len() > limits.max_annotations {
        return Err(Failure::new(
            FailureKind::TooLarge,
            format!(
                "the {format} has {} annotations; at most {} are read",
                layer.annotations.len(),
                limits.max_annotations
            ),
        ));
    }
    for (k, v) in &layer.annotations {
        if k.len() + v.len() > limits.max_annotation_bytes {
            return Err(too_large(
                &format!(
                    "the annotation `{}`",
                    k.chars().take(100).collect::<String>()
                ),
                k.len() + v.len(),
                limits.max_annotation_bytes,
            ));
        }
    }
    let actual = format!("sha256:{}", hex::encode(sha256(&layer.bytes)));
    if !layer.digest.eq_ignore_ascii_case(&actual) {
        return Err(Failure::new(
            FailureKind::Malformed,
            format!(
                "the {format}'s bytes hash to {actual}, not to its descriptor's digest {}",
                layer.digest.chars().take(80).collect::<String>()
            ),
        ));
    }
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let material = legacy_verification_material(layer, limits, &b64)?;
    let (tlog_entries, unsupported_entry) = legacy_tlog_entry(layer)?;
    let timestamps = legacy_timestamp(layer)?;
    let media_type = if tlog_entries.is_empty() {
        MediaType::Bundle0_2
    } else {
        MediaType::Bundle0_1
    };
    let build = |content: serde_json::Value| -> Result<Bundle, Failure> {
        let mut doc = json!({
            "mediaType": media_type.as_str(),
            "verificationMaterial": material.clone(),
        });
        doc["verificationMaterial"]["tlogEntries"] = json!(tlog_entries);
        doc["verificationMaterial"]["timestampVerificationData"] =
            json!({"rfc3161Timestamps": timestamps});
        let obj = doc.as_object_mut().expect("a JSON object");
        if let serde_json::Value::Object(c) = content {
            obj.extend(c);
        }
        serde_json::from_value(doc).map_err(|e| {
            Failure::new(
                FailureKind::Malformed,
                format!("the {format}'s signature material cannot be read: {e}"),
            )
        })
    };
    let mut candidates = Vec::new();
    match layer.kind {
        LegacyKind::Signature => {
            let sig = layer
                .annotations
                .get(annotations::SIGNATURE)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    Failure::new(
                        FailureKind::Malformed,
                        format!(
                            "the {format} has no `{}` annotation: it carries no signature",
                            annotations::SIGNATURE
                        ),
                    )
                })?;
            let bundle = build(json!({"messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&sha256(&layer.bytes))},
                "signature": sig.trim(),
            }}))?;
            candidates.push(Candidate {
                bundle,
                signed: Signed::SimpleSigning(layer.bytes.clone()),
                unsupported_entry: unsupported_entry.clone(),
            });
        }
        LegacyKind::Attestation => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Envelope {
                payload_type: String,
                payload: String,
                #[serde(default)]
                signatures: Vec<serde_json::Value>,
            }
            let env: Envelope = serde_json::from_slice(&layer.bytes).map_err(|e| {
                Failure::new(
                    FailureKind::Malformed,
                    format!("the {format} is not a DSSE envelope: {e}"),
                )
            })?;
            if env.signatures.is_empty() {
                return Err(Failure::new(
                    FailureKind::Malformed,
                    format!("the {format}'s DSSE envelope has no signature"),
                ));
            }
            if env.signatures.len() > limits.max_envelope_signatures {
                return Err(Failure::new(
                    FailureKind::TooLarge,
                    format!(
                        "the DSSE envelope has {} signatures; at most {} are read",
                        env.signatures.len(),
                        limits.max_envelope_signatures
                    ),
                ));
            }
            for sig in env.signatures {
                let bundle = build(json!({"dsseEnvelope": {
                    "payloadType": env.payload_type,
                    "payload": env.payload,
                    "signatures": [sig],
                }}))?;
                candidates.push(Candidate {
                    bundle,
                    signed: Signed::Dsse,
                    unsupported_entry: unsupported_entry.clone(),
                });
            }
        }
    }
    Ok((format, candidates))
}

fn legacy_verification_material(
    layer: &LegacyLayer,
    limits: &Limits,
    b64: &dyn Fn(&[u8]) -> String,
) -> Result<serde_json::Value, Failure> {
    let Some(cert_pem) = layer
        .annotations
        .get(annotations::CERTIFICATE)
        .filter(|c| !c.trim().is_empty())
    else {
        return Ok(json!({"publicKey": {"hint": ""}}));
    };
    let pem_err = |what: &str, e: String| {
        Failure::new(
            FailureKind::Malformed,
            format!("the {what} annotation is not PEM: {e}"),
        )
    };
    let leaf = pem::parse_many(cert_pem.as_bytes())
        .map_err(|e| pem_err(annotations::CERTIFICATE, e.to_string()))?;
    let leaf = leaf
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| pem_err(annotations::CERTIFICATE, "no CERTIFICATE block".into()))?;
    let mut certs = vec![leaf.into_contents()];
    if let Some(chain) = layer.annotations.get(annotations::CHAIN) {
        let blocks = pem::parse_many(chain.as_bytes())
            .map_err(|e| pem_err(annotations::CHAIN, e.to_string()))?;
        for block in blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE") {
            let der = block.into_contents();
            // cosign puts the Fulcio root into the chain annotation. A root can only
            // come from the trust root, so it is left out rather than trusted.
            match cert::parse(&der) {
                Ok(facts) if facts.self_signed => continue,
                _ => certs.push(der),
            }
        }
    }
    if certs.len() > limits.max_chain_certificates {
        return Err(Failure::new(
            FailureKind::TooLarge,
            format!(
                "the certificate chain has {} certificates; at most {} are read",
                certs.len(),
                limits.max_chain_certificates
            ),
        ));
    }
    Ok(json!({"x509CertificateChain": {"certificates":
        certs.iter().map(|c| json!({"rawBytes": b64(c)})).collect::<Vec<_>>()}}))
}

/// The `dev.sigstore.cosign/bundle` annotation as a bundle tlog entry, and, for a
/// kind sigstore-verify cannot check (intoto 0.0.1, written by cosign before 2.0),
/// why not.
fn legacy_tlog_entry(
    layer: &LegacyLayer,
) -> Result<(Vec<serde_json::Value>, Option<String>), Failure> {
    let Some(raw) = layer
        .annotations
        .get(annotations::BUNDLE)
        .filter(|b| !b.trim().is_empty())
    else {
        return Ok((Vec::new(), None));
    };
    let bad = |e: String| {
        Failure::new(
            FailureKind::Malformed,
            format!(
                "the `{}` annotation (the Rekor entry) cannot be read: {e}",
                annotations::BUNDLE
            ),
        )
    };
    #[derive(serde::Deserialize)]
    struct RekorBundle {
        #[serde(rename = "SignedEntryTimestamp")]
        set: String,
        #[serde(rename = "Payload")]
        payload: RekorPayload,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct RekorPayload {
        body: String,
        integrated_time: i64,
        log_index: i64,
        #[serde(rename = "logID")]
        log_id: String,
    }
    let parsed: RekorBundle = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let p = parsed.payload;
    let body = base64::engine::general_purpose::STANDARD
        .decode(p.body.trim())
        .map_err(|e| bad(format!("the body is not base64: {e}")))?;
    let log_id = hex::decode(&p.log_id).map_err(|e| bad(format!("the logID is not hex: {e}")))?;
    if p.log_index < 0 || p.integrated_time < 0 {
        return Err(bad("negative log index or time".into()));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kind {
        kind: String,
        api_version: String,
    }
    // The logged body must say what it records: a body of `{}` (a SET over nothing)
    // describes no signature and is refused here, before any key is tried.
    let kind: Kind = serde_json::from_slice(&body).map_err(|_| {
        Failure::new(
            FailureKind::LogMismatch,
            "the log entry does not match this signature: its body is not a Rekor entry (it names no kind)",
        )
    })?;
    let supported = matches!(
        (kind.kind.as_str(), kind.api_version.as_str()),
        ("hashedrekord", "0.0.1") | ("dsse", "0.0.1") | ("intoto", "0.0.2")
    );
    let entry = json!({
        "logIndex": p.log_index.to_string(),
        "logId": {"keyId": base64::engine::general_purpose::STANDARD.encode(&log_id)},
        "kindVersion": {"kind": kind.kind, "version": kind.api_version},
        "integratedTime": p.integrated_time.to_string(),
        "inclusionPromise": {"signedEntryTimestamp": parsed.set.trim()},
        "canonicalizedBody": p.body.trim(),
    });
    if supported {
        Ok((vec![entry], None))
    } else {
        Ok((
            Vec::new(),
            Some(format!(
                "its Rekor entry is of kind {} {}, which imagegate does not verify (cosign before v2.0 wrote intoto 0.0.1): sign again with a current cosign, or set transparencyLog: Off for a key authority",
                kind.kind, kind.api_version
            )),
        ))
    }
}

fn legacy_timestamp(layer: &LegacyLayer) -> Result<Vec<serde_json::Value>, Failure> {
    let Some(raw) = layer
        .annotations
        .get(annotations::RFC3161_TIMESTAMP)
        .filter(|b| !b.trim().is_empty())
    else {
        return Ok(Vec::new());
    };
    #[derive(serde::Deserialize)]
    struct Ts {
        #[serde(rename = "SignedRFC3161Timestamp")]
        signed: String,
    }
    let ts: Ts = serde_json::from_str(raw).map_err(|e| {
        Failure::new(
            FailureKind::Malformed,
            format!(
                "the `{}` annotation cannot be read: {e}",
                annotations::RFC3161_TIMESTAMP
            ),
        )
    })?;
    Ok(vec![json!({"signedTimestamp": ts.signed.trim()})])
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
        verified_times: result
            .verified_timestamps()
            .iter()
            .map(|t| format_time(*t))
            .collect(),
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
    if root.is_none() {
        // Timestamps prove when a signature was made; a key has no validity window
        // for them to prove anything about, and there is no TSA to check them with.
        bundle
            .verification_material
            .timestamp_verification_data
            .rfc3161_timestamps
            .clear();
    }
    let mut log = None;
    let mut times = Vec::new();
    if has_entries || has_timestamps(&bundle) {
        let root = root.expect("checked above");
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
        times = result
            .verified_timestamps()
            .iter()
            .map(|t| format_time(*t))
            .collect();
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

fn format_time(t: jiff::Timestamp) -> String {
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

fn tampered_keyless() -> Failure {
    Failure::new(
        FailureKind::Tampered,
        "the signature does not verify with the signing certificate's key: the signed content was changed after signing",
    )
}

/// A signature that does not verify with the authority's key: another key made it
/// (when the material says which key: the bundle's key hint or the logged key), or
/// the content was changed after signing.
fn key_signature_failure(bundle: &Bundle, key: &PublicKey) -> Failure {
    let hint = match &bundle.verification_material.content {
        VerificationMaterialContent::PublicKey(p) if !p.hint.is_empty() => Some(p.hint.clone()),
        _ => None,
    };
    let signer_is_key = match hint {
        Some(hint) => Some(hint == key.bundle_hint()),
        None => logged_key(bundle).map(|der| key.is(&der)),
    };
    match signer_is_key {
        Some(false) => Failure::new(
            FailureKind::WrongKey,
            format!(
                "signed by another key, not by {} {}",
                key.algorithm_name(),
                key.fingerprint()
            ),
        ),
        Some(true) => Failure::new(
            FailureKind::Tampered,
            format!(
                "the signature names key {} but does not verify with it: the signed content was changed after signing",
                key.fingerprint()
            ),
        ),
        None => Failure::new(
            FailureKind::BadSignature,
            format!(
                "the signature does not verify with {} {}: signed by another key, or changed after signing",
                key.algorithm_name(),
                key.fingerprint()
            ),
        ),
    }
}

/// The public key a hashedrekord or dsse log entry records (DER SPKI), if it
/// records a key rather than a certificate.
fn logged_key(bundle: &Bundle) -> Option<Vec<u8>> {
    let entry = bundle.verification_material.tlog_entries.first()?;
    let body: serde_json::Value =
        serde_json::from_slice(entry.canonicalized_body.as_bytes()).ok()?;
    let b64 = body
        .pointer("/spec/signature/publicKey/content")
        .or_else(|| body.pointer("/spec/signatures/0/verifier"))?
        .as_str()?;
    let pem_bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let block = pem::parse(pem_bytes).ok()?;
    (block.tag() == "PUBLIC KEY").then(|| block.into_contents())
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

fn digest_mismatch(named: &[String], subject: &Subject) -> Failure {
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

/// What a sigstore-verify error means for the application team.
struct Cx<'a> {
    candidate: &'a Candidate,
    bundle: &'a Bundle,
    subject: &'a Subject,
    key: Option<&'a PublicKey>,
    leaf: Option<&'a CertFacts>,
    authority: &'a Authority,
}

fn map_error(e: sigstore_verify::Error, cx: &Cx<'_>) -> Failure {
    use sigstore_verify::Error as E;
    use sigstore_verify::bundle::Error as B;
    use sigstore_verify::error::{
        CertificateError as C, TimestampError as Ts, TransparencyLogError as T,
    };
    let text = e.to_string();
    let f = Failure::new;
    match e {
        E::SignatureInvalid(_) => match cx.key {
            Some(key) => key_signature_failure(cx.bundle, key),
            None => tampered_keyless(),
        },
        E::ArtifactMismatch(m) => {
            if m.contains("hashedrekord") || m.contains("entry") {
                f(
                    FailureKind::LogMismatch,
                    format!("the log entry does not match this signature: {m}"),
                )
            } else if let Signed::Dsse = cx.candidate.signed {
                match cx.bundle.content {
                    SignatureContent::DsseEnvelope(ref env) => {
                        match payload::parse_statement(&env.payload_type, env.payload.as_bytes()) {
                            Ok(st) => digest_mismatch(&st.subject_digests, cx.subject),
                            Err(failure) => failure,
                        }
                    }
                    _ => f(FailureKind::DigestMismatch, m),
                }
            } else {
                f(
                    FailureKind::DigestMismatch,
                    format!(
                        "the signature is for another digest than {}: {m}",
                        cx.subject.digest
                    ),
                )
            }
        }
        E::Certificate(c) => match c {
            C::Sct(m) => f(
                FailureKind::SctInvalid,
                format!("the certificate's SCT is not signed by a CT log of the trust root: {m}"),
            ),
            C::Expired { time, not_after } => f(
                FailureKind::CertificateNotValidAtTime,
                format!(
                    "the certificate expired at {} and the signature was made at {} (by the log or timestamp)",
                    format_time(not_after),
                    format_time(time)
                ),
            ),
            C::NotYetValid { time, not_before } => f(
                FailureKind::CertificateNotValidAtTime,
                format!(
                    "the signature was made at {} (by the log or timestamp), before the certificate was valid ({})",
                    format_time(time),
                    format_time(not_before)
                ),
            ),
            C::ChainInvalid(m) if m.contains("CertExpired") || m.contains("CertNotValidYet") => f(
                FailureKind::CertificateNotValidAtTime,
                format!(
                    "the certificate chain was not valid at the time the log or timestamp attests: {m}"
                ),
            ),
            C::Malformed(m) => f(
                FailureKind::Malformed,
                format!("the signing certificate: {m}"),
            ),
            _ => f(
                FailureKind::UntrustedCertificate,
                format!(
                    "the signing certificate does not chain to a Fulcio CA of the trust root ({}): {text}",
                    cx.authority
                        .trust_root()
                        .map(|r| r.description())
                        .unwrap_or("none")
                ),
            ),
        },
        E::TransparencyLog(t) => match t {
            T::UnknownLog { .. } | T::InclusionPromise(_) => f(
                FailureKind::LogUntrusted,
                format!("the log entry is not signed by a Rekor key of the trust root: {text}"),
            ),
            T::Checkpoint(m) if m.contains("No matching") || m.contains("No valid") => f(
                FailureKind::LogUntrusted,
                format!(
                    "the log entry's checkpoint is not signed by a Rekor key of the trust root: {m}"
                ),
            ),
            T::EntryMismatch(m) | T::MalformedEntry(m) => f(
                FailureKind::LogMismatch,
                format!("the log entry does not match this signature: {m}"),
            ),
            T::IntegratedTime(m) if m.contains("certificate validity") => f(
                FailureKind::CertificateNotValidAtTime,
                format!("the log entry's time is outside the certificate's validity: {m}"),
            ),
            _ => f(
                FailureKind::LogInvalid,
                format!("the log entry does not verify: {text}"),
            ),
        },
        E::Timestamp(Ts::NoVerifiedTimestamp(_)) => no_time_proof(cx),
        E::Timestamp(_) => f(
            FailureKind::TimestampInvalid,
            format!(
                "an RFC 3161 timestamp does not verify against a TSA of the trust root: {text}"
            ),
        ),
        E::Bundle(B::MissingSigningTimeEvidence) => no_time_proof(cx),
        E::Bundle(B::MissingInclusionProof(_)) | E::Bundle(B::MissingCheckpoint) => f(
            FailureKind::LogInvalid,
            format!(
                "the log entry has no inclusion proof with a checkpoint, which this bundle version requires: {text}"
            ),
        ),
        E::Bundle(b)
            if b.to_string().contains("inclusion") || b.to_string().contains("checkpoint") =>
        {
            f(
                FailureKind::LogInvalid,
                format!("the log entry does not verify: {text}"),
            )
        }
        E::UnsupportedBundle(m) => f(FailureKind::Unsupported, format!("the bundle: {m}")),
        E::UnsupportedArtifact(m) => f(FailureKind::NotSupported, m),
        _ => f(
            FailureKind::Malformed,
            format!("the signature material cannot be verified: {text}"),
        ),
    }
}

/// Keyless material with no log entry and no timestamp: nothing proves the
/// signature was made while the (short-lived) certificate was valid.
fn no_time_proof(cx: &Cx<'_>) -> Failure {
    let off = if cx.authority.transparency_log() == TransparencyLog::Off {
        " (transparencyLog is Off, so log entries are not read)"
    } else {
        ""
    };
    let Some(leaf) = cx.leaf else {
        return Failure::new(
            FailureKind::NoTimeProof,
            format!("nothing proves when the signature was made{off}"),
        );
    };
    let now = SystemTime::now();
    if now > leaf.not_after {
        Failure::new(
            FailureKind::CertificateExpired,
            format!(
                "certificate expired at {} and no log entry or timestamp proves it was used before{off}",
                cert::rfc3339(leaf.not_after)
            ),
        )
    } else if now < leaf.not_before {
        Failure::new(
            FailureKind::CertificateNotValidAtTime,
            format!(
                "certificate is not valid before {}{off}",
                cert::rfc3339(leaf.not_before)
            ),
        )
    } else {
        Failure::new(
            FailureKind::NoTimeProof,
            format!(
                "no log entry or timestamp proves when the signature was made, and a keyless signature needs one (the certificate is valid from {} to {}){off}",
                cert::rfc3339(leaf.not_before),
                cert::rfc3339(leaf.not_after)
            ),
        )
    }
}
