//! Signature facts: where cosign material lives for one image digest, fetched
//! bounded, verified off the async workers, cached and coalesced.
//!
//! Where it looks, for `repo@sha256:<hex>`, all at once:
//! - the OCI referrers API (`GET /v2/<repo>/referrers/<digest>`); when the registry
//!   has none (404), the referrers tag schema: the index tagged `sha256-<hex>`.
//!   Each referrer's manifest is read and its layers chosen by the LAYER's media
//!   type (a Sigstore bundle, [`signature::is_bundle_media_type`]), never by the
//!   manifest's `artifactType`: some registries list bundle manifests with the
//!   empty-config artifact type;
//! - the legacy tags `sha256-<hex>.sig` and `sha256-<hex>.att`, always: finding a
//!   bundle does not stop the search (unlike `cosign verify`), since an image
//!   verifies if any signature anywhere satisfies the authority.
//!
//! A failure on one location is recorded and never hides material found on
//! another. Bounds: at most [`MAX_REFERRERS`] referrers and
//! [`MAX_BUNDLES_PER_REFERRER`] bundle layers in each, [`signature::Limits`]'s
//! material count and size per layer, [`MAX_MATERIAL_BYTES`] per image in all.
//! Results are cached per (repository, digest, authority-set id): the repository
//! matters because the `docker-reference` rule differs between repositories that
//! hold one digest. Successes live for `signature_ttl`, anything else (nothing
//! found, a failure) for `signature_failure_ttl`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use super::Inspector;
use crate::credentials::Credential;
use crate::engine::{
    AuthorityFacts, SignatureFacts, SignatureFailure, SignatureFailureKind, Statement,
};
use crate::policy::signatures::Verifier;
use crate::reference::ImageRef;
use crate::registry::manifest::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::registry::{Descriptor, FailureKind, Referrers, RegistryError, Repository};
use crate::signature::{
    self, BundleLayer, LegacyKind, LegacyLayer, Material, MaterialKind, Report, Subject,
};

/// Referrer manifests read per image (from the referrers API's pages, or the
/// index), those most likely to hold bundles first.
pub const MAX_REFERRERS: usize = 32;
/// Bundle layers read per referrer manifest.
pub const MAX_BUNDLES_PER_REFERRER: usize = 4;
/// Bytes of signature material fetched per image, in all.
pub const MAX_MATERIAL_BYTES: usize = 32 << 20;

/// The cache key: repository, digest, authority-set id.
pub(super) type SignatureKey = (String, String, u64);

#[derive(Deserialize)]
struct Layers {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifests {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// What the fetch found, before verification.
#[derive(Default)]
struct Found {
    looked_in: Vec<String>,
    errors: Vec<String>,
    materials: Vec<Material>,
}

impl Inspector {
    /// The signature facts of `image` at `digest` for `verifier`'s authorities,
    /// through the cache: one fetch and verification per key however many ask.
    pub(super) async fn signature_facts(
        &self,
        image: &ImageRef,
        digest: &str,
        credential: Option<&Credential>,
        verifier: &Arc<Verifier>,
    ) -> Arc<SignatureFacts> {
        let key: SignatureKey = (image.name().to_string(), digest.to_string(), verifier.id);
        let entry = self
            .signatures
            .entry(key)
            .or_insert_with(async {
                let work = self.fetch_and_verify(image, digest, credential, verifier);
                match crate::unwind::catch(work).await {
                    Ok(facts) => Arc::new(facts),
                    Err(panic) => {
                        tracing::error!(image = %image, panic, "signature lookup failed on a registry's answer");
                        Arc::new(SignatureFacts {
                            digest: digest.to_string(),
                            unavailable: Some(format!(
                                "its signatures could not be read: imagegate failed on the registry's answer ({})",
                                panic.chars().take(200).collect::<String>()
                            )),
                            ..SignatureFacts::default()
                        })
                    }
                }
            })
            .await;
        self.telemetry
            .cache(crate::telemetry::Fact::Signatures, !entry.is_fresh());
        entry.into_value()
    }

