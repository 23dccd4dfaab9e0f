//! Public keys of key-based authorities: PEM or DER SubjectPublicKeyInfo, ECDSA
//! P-256 and P-384, RSA (PKCS#1 v1.5 and PSS) and Ed25519.
//!
//! Parsing and the signature primitives are sigstore-crypto's (aws-lc-rs). What is
//! added here: the list of schemes a key may have signed with. sigstore-verify picks
//! one scheme per key type (RSA means PKCS#1 v1.5 with SHA-256); cosign signs with
//! SHA-256 or SHA-384 on P-384 depending on its version, and RSA-PSS is a valid
//! choice of key owners, so imagegate tries each scheme the key type allows. Every
//! one of them is a sound verification under the same key.

use std::fmt;

use base64::Engine;
use sigstore_verify::crypto::{KeyAlgorithm, SigningScheme};
use sigstore_verify::types::{DerPublicKey, SignatureBytes};

use super::failure::AuthorityError;

/// The most bytes read as a key file.
const MAX_KEY_BYTES: usize = 64 << 10;

/// A verification key (SubjectPublicKeyInfo).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    der: DerPublicKey,
    algorithm: KeyAlgorithm,
    sha256: [u8; 32],
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({} {})",
            self.algorithm_name(),
            self.fingerprint()
        )
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` block (what `cosign generate-key-pair` writes as
    /// `cosign.pub`).
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, AuthorityError> {
        if pem_bytes.len() > MAX_KEY_BYTES {
            return Err(AuthorityError::Key(format!(
                "the key file is {} bytes; a public key is far smaller",
                pem_bytes.len()
            )));
        }
        let blocks =
            pem::parse_many(pem_bytes).map_err(|e| AuthorityError::Key(format!("not PEM: {e}")))?;
        let mut keys = blocks.iter().filter(|b| b.tag() == "PUBLIC KEY");
        match (keys.next(), keys.next()) {
            (Some(block), None) => Self::from_der(block.contents()),
            (Some(_), Some(_)) => Err(AuthorityError::Key(
                "the file holds several public keys; give one key per authority".into(),
            )),
            (None, _) => Err(AuthorityError::Key(match blocks.first().map(|b| b.tag()) {
                Some(tag) if tag.contains("PRIVATE") => {
                    format!("this is a private key ({tag}); give the public key (cosign.pub)")
                }
                Some(tag) => format!("expected a PUBLIC KEY block, found {tag}"),
                None => "no PEM block found".into(),
            })),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self, AuthorityError> {
        let der = DerPublicKey::new(der.to_vec());
        let algorithm =
            KeyAlgorithm::from_spki(&der).map_err(|e| AuthorityError::Key(e.to_string()))?;
        if !matches!(
            algorithm,
            KeyAlgorithm::EcdsaP256
                | KeyAlgorithm::EcdsaP384
                | KeyAlgorithm::Rsa
                | KeyAlgorithm::Ed25519
        ) {
            return Err(AuthorityError::Key(format!(
                "{algorithm:?} keys are not supported: use ECDSA P-256 or P-384, RSA or Ed25519"
            )));
        }
        let sha256 = sha256(der.as_bytes());
        Ok(PublicKey {
            der,
            algorithm,
            sha256,
        })
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: how messages name the key.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(self.sha256))
    }

    /// The hint cosign writes into key-based bundles: base64 of the SHA-256 of the
    /// DER SubjectPublicKeyInfo.
    pub fn bundle_hint(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }

    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::EcdsaP384 => "ECDSA P-384",
            KeyAlgorithm::Rsa => "RSA",
            KeyAlgorithm::Ed25519 => "Ed25519",
            _ => "unsupported",
        }
    }

    pub(crate) fn der(&self) -> &DerPublicKey {
        &self.der
    }

    /// The schemes tried over a message, the usual one first.
    fn schemes(&self) -> &'static [SigningScheme] {
        use SigningScheme::*;
        match self.algorithm {
            KeyAlgorithm::EcdsaP256 => &[EcdsaP256Sha256, EcdsaP256Sha384],
            KeyAlgorithm::EcdsaP384 => &[EcdsaP384Sha384, EcdsaP384Sha256],
            KeyAlgorithm::Ed25519 => &[Ed25519],
            KeyAlgorithm::Rsa => &[
                RsaPkcs1Sha256,
                RsaPssSha256,
                RsaPkcs1Sha384,
                RsaPssSha384,
                RsaPkcs1Sha512,
                RsaPssSha512,
            ],
            _ => &[],
        }
    }

    /// Verifies `signature` over `message`; returns the scheme that verified.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Option<SigningScheme> {
        let signature = SignatureBytes::from_bytes(signature);
        self.schemes().iter().copied().find(|scheme| {
            sigstore_verify::crypto::verify_signature(&self.der, message, &signature, *scheme)
                .is_ok()
        })
    }

    /// Verifies `signature` over a message known only by its SHA-256 digest (an
    /// image manifest signed as a blob). Ed25519 cannot: it signs the message itself.
    pub(crate) fn verify_sha256_prehashed(
        &self,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> Option<SigningScheme> {
        let signature = SignatureBytes::from_bytes(signature);
        self.schemes()
            .iter()
            .copied()
            .filter(|s| {
                s.supports_prehashed()
                    && s.hash_algorithm() == Some(sigstore_verify::types::HashAlgorithm::Sha2256)
            })
            .find(|scheme| {
                sigstore_verify::crypto::verify_signature_prehashed(
                    &self.der, digest, &signature, *scheme,
                )
                .is_ok()
            })
    }

    /// Whether `der` (a SubjectPublicKeyInfo) is this key.
    pub(crate) fn is(&self, der: &[u8]) -> bool {
        self.der.as_bytes() == der
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
