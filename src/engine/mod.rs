//! The decision engine: policies + a workload + facts about its images -> a decision.
//!
//! Pure and synchronous: no I/O, no Kubernetes client, no awaiting. Facts that need
//! the network (digests, platforms, signatures) are gathered before the engine runs
//! and handed in as [`Facts`]; the engine only reads them. The same engine serves the
//! webhook and the offline `check` command.

mod facts;
mod pull_secrets;
mod registry_rules;
mod rules;
mod signature_rules;

use crate::admission::{ContainerImage, Workload};
use crate::matching::{IfUnknown, Tag};
use crate::policy::{Mode, Policy, PolicySet};
use crate::reference::ImageRef;

pub use facts::{
    AuthorityFacts, ClusterNodes, Facts, FailureKind, ImageFacts, LookupFailure, ManifestFacts,
    Needs, NodeView, PullSecretFacts, SecretFacts, ServiceAccountSecrets, SignatureFacts,
    SignatureFailure, SignatureFailureKind, Statement, TagCheck, needs,
};
pub use pull_secrets::pull_secret_problem;
pub use rules::Rule;

/// One rule one container's image breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The policy, or `imagegate` for the built-in reference check.
    pub policy: String,
    pub mode: Mode,
    pub rule: Rule,
    pub container: ContainerImage,
    /// What is wrong and what to do about it, for the application team.
    pub message: String,
}

impl Violation {
    /// One line: `container "app" image "nginx": <message> [policy production, rule tags.forbid]`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} [policy {}, rule {}]",
            self.container.describe(),
            self.message,
            self.policy,
            self.rule
        )
    }
}

/// The engine's answer for one workload.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Enforce violations: any of these denies the request.
    pub violations: Vec<Violation>,
    /// Audit violations: reported, never enforced.
    pub audit: Vec<Violation>,
    /// Warnings that deny nothing, for the validating webhook: a registry that
    /// could not be asked under `onRegistryError: Warn`.
    pub warnings: Vec<String>,
    /// The patches an Audit policy would have made (`would pin: ...`), for the
    /// mutating webhook, which reports them instead of applying them.
    pub would_mutate: Vec<String>,
    /// The mutations (digest pins, node affinity, pull secrets), for the mutating
    /// webhook: one JSON Patch whose operations touch distinct paths.
    pub patches: Vec<json_patch::PatchOperation>,
    /// Violations that the mutating webhook's patches resolve. The validating
    /// webhook, which sees the object after every mutation, treats them as
    /// violations: if they are still there, the patch never landed.
    pub unless_mutated: Vec<Violation>,
    /// What was deliberately not checked, and why (`imagePullPolicy: Never`), for
    /// the audit annotations of the validating webhook.
    pub not_checked: Vec<String>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The denial message for `kubectl` users: every violation, one per line.
    pub fn denial_message(&self, workload: &Workload) -> String {
        let n = self.violations.len();
        let mut msg = format!(
            "imagegate denied {} in namespace \"{}\": {n} image policy violation{}",
            workload.describe(),
            workload.namespace,
            if n == 1 { "" } else { "s" }
        );
        for v in &self.violations {
            msg.push_str("\n- ");
            msg.push_str(&v.line());
        }
        msg
    }

    /// `would deny: ...` for each Audit violation.
    pub fn audit_warnings(&self) -> Vec<String> {
        self.audit
            .iter()
            .map(|v| format!("would deny: {}", v.line()))
            .collect()
    }

    /// The validating webhook's warnings: the Audit findings, then the others.
    pub fn all_warnings(&self) -> Vec<String> {
        let mut all = self.audit_warnings();
        all.extend(self.warnings.iter().cloned());
        all
    }

    fn push(&mut self, v: Violation) {
        match v.mode {
            Mode::Enforce => self.violations.push(v),
            Mode::Audit => self.audit.push(v),
        }
    }
}

/// The name of the built-in policy that refuses unparseable references.
pub const BUILTIN_POLICY: &str = "imagegate";

