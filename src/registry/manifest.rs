//! What a manifest is: the media types imagegate reads, the shape each must have,
//! digests and their verification, and the platforms an index or a config names.
//!
//! Only a manifest is a manifest: a body is accepted when its media type (from
//! `Content-Type`, or from its own `mediaType` when the header is generic) is one
//! that was asked for, it is a JSON object of `schemaVersion` 2, and it has the
//! fields of its kind (`manifests` for an index; `config` and `layers` for an image
//! manifest), every descriptor with a well-formed digest. An HTML page from a proxy,
//! JSON of another kind or a body that contradicts its `Content-Type` is
//! [`FailureKind::NotAManifest`], and its digest is never pinned.

use serde::Deserialize;
use sha2::Digest as _;

use super::error::{FailureKind, RegistryError, sanitize};
use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The manifest media types imagegate reads, in the order it prefers them.
pub const ACCEPT: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Whether `media_type` is one of the four manifest types of [`ACCEPT`].
pub fn is_known_manifest_type(media_type: &str) -> bool {
    ACCEPT.contains(&media_type)
}

fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    /// The artifact type of a referrer (referrers API answers).
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub platform: Option<RawPlatform>,
}

/// The body of a manifest, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An OCI index or a Docker manifest list.
    Index(Vec<Descriptor>),
    /// An image manifest, with its config descriptor.
    Image { config: Descriptor },
    /// A JSON object of another media type the caller asked for (an artifact).
    Other,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
}

/// The media type of a `Content-Type` value: without parameters, lower case.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn not_a_manifest(detail: impl Into<String>) -> RegistryError {
    RegistryError::new(FailureKind::NotAManifest, detail)
}

/// Judges a manifest body. `content_type` is the response's header; `accept` the
/// media types asked for. Returns the media type and what the body says.
pub fn judge(
    body: &[u8],
    content_type: Option<&str>,
    accept: &[&str],
) -> Result<(String, Parsed), RegistryError> {
    let header = content_type.map(essence).unwrap_or_default();
    if header == "text/html" || header == "application/xhtml+xml" || looks_like_html(body) {
        return Err(not_a_manifest(format!(
            "the registry answered with an HTML page ({}) instead of a manifest: a proxy, a login page or a captive portal is in front of it; its first bytes: \"{}\"",
            if header.is_empty() {
                "no Content-Type"
            } else {
                header.as_str()
            },
            sanitize(&String::from_utf8_lossy(&body[..body.len().min(120)]), 80)
        )));
    }
    let raw: RawManifest = serde_json::from_slice(body).map_err(|e| {
        not_a_manifest(format!(
            "the registry's answer ({}) is not a JSON manifest: {e}",
            if header.is_empty() {
                "no Content-Type"
            } else {
                header.as_str()
            }
        ))
    })?;
    let generic = matches!(
        header.as_str(),
        "" | "application/json" | "application/octet-stream" | "text/plain"
    );
    let media_type = match (&raw.media_type, generic) {
        (Some(body_type), false) if *body_type != header => {
            return Err(not_a_manifest(format!(
                "the registry sent Content-Type {header} with a body of media type {}",
                sanitize(body_type, 100)
            )));
        }
        (_, false) => header.clone(),
        (Some(body_type), true) => body_type.clone(),
        (None, true) => {
            return Err(not_a_manifest(format!(
                "the registry's answer ({}) names no manifest media type",
                if header.is_empty() {
                    "no Content-Type"
                } else {
                    header.as_str()
                }
            )));
        }
    };
    if !accept.contains(&media_type.as_str()) {
        return Err(not_a_manifest(format!(
            "the registry sent media type {}, which imagegate did not ask for (it asked for {})",
            sanitize(&media_type, 100),
            accept.join(", ")
        )));
    }
    if !is_known_manifest_type(&media_type) {
        return Ok((media_type, Parsed::Other));
    }
    if raw.schema_version != Some(2) {
        return Err(not_a_manifest(format!(
            "the {media_type} has schemaVersion {}, not 2",
            raw.schema_version
                .map_or_else(|| "missing".to_string(), |v| v.to_string())
        )));
    }
    let check = |d: &Descriptor, what: &str| -> Result<(), RegistryError> {
        if parse_digest(&d.digest).is_none() || d.size < 0 {
            return Err(not_a_manifest(format!(
                "the {media_type} has a {what} with an invalid digest or size (\"{}\", {})",
                sanitize(&d.digest, 80),
                d.size
            )));
        }
        Ok(())
    };
    let parsed = if is_index_type(&media_type) {
        let Some(entries) = raw.manifests else {
            return Err(not_a_manifest(format!("the {media_type} has no manifests")));
        };
        for entry in &entries {
            check(entry, "manifest entry")?;
        }
        Parsed::Index(entries)
    } else {
        let (Some(config), Some(layers)) = (raw.config, raw.layers) else {
            return Err(not_a_manifest(format!(
                "the {media_type} lacks its config or layers"
            )));
        };
        check(&config, "config")?;
        for layer in &layers {
            check(layer, "layer")?;
        }
        Parsed::Image { config }
    };
    Ok((media_type, parsed))
}

