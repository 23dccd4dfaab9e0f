//! Which of the cluster's Nodes a pod can land on, as the scheduler (and, for a pod
//! bound with `spec.nodeName`, the kubelet) decides it. Pure: the Nodes are read by
//! `crate::cluster` and handed in.
//!
//! The filters, from Kubernetes `component-helpers/scheduling/corev1` and the
//! scheduler plugins of the same names:
//! - **NodeName**: a pod with `spec.nodeName` skips the scheduler; only that Node
//!   counts, and the kubelet's admission still checks the selector, the required
//!   node affinity, `NoExecute` taints and the pod's OS.
//! - **NodeSelector**: every `nodeSelector` label must be on the Node, equal.
//! - **NodeAffinity** (required during scheduling): terms are ORed, the expressions
//!   of one term ANDed. `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt` on
//!   labels (`NotIn` and `DoesNotExist` match a Node without the label; `Gt`/`Lt`
//!   compare integers and need exactly one value), `In`/`NotIn` on the field
//!   `metadata.name` (what the DaemonSet controller writes). An empty term, an empty
//!   list of terms, an unknown operator or field match no Node.
//! - **TaintToleration**: every `NoSchedule` and `NoExecute` taint must be tolerated
//!   (`PreferNoSchedule` never keeps a pod off). A toleration with an effect matches
//!   only that effect; with a key only that key (an empty key with `Exists`
//!   tolerates every taint); `Exists` matches any value, `Equal` (or none) an equal
//!   value.
//! - **NodeUnschedulable**: a cordoned Node (`spec.unschedulable`) counts only for
//!   a pod that tolerates `node.kubernetes.io/unschedulable:NoSchedule` (DaemonSet
//!   pods do).
//! - **OS**: a pod that names its OS (`spec.os.name`, which the kubelet enforces)
//!   counts only Nodes of that `kubernetes.io/os`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Toleration};

/// The label holding a Node's operating system (`linux`, `windows`).
pub const OS_LABEL: &str = "kubernetes.io/os";
/// The taint the scheduler reads for a cordoned Node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// What imagegate keeps of a Node: what decides whether a pod can land on it, and
/// nothing else (no status, no image list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Only the `NoSchedule` and `NoExecute` taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`: cordoned.
    pub unschedulable: bool,
}

/// A taint that keeps pods off a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    NoExecute,
}

impl TaintEffect {
    /// The effects that keep a pod off a Node; `None` for `PreferNoSchedule` and
    /// anything unknown.
    pub fn parse(effect: &str) -> Option<TaintEffect> {
        match effect {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

impl Node {
    /// The Node's OS label, `linux` when it has none (the kubelet always sets it).
    pub fn os(&self) -> &str {
        self.labels
            .get(OS_LABEL)
            .map_or(super::DEFAULT_OS, String::as_str)
    }

    /// The Node's `kubernetes.io/arch` label.
    pub fn arch(&self) -> Option<&str> {
        self.labels.get(super::ARCH_LABEL).map(String::as_str)
    }

    /// An estimate of the memory this Node takes, for byte-bounded caches.
    pub fn weight(&self) -> usize {
        let labels: usize = self
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 48)
            .sum();
        let taints: usize = self
            .taints
            .iter()
            .map(|t| t.key.len() + t.value.len() + 56)
            .sum();
        self.name.len() + labels + taints + 96
    }
}

/// The Nodes `spec` can land on, in the order given.
pub fn nodes_for_pod<'a>(spec: &PodSpec, nodes: &'a [Node]) -> Vec<&'a Node> {
    let bound = spec.node_name.as_deref().filter(|n| !n.is_empty());
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let pod_os = spec
        .os
        .as_ref()
        .map(|os| os.name.to_ascii_lowercase())
        .filter(|os| !os.is_empty());
    nodes
        .iter()
        .filter(|node| match bound {
            Some(name) => node.name == name,
            None => true,
        })
        .filter(|node| selector_matches(spec, node))
        .filter(|node| required_affinity_matches(spec, node))
        .filter(|node| pod_os.as_deref().is_none_or(|os| node.os() == os))
        .filter(|node| {
            node.taints
                .iter()
                // A pod bound by name skips the scheduler; the kubelet checks NoExecute.
                .filter(|t| bound.is_none() || t.effect == TaintEffect::NoExecute)
                .all(|t| tolerated(tolerations, t))
        })
        .filter(|node| {
            let cordon = Taint {
                key: UNSCHEDULABLE_TAINT.into(),
                value: String::new(),
                effect: TaintEffect::NoSchedule,
            };
            bound.is_some() || !node.unschedulable || tolerated(tolerations, &cordon)
        })
        .collect()
}

fn selector_matches(spec: &PodSpec, node: &Node) -> bool {
    spec.node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v))
}

fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|term| term_matches(term, node)),
    }
}

/// One term: every expression and every field requirement holds; an empty term
/// matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|e| label_matches(e, node)) && fields.iter().all(|f| field_matches(f, node))
}

