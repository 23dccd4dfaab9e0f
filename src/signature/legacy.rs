//! Legacy cosign layers (`.sig` simple-signing, `.att` DSSE) turned into the
//! Sigstore bundle they amount to, so that sigstore-verify checks them like any
//! bundle: the signature, the certificate and chain, the Rekor entry of
//! `dev.sigstore.cosign/bundle` (SET and integrated time, AND the logged body
//! matched to this signature, key or certificate, and payload) and the RFC 3161
//! timestamp of `dev.sigstore.cosign/rfc3161timestamp`.

use base64::Engine;
use serde_json::json;
use sigstore_verify::types::{Bundle, MediaType};

use super::cert;
use super::failure::{Failure, FailureKind};
use super::keys::sha256;
use super::limits::Limits;
use super::material::{LegacyKind, LegacyLayer, annotations};
use super::verify::{Candidate, Signed, legacy_format, too_large};

/// Turns a legacy `.sig` or `.att` layer into the bundle(s) it amounts to: the
/// signature (or each DSSE signature), the certificate and chain, the Rekor entry of
/// `dev.sigstore.cosign/bundle` (SET, integrated time, body), and the RFC 3161
/// timestamp. sigstore-verify then checks the SET AND that the logged body is this
/// signature, key and payload (sigstore-rs 0.15 accepted a SET over `{}`).
pub(super) fn prepare_legacy(
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