    async fn fetch_and_verify(
        &self,
        image: &ImageRef,
        digest: &str,
        credential: Option<&Credential>,
        verifier: &Arc<Verifier>,
    ) -> SignatureFacts {
        let found = self.fetch(image, digest, credential).await;
        let mut facts = SignatureFacts {
            digest: digest.to_string(),
            looked_in: found.looked_in,
            materials: found.materials.len(),
            errors: found.errors,
            ..SignatureFacts::default()
        };
        let subject = match Subject::image(image.name(), digest) {
            Ok(s) => s,
            Err(e) => {
                facts.unavailable = Some(e.to_string());
                return facts;
            }
        };
        let verifier = verifier.clone();
        let materials = found.materials;
        let verified = tokio::task::spawn_blocking(move || {
            let mut report = Report::default();
            for (options, authorities) in &verifier.groups {
                let part = signature::verify(&subject, &materials, authorities, options)?;
                report.materials.extend(part.materials);
            }
            let names: Vec<String> = verifier
                .groups
                .iter()
                .flat_map(|(_, a)| a.iter().map(|a| a.name().to_string()))
                .collect();
            Ok::<_, signature::InputError>((report, names))
        })
        .await;
        match verified {
            Ok(Ok((report, names))) => {
                for name in names {
                    let a = authority_facts(&report, &name);
                    facts.authorities.insert(name, a);
                }
            }
            Ok(Err(e)) => {
                facts.unavailable = Some(format!("its signatures cannot be verified: {e}"))
            }
            Err(e) => {
                facts.unavailable = Some(format!(
                    "its signatures could not be verified: the verifier failed ({e})"
                ))
            }
        }
        facts
    }

    /// Fetches every piece of material in every location, concurrently.
    async fn fetch(
        &self,
        image: &ImageRef,
        digest: &str,
        credential: Option<&Credential>,
    ) -> Found {
        let repo = Repository::of(image);
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let tag = format!("sha256-{hex}");
        let budget = AtomicUsize::new(MAX_MATERIAL_BYTES);
        let sig_tag = format!("{tag}.sig");
        let att_tag = format!("{tag}.att");
        let (referrers, sig, att) = futures::join!(
            self.bundles(&repo, digest, &tag, credential, &budget),
            self.legacy(&repo, &sig_tag, credential, &budget),
            self.legacy(&repo, &att_tag, credential, &budget),
        );
        let mut found = Found::default();
        for part in [referrers, sig, att] {
            found.looked_in.extend(part.looked_in);
            found.errors.extend(part.errors);
            found.materials.extend(part.materials);
        }
        let max = signature::Limits::default().max_materials;
        if found.materials.len() > max {
            found.errors.push(format!(
                "more than {max} pieces of signature material (only the first {max} were verified)"
            ));
            found.materials.truncate(max);
        }
        found
    }

    /// Sigstore bundles: the referrers API, or the `sha256-<hex>` index.
    async fn bundles(
        &self,
        repo: &Repository,
        digest: &str,
        tag: &str,
        credential: Option<&Credential>,
        budget: &AtomicUsize,
    ) -> Found {
        let mut found = Found::default();
        let descriptors = match self.registry.referrers(repo, digest, credential).await {
            Ok(Referrers::Found {
                descriptors,
                unread,
                ..
            }) => {
                found.looked_in.push("referrers".into());
                found.errors.extend(unread);
                descriptors
            }
            Ok(Referrers::Unsupported) => {
                found
                    .looked_in
                    .push("referrers (the registry has no referrers API)".into());
                found.looked_in.push(tag.to_string());
                match self
                    .registry
                    .get_manifest(repo, tag, &[OCI_INDEX], credential)
                    .await
                {
                    Ok(m) => match serde_json::from_slice::<Manifests>(&m.bytes) {
                        Ok(index) => index.manifests,
                        Err(e) => {
                            found.errors.push(format!("the {tag} index: {e}"));
                            Vec::new()
                        }
                    },
                    Err(e) if e.kind == FailureKind::ManifestUnknown => Vec::new(),
                    Err(e) => {
                        found.errors.push(describe(tag, &e));
                        Vec::new()
                    }
                }
            }
            Err(e) => {
                found.looked_in.push("referrers".into());
                found.errors.push(describe("the referrers API", &e));
                Vec::new()
            }
        };
        if descriptors.len() > MAX_REFERRERS {
            found.errors.push(format!(
                "{} referrers (only {MAX_REFERRERS} were read: those whose artifact type is a Sigstore bundle first, then those with none or the empty one)",
                descriptors.len()
            ));
        }
        let parts = futures::future::join_all(
            most_likely_bundles_first(&descriptors)
                .into_iter()
                .take(MAX_REFERRERS)
                .map(|d| self.referrer(repo, d, credential, budget)),
        )
        .await;
        for part in parts {
            match part {
                Ok(materials) => found.materials.extend(materials),
                Err(e) => found.errors.push(e),
            }
        }
        found
    }

