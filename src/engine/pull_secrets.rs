//! `imagePullSecrets` and `requirePullSecret`: which pull secret each container's
//! registry needs, the JSON Patch that adds it, and the check that it fits.
//!
//! What "the pod has the secret" means follows the node: the kubelet pulls with
//! the pod's `spec.imagePullSecrets`, and the ServiceAccount admission plugin copies
//! the ServiceAccount's list into a pod only when the pod names none. So a secret
//! counts as present when the pod lists it, or when the pod lists none and its
//! ServiceAccount does.
//!
//! The patch:
//! - `add <pod spec>/imagePullSecrets` with the whole list when the field is absent
//!   (or null), `add <pod spec>/imagePullSecrets/-` for each name when it is a list
//!   (empty or not): the existing entries are kept as they are;
//! - when the pod names none and its ServiceAccount lists some, the
//!   ServiceAccount's names come first: a pod that names a pull secret no longer
//!   gets the ServiceAccount's, and the pull credentials it had must not go away;
//! - a second pass (reinvocation) finds every name listed and adds nothing.
//!
//! Guards against leaking credentials: a pod only ever gets a secret a policy names
//! for a registry one of its containers uses (never for a container denied by
//! another rule), and the facts hold `auths` keys, never a secret's contents.

use std::collections::HashSet;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use serde_json::{Value, json};

use super::facts::{Needs, SecretFacts};
use super::{Decision, Facts, Rule, Version, governs};
use crate::admission::{ContainerImage, Workload};
use crate::policy::compile::PullSecretRule;
use crate::policy::spec::RequirePullSecret;
use crate::policy::{Mode, Policy, PolicySet};
use crate::reference::ImageRef;

/// One container's need for one policy's pull secret.
struct Want<'a> {
    policy: &'a Policy,
    rule: &'a PullSecretRule,
    /// The container's index in the workload.
    index: usize,
    container: &'a ContainerImage,
    /// The image's registry (`host[:port]`), for messages.
    registry: String,
}

impl Want<'_> {
    fn name(&self) -> &str {
        &self.rule.secret_name
    }

    fn who(&self) -> String {
        self.container.describe()
    }
}

/// Whether the policy's secret lands in the pod: added to this object now, added
/// to its Pods when they are created, or neither (and why).
enum Delivery {
    Now,
    Later,
    Never(String),
}

fn delivery(policy: &Policy, workload: &Workload) -> Delivery {
    let on = &policy.inject_pull_secrets_on;
    let fixed = workload.change.fixed_because();
    if on.contains(&workload.kind) && fixed.is_none() {
        return Delivery::Now;
    }
    if workload.kind != "Pod" && on.iter().any(|k| k == "Pod") {
        return Delivery::Later;
    }
    let why = match fixed {
        Some(why) if on.contains(&workload.kind) => why.to_string(),
        _ if on.is_empty() => format!("policy {} adds pull secrets to no kind", policy.name),
        _ => format!(
            "policy {} adds pull secrets only to {}",
            policy.name,
            on.join(", ")
        ),
    };
    Delivery::Never(why)
}

/// The names the pod lists itself (empty names are no names).
fn pod_listed(workload: &Workload) -> Vec<&str> {
    workload
        .pod_spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Every (container, policy) whose policy names a pull secret for the container's
/// registry. `skip` leaves out containers that are denied anyway.
fn wants<'a>(
    policies: &'a PolicySet,
    workload: &'a Workload,
    facts: Option<&Facts>,
    skip: impl Fn(&ContainerImage, &ImageRef, &Version<'_>) -> bool,
) -> Vec<Want<'a>> {
    let applicable: Vec<&Policy> = policies
        .policies
        .iter()
        .filter(|p| !p.image_pull_secrets.is_empty() && p.applies_to_namespace(&workload.namespace))
        .collect();
    let mut out = Vec::new();
    if applicable.is_empty() {
        return out;
    }
    for (index, container) in workload.containers.iter().enumerate() {
        let Ok(image) = ImageRef::parse_cached(&container.image) else {
            continue;
        };
        let version = Version::of(&image, facts.and_then(|f| f.images.get(&container.image)));
        if skip(container, &image, &version) {
            continue;
        }
        for policy in &applicable {
            if !governs(policy, &image, &version) {
                continue;
            }
            if let Some(rule) = policy.pull_secret_for(&image) {
                out.push(Want {
                    policy,
                    rule,
                    index,
                    container,
                    registry: image.registry().to_string(),
                });
            }
        }
    }
    out
}

