//! The objects imagegate admits: Pods and the pod templates of workloads.

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
    /// `imagePullPolicy: Never`: the kubelet never pulls the image, it must already
    /// be on the node, so no registry is asked about it.
    pub never_pulled: bool,
}

impl ContainerImage {
    /// How messages name it: `container "app" image "nginx:1.25"`.
    pub fn describe(&self) -> String {
        format!(
            "{} \"{}\" image \"{}\"",
            self.kind.noun(),
            self.name,
            self.image
        )
    }
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
    /// The pod spec's `affinity` as the request carried it, so that a patch adds to
    /// it without dropping fields the typed spec does not know.
    pub raw_affinity: Option<Value>,
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
        let mut push = |kind: ContainerKind,
                        i: usize,
                        name: &str,
                        image: Option<&String>,
                        policy: Option<&String>| {
            containers.push(ContainerImage {
                kind,
                name: name.to_string(),
                image: image.cloned().unwrap_or_default(),
                pointer: format!("{pointer}/{}/{i}/image", kind.field()),
                never_pulled: policy.is_some_and(|p| p == "Never"),
            });
        };
        for (i, c) in pod_spec.init_containers.iter().flatten().enumerate() {
            let policy = c.image_pull_policy.as_ref();
            push(
                ContainerKind::InitContainer,
                i,
                &c.name,
                c.image.as_ref(),
                policy,
            );
        }
        for (i, c) in pod_spec.containers.iter().enumerate() {
            let policy = c.image_pull_policy.as_ref();
            push(
                ContainerKind::Container,
                i,
                &c.name,
                c.image.as_ref(),
                policy,
            );
        }
        for (i, c) in pod_spec.ephemeral_containers.iter().flatten().enumerate() {
            let policy = c.image_pull_policy.as_ref();
            push(
                ContainerKind::EphemeralContainer,
                i,
                &c.name,
                c.image.as_ref(),
                policy,
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
            raw_affinity: spec_value.get("affinity").cloned(),
            change: SpecChange::Any,
        }))
    }

    /// Keeps only the containers whose image is new or changed since `old`: an UPDATE
    /// that scales a Deployment or edits a label is not re-judged on images that were
    /// admitted before. An image that was `imagePullPolicy: Never` and is now pulled
    /// counts as changed: it was never looked up.
    pub fn retain_changed(&mut self, old: &Workload) {
        self.containers.retain(|c| {
            !old.containers.iter().any(|o| {
                o.kind == c.kind
                    && o.name == c.name
                    && o.image == c.image
                    && (c.never_pulled || !o.never_pulled)
            })
        });
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
        assert_eq!(
            w.change,
            SpecChange::Any,
            "set by the review, not the object"
        );
        w.retain_ephemeral();
        let names: Vec<_> = w.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["debug"]);
    }

    #[test]
    fn pull_policy_never_and_raw_affinity_are_kept() {
        let spec = |policy: &str| {
            json!({"spec": {"affinity": {"nodeAffinity": {}, "futureField": {"x": 1}},
                "containers": [{"name": "app", "image": "nginx:1.25", "imagePullPolicy": policy}]}})
        };
        let read = |v: &Value| Workload::from_object("", "Pod", "ns", v).unwrap().unwrap();
        let never = read(&spec("Never"));
        assert!(never.containers[0].never_pulled);
        assert_eq!(
            never.raw_affinity,
            Some(json!({"nodeAffinity": {}, "futureField": {"x": 1}})),
            "fields the typed spec drops are kept"
        );
        for policy in ["Always", "IfNotPresent", "never"] {
            assert!(!read(&spec(policy)).containers[0].never_pulled, "{policy}");
        }
        // Never -> pulled is a change; pulled -> Never is not.
        let mut now_pulled = read(&spec("IfNotPresent"));
        now_pulled.retain_changed(&never);
        assert_eq!(now_pulled.containers.len(), 1);
        let mut now_never = read(&spec("Never"));
        now_never.retain_changed(&read(&spec("Always")));
        assert!(now_never.containers.is_empty());
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
