//! Trust roots: the Fulcio CAs, Rekor keys, CT log keys and TSAs a user trusts.
//! A trust root is data the user gives; nothing is ever fetched.
//!
//! Two spellings: a Sigstore `trusted_root.json` (what `cosign trusted-root create`
//! writes and what TUF distributes), or separate PEM files as cosign's flags and
//! environment variables take them (`--certificate-chain`, `SIGSTORE_REKOR_PUBLIC_KEY`,
//! `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE`, `--timestamp-certificate-chain`). The PEM
//! spelling is turned into the same `trusted_root.json` structure (sigstore-trust-root's
//! types are `non_exhaustive` and built only by deserializing), with each log's ID
//! computed as the SHA-256 of its DER public key, as Rekor v1 and RFC 6962 define it.
//! Unlike sigstore-rs 0.15's `ManualTrustRoot`, a PEM Rekor key is never dropped: a
//! key that cannot be read is an error.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use sigstore_verify::Verifier;
use sigstore_verify::trust_root::TrustedRoot;

use super::failure::TrustRootError;
use super::keys::sha256;
use super::limits::MAX_TRUST_FILE_BYTES;

/// A prepared trust root: parsed and checked once, then shared (`Arc`) by every
/// authority that names it and every verification.
pub struct TrustRoot {
    verifier: Verifier,
    root: TrustedRoot,
    description: String,
}

impl std::fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustRoot({})", self.description)
    }
}

/// The PEM spelling of a trust root. Each entry is the content of one file; a file
/// may hold several PEM blocks.
#[derive(Debug, Clone, Default)]
pub struct TrustRootPem {
    /// Fulcio CA chains: each file is one CA's chain (intermediates and root, in any
    /// order). Every certificate in it is trusted as an anchor, as cosign does.
    pub fulcio_chains: Vec<Vec<u8>>,
    /// Rekor (transparency log) public keys.
    pub rekor_keys: Vec<Vec<u8>>,
    /// Certificate Transparency log public keys (for the SCTs in Fulcio certificates).
    pub ctlog_keys: Vec<Vec<u8>>,
    /// TSA chains: each file is one TSA's chain, leaf first, root last.
    pub tsa_chains: Vec<Vec<u8>>,
}

impl TrustRoot {
    /// Reads a Sigstore `trusted_root.json`.
    pub fn from_trusted_root_json(bytes: &[u8]) -> Result<Arc<Self>, TrustRootError> {
        check_size(bytes)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|e| TrustRootError::TrustedRootJson(format!("not UTF-8: {e}")))?;
        let root = TrustedRoot::from_json(text)
            .map_err(|e| TrustRootError::TrustedRootJson(e.to_string()))?;
        let description = describe(&root, "trusted_root.json");
        Self::build(root, description)
    }

    /// Builds a trust root from PEM files.
    pub fn from_pem(pem: &TrustRootPem) -> Result<Arc<Self>, TrustRootError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut tlogs = Vec::new();
        for (i, file) in pem.rekor_keys.iter().enumerate() {
            for der in public_keys(file, &format!("Rekor key file {}", i + 1))? {
                tlogs.push(log_json(&der, &b64));
            }
        }
        let mut ctlogs = Vec::new();
        for (i, file) in pem.ctlog_keys.iter().enumerate() {
            for der in public_keys(file, &format!("CT log key file {}", i + 1))? {
                ctlogs.push(log_json(&der, &b64));
            }
        }
        let mut cas = Vec::new();
        for (i, file) in pem.fulcio_chains.iter().enumerate() {
            let certs = certificates(file, &format!("Fulcio chain file {}", i + 1))?;
            cas.push(json!({
                "subject": {}, "uri": "",
                "certChain": {"certificates": certs.iter().map(|c| json!({"rawBytes": b64(c)})).collect::<Vec<_>>()},
            }));
        }
        let mut tsas = Vec::new();
        for (i, file) in pem.tsa_chains.iter().enumerate() {
            let certs = certificates(file, &format!("TSA chain file {}", i + 1))?;
            tsas.push(json!({
                "subject": {},
                "certChain": {"certificates": certs.iter().map(|c| json!({"rawBytes": b64(c)})).collect::<Vec<_>>()},
            }));
        }
        if tlogs.is_empty() && cas.is_empty() && tsas.is_empty() && ctlogs.is_empty() {
            return Err(TrustRootError::Empty);
        }
        let doc = json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": tlogs,
            "certificateAuthorities": cas,
            "ctlogs": ctlogs,
            "timestampAuthorities": tsas,
        });
        let root: TrustedRoot = serde_json::from_value(doc)
            .map_err(|e| TrustRootError::Invalid(format!("building it from PEM files: {e}")))?;
        let description = describe(&root, "PEM files");
        Self::build(root, description)
    }

    fn build(root: TrustedRoot, description: String) -> Result<Arc<Self>, TrustRootError> {
        // sigstore-rs 0.15 silently drops what it cannot read; here a Rekor or CT key
        // that sigstore-verify would skip is an error the user sees.
        root.rekor_keys()
            .map_err(|e| TrustRootError::Invalid(e.to_string()))?;
        let readable_rekor = root
            .tlogs
            .iter()
            .filter(|t| {
                sigstore_verify::crypto::VerificationKey::from_spki(&t.public_key.raw_bytes).is_ok()
            })
            .count();
        if readable_rekor != root.tlogs.len() {
            return Err(TrustRootError::Invalid(format!(
                "{} of its {} Rekor keys cannot be read",
                root.tlogs.len() - readable_rekor,
                root.tlogs.len()
            )));
        }
        let verifier = Verifier::new(&root).map_err(|e| TrustRootError::Invalid(e.to_string()))?;
        Ok(Arc::new(TrustRoot {
            verifier,
            root,
            description,
        }))
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Whether certificates must carry an SCT from one of its CT logs. A trust root
    /// without CT logs (GitHub's private-repository instance) has no SCT to check.
    pub fn has_ct_logs(&self) -> bool {
        !self.root.ctlogs.is_empty()
    }

    pub fn has_fulcio(&self) -> bool {
        !self.root.certificate_authorities.is_empty()
    }

    pub fn has_rekor(&self) -> bool {
        !self.root.tlogs.is_empty()
    }

    pub fn has_tsa(&self) -> bool {
        !self.root.timestamp_authorities.is_empty()
    }

    /// What it holds, for messages: "trusted_root.json: 2 Fulcio CAs, 1 Rekor log, ...".
    pub fn description(&self) -> &str {
        &self.description
    }
}

