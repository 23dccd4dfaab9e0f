//! The rules that read registry facts: pull pre-flight, digest pinning and
//! architectures.

use std::collections::BTreeSet;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde_json::{Value, json};

use super::{ClusterNodes, Decision, Facts, ImageFacts, Rule};
use crate::admission::{ContainerImage, Workload};
use crate::matching::IfUnknown;
use crate::platform::{self, ARCH_LABEL, NodePlatform, OS_LABEL, Platform, PlatformSource};
use crate::policy::compile::Architectures;
use crate::policy::spec::{ArchMismatchAction, RegistryErrorAction};
use crate::policy::{Mode, Policy};
use crate::reference::ImageRef;

pub(super) struct Context<'a> {
    pub policy: &'a Policy,
    pub workload: &'a Workload,
    /// The container's index in `workload.containers`.
    pub index: usize,
    pub container: &'a ContainerImage,
    pub image: &'a ImageRef,
    pub version: &'a super::Version<'a>,
    pub facts: &'a Facts,
}

impl Context<'_> {
    fn who(&self) -> String {
        self.container.describe()
    }
}

/// Checks one container against one policy's registry rules. Violations are
/// returned; warnings and patches go straight into the decision. `pinned` keeps two
/// policies from pinning one container twice.
pub(super) fn check(
    ctx: &Context<'_>,
    decision: &mut Decision,
    pinned: &mut bool,
    arch: &mut ArchPlan,
) -> Vec<(Rule, String)> {
    let mut out = Vec::new();
    // No facts: an offline evaluation (`imagegate check`), which asks no registry.
    let Some(facts) = ctx.facts.images.get(&ctx.container.image) else {
        return out;
    };
    let policy = ctx.policy;
    match facts {
        ImageFacts::Failed(failure) => {
            let why = failure
                .node_view
                .as_ref()
                .map(|view| format!("; {}", view.explain(ctx.image.registry())))
                .unwrap_or_default();
            if failure.is_definitive() {
                out.push((Rule::Preflight, failure.message.clone()));
            } else if policy.on_registry_error == RegistryErrorAction::Deny {
                let deny = match &failure.node_view {
                    Some(_) => format!(
                        "{}{why}: denied because policy {} has onRegistryError: Deny (Warn admits such images with a warning)",
                        failure.message, policy.name
                    ),
                    None => failure.message.clone(),
                };
                out.push((Rule::Preflight, deny));
            } else {
                decision.warnings.push(format!(
                    "{}: {}{why} (admitted because policy {} has onRegistryError: Warn)",
                    ctx.who(),
                    failure.message,
                    policy.name
                ));
            }
        }
        ImageFacts::Found {
            digest, manifest, ..
        } => {
            if policy.pin_digests
                && !*pinned
                && ctx.image.digest().is_none()
                && policy.pin_digests_on.contains(&ctx.workload.kind)
                && !policy
                    .skip_pinning
                    .matches(ctx.image, ctx.version.tag, IfUnknown::NoMatch)
            {
                // Keep the tag, and write the implied `latest` out: the tag rules
                // still judge `repo:latest@sha256:...` after the pin.
                let pinned_image = if ctx.image.is_implicit_latest() {
                    format!(
                        "{}:{}@{digest}",
                        ctx.container.image,
                        crate::reference::IMPLICIT_TAG
                    )
                } else {
                    format!("{}@{digest}", ctx.container.image)
                };
                match policy.mode {
                    Mode::Enforce => {
                        decision
                            .patches
                            .push(PatchOperation::Replace(ReplaceOperation {
                                path: pointer(&ctx.container.pointer),
                                value: Value::String(pinned_image),
                            }));
                        *pinned = true;
                    }
                    Mode::Audit => decision.would_mutate.push(format!(
                        "would pin: {} to {pinned_image} [policy {}, rule pinDigests]",
                        ctx.who(),
                        policy.name
                    )),
                }
            }
            if let (Some(rules), Some(manifest)) = (&policy.architectures, manifest) {
                arch.check(ctx, rules, &manifest.platforms, &mut out, decision);
            }
        }
    }
    out
}

fn pointer(s: &str) -> PointerBuf {
    PointerBuf::parse(s).expect("container pointers are built from valid segments")
}

/// Architecture decisions gathered over all containers, so that one node affinity
/// fits every image of the pod.
#[derive(Default)]
pub(super) struct ArchPlan {
    affinity: Option<AffinityPlan>,
}

struct AffinityPlan {
    /// The platforms the pod may run on.
    candidates: BTreeSet<NodePlatform>,
    /// Those every image so far covers.
    allowed: BTreeSet<NodePlatform>,
    policy: String,
    /// The container's index in the workload.
    container: usize,
    source: String,
}