/// An HTML page, whatever its Content-Type says.
fn looks_like_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head = &body[start..body.len().min(start + 15)];
    let lower = head.to_ascii_lowercase();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
}

/// The supported digest algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

/// The algorithm of a well-formed digest (`sha256:` and 64 lower-case hex digits,
/// or `sha512:` and 128).
pub fn parse_digest(digest: &str) -> Option<Algorithm> {
    let (algorithm, hex) = digest.split_once(':')?;
    let (algorithm, len) = match algorithm {
        "sha256" => (Algorithm::Sha256, 64),
        "sha512" => (Algorithm::Sha512, 128),
        _ => return None,
    };
    (hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(algorithm)
}

/// The digest of `bytes` with `algorithm`.
pub fn digest_of(algorithm: Algorithm, bytes: &[u8]) -> String {
    match algorithm {
        Algorithm::Sha256 => format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
        Algorithm::Sha512 => format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes))),
    }
}

/// Checks that `bytes` hash to `digest`.
pub fn verify(digest: &str, bytes: &[u8], what: &str) -> Result<(), RegistryError> {
    let Some(algorithm) = parse_digest(digest) else {
        return Err(RegistryError::new(
            FailureKind::Other,
            format!(
                "{} is not a digest imagegate can verify",
                sanitize(digest, 80)
            ),
        ));
    };
    let actual = digest_of(algorithm, bytes);
    if actual != digest {
        return Err(RegistryError::new(
            FailureKind::DigestMismatch,
            format!("the registry sent {what} for {digest} whose content hashes to {actual}"),
        ));
    }
    Ok(())
}