fn describe(root: &TrustedRoot, source: &str) -> String {
    let n =
        |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    format!(
        "{source}: {}, {}, {}, {}",
        n(root.certificate_authorities.len(), "Fulcio CA"),
        n(root.tlogs.len(), "Rekor log"),
        n(root.ctlogs.len(), "CT log"),
        n(root.timestamp_authorities.len(), "TSA"),
    )
}

fn check_size(bytes: &[u8]) -> Result<(), TrustRootError> {
    if bytes.len() > MAX_TRUST_FILE_BYTES {
        return Err(TrustRootError::TooLarge {
            size: bytes.len(),
            max: MAX_TRUST_FILE_BYTES,
        });
    }
    Ok(())
}

fn log_json(der: &[u8], b64: &dyn Fn(&[u8]) -> String) -> Value {
    json!({
        "baseUrl": "",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": b64(der), "keyDetails": "PKIX_KEY"},
        "logId": {"keyId": b64(&sha256(der))},
    })
}

fn pem_blocks(file: &[u8], what: &str) -> Result<Vec<pem::Pem>, TrustRootError> {
    check_size(file)?;
    let blocks = pem::parse_many(file).map_err(|e| TrustRootError::Pem {
        what: what.into(),
        reason: format!("not PEM: {e}"),
    })?;
    if blocks.is_empty() {
        return Err(TrustRootError::Pem {
            what: what.into(),
            reason: "no PEM block found".into(),
        });
    }
    Ok(blocks)
}

fn public_keys(file: &[u8], what: &str) -> Result<Vec<Vec<u8>>, TrustRootError> {
    pem_blocks(file, what)?
        .into_iter()
        .map(|block| {
            if block.tag() != "PUBLIC KEY" {
                return Err(TrustRootError::Pem {
                    what: what.into(),
                    reason: format!("expected PUBLIC KEY blocks, found {}", block.tag()),
                });
            }
            let der = block.into_contents();
            sigstore_verify::crypto::VerificationKey::from_spki(
                &sigstore_verify::types::DerPublicKey::new(der.clone()),
            )
            .map_err(|e| TrustRootError::Pem {
                what: what.into(),
                reason: format!("the key cannot be read: {e}"),
            })?;
            Ok(der)
        })
        .collect()
}

fn certificates(file: &[u8], what: &str) -> Result<Vec<Vec<u8>>, TrustRootError> {
    use x509_cert::der::Decode;
    pem_blocks(file, what)?
        .into_iter()
        .map(|block| {
            if block.tag() != "CERTIFICATE" {
                return Err(TrustRootError::Pem {
                    what: what.into(),
                    reason: format!("expected CERTIFICATE blocks, found {}", block.tag()),
                });
            }
            let der = block.into_contents();
            x509_cert::Certificate::from_der(&der).map_err(|e| TrustRootError::Pem {
                what: what.into(),
                reason: format!("a certificate cannot be read: {e}"),
            })?;
            Ok(der)
        })
        .collect()
}
