//! The static image rules: each returns what is wrong and what to do about it.

use std::fmt;

use super::Version;
use crate::matching::{IfUnknown, Tag};
use crate::policy::Policy;
use crate::reference::{IMPLICIT_TAG, ImageRef, ReferenceError};

/// A rule, named as in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Built in: the reference does not parse.
    Reference,
    RegistriesAllow,
    BlockedImages,
    TagsRequireDigest,
    TagsForbid,
    TagsAllow,
    /// The registry lookup failed: the pull would fail too.
    Preflight,
    /// The image lacks an architecture the pod may land on.
    Architectures,
    /// The pull secret a policy names for the image's registry is missing or does
    /// not fit it.
    RequirePullSecret,
    /// Not signed by the policy's authorities (or not enough of them).
    Signatures,
    /// A required attestation is missing or says what the policy refuses.
    Attestations,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Reference => "reference",
            Rule::RegistriesAllow => "registries.allow",
            Rule::BlockedImages => "blockedImages",
            Rule::TagsRequireDigest => "tags.requireDigest",
            Rule::TagsForbid => "tags.forbid",
            Rule::TagsAllow => "tags.allow",
            Rule::Preflight => "preflight",
            Rule::Architectures => "architectures",
            Rule::RequirePullSecret => "requirePullSecret",
            Rule::Signatures => "signatures",
            Rule::Attestations => "attestations",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(super) fn invalid_reference(e: &ReferenceError) -> String {
    if e.runtime_refuses() {
        format!("not a valid image reference: {e}; the pod would fail with InvalidImageName")
    } else {
        format!("image reference refused: {e}")
    }
}

/// Whether `policy` refuses `image` for where it comes from (its registry or name),
/// whatever a lookup could say: such an image is never looked up. A tag beside a
/// digest is taken as written here, as if a lookup confirmed it.
pub(super) fn refuses_by_name(policy: &Policy, image: &ImageRef) -> bool {
    let written = match image.tag() {
        Some(tag) => Tag::Known(tag),
        None => Tag::Unknown,
    };
    (!policy.registries_allow.is_empty() && !policy.registries_allow.matches_registry(image))
        || policy
            .blocked_images
            .matches(image, written, IfUnknown::NoMatch)
}

/// Every static rule of `policy` that `image` breaks.
pub(super) fn check(
    policy: &Policy,
    image: &ImageRef,
    version: &Version<'_>,
) -> Vec<(Rule, String)> {
    let mut out = Vec::new();
    if !policy.registries_allow.is_empty() && !policy.registries_allow.matches_registry(image) {
        out.push((
            Rule::RegistriesAllow,
            format!(
                "registry \"{}\" is not allowed here; allowed: {}. Push the image to an allowed registry (or use its mirror there)",
                image.registry(),
                policy.registries_allow.sources().join(", ")
            ),
        ));
    }
    // The tag as written first: when it is blocked, the image is blocked whether or
    // not the tag is checked. Then the version as known, failing closed.
    let as_written = image.tag().and_then(|t| {
        policy
            .blocked_images
            .first_match(image, Tag::Known(t), IfUnknown::NoMatch)
    });
    if let Some(p) = as_written.or_else(|| {
        policy
            .blocked_images
            .first_match(image, version.tag, IfUnknown::Match)
    }) {
        let unknown = match (&version.unknown, p.has_tag(), as_written.is_some()) {
            (Some(why), true, false) => format!(" unless its version is known, and {why}"),
            _ => String::new(),
        };
        out.push((
            Rule::BlockedImages,
            format!(
                "{} is blocked (pattern \"{}\"){unknown}; use another image or version",
                image.name(),
                p.source()
            ),
        ));
    }
    if policy.require_digest && image.digest().is_none() {
        out.push((
            Rule::TagsRequireDigest,
            format!(
                "a digest is required; pin the image as {}:{}@sha256:<digest> (`crane digest` or `docker buildx imagetools inspect` prints it)",
                image.name(),
                image.tag().unwrap_or(IMPLICIT_TAG)
            ),
        ));
    }
    // A forbidden tag is judged as written, even beside a digest: imagegate pins
    // `nginx` as `nginx:latest@sha256:...`, and that must stay forbidden.
    if let Some(tag) = image.tag()
        && let Some((pattern, _)) = policy.tags_forbid.iter().find(|(_, m)| m.is_match(tag))
    {
        let what = if image.is_implicit_latest() {
            format!("no tag means \"{IMPLICIT_TAG}\", which is forbidden")
        } else {
            format!("tag \"{tag}\" is forbidden (pattern \"{pattern}\")")
        };
        out.push((
            Rule::TagsForbid,
            format!(
                "{what}: a mutable tag lets nodes run different code under one name; use a release tag or a digest"
            ),
        ));
    }
    if !policy.tags_allow.is_empty() {
        let allowed: Vec<&str> = policy.tags_allow.iter().map(|re| re.as_str()).collect();
        let allowed = allowed.join(", ");
        match (version.tag, &version.unknown) {
            (Tag::Known(tag), _) if policy.tags_allow.iter().any(|re| re.is_match(tag)) => {}
            (Tag::Known(tag), _) => out.push((
                Rule::TagsAllow,
                format!(
                    "tag \"{tag}\" matches none of the allowed tag patterns ({allowed}); use a release tag"
                ),
            )),
            (Tag::Unknown, why) => out.push((
                Rule::TagsAllow,
                format!(
                    "the version must match one of the allowed tag patterns ({allowed}), and {}",
                    why.as_deref().unwrap_or("it is unknown")
                ),
            )),
        }
    }
    out
}