/// What the inspector must gather for the pull-secret rules.
pub(super) fn needs(policies: &PolicySet, workload: &Workload, needs: &mut Needs) {
    let refused = |_: &ContainerImage, image: &ImageRef, version: &Version<'_>| {
        super::facts::refused_by_name(policies, workload, image, version)
    };
    let listed = pod_listed(workload);
    for want in wants(policies, workload, None, refused) {
        let name = want.name();
        if want.policy.require_pull_secret != RequirePullSecret::Off {
            needs
                .pull_secrets
                .entry(name.to_string())
                .or_default()
                .insert(want.container.image.clone());
        }
        if listed.contains(&name) {
            continue;
        }
        if listed.is_empty() {
            needs.service_account = true;
        }
        let delivered = matches!(
            delivery(want.policy, workload),
            Delivery::Now | Delivery::Later
        );
        if want.policy.mode == Mode::Enforce
            && delivered
            && !needs.injected_pull_secrets.iter().any(|n| n == name)
        {
            needs.injected_pull_secrets.push(name.to_string());
        }
    }
}

/// Adds the pull secrets the pod lacks (or the would-be additions of Audit
/// policies), and judges `requirePullSecret`. Containers in `denied` (JSON pointers
/// of their images) get nothing added.
pub(super) fn decide(
    policies: &PolicySet,
    workload: &Workload,
    facts: &Facts,
    denied: &HashSet<&str>,
    decision: &mut Decision,
) {
    // An image refused on its name gets nothing and is not checked (its secrets
    // were not read); a container denied by another rule gets no secret added, but
    // the check still says what is wrong with its secret.
    let refused = |_: &ContainerImage, image: &ImageRef, version: &Version<'_>| {
        super::facts::refused_by_name(policies, workload, image, version)
    };
    let wants = wants(policies, workload, Some(facts), refused);
    if wants.is_empty() {
        return;
    }
    let listed = pod_listed(workload);
    // The ServiceAccount's list counts only when the pod names none.
    let from_sa: Vec<&str> = match (&facts.pull_secrets.service_account, listed.is_empty()) {
        (Some(sa), true) => sa.secrets.iter().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    let mut to_add: Vec<&str> = Vec::new();
    for want in &wants {
        let name = want.name();
        let present = listed.contains(&name) || from_sa.contains(&name);
        let mut not_listed = None;
        let is_denied = denied.contains(want.container.pointer.as_str());
        if !present {
            match delivery(want.policy, workload) {
                Delivery::Now if is_denied => {}
                Delivery::Now => match want.policy.mode {
                    Mode::Enforce => {
                        if !to_add.contains(&name) {
                            to_add.push(name);
                        }
                        unless_added(want, decision);
                    }
                    Mode::Audit => decision.would_mutate.push(format!(
                        "would add imagePullSecret \"{name}\" to {}: {} needs it for registry {} [policy {}, rule imagePullSecrets]",
                        workload.describe(),
                        want.who(),
                        want.registry,
                        want.policy.name
                    )),
                },
                Delivery::Later => {}
                Delivery::Never(why) => not_listed = Some(why),
            }
        }
        if want.policy.require_pull_secret == RequirePullSecret::Off {
            continue;
        }
        let problem = match not_listed {
            Some(why) => Some(format!(
                "the pod does not list pull secret \"{name}\", which policy {} names for registry {}, and imagegate cannot add it: {why}; add {{\"name\": \"{name}\"}} to spec.imagePullSecrets, or the node pulls without credentials and fails with \"authentication required\"",
                want.policy.name, want.registry
            )),
            None => facts.pull_secrets.secrets.get(name).and_then(|s| {
                pull_secret_problem(
                    s,
                    name,
                    &want.registry,
                    &want.container.image,
                    &workload.namespace,
                )
            }),
        };
        let Some(problem) = problem else { continue };
        let message = match &want.policy.message {
            Some(extra) => format!("{problem}. {extra}"),
            None => problem,
        };
        match want.policy.require_pull_secret {
            RequirePullSecret::Off => {}
            RequirePullSecret::Warn => decision.warnings.push(format!(
                "{}: {message} (admitted because policy {} has requirePullSecret: Warn)",
                want.who(),
                want.policy.name
            )),
            RequirePullSecret::Deny => {
                let v = decision.violation(
                    &want.policy.name,
                    want.policy.mode,
                    Rule::RequirePullSecret,
                    want.index,
                    &message,
                );
                decision.push(v);
            }
        }
    }
    if !to_add.is_empty() {
        patch(workload, &from_sa, &to_add, decision);
    }
}

