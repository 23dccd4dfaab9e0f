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

use std::collections::HashSet;
use std::sync::Arc;

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
///
/// Small on purpose: a CREATE may carry 200,000 containers, each denied. The
/// container is named by its index in the workload (not copied), and the policy
/// name and the message are shared by every violation that has the same text
/// (one allocation per distinct message in a decision, not one per container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The policy, or `imagegate` for the built-in reference check.
    pub policy: Arc<str>,
    pub mode: Mode,
    pub rule: Rule,
    /// The container, as its index in [`Workload::containers`] of the workload
    /// the decision was made for (see [`Violation::container_in`]).
    pub container: usize,
    /// What is wrong and what to do about it, for the application team.
    pub message: Arc<str>,
}

impl Violation {
    /// The container this violation is about, in the workload the decision was
    /// made for (a decision is only ever read with its own workload).
    pub fn container_in<'a>(&self, workload: &'a Workload) -> &'a ContainerImage {
        &workload.containers[self.container]
    }

    /// One line: `container "app" image "nginx": <message> [policy production, rule tags.forbid]`.
    pub fn line(&self, workload: &Workload) -> String {
        format!(
            "{}: {} [policy {}, rule {}]",
            self.container_in(workload).describe(),
            self.message,
            self.policy,
            self.rule
        )
    }
}

/// One shared copy of each policy name and message text in a decision.
#[derive(Debug, Clone, Default)]
struct Shared(HashSet<Arc<str>>);

impl Shared {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(shared.clone());
        shared
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
    /// The policy names and messages the violations share.
    shared: Shared,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The denial message for `kubectl` users: one violation per line, up to
    /// [`MAX_DENIAL_LINES`] lines and [`MAX_DENIAL_BYTES`] bytes (each line cut at
    /// [`MAX_LINE_BYTES`]), then one line that says how many more there are. Its
    /// size does not grow with the request: an UPDATE may carry 100,000 containers.
    pub fn denial_message(&self, workload: &Workload) -> String {
        let n = self.violations.len();
        let mut msg = format!(
            "imagegate denied {} in namespace \"{}\": {} image policy violation{}",
            workload.describe(),
            workload.namespace,
            thousands(n),
            if n == 1 { "" } else { "s" }
        );
        let mut shown = 0;
        for v in &self.violations {
            let line = cut(v.line(workload), MAX_LINE_BYTES);
            if shown == MAX_DENIAL_LINES || msg.len() + line.len() + 3 > MAX_DENIAL_BYTES {
                break;
            }
            msg.push_str("\n- ");
            msg.push_str(&line);
            shown += 1;
        }
        if shown < n {
            let listed: HashSet<usize> = self.violations[..shown]
                .iter()
                .map(|v| v.container)
                .collect();
            let more: HashSet<usize> = self.violations[shown..]
                .iter()
                .map(|v| v.container)
                .filter(|c| !listed.contains(c))
                .collect();
            let left = n - shown;
            msg.push_str(&format!(
                "\n- ... and {} more violation{} not shown{}; run `imagegate check` on the manifest to list every one",
                thousands(left),
                if left == 1 { "" } else { "s" },
                match more.len() {
                    0 => String::new(),
                    1 => ", in 1 more container".to_string(),
                    m => format!(", in {} more containers", thousands(m)),
                }
            ));
        }
        msg
    }

    /// `would deny: ...` for each Audit violation, made as they are read (callers
    /// keep only as many as fit; see [`crate::admission::review::limit_lines`]).
    pub fn audit_lines<'a>(
        &'a self,
        workload: &'a Workload,
    ) -> impl ExactSizeIterator<Item = String> + 'a {
        self.audit
            .iter()
            .map(move |v| format!("would deny: {}", v.line(workload)))
    }

    /// `would deny: ...` for each Audit violation.
    pub fn audit_warnings(&self, workload: &Workload) -> Vec<String> {
        self.audit_lines(workload).collect()
    }

    /// The validating webhook's warnings, made as they are read: the Audit
    /// findings, then the others.
    pub fn warning_lines<'a>(
        &'a self,
        workload: &'a Workload,
    ) -> impl ExactSizeIterator<Item = String> + 'a {
        ChainExact {
            first: self.audit_lines(workload),
            second: self.warnings.iter().cloned(),
        }
    }

    /// The validating webhook's warnings: the Audit findings, then the others.
    pub fn all_warnings(&self, workload: &Workload) -> Vec<String> {
        self.warning_lines(workload).collect()
    }

    /// A violation of `policy`'s `rule` by the container at `index`, its policy
    /// name and message shared with the decision's other violations.
    fn violation(
        &mut self,
        policy: &str,
        mode: Mode,
        rule: Rule,
        container: usize,
        message: &str,
    ) -> Violation {
        Violation {
            policy: self.shared.get(policy),
            mode,
            rule,
            container,
            message: self.shared.get(message),
        }
    }

    fn push(&mut self, v: Violation) {
        match v.mode {
            Mode::Enforce => self.violations.push(v),
            Mode::Audit => self.audit.push(v),
        }
    }
}

/// The most violation lines a denial message lists before it summarizes the rest.
pub const MAX_DENIAL_LINES: usize = 50;
/// The most bytes of a denial message (`kubectl` prints it whole).
pub const MAX_DENIAL_BYTES: usize = 24 * 1024;
/// The longest single violation line in a denial message (an image reference
/// may be as long as the request).
pub const MAX_LINE_BYTES: usize = 2048;

