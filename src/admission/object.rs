//! The objects imagegate admits: Pods and the pod templates of workloads.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

/// Where a container sits in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    Container,
    InitContainer,
    EphemeralContainer,
}

impl ContainerKind {
    /// The pod spec field that holds this kind of container.
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::InitContainer => "initContainers",
            ContainerKind::EphemeralContainer => "ephemeralContainers",
        }
    }

    /// How a message names it: `container`, `init container`, `ephemeral container`.
    pub fn noun(self) -> &'static str {
        match self {
            ContainerKind::Container => "container",
            ContainerKind::InitContainer => "init container",
            ContainerKind::EphemeralContainer => "ephemeral container",
        }
    }
}

/// One container's image, with the JSON pointer of its `image` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    pub kind: ContainerKind,
    pub name: String,
    pub image: String,
    /// JSON pointer to the `image` field in the admitted object (for patches).
    pub pointer: String,
}

/// A Pod, or a workload's pod template, as the engine sees it.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `Pod`, `Deployment`, ...
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// The JSON pointer of the pod spec in the object (`/spec`, `/spec/template/spec`).
    pub pod_spec_pointer: &'static str,
    /// The images under review. On an UPDATE, only those that are new or changed.
    pub containers: Vec<ContainerImage>,
    /// The whole pod spec, typed, for the rules that need more than images.
    pub pod_spec: PodSpec,
    /// What the request may change in the pod spec besides images.
    pub change: SpecChange,
}

/// What a request may change in the pod spec, and so what imagegate may patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecChange {
    /// Anything: a CREATE, or an UPDATE of a workload's template.
    #[default]
    Any,
    /// Only container images: the API server refuses an UPDATE of a Pod that changes
    /// other fields, such as `spec.imagePullSecrets` or `spec.affinity`.
    PodUpdate,
    /// Only the ephemeral containers: the `pods/ephemeralcontainers` subresource
    /// (`kubectl debug`).
    EphemeralContainers,
}

impl SpecChange {
    /// Why fields other than images cannot be patched, or `None` when they can.
    pub fn fixed_because(self) -> Option<&'static str> {
        match self {
            SpecChange::Any => None,
            SpecChange::PodUpdate => {
                Some("a Pod's spec cannot change after it is created, but for its images")
            }
            SpecChange::EphemeralContainers => Some(
                "a kubectl debug request (pods/ephemeralcontainers) changes only the ephemeral containers",
            ),
        }
    }
}

/// The object could not be read as the kind it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("the {kind} has no pod spec at {pointer}")]
    NoPodSpec { kind: String, pointer: &'static str },
    #[error("the {kind}'s pod spec at {pointer} is malformed: {reason}")]
    Malformed {
        kind: String,
        pointer: &'static str,
        reason: String,
    },
}

/// `spec.containers[0].image: invalid type: integer `5`, expected a string`: the
/// field as a path from the object's root, then serde's reason.
fn malformed_reason(pointer: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let mut field = pointer.trim_start_matches('/').replace('/', ".");
    let path = e.path().to_string();
    if path != "." {
        if !path.starts_with('[') {
            field.push('.');
        }
        field.push_str(&path);
    }
    format!("{field}: {}", e.inner())
}

/// What makes a container unchanged across an UPDATE: the same kind, name and image.
#[derive(Debug, Clone, Copy, Hash)]
struct Unchanged<'a> {
    kind: ContainerKind,
    name: &'a str,
    image: &'a str,
}

impl<'a> Unchanged<'a> {
    fn of(c: &'a ContainerImage) -> Self {
        Unchanged {
            kind: c.kind,
            name: &c.name,
            image: &c.image,
        }
    }
}

impl PartialEq for Unchanged<'_> {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        tests::COMPARISONS.with(|n| n.set(n.get() + 1));
        self.kind == other.kind && self.name == other.name && self.image == other.image
    }
}

impl Eq for Unchanged<'_> {}

