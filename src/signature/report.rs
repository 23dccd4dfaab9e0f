//! What verification found: for each piece of material and each authority, either
//! what verified (the kind, the statement, the signer, the proofs) or why not.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::failure::Failure;

/// A signature, or an attestation (an in-toto statement the engine judges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MaterialKind {
    /// A legacy simple-signing signature, a `cosign sign` bundle (predicate
    /// `https://sigstore.dev/cosign/sign/v1`), or a message signature over the image.
    Signature,
    /// An in-toto statement of any other predicate type.
    Attestation,
}

/// A verified in-toto statement.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedStatement {
    pub predicate_type: String,
    /// The predicate, when it is at most `Limits::max_predicate_bytes` long.
    pub predicate: Option<Value>,
    /// Its size as signed (serialized JSON), for the message when it is too large.
    pub predicate_bytes: usize,
}

/// Who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum SignerInfo {
    Key {
        /// `sha256:<hex>` of the DER public key.
        fingerprint: String,
    },
    Certificate {
        /// Subject alternative names (email or URI).
        subject: Vec<String>,
        /// OIDC issuer.
        issuer: Option<String>,
        /// Fulcio's CI claims that were present (e.g. `sourceRepositoryURI`).
        claims: BTreeMap<String, String>,
    },
}

/// The transparency log entry that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogProof {
    pub log_index: u64,
    /// `kind/version` of the entry (e.g. `hashedrekord/0.0.1`).
    pub entry: String,
    /// RFC 3339; Rekor v2 entries have none (their time comes from a timestamp).
    pub integrated_time: Option<String>,
}

/// A piece of material that verified for an authority.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub kind: MaterialKind,
    pub statement: Option<VerifiedStatement>,
    pub signer: SignerInfo,
    /// The verified log entry, if one was present and checked.
    pub log: Option<LogProof>,
    /// Every verified time (log integration, RFC 3161), RFC 3339.
    pub verified_times: Vec<String>,
    /// Whether the certificate's SCT was checked (false for keys, and for trust
    /// roots without CT logs).
    pub sct_verified: bool,
}

/// The outcome of one piece of material for one authority.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub authority: String,
    pub result: Result<Verified, Failure>,
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Outcome", 2)?;
        s.serialize_field("authority", &self.authority)?;
        match &self.result {
            Ok(v) => s.serialize_field("verified", v)?,
            Err(f) => s.serialize_field("failure", f)?,
        }
        s.end()
    }
}

/// One piece of material and its outcome for each authority (in the order the
/// authorities were given).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaterialReport {
    pub origin: String,
    /// "bundle v0.3", "legacy .sig layer", ...
    pub format: String,
    pub outcomes: Vec<Outcome>,
}

/// Everything [`super::verify`] found. Cheap to clone and cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub materials: Vec<MaterialReport>,
}

impl Report {
    /// Every verification by `authority`, with the material's origin.
    pub fn verified<'a>(
        &'a self,
        authority: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Verified)> + 'a {
        self.outcomes(authority)
            .filter_map(|(origin, o)| o.result.as_ref().ok().map(|v| (origin, v)))
    }

    /// Whether `authority` verified at least one signature (not attestation).
    pub fn signature_verified(&self, authority: &str) -> bool {
        self.verified(authority)
            .any(|(_, v)| v.kind == MaterialKind::Signature)
    }

    /// The statements of `predicate_type` that `authority` verified.
    pub fn attestations<'a>(
        &'a self,
        authority: &'a str,
        predicate_type: &'a str,
    ) -> impl Iterator<Item = &'a VerifiedStatement> + 'a {
        self.verified(authority).filter_map(move |(_, v)| {
            v.statement.as_ref().filter(|s| {
                v.kind == MaterialKind::Attestation && s.predicate_type == predicate_type
            })
        })
    }

    /// Every failure for `authority`, with the material's origin.
    pub fn failures<'a>(
        &'a self,
        authority: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Failure)> + 'a {
        self.outcomes(authority)
            .filter_map(|(origin, o)| o.result.as_ref().err().map(|f| (origin, f)))
    }

    /// The failure that says most (see `FailureKind::rank`); the first of equals.
    pub fn best_failure<'a>(&'a self, authority: &'a str) -> Option<(&'a str, &'a Failure)> {
        let mut best: Option<(&str, &Failure)> = None;
        for (origin, f) in self.failures(authority) {
            if best.is_none_or(|(_, b)| f.kind.rank() > b.kind.rank()) {
                best = Some((origin, f));
            }
        }
        best
    }

    fn outcomes<'a>(
        &'a self,
        authority: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Outcome)> + 'a {
        self.materials.iter().flat_map(move |m| {
            m.outcomes
                .iter()
                .filter(move |o| o.authority == authority)
                .map(move |o| (m.origin.as_str(), o))
        })
    }
}