impl ArchPlan {
    fn check(
        &mut self,
        ctx: &Context<'_>,
        rules: &Architectures,
        platforms: &[Platform],
        out: &mut Vec<(Rule, String)>,
        decision: &mut Decision,
    ) {
        let (nodes, unavailable) = match &ctx.facts.nodes {
            Some(ClusterNodes::Listed(nodes)) => (Some(nodes.as_slice()), None),
            Some(ClusterNodes::Unavailable(why)) => (None, Some(why.as_str())),
            None => (None, None),
        };
        let Some(placement) = platform::placement(&ctx.workload.pod_spec, nodes, &rules.require)
        else {
            // Nothing says where the pod runs because the Nodes could not be read:
            // that is the Kubernetes API failing, and onRegistryError decides.
            if let Some(why) = unavailable {
                let message = format!(
                    "cannot tell which architectures the pod may run on: {why}; the pod names none (nodeSelector {ARCH_LABEL}) and policy {} requires none (architectures.require)",
                    ctx.policy.name
                );
                match ctx.policy.on_registry_error {
                    RegistryErrorAction::Deny => out.push((Rule::Architectures, message)),
                    RegistryErrorAction::Warn => decision.warnings.push(format!(
                        "{}: {message} (admitted because policy {} has onRegistryError: Warn)",
                        ctx.who(),
                        ctx.policy.name
                    )),
                }
            }
            return;
        };
        let mut source = placement.source.to_string();
        if let (Some(why), PlatformSource::Policy | PlatformSource::Pod(_)) =
            (unavailable, placement.source)
        {
            source.push_str(&format!("; the cluster's Nodes are unknown: {why}"));
        }
        let (supported, missing): (BTreeSet<NodePlatform>, BTreeSet<NodePlatform>) = placement
            .platforms
            .iter()
            .cloned()
            .partition(|p| p.runs(platforms));
        if missing.is_empty() {
            return;
        }
        let has = if platforms.is_empty() {
            "no platform at all".to_string()
        } else {
            platforms
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing_list = list(&missing);
        let mut cannot_patch: Option<String> = None;
        if rules.on_mismatch == ArchMismatchAction::AddNodeAffinity
            && !placement.pod_constrained
            && !supported.is_empty()
        {
            if let Some(why) = ctx.workload.change.fixed_because() {
                cannot_patch = Some(format!(
                    "; {why}, so imagegate adds no node affinity to this request"
                ));
            } else if expressions(&placement.platforms, &supported).is_none() {
                cannot_patch = Some(
                    "; no node affinity on kubernetes.io/os and kubernetes.io/arch selects exactly the nodes the images run on".to_string(),
                );
            } else if ctx.policy.mode == Mode::Audit {
                decision.would_mutate.push(format!(
                    "would add a required node affinity for {}: {} lacks {missing_list} [policy {}, rule architectures]",
                    list(&supported),
                    ctx.who(),
                    ctx.policy.name
                ));
                return;
            } else {
                self.affinity = Some(match self.affinity.take() {
                    None => AffinityPlan {
                        candidates: placement.platforms.clone(),
                        allowed: supported,
                        policy: ctx.policy.name.clone(),
                        container: ctx.index,
                        source,
                    },
                    Some(mut plan) => {
                        plan.allowed = plan.allowed.intersection(&supported).cloned().collect();
                        plan
                    }
                });
                return;
            }
        }
        let fix = match supported.iter().next() {
            Some(p) if p.os != platform::DEFAULT_OS || missing.iter().any(|m| m.os != p.os) => {
                format!(
                    "build and push the image for {missing_list} too, or keep the pod off those nodes (nodeSelector {OS_LABEL}: {}, {ARCH_LABEL}: {})",
                    p.os, p.arch
                )
            }
            Some(p) => format!(
                "build and push the image for {missing_list} too, or keep the pod off those nodes (nodeSelector {ARCH_LABEL}: {})",
                p.arch
            ),
            None => format!("build and push the image for {missing_list}"),
        };
        out.push((
            Rule::Architectures,
            format!(
                "the image has no {missing_list} variant (it has {has}); the pod may run on {} nodes (from {source}), where it would crash with \"exec format error\"; {fix}{}",
                missing
                    .iter()
                    .map(|m| if m.os == platform::DEFAULT_OS { m.arch.clone() } else { m.to_string() })
                    .collect::<Vec<_>>()
                    .join(", "),
                cannot_patch.unwrap_or_default()
            ),
        ));
    }

    /// Adds the node affinity patch, or denies when no platform runs every image.
    pub(super) fn finish(self, workload: &Workload, decision: &mut Decision) {
        let Some(plan) = self.affinity else {
            return;
        };
        let violation = |decision: &mut Decision, message: &str| {
            decision.violation(
                &plan.policy,
                Mode::Enforce,
                Rule::Architectures,
                plan.container,
                message,
            )
        };
        let Some(exprs) = expressions(&plan.candidates, &plan.allowed) else {
            let message = format!(
                "the pod's images have no platform in common among the nodes it may run on ({}, from {}), so no node affinity can fit them all; build the images for a common platform",
                list(&plan.candidates),
                plan.source
            );
            let v = violation(decision, &message);
            decision.violations.push(v);
            return;
        };
        // If the mutating webhook's patch never lands (its failurePolicy is Ignore,
        // or another webhook undoes it), the validating webhook must still refuse.
        let message = format!(
            "the images do not cover every platform the pod may run on (from {}), and the node affinity for {} that imagegate's mutating webhook adds is missing; add it, or check that the mutating webhook is installed",
            plan.source,
            list(&plan.allowed)
        );
        let v = violation(decision, &message);
        decision.unless_mutated.push(v);
        decision.patches.extend(affinity_patch(
            workload.pod_spec_pointer,
            workload.raw_affinity.as_ref(),
            &exprs,
        ));
    }
}

fn list(platforms: &BTreeSet<NodePlatform>) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node selector requirements that keep a pod on `allowed` among `candidates`
/// (an arch `In`, and an OS `In` when the OS matters), or `None` when no such pair
/// selects exactly `allowed`.
fn expressions(
    candidates: &BTreeSet<NodePlatform>,
    allowed: &BTreeSet<NodePlatform>,
) -> Option<Vec<Value>> {
    if allowed.is_empty() {
        return None;
    }
    let oses: BTreeSet<&str> = allowed.iter().map(|p| p.os.as_str()).collect();
    let archs: BTreeSet<&str> = allowed.iter().map(|p| p.arch.as_str()).collect();
    let selected: BTreeSet<&NodePlatform> = candidates
        .iter()
        .filter(|p| oses.contains(p.os.as_str()) && archs.contains(p.arch.as_str()))
        .collect();
    if selected != allowed.iter().collect() {
        return None;
    }
    let mut exprs = Vec::new();
    if candidates.iter().any(|p| !oses.contains(p.os.as_str())) {
        exprs.push(json!({"key": OS_LABEL, "operator": "In", "values": oses}));
    }
    if candidates.iter().any(|p| !archs.contains(p.arch.as_str())) {
        exprs.push(json!({"key": ARCH_LABEL, "operator": "In", "values": archs}));
    }
    Some(exprs)
}

/// JSON Patch operations that add `exprs` to the pod's required node affinity, on
/// the affinity as the request carried it: only the part that changes is written,
/// so fields imagegate does not know survive. Terms are ORed, so the expressions go
/// into each term; an empty term matches no node and is left alone.
fn affinity_patch(
    pod_spec: &str,
    affinity: Option<&Value>,
    exprs: &[Value],
) -> Vec<PatchOperation> {
    let add = |path: String, value: Value| {
        PatchOperation::Add(AddOperation {
            path: pointer(&path),
            value,
        })
    };
    let terms = json!([{"matchExpressions": exprs}]);
    let required = json!({"nodeSelectorTerms": terms});
    let base = format!("{pod_spec}/affinity");
    let Some(affinity) = affinity.filter(|a| a.is_object()) else {
        let value =
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}});
        return vec![add(base, value)];
    };
    let base = format!("{base}/nodeAffinity");
    let Some(node_affinity) = affinity.get("nodeAffinity").filter(|a| a.is_object()) else {
        let value = json!({"requiredDuringSchedulingIgnoredDuringExecution": required});
        return vec![add(base, value)];
    };
    let base = format!("{base}/requiredDuringSchedulingIgnoredDuringExecution");
    let Some(selector) = node_affinity
        .get("requiredDuringSchedulingIgnoredDuringExecution")
        .filter(|s| s.is_object())
    else {
        return vec![add(base, required)];
    };
    let base = format!("{base}/nodeSelectorTerms");
    let existing = selector.get("nodeSelectorTerms").and_then(Value::as_array);
    let Some(existing) = existing.filter(|t| !t.is_empty()) else {
        return vec![add(base, terms)];
    };
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let mut ops = Vec::new();
    for (i, term) in existing.iter().enumerate() {
        let expressions = term.get("matchExpressions");
        if !non_empty(expressions) && !non_empty(term.get("matchFields")) {
            continue;
        }
        let path = format!("{base}/{i}/matchExpressions");
        if expressions.is_some_and(Value::is_array) {
            ops.extend(exprs.iter().map(|e| add(format!("{path}/-"), e.clone())));
        } else {
            ops.push(add(path, Value::Array(exprs.to_vec())));
        }
    }
    ops
}