/// The kinds imagegate covers: (API group, kind, JSON pointer of the pod spec).
pub const KINDS: &[(&str, &str, &str)] = &[
    ("", "Pod", "/spec"),
    ("apps", "Deployment", "/spec/template/spec"),
    ("apps", "StatefulSet", "/spec/template/spec"),
    ("apps", "DaemonSet", "/spec/template/spec"),
    ("apps", "ReplicaSet", "/spec/template/spec"),
    ("", "ReplicationController", "/spec/template/spec"),
    ("batch", "Job", "/spec/template/spec"),
    ("batch", "CronJob", "/spec/jobTemplate/spec/template/spec"),
];

/// Where the pod spec lives for each kind imagegate covers, or `None` for a kind it
/// does not look at.
pub fn pod_spec_pointer(group: &str, kind: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, pointer)| *pointer)
}

impl Workload {
    /// Reads a covered object. `Ok(None)` for a kind imagegate does not govern.
    pub fn from_object(
        group: &str,
        kind: &str,
        namespace: &str,
        object: &Value,
    ) -> Result<Option<Workload>, ObjectError> {
        let Some(pointer) = pod_spec_pointer(group, kind) else {
            return Ok(None);
        };
        let spec_value = object
            .pointer(pointer)
            .filter(|v| !v.is_null())
            .ok_or_else(|| ObjectError::NoPodSpec {
                kind: kind.to_string(),
                pointer,
            })?;
        // The error names the field (`spec.containers[0].image: invalid type: ...`).
        let pod_spec: PodSpec =
            serde_path_to_error::deserialize(spec_value).map_err(|e| ObjectError::Malformed {
                kind: kind.to_string(),
                pointer,
                reason: malformed_reason(pointer, &e),
            })?;
        let mut containers = Vec::new();
        let mut push = |kind: ContainerKind, i: usize, name: &str, image: Option<&String>| {
            containers.push(ContainerImage {
                kind,
                name: name.to_string(),
                image: image.cloned().unwrap_or_default(),
                pointer: format!("{pointer}/{}/{i}/image", kind.field()),
            });
        };
        for (i, c) in pod_spec.init_containers.iter().flatten().enumerate() {
            push(ContainerKind::InitContainer, i, &c.name, c.image.as_ref());
        }
        for (i, c) in pod_spec.containers.iter().enumerate() {
            push(ContainerKind::Container, i, &c.name, c.image.as_ref());
        }
        for (i, c) in pod_spec.ephemeral_containers.iter().flatten().enumerate() {
            push(
                ContainerKind::EphemeralContainer,
                i,
                &c.name,
                c.image.as_ref(),
            );
        }
        let name = object
            .pointer("/metadata/name")
            .or_else(|| object.pointer("/metadata/generateName"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .unwrap_or(namespace)
            .to_string();
        Ok(Some(Workload {
            kind: kind.to_string(),
            name,
            namespace,
            pod_spec_pointer: pointer,
            containers,
            pod_spec,
            change: SpecChange::Any,
        }))
    }

    /// Keeps only the containers whose image is new or changed since `old`: an UPDATE
    /// that scales a Deployment or edits a label is not re-judged on images that were
    /// admitted before.
    ///
    /// Linear in the number of containers: the old ones go into a hash set once,
    /// and each new one is one lookup (an UPDATE may carry 100,000 containers).
    pub fn retain_changed(&mut self, old: &Workload) {
        let before: HashSet<Unchanged<'_>> = old.containers.iter().map(Unchanged::of).collect();
        self.containers
            .retain(|c| !before.contains(&Unchanged::of(c)));
    }

    /// Keeps only the ephemeral containers (the `pods/ephemeralcontainers` subresource),
    /// whose request can change nothing else.
    pub fn retain_ephemeral(&mut self) {
        self.containers
            .retain(|c| c.kind == ContainerKind::EphemeralContainer);
        self.change = SpecChange::EphemeralContainers;
    }

    /// `Deployment "web"` / `Pod "debug-x"`, for messages.
    pub fn describe(&self) -> String {
        if self.name.is_empty() {
            self.kind.clone()
        } else {
            format!("{} \"{}\"", self.kind, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec() -> Value {
        json!({
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "side", "image": "envoy:v1"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}]
        })
    }

    #[test]
    fn finds_the_pod_spec_of_every_covered_kind() {
        let spec = pod_spec();
        let table = [
            (
                "",
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": spec}),
                "/spec",
            ),
            (
                "apps",
                "Deployment",
                json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": spec}}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "StatefulSet",
                json!({"spec": {"template": {"spec": spec}}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "DaemonSet",
                json!({"spec": {"template": {"spec": spec}}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "ReplicaSet",
                json!({"spec": {"template": {"spec": spec}}}),
                "/spec/template/spec",
            ),
            (
                "",
                "ReplicationController",
                json!({"spec": {"template": {"spec": spec}}}),
                "/spec/template/spec",
            ),
            (
                "batch",
                "Job",
                json!({"spec": {"template": {"spec": spec}}}),
                "/spec/template/spec",
            ),
            (
                "batch",
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
                "/spec/jobTemplate/spec/template/spec",
            ),
        ];
        for (group, kind, object, pointer) in table {
            let w = Workload::from_object(group, kind, "ns", &object)
                .unwrap()
                .unwrap();
            assert_eq!(w.pod_spec_pointer, pointer, "{kind}");
            let got: Vec<_> = w
                .containers
                .iter()
                .map(|c| (c.name.as_str(), c.image.as_str(), c.pointer.clone()))
                .collect();
            assert_eq!(
                got,
                [
                    (
                        "init",
                        "busybox:1.36",
                        format!("{pointer}/initContainers/0/image")
                    ),
                    ("app", "nginx:1.25", format!("{pointer}/containers/0/image")),
                    ("side", "envoy:v1", format!("{pointer}/containers/1/image")),
                    (
                        "debug",
                        "busybox",
                        format!("{pointer}/ephemeralContainers/0/image")
                    ),
                ],
                "{kind}"
            );
            // Every pointer really leads to the image.
            for c in &w.containers {
                assert_eq!(
                    object.pointer(&c.pointer).and_then(Value::as_str),
                    Some(c.image.as_str())
                );
            }
        }
    }

    #[test]
    fn other_kinds_are_not_governed_and_broken_specs_are_errors() {
        assert!(
            Workload::from_object("", "ConfigMap", "ns", &json!({}))
                .unwrap()
                .is_none()
        );
        assert!(
            Workload::from_object("apps", "Pod", "ns", &json!({}))
                .unwrap()
                .is_none()
        );
        let err =
            Workload::from_object("apps", "Deployment", "ns", &json!({"spec": {}})).unwrap_err();
        assert!(
            err.to_string()
                .contains("no pod spec at /spec/template/spec"),
            "{err}"
        );
        // (kind, object, the whole message)
        let table = [
            (
                "Pod",
                json!({"spec": {"containers": "x"}}),
                "the Pod's pod spec at /spec is malformed: spec.containers: invalid type: string \"x\", expected a sequence",
            ),
            (
                "Pod",
                json!({"spec": "x"}),
                "the Pod's pod spec at /spec is malformed: spec: invalid type: string \"x\", expected PodSpec",
            ),
            (
                "Pod",
                json!({"spec": null}),
                "the Pod has no pod spec at /spec",
            ),
            (
                "Pod",
                json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": {"ref": "x"}}]}}),
                "the Pod's pod spec at /spec is malformed: spec.containers[1].image: invalid type: map, expected a string",
            ),
            (
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/arch": 1}}}}}}}),
                "the CronJob's pod spec at /spec/jobTemplate/spec/template/spec is malformed: spec.jobTemplate.spec.template.spec.nodeSelector.kubernetes.io/arch: invalid type: integer `1`, expected a string",
            ),
        ];
        for (kind, object, expected) in table {
            let group = if kind == "Pod" { "" } else { "batch" };
            let err = Workload::from_object(group, kind, "ns", &object).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn updates_judge_only_new_or_changed_images() {
        let old = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.25"}, {"name": "side", "image": "envoy:v1"}]}});
        let new = json!({"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}, {"name": "side", "image": "envoy:v1"}],
                                  "ephemeralContainers": [{"name": "debug", "image": "busybox"}]}});
        let old = Workload::from_object("", "Pod", "ns", &old)
            .unwrap()
            .unwrap();
        let mut w = Workload::from_object("", "Pod", "ns", &new)
            .unwrap()
            .unwrap();
        w.retain_changed(&old);
        let names: Vec<_> = w.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "debug"]);
        w.retain_ephemeral();
        let names: Vec<_> = w.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["debug"]);
    }

    thread_local! {
        /// Container comparisons made by [`Workload::retain_changed`] on this thread.
        pub(super) static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A pod with `n` containers, `changed` of which (spread evenly) have a new image.
    fn many(n: usize, changed: usize) -> (Workload, Workload) {
        let spec = |new: bool| {
            let containers: Vec<Value> = (0..n)
                .map(|i| {
                    let tag = if new && changed > 0 && i % (n / changed) == 0 { 2 } else { 1 };
                    json!({"name": format!("c{i}"), "image": format!("registry.example/app{i}:{tag}")})
                })
                .collect();
            json!({"spec": {"containers": containers}})
        };
        let read = |v: &Value| Workload::from_object("", "Pod", "ns", v).unwrap().unwrap();
        (read(&spec(true)), read(&spec(false)))
    }

    /// The UPDATE comparison is linear: doubling the containers doubles the
    /// comparisons (a nested scan would quadruple them), and 100,000 containers
    /// take about one comparison each.
    #[test]
    fn the_update_comparison_is_linear_in_the_number_of_containers() {
        let count = |n: usize| {
            let (mut new, old) = many(n, 10);
            COMPARISONS.with(|c| c.set(0));
            new.retain_changed(&old);
            assert_eq!(new.containers.len(), 10, "{n}");
            assert!(new.containers.iter().all(|c| c.image.ends_with(":2")));
            COMPARISONS.with(|c| c.get())
        };
        let (n, two_n) = (count(50_000), count(100_000));
        assert!(
            two_n <= 100_000 * 11 / 10,
            "{two_n} comparisons for 100,000 containers"
        );
        assert!(
            two_n * 10 <= n * 25,
            "{n} comparisons for 50,000 containers, {two_n} for 100,000: not linear"
        );
        // Duplicate names (hostile input) are no worse: each (kind, name, image) is
        // one entry.
        let mut dup = Workload::from_object(
            "",
            "Pod",
            "ns",
            &json!({"spec": {"containers": (0..20_000).map(|i| json!({"name": "a", "image": format!("x:{i}")})).collect::<Vec<_>>()}}),
        )
        .unwrap()
        .unwrap();
        let old = dup.clone();
        COMPARISONS.with(|c| c.set(0));
        dup.retain_changed(&old);
        assert!(dup.containers.is_empty());
        assert!(COMPARISONS.with(|c| c.get()) <= 22_000);
    }

    #[test]
    fn namespace_comes_from_the_object_or_the_request() {
        let o = json!({"metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": []}});
        assert_eq!(
            Workload::from_object("", "Pod", "req", &o)
                .unwrap()
                .unwrap()
                .namespace,
            "team"
        );
        let o = json!({"metadata": {"generateName": "web-"}, "spec": {"containers": []}});
        let w = Workload::from_object("", "Pod", "req", &o)
            .unwrap()
            .unwrap();
        assert_eq!(
            (w.namespace.as_str(), w.describe().as_str()),
            ("req", "Pod \"web-\"")
        );
    }
}
