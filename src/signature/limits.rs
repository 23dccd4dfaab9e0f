//! Bounds on every input the verifier reads: material comes from registries and is
//! hostile until verified, so sizes and counts are checked before anything is parsed.

/// Bounds applied by [`super::verify`]. [`Limits::default`] fits what cosign, GitHub
/// and the Sigstore clients write today with a wide margin; the inspector may pass
/// tighter ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Pieces of material (bundles and legacy layers) in one call.
    pub max_materials: usize,
    /// Authorities in one call.
    pub max_authorities: usize,
    /// Bytes of one bundle or legacy layer (attestations carry SBOMs and scan
    /// reports, hence more than a signature needs).
    pub max_material_bytes: usize,
    /// Bytes of one annotation value (certificate, chain, Rekor bundle, timestamp).
    pub max_annotation_bytes: usize,
    /// Annotations on one legacy layer.
    pub max_annotations: usize,
    /// Certificates in a chain (bundle `x509CertificateChain` or legacy chain).
    pub max_chain_certificates: usize,
    /// Transparency log entries in one bundle.
    pub max_tlog_entries: usize,
    /// RFC 3161 timestamps in one bundle.
    pub max_timestamps: usize,
    /// Signatures in one legacy DSSE envelope (each is verified on its own).
    pub max_envelope_signatures: usize,
    /// The largest predicate returned in a result; a larger one is reported as
    /// too large rather than copied (the engine cannot judge what it cannot read).
    pub max_predicate_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_materials: 64,
            max_authorities: 32,
            max_material_bytes: 8 << 20,
            max_annotation_bytes: 64 << 10,
            max_annotations: 64,
            max_chain_certificates: 8,
            max_tlog_entries: 4,
            max_timestamps: 4,
            max_envelope_signatures: 8,
            max_predicate_bytes: 4 << 20,
        }
    }
}

/// The largest trust-root file or PEM file read (a Sigstore `trusted_root.json` is
/// about 10 KiB; GitHub's about 30 KiB).
pub const MAX_TRUST_FILE_BYTES: usize = 1 << 20;

/// The longest identity or issuer pattern accepted, and the compiled size of a regex.
pub const MAX_PATTERN_BYTES: usize = 4 << 10;
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;