/// The `platform` of an index entry, or the `os`/`architecture`/`variant` of an
/// image config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RawPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl RawPlatform {
    pub fn into_platform(self) -> Platform {
        Platform {
            os: self.os,
            architecture: self.architecture,
            variant: self.variant.filter(|v| !v.is_empty()),
        }
        .normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    fn image(media_type: Option<&str>) -> Vec<u8> {
        let mut v = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('a'), "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d('b'), "size": 20}],
        });
        if let Some(m) = media_type {
            v["mediaType"] = json!(m);
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn index(media_type: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media_type,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d('c'), "size": 5,
                            "platform": {"os": "linux", "architecture": "arm64"}}],
        }))
        .unwrap()
    }

    #[test]
    fn manifests_of_known_types_are_accepted() {
        let with_charset = format!("{OCI_INDEX}; charset=utf-8");
        // (body, content type, media type found, is index)
        let table: Vec<(Vec<u8>, Option<&str>, &str, bool)> = vec![
            (
                image(Some(OCI_MANIFEST)),
                Some(OCI_MANIFEST),
                OCI_MANIFEST,
                false,
            ),
            (image(None), Some(OCI_MANIFEST), OCI_MANIFEST, false),
            (
                image(Some(DOCKER_MANIFEST)),
                Some("application/json"),
                DOCKER_MANIFEST,
                false,
            ),
            (image(Some(OCI_MANIFEST)), None, OCI_MANIFEST, false),
            (
                index(OCI_INDEX),
                Some(with_charset.as_str()),
                OCI_INDEX,
                true,
            ),
            (index(DOCKER_LIST), Some(DOCKER_LIST), DOCKER_LIST, true),
        ];
        for (body, ct, want, is_index) in table {
            let (mt, parsed) = judge(&body, ct, ACCEPT).unwrap_or_else(|e| panic!("{ct:?}: {e}"));
            assert_eq!(mt, want);
            assert_eq!(matches!(parsed, Parsed::Index(_)), is_index, "{ct:?}");
        }
    }

    #[test]
    fn anything_else_is_not_a_manifest() {
        let html = b"<!DOCTYPE html>\n<html><body>Please log in</body></html>".to_vec();
        // (body, content type, fragment of the detail)
        let table: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
            (
                html.clone(),
                Some("text/html; charset=utf-8"),
                "an HTML page (text/html) instead of a manifest",
            ),
            (html.clone(), Some(OCI_MANIFEST), "an HTML page"),
            (b"  <html>".to_vec(), None, "an HTML page (no Content-Type)"),
            (
                b"not json".to_vec(),
                Some(OCI_MANIFEST),
                "is not a JSON manifest",
            ),
            (
                b"[1,2]".to_vec(),
                Some(OCI_MANIFEST),
                "is not a JSON manifest",
            ),
            (
                image(Some(OCI_INDEX)),
                Some(OCI_MANIFEST),
                "Content-Type application/vnd.oci.image.manifest.v1+json with a body of media type application/vnd.oci.image.index.v1+json",
            ),
            (
                image(None),
                Some("application/json"),
                "names no manifest media type",
            ),
            (
                image(None),
                Some("application/vnd.example+json"),
                "which imagegate did not ask for",
            ),
            (
                br#"{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
                    .to_vec(),
                None,
                "schemaVersion 1, not 2",
            ),
            (
                br#"{"schemaVersion":2}"#.to_vec(),
                Some(OCI_INDEX),
                "has no manifests",
            ),
            (
                br#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#
                    .to_vec(),
                Some(OCI_MANIFEST),
                "config with an invalid digest",
            ),
            (
                br#"{"schemaVersion":2,"layers":[]}"#.to_vec(),
                Some(DOCKER_MANIFEST),
                "lacks its config or layers",
            ),
        ];
        for (body, ct, fragment) in table {
            let e = judge(&body, ct, ACCEPT).unwrap_err();
            assert_eq!(e.kind, FailureKind::NotAManifest, "{ct:?}");
            assert!(e.detail.contains(fragment), "{ct:?}: {}", e.detail);
        }
    }

    #[test]
    fn other_media_types_pass_only_when_asked_for() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.example.sig+json"}"#;
        let ct = Some("application/vnd.example.sig+json");
        assert!(judge(body, ct, ACCEPT).is_err());
        let (mt, parsed) = judge(body, ct, &["application/vnd.example.sig+json"]).unwrap();
        assert_eq!(
            (mt.as_str(), parsed),
            ("application/vnd.example.sig+json", Parsed::Other)
        );
    }

    #[test]
    fn digests_are_parsed_and_verified() {
        let body = b"hello";
        let sha256 = digest_of(Algorithm::Sha256, body);
        assert_eq!(
            sha256,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let sha512 = digest_of(Algorithm::Sha512, body);
        assert!(verify(&sha256, body, "a manifest").is_ok());
        assert!(verify(&sha512, body, "a manifest").is_ok());
        let e = verify(&sha256, b"hellO", "a manifest").unwrap_err();
        assert_eq!(e.kind, FailureKind::DigestMismatch);
        for bad in [
            "sha256:ABC",
            "md5:00",
            "sha256:",
            &format!("{sha256}0"),
            &sha256.to_uppercase(),
        ] {
            assert!(parse_digest(bad).is_none(), "{bad}");
            assert_eq!(verify(bad, body, "x").unwrap_err().kind, FailureKind::Other);
        }
    }
}