    /// The bundle layers of one referrer manifest.
    async fn referrer(
        &self,
        repo: &Repository,
        d: &Descriptor,
        credential: Option<&Credential>,
        budget: &AtomicUsize,
    ) -> Result<Vec<Material>, String> {
        let short = short_digest(&d.digest);
        let what = format!("referrer {short}");
        let m = self
            .registry
            .get_manifest(
                repo,
                &d.digest,
                &[OCI_MANIFEST, DOCKER_MANIFEST],
                credential,
            )
            .await
            .map_err(|e| describe(&what, &e))?;
        let layers: Layers =
            serde_json::from_slice(&m.bytes).map_err(|e| format!("{what}: {e}"))?;
        let mut out = Vec::new();
        let bundles = layers
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| signature::is_bundle_media_type(&l.media_type));
        // cosign writes one bundle per referrer; a few more are read, never
        // thousands of (possibly empty) layers.
        for (i, layer) in bundles.take(MAX_BUNDLES_PER_REFERRER) {
            let bytes = self.blob(repo, layer, credential, budget, &what).await?;
            out.push(Material::Bundle(BundleLayer {
                origin: format!("{what} layer {i}"),
                media_type: layer.media_type.clone(),
                bytes,
            }));
        }
        Ok(out)
    }

    /// The layers of a legacy `.sig` or `.att` manifest.
    async fn legacy(
        &self,
        repo: &Repository,
        tag: &str,
        credential: Option<&Credential>,
        budget: &AtomicUsize,
    ) -> Found {
        let mut found = Found {
            looked_in: vec![tag.to_string()],
            ..Found::default()
        };
        let m = match self
            .registry
            .get_manifest(repo, tag, &[OCI_MANIFEST, DOCKER_MANIFEST], credential)
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind == FailureKind::ManifestUnknown => return found,
            Err(e) => {
                found.errors.push(describe(tag, &e));
                return found;
            }
        };
        let layers: Layers = match serde_json::from_slice(&m.bytes) {
            Ok(l) => l,
            Err(e) => {
                found.errors.push(format!("{tag}: {e}"));
                return found;
            }
        };
        let max = signature::Limits::default().max_materials;
        for (i, layer) in layers.layers.iter().take(max).enumerate() {
            let Some(kind) = LegacyKind::from_media_type(&layer.media_type) else {
                continue;
            };
            let what = format!("{tag} layer {i}");
            match self.blob(repo, layer, credential, budget, &what).await {
                Ok(bytes) => found.materials.push(Material::Legacy(LegacyLayer {
                    origin: what,
                    kind,
                    media_type: layer.media_type.clone(),
                    digest: layer.digest.clone(),
                    annotations: layer.annotations.clone().unwrap_or_default(),
                    bytes,
                })),
                Err(e) => found.errors.push(e),
            }
        }
        found
    }

    /// One layer blob, bounded by the per-layer limit and the image's budget.
    async fn blob(
        &self,
        repo: &Repository,
        layer: &Descriptor,
        credential: Option<&Credential>,
        budget: &AtomicUsize,
        what: &str,
    ) -> Result<Vec<u8>, String> {
        let max = signature::Limits::default().max_material_bytes;
        let size = usize::try_from(layer.size.max(0)).unwrap_or(usize::MAX);
        if size > max {
            return Err(format!(
                "{what}: {size} bytes, over the {} MiB imagegate reads per layer",
                max >> 20
            ));
        }
        let reserved = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(size)
        });
        if reserved.is_err() {
            return Err(format!(
                "{what}: over the {} MiB of signature material imagegate reads per image",
                MAX_MATERIAL_BYTES >> 20
            ));
        }
        self.registry
            .get_blob(repo, layer, max as u64, credential)
            .await
            .map_err(|e| describe(what, &e))
    }
}

/// The referrers in the order they are read, so that an image with more referrers
/// than [`MAX_REFERRERS`] (SBOMs, scan reports, other tools' signatures) still has
/// its Sigstore bundles read: first those whose `artifactType` is a bundle media
/// type (cosign v3, GitHub's attestations), then those with none or the empty
/// config's (how some registries list a bundle manifest), then the rest; the
/// registry's order within each. Every referrer is still a candidate: bundles are
/// chosen by their layers' media types, never by `artifactType`.
fn most_likely_bundles_first(descriptors: &[Descriptor]) -> Vec<&Descriptor> {
    let rank = |d: &Descriptor| match d.artifact_type.as_deref().map(str::trim) {
        Some(t) if signature::is_bundle_media_type(t) => 0,
        None | Some("" | "application/vnd.oci.empty.v1+json") => 1,
        Some(_) => 2,
    };
    let mut ordered: Vec<&Descriptor> = descriptors.iter().collect();
    ordered.sort_by_key(|d| rank(d));
    ordered
}

fn short_digest(digest: &str) -> String {
    digest.chars().take(19).collect()
}

fn describe(what: &str, e: &RegistryError) -> String {
    format!("{what} ({}: {})", e.kind.as_str(), e.detail)
}

