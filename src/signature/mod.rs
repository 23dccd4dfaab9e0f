//! Offline verification of cosign / Sigstore signatures and attestations: pure
//! functions over bytes the inspector (or `imagegate verify`) already has. No I/O,
//! no network call, never to a public Sigstore service: a trust root is data the
//! user gives.
//!
//! # What it verifies
//! - Sigstore bundles v0.1, v0.2 and v0.3 (both v0.3 media type spellings): message
//!   signatures and DSSE envelopes (signature over the PAE), key-based
//!   (`verificationMaterial.publicKey`) and keyless (certificate or chain).
//! - Rekor v1 entries (SET over the canonical entry; inclusion proof and signed
//!   checkpoint where present; the entry body — hashedrekord, dsse, intoto 0.0.2 —
//!   must describe THIS signature, certificate or key and payload), Rekor v2
//!   entries (hashedrekord 0.0.2, with their checkpoint) and RFC 3161 timestamps.
//! - Legacy cosign `.sig` layers (simple-signing payload, signature, certificate,
//!   chain, Rekor bundle and RFC 3161 annotations) and `.att` layers (DSSE envelopes
//!   of in-toto statements, same annotations).
//! - Keys: ECDSA P-256 and P-384, RSA PKCS#1 v1.5 and PSS, Ed25519 (PEM).
//! - Keyless: chain to a Fulcio CA of the trust root at the time a log entry or
//!   timestamp attests; SCT against the trust root's CT logs; SAN and issuer (both
//!   Fulcio extensions), exact or regular expression.
//! - Exactness: the statement subject / `docker-manifest-digest` must be the digest
//!   under admission; the `docker-reference` must name its repository (or an
//!   allowed mirror); an empty list of authorities never passes;
//!   `transparencyLog: Required` means a verified log entry must be present.
//!
//! # Which crate does what
//! - **sigstore-verify 0.15.1** (the sigstore/sigstore-rust family: sigstore-types,
//!   -crypto, -bundle, -rekor, -merkle, -trust-root, -tsa) does the cryptography of
//!   a bundle: signature and PAE, Fulcio chain (rustls-webpki) at every verified
//!   time, SCT, Rekor SET, inclusion proof and checkpoint (v1 and v2), RFC 3161,
//!   and the consistency of the log entry with the bundle (CVE-2022-36056). It
//!   passes the whole sigstore-conformance bundle-verify suite (70 of 70, run
//!   through `imagegate verify`), uses aws-lc-rs, pulls in no HTTP client, ring or
//!   openssl.
//! - **sigstore 0.15 (sigstore-rs) is not used**: its verification is the registry
//!   walk plus constraints with the gaps listed in issue 7 (only certificate
//!   bundles of one predicate, a SET accepted over a body of `{}`, CT keys ignored,
//!   the old issuer OID only, an empty constraint list passing, PEM Rekor keys
//!   dropped), and the registry walk belongs to the inspector.
//! - **imagegate** ([`verify`]) closes the rest: legacy layers converted into the
//!   bundle they amount to (so sigstore-verify matches the logged body to this
//!   signature — the SET over `{}` is refused); key material with no log entry and
//!   no timestamp (sigstore-verify refuses those bundles; cosign accepts them with a
//!   key) checked directly with sigstore-crypto; every signature scheme a key type
//!   allows (RSA-PSS, P-384 with SHA-256); [`TransparencyLog`] per authority;
//!   identities by regular expression, against every SAN and both issuer
//!   extensions ([`cert`], with x509-cert); a root certificate inside the
//!   material refused; trust roots from PEM files ([`TrustRoot::from_pem`]);
//!   digest and repository exactness; bounds ([`Limits`]); panics turned into
//!   refusals; a [`Failure`] per material and authority that says what failed.
//!
//! # Not supported (refused with that reason)
//! - Legacy Rekor entries of kind intoto 0.0.1 (cosign before v2.0 wrote them for
//!   `.att`), unless the authority's transparencyLog is `Off` (keys).
//! - An RSA-PSS signature with a Rekor entry (Rekor records RSA as PKCS#1 v1.5).
//! - An Ed25519 message signature over an image manifest (it needs the manifest's
//!   bytes; cosign writes DSSE statements instead).
//! - Fulcio `otherName` identities (only email and URI SANs are matched).
//! - Rekor v2 logs given as PEM keys: their log IDs are not SHA-256 of the key;
//!   use a `trusted_root.json` for Rekor v2.
//!
//! # For the inspector (part 2)
//! ```no_run
//! use imagegate::signature::{
//!     self, Authority, Identity, Material, Matcher, Options, Subject, TransparencyLog, TrustRoot,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Once, when the policies load: trust roots and authorities (Arc-shared, Send + Sync).
//! let root = TrustRoot::from_trusted_root_json(&std::fs::read("trusted_root.json")?)?;
//! let ci = Authority::keyless(
//!     "ci",
//!     Identity {
//!         subject: Matcher::regex(r"^https://github\.com/acme/", "subject")?,
//!         issuer: Matcher::exact("https://token.actions.githubusercontent.com", "issuer")?,
//!     },
//!     TransparencyLog::Optional,
//!     root.clone(),
//! )?;
//! // Per image, everything fetched: the bundle layers of its referrers (chosen with
//! // `signature::is_bundle_media_type`) as `Material::Bundle`, every layer of its
//! // `.sig` and `.att` manifests as `Material::Legacy`. Then, in `spawn_blocking`:
//! let materials: Vec<Material> = Vec::new();
//! let subject = Subject::image("ghcr.io/acme/app", &format!("sha256:{}", "0".repeat(64)))?;
//! let report = signature::verify(&subject, &materials, &[ci], &Options::default())?;
//! if report.signature_verified("ci") { /* signed by ci */ }
//! for statement in report.attestations("ci", "https://slsa.dev/provenance/v1") {
//!     let _predicate = &statement.predicate; // judged by the engine
//! }
//! if let Some((origin, failure)) = report.best_failure("ci") {
//!     println!("{origin}: {failure}"); // failure.kind for the engine, the message for users
//! }
//! # Ok(())
//! # }
//! ```

mod authority;
pub(crate) mod cert;
mod failure;
mod keys;
mod legacy;
mod limits;
mod material;
mod payload;
mod reasons;
mod report;
mod trust;
mod verify;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use authority::{Authority, Identity, Matcher, Signer, TransparencyLog};
pub use failure::{AuthorityError, Failure, FailureKind, InputError, TrustRootError};
pub use keys::PublicKey;
pub use limits::Limits;
pub use material::{
    BUNDLE_MEDIA_TYPES, BundleLayer, DSSE_MEDIA_TYPE, LegacyKind, LegacyLayer, Material,
    SIMPLE_SIGNING_MEDIA_TYPE, annotations, is_bundle_media_type,
};
pub use payload::COSIGN_SIGN_PREDICATE;
pub use report::{
    LogProof, MaterialKind, MaterialReport, Outcome, Report, SignerInfo, Verified,
    VerifiedStatement,
};
pub use trust::{TrustRoot, TrustRootPem};
pub use verify::{Options, Subject, normalize_repository, verify};

// Trust roots and authorities are built once and shared by concurrent admissions;
// reports are cached. All of them cross threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<TrustRoot>();
    shared::<Authority>();
    shared::<Material>();
    shared::<Report>();
};