/// `1,996`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, ending in `...` when cut.
pub fn cut(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let ellipsis = "...";
    let mut end = max.saturating_sub(ellipsis.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

/// Two exact-size iterators one after the other (`Chain` is not exact-size).
struct ChainExact<A, B> {
    first: A,
    second: B,
}

impl<A, B> Iterator for ChainExact<A, B>
where
    A: Iterator,
    B: Iterator<Item = A::Item>,
{
    type Item = A::Item;

    fn next(&mut self) -> Option<A::Item> {
        self.first.next().or_else(|| self.second.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.first.size_hint().0 + self.second.size_hint().0;
        (n, Some(n))
    }
}

impl<A, B> ExactSizeIterator for ChainExact<A, B>
where
    A: ExactSizeIterator,
    B: ExactSizeIterator<Item = A::Item>,
{
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
    for (index, container) in workload.containers.iter().enumerate() {
        let image = match ImageRef::parse_cached(&container.image) {
            Ok(image) => image,
            Err(e) => {
                // The pod would end in InvalidImageName whatever the policies say, or
                // the reference is one imagegate refuses on purpose (an image ID).
                let v = decision.violation(
                    BUILTIN_POLICY,
                    Mode::Enforce,
                    Rule::Reference,
                    index,
                    &rules::invalid_reference(&e),
                );
                decision.violations.push(v);
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
                    index,
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
                let v = decision.violation(&policy.name, policy.mode, rule, index, &message);
                decision.push(v);
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
    // A set: a request may carry 100,000 containers, and this stays linear.
    let denied: HashSet<&str> = decision
        .violations
        .iter()
        .map(|v| v.container_in(workload).pointer.as_str())
        .collect();
    decision
        .patches
        .retain(|p| !denied.contains(p.path().as_str()));
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

/// The denial message and the warnings stay bounded whatever the request's size.
#[cfg(test)]
mod message_tests {
    use serde_json::json;

    use super::*;
    use crate::policy::load_sources;

    fn pod(images: impl Iterator<Item = String>) -> Workload {
        let containers: Vec<_> = images
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        let object = json!({"metadata": {"name": "web"}, "spec": {"containers": containers}});
        Workload::from_object("", "Pod", "team", &object)
            .unwrap()
            .unwrap()
    }

    fn policies(mode: &str) -> PolicySet {
        let policy = format!(
            "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {{name: tags}}\nspec:\n  mode: {mode}\n  tags:\n    forbid: [latest]\n"
        );
        PolicySet::compile(&load_sources(&[("p.yaml", &policy)])).unwrap()
    }

    #[test]
    fn thousands_are_grouped() {
        let table = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_996, "1,996"),
            (100_000, "100,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in table {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn a_denial_message_summarizes_past_its_limit() {
        // (containers, lines listed, the summary line or none)
        let table = [
            (3, 3, None),
            (MAX_DENIAL_LINES, MAX_DENIAL_LINES, None),
            (
                MAX_DENIAL_LINES + 1,
                MAX_DENIAL_LINES,
                Some(
                    "- ... and 1 more violation not shown, in 1 more container; run `imagegate check` on the manifest to list every one",
                ),
            ),
            (
                2_046,
                MAX_DENIAL_LINES,
                Some(
                    "- ... and 1,996 more violations not shown, in 1,996 more containers; run `imagegate check` on the manifest to list every one",
                ),
            ),
        ];
        let policies = policies("Enforce");
        for (n, listed, summary) in table {
            let w = pod((0..n).map(|i| format!("nginx{i}:latest")));
            let d = decide(&policies, &w, &Facts::default());
            assert_eq!(d.violations.len(), n);
            let msg = d.denial_message(&w);
            let lines: Vec<&str> = msg.lines().collect();
            assert_eq!(
                lines[0],
                format!(
                    "imagegate denied Pod \"web\" in namespace \"team\": {} image policy violation{}",
                    thousands(n),
                    if n == 1 { "" } else { "s" }
                )
            );
            let violation_lines = lines
                .iter()
                .filter(|l| l.starts_with("- container"))
                .count();
            assert_eq!(violation_lines, listed, "{n}");
            assert_eq!(
                lines
                    .last()
                    .copied()
                    .filter(|l| l.contains("more violation")),
                summary
            );
            assert!(
                msg.len() <= MAX_DENIAL_BYTES + 256,
                "{n}: {} bytes",
                msg.len()
            );
        }
        // Long lines: the byte limit holds before the line limit, and each line is cut.
        let long = format!("registry.example/{}:latest", "a".repeat(10_000));
        let w = pod(std::iter::repeat_n(long, 200));
        let msg = decide(&policies, &w, &Facts::default()).denial_message(&w);
        assert!(msg.len() <= MAX_DENIAL_BYTES + 256, "{} bytes", msg.len());
        assert!(msg.lines().skip(1).all(|l| l.len() <= MAX_LINE_BYTES + 2));
        assert!(msg.ends_with("run `imagegate check` on the manifest to list every one"));
    }

    #[test]
    fn audit_findings_are_made_only_as_far_as_they_are_read() {
        let policies = policies("Audit");
        let w = pod((0..1_000).map(|i| format!("nginx{i}:latest")));
        let d = decide(&policies, &w, &Facts::default());
        assert_eq!(d.audit.len(), 1_000);
        assert_eq!(d.audit_lines(&w).len(), 1_000);
        assert_eq!(d.warning_lines(&w).len(), 1_000);
        assert_eq!(d.all_warnings(&w).len(), 1_000);
        let first = d.warning_lines(&w).next().unwrap();
        assert!(first.starts_with("would deny: container \"c0\""), "{first}");
    }
}
