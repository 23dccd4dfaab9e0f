//! The material the inspector hands over: Sigstore bundles (OCI referrers, or the
//! tag-schema fallback) and legacy cosign layers (`.sig` simple-signing layers and
//! `.att` DSSE layers, with their annotations). Bytes only: the inspector fetched
//! them; nothing here does I/O.

use std::collections::BTreeMap;

use serde::Serialize;

/// Layer media types of Sigstore bundles, both spellings of v0.3 included.
pub const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
/// The layer media type of a legacy `.sig` signature.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer media type of a legacy `.att` attestation.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

/// Legacy layer annotations cosign writes.
pub mod annotations {
    pub const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
    pub const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
    pub const CHAIN: &str = "dev.sigstore.cosign/chain";
    pub const BUNDLE: &str = "dev.sigstore.cosign/bundle";
    pub const RFC3161_TIMESTAMP: &str = "dev.sigstore.cosign/rfc3161timestamp";
}

/// Whether a referrer's layer is a Sigstore bundle. Select referrers by this (the
/// layer's media type), not by the manifest's `artifactType`: some registries list
/// bundle manifests with the empty-config artifact type.
pub fn is_bundle_media_type(media_type: &str) -> bool {
    BUNDLE_MEDIA_TYPES.contains(&media_type.trim())
}

/// Which kind of legacy layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LegacyKind {
    /// A `.sig` layer: simple-signing payload, signature annotation.
    Signature,
    /// A `.att` layer: a DSSE envelope holding an in-toto statement.
    Attestation,
}

impl LegacyKind {
    /// The kind a layer media type names, if any.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type.trim() {
            SIMPLE_SIGNING_MEDIA_TYPE => Some(LegacyKind::Signature),
            DSSE_MEDIA_TYPE => Some(LegacyKind::Attestation),
            _ => None,
        }
    }
}

/// One Sigstore bundle: the blob of a referrer's bundle layer.
#[derive(Debug, Clone)]
pub struct BundleLayer {
    /// Where it came from, for results and messages (e.g. "referrer sha256:ab12…").
    pub origin: String,
    /// The layer's media type (one of [`BUNDLE_MEDIA_TYPES`]).
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// One layer of a legacy `.sig` or `.att` manifest.
#[derive(Debug, Clone)]
pub struct LegacyLayer {
    /// Where it came from (e.g. "registry/repo:sha256-<hex>.sig layer 2").
    pub origin: String,
    pub kind: LegacyKind,
    /// The layer descriptor's media type.
    pub media_type: String,
    /// The layer descriptor's digest; the bytes must hash to it.
    pub digest: String,
    /// The layer descriptor's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The layer blob: the simple-signing payload, or the DSSE envelope.
    pub bytes: Vec<u8>,
}

/// A piece of signature material.
#[derive(Debug, Clone)]
pub enum Material {
    Bundle(BundleLayer),
    Legacy(LegacyLayer),
}

impl Material {
    pub fn origin(&self) -> &str {
        match self {
            Material::Bundle(b) => &b.origin,
            Material::Legacy(l) => &l.origin,
        }
    }
}
