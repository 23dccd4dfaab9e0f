//! Why a piece of material did not verify for an authority, in words an
//! application team can act on, plus the errors of the API itself.

use std::fmt;

use serde::Serialize;

/// The class of a [`Failure`]: stable, for the engine to count and rank, and for
/// tests to assert. The message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureKind {
    /// The material cannot be read (not JSON, wrong shape, bytes that do not match
    /// their digest, bad base64, ...).
    Malformed,
    /// The material is over a size or count bound.
    TooLarge,
    /// A format imagegate does not read (an unknown media type, a DSSE payload that
    /// is not an in-toto statement, ...).
    Unsupported,
    /// Something imagegate deliberately does not verify; the message names it
    /// (README: "What is not supported").
    NotSupported,
    /// Keyless material for a key authority, or key material for a keyless one.
    KindMismatch,
    /// Signed by another key than the authority's.
    WrongKey,
    /// The signature does not verify over the content with the key that made it:
    /// the content was changed after signing.
    Tampered,
    /// The signature does not verify with the authority's key, and the material
    /// does not say which key made it: another key, or changed content.
    BadSignature,
    /// The signing certificate does not chain to a Fulcio CA of the trust root (or
    /// the material ships its own root).
    UntrustedCertificate,
    /// The certificate has expired and no log entry or timestamp proves the
    /// signature was made while it was valid.
    CertificateExpired,
    /// The certificate is valid now, but nothing proves when the signature was
    /// made (keyless needs a log entry or a timestamp).
    NoTimeProof,
    /// The time a log entry or timestamp attests is outside the certificate's
    /// validity.
    CertificateNotValidAtTime,
    /// The certificate's SCT is missing, or not signed by a CT log of the trust root.
    SctInvalid,
    /// The certificate's subject (SAN) is not the authority's.
    IdentityMismatch,
    /// The certificate's OIDC issuer is not the authority's.
    IssuerMismatch,
    /// The authority requires a transparency log entry and there is none.
    LogRequired,
    /// The log entry is not signed by a Rekor key of the trust root.
    LogUntrusted,
    /// The log entry's inclusion proof or checkpoint does not verify.
    LogInvalid,
    /// The log entry is genuine but describes another signature, key or payload.
    LogMismatch,
    /// An RFC 3161 timestamp does not verify against a TSA of the trust root.
    TimestampInvalid,
    /// The signature is for another digest than the one being admitted.
    DigestMismatch,
    /// The legacy signature was made for another repository.
    RepositoryMismatch,
    /// A required annotation is missing or different.
    AnnotationMismatch,
    /// The authority has no trust root, and this material needs one.
    NoTrustRoot,
    /// The verifier itself failed (a bug): the material is refused.
    Internal,
}

impl FailureKind {
    /// How far verification got before this failure: when an authority fails on
    /// several pieces of material, the engine reports the highest (an identity
    /// mismatch on a genuine signature says more than garbage next to it).
    pub fn rank(self) -> u8 {
        use FailureKind::*;
        match self {
            Internal => 0,
            Malformed | TooLarge | Unsupported => 1,
            KindMismatch => 2,
            BadSignature | WrongKey => 3,
            NoTrustRoot | NotSupported => 4,
            Tampered => 5,
            UntrustedCertificate | SctInvalid => 6,
            LogUntrusted | LogInvalid | LogMismatch | TimestampInvalid => 7,
            CertificateExpired | NoTimeProof | CertificateNotValidAtTime => 8,
            LogRequired => 9,
            IdentityMismatch | IssuerMismatch => 10,
            DigestMismatch | RepositoryMismatch | AnnotationMismatch => 11,
        }
    }
}

/// Why one piece of material did not verify for one authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The sentence for `kubectl apply` output: what is wrong and, where there is
    /// one, what to do.
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A call to [`super::verify`] that cannot be answered at all (the caller's
/// mistake, not the material's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "no authority to verify against: an empty list of authorities never passes; name at least one key or keyless identity"
    )]
    NoAuthorities,
    #[error("{count} authorities given; at most {max} are verified in one call")]
    TooManyAuthorities { count: usize, max: usize },
    #[error("{count} pieces of signature material given; at most {max} are verified in one call")]
    TooManyMaterials { count: usize, max: usize },
    #[error("two authorities are named `{0}`; names must be unique")]
    DuplicateAuthority(String),
    #[error("`{0}` is not a digest: write sha256:<64 hex digits>")]
    BadDigest(String),
    #[error("`{0}` is not an image repository: {1}")]
    BadRepository(String, String),
}

/// A trust root that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustRootError {
    #[error("the trust root is {size} bytes; at most {max} are read")]
    TooLarge { size: usize, max: usize },
    #[error("the trusted_root.json cannot be read: {0}")]
    TrustedRootJson(String),
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("the trust root is empty: give a Fulcio chain, a Rekor key or a TSA chain")]
    Empty,
    #[error("the trust root is not usable: {0}")]
    Invalid(String),
}

/// An authority that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    #[error("the public key cannot be read: {0}")]
    Key(String),
    #[error("the {what} pattern `{pattern}` is not a valid regular expression: {reason}")]
    Pattern {
        what: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("the {0} pattern is empty")]
    EmptyPattern(&'static str),
    #[error("a keyless authority needs a trust root (Fulcio CA), and `{0}` has none")]
    KeylessWithoutTrustRoot(String),
    #[error("a keyless authority names both a subject and an issuer; `{0}` is missing one")]
    IncompleteIdentity(String),
    #[error("the authority name is empty")]
    EmptyName,
}