/// The validating webhook sees the pod after every mutation: if the secret is
/// still missing there, the mutating webhook's patch never landed (it is not
/// installed, or its failurePolicy is Ignore), and `requirePullSecret` judges that.
fn unless_added(want: &Want<'_>, decision: &mut Decision) {
    let name = want.name();
    let message = format!(
        "the pod does not list pull secret \"{name}\", which policy {} names for registry {} and imagegate's mutating webhook adds; it is missing, so the patch never landed: check that the mutating webhook is installed, or add {{\"name\": \"{name}\"}} to spec.imagePullSecrets",
        want.policy.name, want.registry
    );
    match want.policy.require_pull_secret {
        RequirePullSecret::Off => {}
        RequirePullSecret::Warn => decision.warnings.push(format!(
            "{}: {message} (admitted because policy {} has requirePullSecret: Warn)",
            want.who(),
            want.policy.name
        )),
        RequirePullSecret::Deny => {
            let v = decision.violation(
                &want.policy.name,
                Mode::Enforce,
                Rule::RequirePullSecret,
                want.index,
                &message,
            );
            decision.unless_mutated.push(v);
        }
    }
}

/// What is wrong with pull secret `name` in `namespace` for `image` (as written)
/// on `registry`, if anything: for `requirePullSecret` and `imagegate doctor`.
pub fn pull_secret_problem(
    secret: &SecretFacts,
    name: &str,
    registry: &str,
    image: &str,
    namespace: &str,
) -> Option<String> {
    let create = format!(
        "kubectl create secret docker-registry {name} --docker-server={registry} --docker-username=USER --docker-password=PASSWORD -n {namespace}"
    );
    let fails = "so the node pulls without credentials and fails with \"authentication required\"";
    Some(match secret {
        SecretFacts::DockerConfig { matches, .. } if matches.contains_key(image) => {
            return None;
        }
        SecretFacts::Missing => format!(
            "pull secret \"{name}\" (for registry {registry}) does not exist in namespace \"{namespace}\", {fails}; create it: {create}"
        ),
        SecretFacts::WrongType(t) => {
            let t = if t.is_empty() {
                "no type (Opaque)".to_string()
            } else {
                format!("type {}", quoted(t))
            };
            format!(
                "pull secret \"{name}\" in namespace \"{namespace}\" has {t}, not kubernetes.io/dockerconfigjson (or kubernetes.io/dockercfg), and the kubelet uses only those, {fails}; recreate it: {create}"
            )
        }
        SecretFacts::Invalid(why) => format!(
            "pull secret \"{name}\" in namespace \"{namespace}\" holds no usable docker config ({}), {fails}; recreate it: {create}",
            bounded(why, 200)
        ),
        SecretFacts::DockerConfig { keys, .. } => {
            let seen = if keys.is_empty() {
                "it has no auths entry at all".to_string()
            } else {
                let mut list: Vec<String> = keys.iter().take(5).map(|k| quoted(k)).collect();
                if keys.len() > 5 {
                    list.push(format!("and {} more", keys.len() - 5));
                }
                format!("its auths keys: {}", list.join(", "))
            };
            format!(
                "pull secret \"{name}\" in namespace \"{namespace}\" has no auths entry matching {registry} ({seen}), {fails}; add an entry for {registry}, or recreate it: {create}"
            )
        }
        SecretFacts::Unreadable(why) => format!(
            "pull secret \"{name}\" in namespace \"{namespace}\" could not be read ({}), so imagegate cannot tell whether it fits registry {registry}; check that imagegate may get Secrets in \"{namespace}\" and that the API server answers",
            bounded(why, 200)
        ),
    })
}

/// A value from a Secret or an API error, quoted with control characters escaped
/// and cut to a length a message can carry.
fn quoted(s: &str) -> String {
    format!("{:?}", bounded(s, 100))
}

fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The JSON Patch operations that add `names` (after the ServiceAccount's, when
/// the pod names none and its ServiceAccount lists some).
fn patch(workload: &Workload, from_sa: &[&str], names: &[&str], decision: &mut Decision) {
    let entries: Vec<Value> = from_sa
        .iter()
        .chain(names)
        .map(|n| json!({"name": n}))
        .collect();
    let path = format!("{}/imagePullSecrets", workload.pod_spec_pointer);
    match &workload.pod_spec.image_pull_secrets {
        None => decision.patches.push(PatchOperation::Add(AddOperation {
            path: pointer(&path),
            value: Value::Array(entries),
        })),
        Some(_) => {
            for entry in entries {
                decision.patches.push(PatchOperation::Add(AddOperation {
                    path: pointer(&format!("{path}/-")),
                    value: entry,
                }));
            }
        }
    }
}

fn pointer(s: &str) -> PointerBuf {
    PointerBuf::parse(s).expect("pod spec pointers are built from valid segments")
}