fn label_matches(req: &NodeSelectorRequirement, node: &Node) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let label = node.labels.get(&req.key);
    match req.operator.as_str() {
        "In" => label.is_some_and(|l| values.contains(l)),
        "NotIn" => label.is_none_or(|l| !values.contains(l)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else { return false };
            let (Some(label), Ok(bound)) = (label, bound.parse::<i64>()) else {
                return false;
            };
            match label.parse::<i64>() {
                Ok(l) if op == "Gt" => l > bound,
                Ok(l) => l < bound,
                Err(_) => false,
            }
        }
        _ => false,
    }
}

fn field_matches(req: &NodeSelectorRequirement, node: &Node) -> bool {
    if req.key != "metadata.name" {
        return false;
    }
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => values.contains(&node.name),
        "NotIn" => !values.contains(&node.name),
        _ => false,
    }
}

/// `ToleratesTaint` of Kubernetes' core/v1 helpers, for any of `tolerations`.
fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect = t.effect.as_deref().unwrap_or_default();
        let key = t.key.as_deref().unwrap_or_default();
        if !effect.is_empty() && effect != taint.effect.as_str() {
            return false;
        }
        if !key.is_empty() && key != taint.key {
            return false;
        }
        match t.operator.as_deref().unwrap_or_default() {
            "" | "Equal" => t.value.as_deref().unwrap_or_default() == taint.value,
            "Exists" => true,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A Node from `"name arch os [key=value:Effect ...] [cordoned] [label=value ...]"`.
    fn node(spec: &str) -> Node {
        let mut parts = spec.split_whitespace();
        let name = parts.next().unwrap().to_string();
        let mut labels = BTreeMap::new();
        labels.insert(
            super::super::ARCH_LABEL.into(),
            parts.next().unwrap().into(),
        );
        labels.insert(OS_LABEL.into(), parts.next().unwrap().into());
        let mut node = Node {
            name,
            labels,
            ..Node::default()
        };
        for part in parts {
            if part == "cordoned" {
                node.unschedulable = true;
            } else if let Some((kv, effect)) = part.split_once(':') {
                let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
                if let Some(effect) = TaintEffect::parse(effect) {
                    node.taints.push(Taint {
                        key: key.into(),
                        value: value.into(),
                        effect,
                    });
                }
            } else {
                let (k, v) = part.split_once('=').unwrap();
                node.labels.insert(k.into(), v.into());
            }
        }
        node
    }

    fn cluster() -> Vec<Node> {
        [
            "a1 amd64 linux zone=a pool=general",
            "a2 amd64 linux zone=b pool=general cordoned",
            "g1 amd64 linux zone=a pool=gpu gpu=true:NoSchedule gpus=4",
            "r1 arm64 linux zone=a pool=arm arch=arm64:NoSchedule",
            "r2 arm64 linux zone=b pool=arm arch=arm64:NoExecute",
            "w1 amd64 windows zone=a pool=win os=windows:NoSchedule",
            "w2 amd64 windows zone=b pool=win-untainted",
            "p1 s390x linux zone=c pool=z soft=yes:PreferNoSchedule",
        ]
        .map(node)
        .to_vec()
    }

    fn spec(extra: Value) -> PodSpec {
        let mut spec = json!({"containers": [{"name": "app", "image": "x"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(spec).unwrap()
    }

    fn affinity(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"key": key, "operator": op, "values": values})
    }

    #[test]
    fn filters_like_the_scheduler() {
        let nodes = cluster();
        let tol = |key: &str, op: &str, value: &str, effect: &str| {
            let mut t = json!({"operator": op});
            for (field, v) in [("key", key), ("value", value), ("effect", effect)] {
                if !v.is_empty() {
                    t[field] = json!(v);
                }
            }
            t
        };
        #[rustfmt::skip]
        let cases: Vec<(&str, Value, &str)> = vec![
            ("nothing: untainted, uncordoned nodes of any OS", json!({}), "a1 w2 p1"),
            ("nodeSelector", json!({"nodeSelector": {"zone": "a"}}), "a1"),
            ("nodeSelector, two labels", json!({"nodeSelector": {"zone": "b", "pool": "win-untainted"}}), "w2"),
            ("nodeSelector on a missing label", json!({"nodeSelector": {"disk": "ssd"}}), ""),
            ("spec.os", json!({"os": {"name": "linux"}}), "a1 p1"),
            ("spec.os windows", json!({"os": {"name": "windows"}}), "w2"),
            ("tolerate gpu Equal", json!({"tolerations": [tol("gpu", "Equal", "true", "NoSchedule")]}), "a1 g1 w2 p1"),
            ("tolerate gpu, wrong value", json!({"tolerations": [tol("gpu", "Equal", "false", "NoSchedule")]}), "a1 w2 p1"),
            ("tolerate gpu, no operator means Equal", json!({"tolerations": [tol("gpu", "", "true", "")]}), "a1 g1 w2 p1"),
            ("tolerate gpu, wrong effect", json!({"tolerations": [tol("gpu", "Exists", "", "NoExecute")]}), "a1 w2 p1"),
            ("tolerate arch Exists, any effect", json!({"tolerations": [tol("arch", "Exists", "", "")]}), "a1 r1 r2 w2 p1"),
            ("tolerate arch NoSchedule only", json!({"tolerations": [tol("arch", "Exists", "", "NoSchedule")]}), "a1 r1 w2 p1"),
            ("tolerate everything", json!({"tolerations": [tol("", "Exists", "", "")]}), "a1 a2 g1 r1 r2 w1 w2 p1"),
            ("tolerate every NoExecute", json!({"tolerations": [tol("", "Exists", "", "NoExecute")]}), "a1 r2 w2 p1"),
            ("tolerate the cordon", json!({"tolerations": [tol(UNSCHEDULABLE_TAINT, "Exists", "", "NoSchedule")]}), "a1 a2 w2 p1"),
            ("unknown operator tolerates nothing", json!({"tolerations": [tol("gpu", "Matches", "true", "")]}), "a1 w2 p1"),
            ("affinity In", affinity(json!([{"matchExpressions": [expr("zone", "In", &["a", "c"])]}])), "a1 p1"),
            ("affinity NotIn matches a missing label", affinity(json!([{"matchExpressions": [expr("gpus", "NotIn", &["4"])]}])), "a1 w2 p1"),
            ("affinity Exists", affinity(json!([{"matchExpressions": [expr("zone", "Exists", &[])]}])), "a1 w2 p1"),
            ("affinity DoesNotExist", affinity(json!([{"matchExpressions": [expr("zone", "DoesNotExist", &[])]}])), ""),
            ("affinity Gt", json!({"tolerations": [tol("", "Exists", "", "")], "affinity": affinity(json!([{"matchExpressions": [expr("gpus", "Gt", &["2"])]}]))["affinity"]}), "g1"),
            ("affinity Lt", json!({"tolerations": [tol("", "Exists", "", "")], "affinity": affinity(json!([{"matchExpressions": [expr("gpus", "Lt", &["2"])]}]))["affinity"]}), ""),
            ("affinity Gt needs one integer", json!({"tolerations": [tol("", "Exists", "", "")], "affinity": affinity(json!([{"matchExpressions": [expr("gpus", "Gt", &["1", "2"])]}]))["affinity"]}), ""),
            ("affinity Gt on a non-integer label", affinity(json!([{"matchExpressions": [expr("zone", "Gt", &["1"])]}])), ""),
            ("expressions ANDed", affinity(json!([{"matchExpressions": [expr("zone", "In", &["a", "b"]), expr("pool", "In", &["win-untainted"])]}])), "w2"),
            ("terms ORed", affinity(json!([{"matchExpressions": [expr("zone", "In", &["c"])]}, {"matchExpressions": [expr("pool", "In", &["general"])]}])), "a1 p1"),
            ("an empty term matches nothing", affinity(json!([{}, {"matchExpressions": [expr("zone", "In", &["c"])]}])), "p1"),
            ("no terms match nothing", affinity(json!([])), ""),
            ("unknown operator", affinity(json!([{"matchExpressions": [expr("zone", "Like", &["a"])]}])), ""),
            ("matchFields metadata.name (DaemonSet pods)", affinity(json!([{"matchFields": [expr("metadata.name", "In", &["w2"])]}])), "w2"),
            ("matchFields NotIn", affinity(json!([{"matchFields": [expr("metadata.name", "NotIn", &["w2"])]}])), "a1 p1"),
            ("matchFields on another field", affinity(json!([{"matchFields": [expr("spec.x", "In", &["w2"])]}])), ""),
            ("nodeName skips NoSchedule taints and the cordon", json!({"nodeName": "g1"}), "g1"),
            ("nodeName still needs NoExecute tolerated", json!({"nodeName": "r2"}), ""),
            ("nodeName, cordoned", json!({"nodeName": "a2"}), "a2"),
            ("nodeName still needs the selector", json!({"nodeName": "a1", "nodeSelector": {"zone": "b"}}), ""),
            ("nodeName of a Node that is gone", json!({"nodeName": "zz"}), ""),
        ];
        for (name, extra, want) in cases {
            let got: Vec<&str> = nodes_for_pod(&spec(extra), &nodes)
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            assert_eq!(got.join(" "), want, "{name}");
        }
    }

    #[test]
    fn os_and_arch_from_labels_and_weight_bounded() {
        let n = node("x arm64 windows");
        assert_eq!((n.os(), n.arch()), ("windows", Some("arm64")));
        let bare = Node {
            name: "bare".into(),
            ..Node::default()
        };
        assert_eq!((bare.os(), bare.arch()), ("linux", None));
        assert!(n.weight() > bare.weight());
        for effect in ["PreferNoSchedule", "", "noschedule"] {
            assert_eq!(TaintEffect::parse(effect), None);
        }
    }
}
