//! What a failed verification means for the application team: sigstore-verify's
//! errors and imagegate's own checks turned into a [`Failure`] that says what is
//! wrong and, where there is one, what to do.

use std::time::SystemTime;

use base64::Engine;
use sigstore_verify::types::Bundle;
use sigstore_verify::types::SignatureContent;
use sigstore_verify::types::bundle::VerificationMaterialContent;

use super::authority::{Authority, TransparencyLog};
use super::cert::{self, CertFacts};
use super::failure::{Failure, FailureKind};
use super::keys::PublicKey;
use super::payload;
use super::verify::{Candidate, Signed, Subject, digest_mismatch, format_time};

pub(super) fn tampered_keyless() -> Failure {
    Failure::new(
        FailureKind::Tampered,
        "the signature does not verify with the signing certificate's key: the signed content was changed after signing",
    )
}

/// A signature that does not verify with the authority's key: another key made it
/// (when the material says which key: the bundle's key hint or the logged key), or
/// the content was changed after signing. The hint and the logged key are not
/// authenticated here; they only choose the words of a refusal.
pub(super) fn key_signature_failure(bundle: &Bundle, key: &PublicKey) -> Failure {
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

/// What a sigstore-verify error means for the application team.
pub(super) struct Cx<'a> {
    pub(super) candidate: &'a Candidate,
    pub(super) bundle: &'a Bundle,
    pub(super) subject: &'a Subject,
    pub(super) key: Option<&'a PublicKey>,
    pub(super) leaf: Option<&'a CertFacts>,
    pub(super) authority: &'a Authority,
}

pub(super) fn map_error(e: sigstore_verify::Error, cx: &Cx<'_>) -> Failure {
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
                        cx.subject.digest_str()
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
