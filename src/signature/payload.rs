//! The signed payloads: cosign's simple-signing JSON (legacy `.sig`) and in-toto
//! statements (DSSE in bundles and legacy `.att`). Parsed only after the signature
//! over them verified; every check here says what was signed and for what.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::failure::{Failure, FailureKind};

pub(crate) const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];
/// The predicate type of `cosign sign` in the bundle format (cosign v3): a
/// signature, not an attestation.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

#[derive(Debug, Deserialize)]
struct SimpleSigning {
    critical: Critical,
    #[serde(default)]
    optional: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct Critical {
    identity: SsIdentity,
    image: SsImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct SsIdentity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Deserialize)]
struct SsImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// A verified simple-signing payload.
#[derive(Debug, Clone)]
pub(crate) struct SimpleSigningPayload {
    pub docker_reference: String,
    pub digest: String,
    /// `optional`: cosign's `-a key=value` annotations (strings only).
    pub annotations: BTreeMap<String, String>,
}

pub(crate) fn parse_simple_signing(bytes: &[u8]) -> Result<SimpleSigningPayload, Failure> {
    let parsed: SimpleSigning = serde_json::from_slice(bytes).map_err(|e| {
        Failure::new(
            FailureKind::Malformed,
            format!("the signed payload is not a cosign simple-signing document: {e}"),
        )
    })?;
    if parsed.critical.kind != SIMPLE_SIGNING_TYPE {
        return Err(Failure::new(
            FailureKind::Unsupported,
            format!(
                "the signed payload has type `{}`, not `{SIMPLE_SIGNING_TYPE}`",
                parsed.critical.kind
            ),
        ));
    }
    let annotations = parsed
        .optional
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect();
    Ok(SimpleSigningPayload {
        docker_reference: parsed.critical.identity.docker_reference,
        digest: parsed.critical.image.docker_manifest_digest,
        annotations,
    })
}

/// A verified in-toto statement, as much as the engine reads of it.
#[derive(Debug, Clone)]
pub(crate) struct ParsedStatement {
    pub predicate_type: String,
    pub predicate: Value,
    /// `sha256:<hex>` of every subject.
    pub subject_digests: Vec<String>,
    /// Annotations of each subject, by its sha256 digest.
    pub subject_annotations: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct WireStatement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<WireSubject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    predicate: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireSubject {
    #[serde(default)]
    digest: BTreeMap<String, String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, Value>>,
}

pub(crate) fn parse_statement(
    payload_type: &str,
    bytes: &[u8],
) -> Result<ParsedStatement, Failure> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Failure::new(
            FailureKind::Unsupported,
            format!(
                "the DSSE envelope holds `{payload_type}`, not an in-toto statement ({IN_TOTO_PAYLOAD_TYPE})"
            ),
        ));
    }
    let wire: WireStatement = serde_json::from_slice(bytes).map_err(|e| {
        Failure::new(
            FailureKind::Malformed,
            format!("the DSSE payload is not an in-toto statement: {e}"),
        )
    })?;
    if !STATEMENT_TYPES.contains(&wire.kind.as_str()) {
        return Err(Failure::new(
            FailureKind::Unsupported,
            format!(
                "the statement has _type `{}`; imagegate reads in-toto Statement v0.1 and v1",
                wire.kind
            ),
        ));
    }
    let mut subject_digests = Vec::new();
    let mut subject_annotations = BTreeMap::new();
    for s in &wire.subject {
        if let Some(hex) = s.digest.get("sha256") {
            let digest = format!("sha256:{}", hex.to_ascii_lowercase());
            if let Some(ann) = &s.annotations {
                subject_annotations.insert(
                    digest.clone(),
                    ann.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect(),
                );
            }
            subject_digests.push(digest);
        }
    }
    Ok(ParsedStatement {
        predicate_type: wire.predicate_type,
        predicate: wire
            .predicate
            .unwrap_or_else(|| Value::Object(Default::default())),
        subject_digests,
        subject_annotations,
    })
}

/// "sha256:aaa, sha256:bbb" (at most 3, then "and N more").
pub(crate) fn list_digests(digests: &[String]) -> String {
    if digests.is_empty() {
        return "no sha256 digest".into();
    }
    let mut s = digests
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if digests.len() > 3 {
        s.push_str(&format!(" and {} more", digests.len() - 3));
    }
    s
}