/// The engine's view of what `authority` verified.
fn authority_facts(report: &Report, authority: &str) -> AuthorityFacts {
    let statements = report
        .verified(authority)
        .filter(|(_, v)| v.kind == MaterialKind::Attestation)
        .filter_map(|(_, v)| v.statement.as_ref())
        .map(|s| Statement {
            predicate_type: s.predicate_type.clone(),
            predicate: s.predicate.clone().map(Arc::new),
            predicate_bytes: s.predicate_bytes,
        })
        .collect();
    AuthorityFacts {
        signature_verified: report.signature_verified(authority),
        failure: report
            .best_failure(authority)
            .map(|(_, f)| SignatureFailure {
                kind: failure_kind(f.kind),
                message: f.message.clone(),
            }),
        statements,
    }
}

fn failure_kind(kind: signature::FailureKind) -> SignatureFailureKind {
    use signature::FailureKind as F;
    match kind {
        F::Malformed
        | F::TooLarge
        | F::Unsupported
        | F::Internal
        | F::KindMismatch
        | F::NoTrustRoot => SignatureFailureKind::Malformed,
        F::NotSupported => SignatureFailureKind::NotSupported,
        F::WrongKey | F::BadSignature => SignatureFailureKind::WrongKey,
        F::Tampered => SignatureFailureKind::Tampered,
        F::UntrustedCertificate
        | F::CertificateExpired
        | F::NoTimeProof
        | F::CertificateNotValidAtTime
        | F::SctInvalid => SignatureFailureKind::Certificate,
        F::IdentityMismatch | F::IssuerMismatch => SignatureFailureKind::IdentityMismatch,
        F::LogRequired | F::LogUntrusted | F::LogInvalid | F::LogMismatch | F::TimestampInvalid => {
            SignatureFailureKind::Log
        }
        F::DigestMismatch | F::RepositoryMismatch | F::AnnotationMismatch => {
            SignatureFailureKind::Mismatch
        }
    }
}

/// How long a result is cached: long when every authority verified something and
/// every location could be read, short otherwise (nothing found, an authority
/// without a verified signature, a registry error), so that a signature pushed
/// after a denial counts within `signature_failure_ttl`.
pub(super) fn is_lasting(facts: &SignatureFacts) -> bool {
    facts.unavailable.is_none()
        && facts.errors.is_empty()
        && !facts.authorities.is_empty()
        && facts
            .authorities
            .values()
            .all(|a| a.signature_verified || !a.statements.is_empty())
}

/// The bytes a cached result holds, for the cache's weigher.
pub(super) fn weight(key: &SignatureKey, facts: &SignatureFacts) -> usize {
    let strings = |v: &[String]| v.iter().map(String::len).sum::<usize>();
    let authorities: usize = facts
        .authorities
        .iter()
        .map(|(name, a)| {
            name.len()
                + a.failure.as_ref().map_or(0, |f| f.message.len())
                + a.statements
                    .iter()
                    .map(|s| {
                        s.predicate_type.len()
                            + s.predicate.as_ref().map_or(0, |_| s.predicate_bytes * 2)
                            + 64
                    })
                    .sum::<usize>()
                + 64
        })
        .sum();
    key.0.len()
        + key.1.len()
        + facts.digest.len()
        + strings(&facts.looked_in)
        + strings(&facts.errors)
        + facts.unavailable.as_ref().map_or(0, String::len)
        + authorities
        + 128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referrer(digest: &str, artifact_type: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            artifact_type: artifact_type.map(str::to_string),
            annotations: None,
            platform: None,
        }
    }

    /// The referrers listed (digest, artifactType), and the digests in the order
    /// they are read.
    type Row<'a> = (&'a [(&'a str, Option<&'a str>)], &'a str);

    #[test]
    fn referrers_that_may_hold_bundles_are_read_first_in_the_registry_order() {
        let bundle = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let versioned = "application/vnd.dev.sigstore.bundle+json;version=0.3";
        let empty = "application/vnd.oci.empty.v1+json";
        let table: &[Row] = &[
            (
                &[("a", Some("application/spdx+json")), ("b", Some(bundle))],
                "b a",
            ),
            (
                &[
                    ("sbom", Some("application/spdx+json")),
                    ("none", None),
                    ("empty", Some(empty)),
                    ("blank", Some("")),
                    ("v3", Some(bundle)),
                    ("notary", Some("application/vnd.cncf.notary.signature")),
                    ("v03", Some(versioned)),
                ],
                "v3 v03 none empty blank sbom notary",
            ),
            (&[("x", Some(bundle)), ("y", Some(bundle))], "x y"),
            (&[], ""),
        ];
        for (listed, read) in table {
            let descriptors: Vec<Descriptor> =
                listed.iter().map(|(d, t)| referrer(d, *t)).collect();
            let order: Vec<&str> = most_likely_bundles_first(&descriptors)
                .iter()
                .map(|d| d.digest.as_str())
                .collect();
            assert_eq!(order.join(" "), *read, "{listed:?}");
        }
    }
}
