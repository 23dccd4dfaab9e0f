//! The rules that read registry facts: pull pre-flight, digest pinning and
//! architectures.

use std::collections::BTreeSet;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde_json::{Value, json};

use super::{Decision, Facts, ImageFacts, Rule, Violation};
use crate::admission::{ContainerImage, Workload};
use crate::matching::IfUnknown;
use crate::platform::{self, ARCH_LABEL, Platform};
use crate::policy::compile::Architectures;
use crate::policy::spec::{ArchMismatchAction, RegistryErrorAction};
use crate::policy::{Mode, Policy};
use crate::reference::ImageRef;

pub(super) struct Context<'a> {
    pub policy: &'a Policy,
    pub workload: &'a Workload,
    pub container: &'a ContainerImage,
    pub image: &'a ImageRef,
    pub version: &'a super::Version<'a>,
    pub facts: &'a Facts,
}

impl Context<'_> {
    fn who(&self) -> String {
        format!(
            "{} \"{}\" image \"{}\"",
            self.container.kind.noun(),
            self.container.name,
            self.container.image
        )
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
            if failure.kind.is_definitive() || policy.on_registry_error == RegistryErrorAction::Deny
            {
                out.push((Rule::Preflight, failure.message.clone()));
            } else {
                decision.warnings.push(format!(
                    "{}: {} (admitted because policy {} has onRegistryError: Warn)",
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
    allowed: BTreeSet<String>,
    policy: String,
    container: ContainerImage,
    source: &'static str,
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
        let requirement = platform::pod_arch_requirement(&ctx.workload.pod_spec);
        let Some((archs, source)) = platform::resolve_architectures(
            requirement.as_ref(),
            ctx.facts.node_architectures.as_ref(),
            &rules.require,
        ) else {
            return;
        };
        let (supported, missing): (BTreeSet<String>, BTreeSet<String>) = archs
            .into_iter()
            .partition(|a| platform::covers(a, platforms));
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
        let missing_list = missing
            .iter()
            .map(|a| format!("linux/{a}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Where the pod itself says where it runs, a node affinity cannot help.
        let from_pod = [
            platform::ArchSource::NodeSelector,
            platform::ArchSource::NodeAffinity,
        ]
        .iter()
        .any(|s| s.label() == source);
        // A request that may change only images cannot get an affinity either.
        if rules.on_mismatch == ArchMismatchAction::AddNodeAffinity
            && !from_pod
            && !supported.is_empty()
            && ctx.workload.change.fixed_because().is_none()
        {
            if ctx.policy.mode == Mode::Audit {
                decision.would_mutate.push(format!(
                    "would add a required node affinity {ARCH_LABEL} in [{}]: {} lacks {missing_list} [policy {}, rule architectures]",
                    supported.iter().cloned().collect::<Vec<_>>().join(", "),
                    ctx.who(),
                    ctx.policy.name
                ));
                return;
            }
            self.affinity = Some(match self.affinity.take() {
                None => AffinityPlan {
                    allowed: supported,
                    policy: ctx.policy.name.clone(),
                    container: ctx.container.clone(),
                    source,
                },
                Some(mut plan) => {
                    plan.allowed = plan.allowed.intersection(&supported).cloned().collect();
                    plan
                }
            });
            return;
        }
        let fix = match supported.iter().next() {
            Some(a) => format!(
                "build and push the image for {missing_list} too, or keep the pod off those nodes (nodeSelector {ARCH_LABEL}: {a})"
            ),
            None => format!("build and push the image for {missing_list}"),
        };
        out.push((
            Rule::Architectures,
            format!(
                "the image has no {missing_list} variant (it has {has}); the pod may run on {} nodes (from {source}), where it would crash with \"exec format error\"; {fix}",
                missing.iter().cloned().collect::<Vec<_>>().join(", "),
            ),
        ));
    }

    /// Adds the node affinity patch, or denies when no architecture runs every image.
    pub(super) fn finish(self, workload: &Workload, decision: &mut Decision) {
        let Some(plan) = self.affinity else {
            return;
        };
        if plan.allowed.is_empty() {
            decision.violations.push(Violation {
                policy: plan.policy,
                mode: Mode::Enforce,
                rule: Rule::Architectures,
                container: plan.container,
                message: format!(
                    "the pod's images have no architecture in common among the {} nodes (from {}), so no node affinity can fit them all; build the images for a common architecture",
                    ARCH_LABEL, plan.source
                ),
            });
            return;
        }
        // If the mutating webhook's patch never lands (its failurePolicy is Ignore,
        // or another webhook undoes it), the validating webhook must still refuse.
        decision.unless_mutated.push(Violation {
            policy: plan.policy.clone(),
            mode: Mode::Enforce,
            rule: Rule::Architectures,
            container: plan.container.clone(),
            message: format!(
                "the images do not cover every architecture the pod may run on (from {}), and the node affinity {ARCH_LABEL} in [{}] that imagegate's mutating webhook adds is missing; add it, or check that the mutating webhook is installed",
                plan.source,
                plan.allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
        let values: Vec<&String> = plan.allowed.iter().collect();
        let expression = json!({"key": ARCH_LABEL, "operator": "In", "values": values});
        let mut affinity = serde_json::to_value(&workload.pod_spec.affinity).unwrap_or(Value::Null);
        if !affinity.is_object() {
            affinity = json!({});
        }
        let terms = affinity
            .pointer_mut(
                "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
            )
            .and_then(Value::as_array_mut);
        match terms {
            Some(terms) if !terms.is_empty() => {
                // Terms are ORed: the architecture must hold in each of them.
                for term in terms {
                    match term
                        .get_mut("matchExpressions")
                        .and_then(Value::as_array_mut)
                    {
                        Some(exprs) => exprs.push(expression.clone()),
                        None => term["matchExpressions"] = json!([expression.clone()]),
                    }
                }
            }
            _ => {
                let node_affinity = affinity
                    .as_object_mut()
                    .expect("made an object above")
                    .entry("nodeAffinity")
                    .or_insert_with(|| json!({}));
                if !node_affinity.is_object() {
                    *node_affinity = json!({});
                }
                node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] =
                    json!({"nodeSelectorTerms": [{"matchExpressions": [expression]}]});
            }
        }
        decision.patches.push(PatchOperation::Add(AddOperation {
            path: pointer(&format!("{}/affinity", workload.pod_spec_pointer)),
            value: affinity,
        }));
    }
}