/// Judges every container image of `workload` against every policy that governs it.
pub fn decide(policies: &PolicySet, workload: &Workload, facts: &Facts) -> Decision {
    let mut decision = Decision::default();
    let applicable: Vec<&Policy> = policies
        .policies
        .iter()
        .filter(|p| p.applies_to_namespace(&workload.namespace))
        .collect();
    let mut arch = registry_rules::ArchPlan::default();
    for container in &workload.containers {
        let image = match ImageRef::parse_cached(&container.image) {
            Ok(image) => image,
            Err(e) => {
                // The pod would end in InvalidImageName whatever the policies say, or
                // the reference is one imagegate refuses on purpose (an image ID).
                decision.violations.push(Violation {
                    policy: BUILTIN_POLICY.into(),
                    mode: Mode::Enforce,
                    rule: Rule::Reference,
                    container: container.clone(),
                    message: rules::invalid_reference(&e),
                });
                continue;
            }
        };
        let version = Version::of(&image, facts.images.get(&container.image));
        let mut pinned = false;
        let mut unpulled = Vec::new();
        for policy in &applicable {
            if !governs(policy, &image, &version) {
                continue;
            }
            let mut found = rules::check(policy, &image, &version);
            if policy.needs_registry() && container.never_pulled {
                unpulled.push(policy.name.as_str());
            } else if policy.needs_registry() {
                let ctx = registry_rules::Context {
                    policy,
                    workload,
                    container,
                    image: &image,
                    version: &version,
                    facts,
                };
                found.extend(registry_rules::check(
                    &ctx,
                    &mut decision,
                    &mut pinned,
                    &mut arch,
                ));
                found.extend(signature_rules::check(policy, &container.image, facts));
            }
            for (rule, message) in found {
                let message = match &policy.message {
                    Some(extra) => format!("{message}. {extra}"),
                    None => message,
                };
                decision.push(Violation {
                    policy: policy.name.clone(),
                    mode: policy.mode,
                    rule,
                    container: container.clone(),
                    message,
                });
            }
        }
        if !unpulled.is_empty() {
            decision.not_checked.push(format!(
                "{}: imagePullPolicy: Never, so the registry was not asked (no pull pre-flight, pinning or architecture check): the image must already be on the node [polic{} {}]",
                container.describe(),
                if unpulled.len() == 1 { "y" } else { "ies" },
                unpulled.join(", ")
            ));
        }
    }
    arch.finish(workload, &mut decision);
    // A container that is denied anyway is not pinned, and gets no pull secret.
    let denied: Vec<String> = decision
        .violations
        .iter()
        .map(|v| v.container.pointer.clone())
        .collect();
    decision
        .patches
        .retain(|p| !denied.contains(&p.path().to_string()));
    pull_secrets::decide(policies, workload, facts, &denied, &mut decision);
    decision
}

/// Whether `policy` governs `image`. An unknown version is governed (fail closed):
/// `images: [nginx:1.*]` governs `nginx@sha256:...`, `excludeImages: [nginx:1.*]`
/// does not exempt it.
fn governs(policy: &Policy, image: &ImageRef, version: &Version<'_>) -> bool {
    policy.images.matches(image, version.tag, IfUnknown::Match)
        && !policy
            .exclude_images
            .matches(image, version.tag, IfUnknown::NoMatch)
}

/// What is known of the version a container runs, for the rules that read a tag.
///
/// The runtime pulls the digest of `repo:tag@sha256:...` and ignores the tag. So the
/// tag counts only when the registry says it points to that digest now; otherwise
/// the version is unknown, and tag-scoped rules fail closed (see [`Tag`]).
#[derive(Debug, Clone)]
pub(crate) struct Version<'a> {
    pub tag: Tag<'a>,
    /// Why the version is unknown, for messages; `None` when it is known.
    pub unknown: Option<String>,
}

impl<'a> Version<'a> {
    pub(crate) fn of(image: &'a ImageRef, facts: Option<&ImageFacts>) -> Self {
        let known = |tag| Version {
            tag: Tag::Known(tag),
            unknown: None,
        };
        let unknown = |why: String| Version {
            tag: Tag::Unknown,
            unknown: Some(why),
        };
        let Some(digest) = image.digest() else {
            return known(image.tag().unwrap_or(crate::reference::IMPLICIT_TAG));
        };
        let Some(tag) = image.tag() else {
            return unknown(
                "the reference names only a digest, so its version is unknown; write the tag beside it (repo:TAG@sha256:...) and turn on preflight, so that imagegate can check that the tag points to this digest".into(),
            );
        };
        let check = match facts {
            Some(ImageFacts::Found { tag_check, .. }) => tag_check.as_ref(),
            _ => None,
        };
        match check {
            Some(TagCheck::PointsTo(d)) if d == digest => known(tag),
            Some(TagCheck::PointsTo(d)) => unknown(format!(
                "tag \"{tag}\" points to {d} in the registry, not to {digest}, which the image names and the node pulls; the tag was moved, so it does not tell which version {digest} is"
            )),
            Some(TagCheck::Unresolved(why)) => unknown(format!(
                "tag \"{tag}\" beside the digest could not be checked ({why})"
            )),
            None => unknown(format!(
                "the node pulls the digest and ignores tag \"{tag}\" beside it, and nothing checked that the tag points to that digest; turn on preflight in the policy so that imagegate checks it"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
