//! Image platforms and the architectures a pod may be scheduled on.
//!
//! # Platforms
//!
//! The platform rules follow containerd's [`platforms`] package, which is what
//! the container runtime on a node uses to pick an entry from a multi-platform
//! image index:
//!
//! * **Normalization** (`database.go`, `normalizeOS` / `normalizeArch`): the OS
//!   is lowercased and `macos` becomes `darwin`; `i386` becomes `386` (variant
//!   dropped); `x86_64`, `x86-64`, `amd64` become `amd64` and variant `v1` is
//!   dropped (v1 is the baseline); `aarch64`, `arm64` become `arm64` and
//!   variants `8`, `v8`, `v8.0` are dropped (so `arm64` and `arm64/v8` are the
//!   same platform) while `9`, `9.0`, `v9.0` become `v9`; `armhf` is `arm/v7`,
//!   `armel` is `arm/v6`; `arm` variants `5`..`8` become `v5`..`v8` and `arm`
//!   **without a variant becomes `arm/v7`**. That last rule applies to both
//!   sides of a match, so an image entry `linux/arm` is treated as `arm/v7`: an
//!   `arm/v7` node runs it, an `arm/v6` node does not.
//! * **Matching** (`compare.go`, `Only`): a node runs an image entry when the
//!   OS is equal and the normalized entry is in the node's platform vector:
//!   - `arm/vN` runs `arm/vN` down to `arm/v5` (v8 → v8..v5, v7 → v7..v5,
//!     v6 → v6, v5);
//!   - `arm64` (= `arm64/v8`) runs `arm64` and, like containerd, also
//!     `arm/v8`, `arm/v7`, `arm/v6` and `arm/v5`; `arm64/v8.N` runs
//!     `arm64/v8.0..v8.N`, and `arm64/v9.N` runs `v9.0..v9.N` and
//!     `v8.0..v8.(N+5)`;
//!   - `amd64/vN` runs `amd64/v1..vN`, and every `amd64` node runs `386`;
//!   - anything else needs an exact architecture and variant match.
//!
//!   `OnlyStrict` (no sub-platforms) is not used: a node really can run those
//!   older variants, and containerd's node default (`defaults.go`,
//!   `Default() = Only(DefaultSpec())`) uses `Only`.
//! * **amd64 levels are conservative.** On the node containerd detects the real
//!   microarchitecture level (v2, v3, …) from the CPU, but the Kubernetes
//!   `kubernetes.io/arch` label only says `amd64`. An `amd64` node with no
//!   variant is matched as `amd64/v1`, exactly as `Only` would, so an image that
//!   only ships `amd64/v2`+ is reported as possibly incompatible.
//! * **Kubernetes `arm` nodes are `arm/v7`**: the label carries no variant and
//!   the normalization above turns `arm` into `arm/v7` (the level Kubernetes
//!   supports for 32-bit ARM), so they run `arm/v7`, `arm/v6`, `arm/v5`.
//! * Entries `unknown/unknown` are buildx attestation manifests, not platforms
//!   ([`is_attestation`]); [`covers`] skips them.
//! * Deviations: an empty or missing OS defaults to `linux` (containerd uses the
//!   host OS), OS versions/features are not modelled, and [`Platform::parse`]
//!   accepts `arch/variant` (e.g. `amd64/v3`) when the first part is a known
//!   architecture and not a known OS.
//!
//! # Where a pod may run
//!
//! [`nodes_for_pod`] filters the cluster's Nodes as the scheduler does (selector,
//! required node affinity, taints and tolerations, cordons, the pod's OS; see
//! [`nodes`]). [`placement`] turns that into the platforms (OS and architecture)
//! the images must cover: those of the Nodes the pod can land on; when no known
//! Node fits (no Kubernetes access, or a node pool scaled to zero), the pod's own
//! `kubernetes.io/arch` constraint ([`pod_arch_requirement`]: its `nodeSelector`,
//! else its required node affinity), else the policy's `require` list.
//!
//! [`platforms`]: https://github.com/containerd/platforms

pub mod nodes;

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PodSpec};
use serde::{Deserialize, Serialize};

pub use nodes::{Node, OS_LABEL, Taint, TaintEffect, UNSCHEDULABLE_TAINT, nodes_for_pod};

/// Well-known node label holding the node's architecture (Go `GOARCH` name).
pub const ARCH_LABEL: &str = "kubernetes.io/arch";
/// Deprecated beta spelling of [`ARCH_LABEL`], still honoured in selectors.
pub const BETA_ARCH_LABEL: &str = "beta.kubernetes.io/arch";

/// OS assumed when a specifier or platform has none (containerd uses the host OS).
pub const DEFAULT_OS: &str = "linux";

/// An OCI platform: `os/architecture[/variant]`.
///
/// Field names match the OCI image index `platform` object, so it deserializes
/// directly from an index entry (`os.version`/`os.features` are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`, `windows`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// Architecture variant, e.g. `v7` for `arm`, `v3` for `amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Why a platform specifier could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformParseError {
    /// The specifier was empty or whitespace.
    #[error("empty platform specifier")]
    Empty,
    /// One of the `/`-separated components was empty.
    #[error("platform specifier {0:?} has an empty component")]
    EmptyComponent(String),
    /// More than `os/arch/variant`.
    #[error("platform specifier {0:?} has more than three components")]
    TooManyComponents(String),
    /// A lone OS such as `linux`: the architecture is what matters here.
    #[error("platform specifier {0:?} names an operating system but no architecture")]
    MissingArchitecture(String),
    /// A lone component that is neither a known OS nor a known architecture.
    #[error("platform specifier {0:?} is not a known architecture")]
    UnknownArchitecture(String),
}

impl Platform {
    /// Parses `os/arch[/variant]`, `arch` (OS `linux`) or `arch/variant` (when
    /// the first part is a known architecture and not a known OS). Components
    /// are kept as written; call [`Platform::normalized`] to canonicalize.
    pub fn parse(spec: &str) -> Result<Self, PlatformParseError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(PlatformParseError::Empty);
        }
        let parts: Vec<&str> = spec.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformParseError::EmptyComponent(spec.to_owned()));
        }
        let platform = |os: &str, arch: &str, variant: Option<&str>| Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        };
        match parts[..] {
            [one] if is_known_arch(&normalize_arch(one)) => Ok(platform(DEFAULT_OS, one, None)),
            [one] if is_known_os(&normalize_os(one)) => {
                Err(PlatformParseError::MissingArchitecture(spec.to_owned()))
            }
            [_] => Err(PlatformParseError::UnknownArchitecture(spec.to_owned())),
            [first, second]
                if !is_known_os(&normalize_os(first)) && is_known_arch(&normalize_arch(first)) =>
            {
                Ok(platform(DEFAULT_OS, first, Some(second)))
            }
            [os, arch] => Ok(platform(os, arch, None)),
            [os, arch, variant] => Ok(platform(os, arch, Some(variant))),
            _ => Err(PlatformParseError::TooManyComponents(spec.to_owned())),
        }
    }

    /// Canonical form per containerd's `Normalize` (see the module docs); an
    /// empty variant becomes `None` and an empty OS becomes `linux`.
    pub fn normalized(self) -> Self {
        let (architecture, variant) = normalize_arch_variant(&self.architecture, self.variant);
        Platform {
            os: normalize_os(&self.os),
            architecture,
            variant,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

/// Canonical architecture name for a bare architecture such as a Kubernetes
/// label value: `x86_64` → `amd64`, `aarch64` → `arm64`, `i386` → `386`,
/// `armhf`/`armel` → `arm`; anything else is lowercased.
pub fn normalize_arch(arch: &str) -> String {
    normalize_arch_variant(arch.trim(), None).0
}

fn normalize_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "" => DEFAULT_OS.to_owned(),
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    }
}

/// containerd `normalizeArch`, with `None` standing for the empty variant.
fn normalize_arch_variant(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(|v| v.to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    let v = |s: &str| Some(s.to_owned());
    match arch.as_str() {
        "i386" => ("386".to_owned(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_owned(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => match variant.as_deref() {
            Some("8" | "v8" | "v8.0") => ("arm64".to_owned(), None),
            Some("9" | "9.0" | "v9.0") => ("arm64".to_owned(), v("v9")),
            _ => ("arm64".to_owned(), variant),
        },
        "armhf" => ("arm".to_owned(), v("v7")),
        "armel" => ("arm".to_owned(), v("v6")),
        "arm" => match variant.as_deref() {
            None | Some("7") => ("arm".to_owned(), v("v7")),
            Some(n @ ("5" | "6" | "8")) => ("arm".to_owned(), Some(format!("v{n}"))),
            _ => ("arm".to_owned(), variant),
        },
        _ => (arch.clone(), variant),
    }
}

/// containerd `isKnownOS` (expects a normalized OS).
fn is_known_os(os: &str) -> bool {
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 \
     solaris windows zos"
        .split_whitespace()
        .any(|k| k == os)
}

/// containerd `isKnownArch` (expects a normalized architecture).
fn is_known_arch(arch: &str) -> bool {
    "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le \
     mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm"
        .split_whitespace()
        .any(|k| k == arch)
}

/// `vN` / `N` → N; `None` maps to `default`.
fn level(variant: Option<&str>, default: u32) -> Option<u32> {
    match variant {
        None => Some(default),
        Some(v) => v.strip_prefix('v').unwrap_or(v).parse().ok(),
    }
}

/// arm64 `vMAJOR[.MINOR]` → (major, minor); `None` is v8.0.
fn arm64_level(variant: Option<&str>) -> Option<(u32, u32)> {
    let Some(v) = variant else {
        return Some((8, 0));
    };
    let v = v.strip_prefix('v').unwrap_or(v);
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Whether a node of platform `node` can run an image index entry of platform
/// `image`, per containerd's `platforms.Only(node)` (see the module docs).
pub fn can_run(node: &Platform, image: &Platform) -> bool {
    let node = node.clone().normalized();
    let image = image.clone().normalized();
    if node.os != image.os {
        return false;
    }
    if node.architecture == image.architecture && node.variant == image.variant {
        return true;
    }
    let (nv, iv) = (node.variant.as_deref(), image.variant.as_deref());
    // arm/vN matches arm/v5..=vN.
    let arm_ok = |node_level: Option<u32>| match (node_level, level(iv, 0)) {
        (Some(n), Some(i)) => (5..=n).contains(&i),
        _ => false,
    };
    match (node.architecture.as_str(), image.architecture.as_str()) {
        ("amd64", "amd64") => {
            matches!((level(nv, 1), level(iv, 1)), (Some(n), Some(i)) if (1..=n).contains(&i))
        }
        ("amd64", "386") => iv.is_none(),
        ("arm", "arm") => arm_ok(level(nv, 7)),
        ("arm64", "arm64") => match (arm64_level(nv), arm64_level(iv)) {
            (Some((nmaj, nmin)), Some((imaj, imin))) => {
                (nmaj >= 8 && imaj == nmaj && imin <= nmin)
                    || (nmaj == 9 && imaj == 8 && imin <= nmin + 5)
            }
            _ => false,
        },
        // containerd recurses into arm with the arm64 variant, v8.x/v9.x → v8.
        ("arm64", "arm") => match nv {
            None => arm_ok(Some(8)),
            Some(v) if v.starts_with("v8.") || v.starts_with("v9.") => arm_ok(Some(8)),
            Some(v) => arm_ok(level(Some(v), 0)),
        },
        _ => false,
    }
}

/// Whether `p` is a buildx attestation entry (`unknown/unknown`), not a platform.
pub fn is_attestation(p: &Platform) -> bool {
    p.os.eq_ignore_ascii_case("unknown") && p.architecture.eq_ignore_ascii_case("unknown")
}

/// Whether a Linux node whose `kubernetes.io/arch` label is `node_arch` can run
/// at least one of `image_platforms` (see [`NodePlatform::runs`]).
pub fn covers(node_arch: &str, image_platforms: &[Platform]) -> bool {
    NodePlatform::new(DEFAULT_OS, node_arch).runs(image_platforms)
}

/// A kind of Node a pod may land on: its OS and `kubernetes.io/arch`, normalized.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodePlatform {
    pub os: String,
    pub arch: String,
}

impl NodePlatform {
    pub fn new(os: &str, arch: &str) -> NodePlatform {
        NodePlatform {
            os: normalize_os(os.trim()),
            arch: normalize_arch(arch),
        }
    }

    /// Whether such a Node runs at least one of `image_platforms` (attestation
    /// entries ignored). The labels carry no variant: `arm` is `arm/v7`, `amd64`
    /// is `amd64/v1`.
    pub fn runs(&self, image_platforms: &[Platform]) -> bool {
        let node = Platform {
            os: self.os.clone(),
            architecture: self.arch.clone(),
            variant: None,
        };
        image_platforms
            .iter()
            .filter(|p| !is_attestation(p))
            .any(|p| can_run(&node, p))
    }
}

impl fmt::Display for NodePlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

/// Which part of the pod spec constrained its architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchSource {
    /// `spec.nodeSelector["kubernetes.io/arch"]` (or the beta label).
    NodeSelector,
    /// `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    NodeAffinity,
}

impl ArchSource {
    /// Human-readable origin, for messages.
    pub fn label(self) -> &'static str {
        match self {
            ArchSource::NodeSelector => "nodeSelector",
            ArchSource::NodeAffinity => "node affinity",
        }
    }
}

/// The architectures a pod's scheduling constraints admit (normalized names).
///
/// Either an explicit `allowed` set (already minus any exclusions; empty means
/// no node can match), or `allowed: None` with a non-empty `excluded` set:
/// "any architecture except these".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchRequirement {
    /// Explicitly allowed architectures, or `None` for "all but `excluded`".
    pub allowed: Option<BTreeSet<String>>,
    /// Excluded architectures; only meaningful when `allowed` is `None`.
    pub excluded: BTreeSet<String>,
    /// Where the constraint came from.
    pub source: ArchSource,
}

impl ArchRequirement {
    /// Whether a node with architecture `arch` satisfies the requirement.
    pub fn permits(&self, arch: &str) -> bool {
        let arch = normalize_arch(arch);
        match &self.allowed {
            Some(allowed) => allowed.contains(&arch),
            None => !self.excluded.contains(&arch),
        }
    }
}

fn is_arch_key(key: &str) -> bool {
    key == ARCH_LABEL || key == BETA_ARCH_LABEL
}

fn normalize_all<'a>(archs: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    archs.into_iter().map(|a| normalize_arch(a)).collect()
}

/// The pod's architecture constraint, or `None` when nothing constrains it.
///
/// A `nodeSelector` arch label wins (both labels set to different values gives
/// an empty set). Otherwise required node affinity: per term, `In` sets are
/// intersected, `NotIn` values excluded, `DoesNotExist` matches no node,
/// `Exists` (and `Gt`/`Lt`) add nothing; terms are unioned, and a term with no
/// arch expression admits every arch, making the whole pod unconstrained. An
/// empty term matches no node, as in Kubernetes. (The scheduler ANDs the
/// selector and the affinity; the selector names one arch, which the affinity
/// could only narrow to nothing, so the selector alone is reported.)
pub fn pod_arch_requirement(spec: &PodSpec) -> Option<ArchRequirement> {
    let labels = [ARCH_LABEL, BETA_ARCH_LABEL];
    let selector = spec.node_selector.iter();
    let mut selected = normalize_all(selector.flat_map(|s| labels.map(|l| s.get(l))).flatten());
    if !selected.is_empty() {
        if selected.len() > 1 {
            selected.clear(); // the two labels disagree: no node has both
        }
        return Some(ArchRequirement {
            allowed: Some(selected),
            excluded: BTreeSet::new(),
            source: ArchSource::NodeSelector,
        });
    }
    let node_affinity = spec.affinity.as_ref()?.node_affinity.as_ref()?;
    let required = node_affinity
        .required_during_scheduling_ignored_during_execution
        .as_ref();
    let terms = &required?.node_selector_terms;
    if terms.is_empty() {
        return None;
    }
    let mut union = BTreeSet::new();
    // Intersection of the exclusions of "all except …" terms.
    let mut all_but: Option<BTreeSet<String>> = None;
    for term in terms {
        match term_requirement(term)? {
            (Some(allowed), _) => union.extend(allowed),
            (None, excluded) => {
                all_but = Some(match all_but {
                    Some(prev) => &prev & &excluded,
                    None => excluded,
                });
            }
        }
    }
    let (allowed, excluded) = match all_but {
        None => (Some(union), BTreeSet::new()),
        Some(excluded) => {
            let excluded = &excluded - &union;
            if excluded.is_empty() {
                return None;
            }
            (None, excluded)
        }
    };
    Some(ArchRequirement {
        allowed,
        excluded,
        source: ArchSource::NodeAffinity,
    })
}

/// One term's arch constraint as (allowed, excluded); `None` = any arch.
fn term_requirement(
    term: &NodeSelectorTerm,
) -> Option<(Option<BTreeSet<String>>, BTreeSet<String>)> {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    if exprs.is_empty() && term.match_fields.as_deref().unwrap_or_default().is_empty() {
        return Some((Some(BTreeSet::new()), BTreeSet::new()));
    }
    let mut allowed: Option<BTreeSet<String>> = None;
    let mut excluded = BTreeSet::new();
    for expr in exprs.iter().filter(|e| is_arch_key(&e.key)) {
        let values = normalize_all(expr.values.iter().flatten());
        match expr.operator.as_str() {
            "In" => {
                allowed = Some(match allowed {
                    Some(prev) => &prev & &values,
                    None => values,
                });
            }
            "NotIn" => excluded.extend(values),
            "DoesNotExist" => allowed = Some(BTreeSet::new()),
            _ => {}
        }
    }
    match allowed {
        Some(allowed) => Some((Some(&allowed - &excluded), BTreeSet::new())),
        None if excluded.is_empty() => None,
        None => Some((None, excluded)),
    }
}

/// Where the platforms a pod may run on came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformSource {
    /// The Nodes the pod can land on: `matching` of the cluster's `total`.
    Nodes { matching: usize, total: usize },
    /// The pod's own `kubernetes.io/arch` constraint (no known Node fits it).
    Pod(ArchSource),
    /// The policy's `architectures.require`.
    Policy,
}

impl fmt::Display for PlatformSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformSource::Nodes { matching, total } => write!(
                f,
                "the {matching} of the cluster's {total} nodes the pod can be scheduled on"
            ),
            PlatformSource::Pod(source) => f.write_str(source.label()),
            PlatformSource::Policy => f.write_str("policy"),
        }
    }
}

/// The platforms a pod may run on, where they came from, and whether the pod
/// constrains its architecture itself (then no node affinity can be added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub platforms: BTreeSet<NodePlatform>,
    pub source: PlatformSource,
    pub pod_constrained: bool,
}

/// The platforms `spec` may run on: those of the `nodes` it can land on; when no
/// known Node fits, its own arch constraint; else the policy's `require` list (in
/// the pod's OS). `None` when nothing is known. An empty set means no Node can
/// satisfy the pod (its two arch labels disagree).
pub fn placement(
    spec: &PodSpec,
    nodes: Option<&[Node]>,
    policy_require: &[String],
) -> Option<Placement> {
    let requirement = pod_arch_requirement(spec);
    let pod_constrained = requirement.is_some();
    if let Some(nodes) = nodes {
        // A Node without an arch label (the kubelet always sets one) tells nothing.
        let fit: Vec<NodePlatform> = nodes_for_pod(spec, nodes)
            .iter()
            .filter_map(|n| Some(NodePlatform::new(n.os(), n.arch()?)))
            .collect();
        if !fit.is_empty() {
            let source = PlatformSource::Nodes {
                matching: fit.len(),
                total: nodes.len(),
            };
            let platforms = fit.into_iter().collect();
            return Some(Placement {
                platforms,
                source,
                pod_constrained,
            });
        }
    }
    let os = pod_os(spec);
    let policy = normalize_all(policy_require);
    let (archs, source) = match requirement {
        Some(req) => match req.allowed {
            Some(allowed) => (allowed, PlatformSource::Pod(req.source)),
            None if !policy.is_empty() => {
                (&policy - &req.excluded, PlatformSource::Pod(req.source))
            }
            None => return None,
        },
        None if !policy.is_empty() => (policy, PlatformSource::Policy),
        None => return None,
    };
    Some(Placement {
        platforms: archs.iter().map(|a| NodePlatform::new(&os, a)).collect(),
        source,
        pod_constrained,
    })
}

/// The pod's OS: `spec.os.name`, else its nodeSelector `kubernetes.io/os`, else
/// `linux`.
pub fn pod_os(spec: &PodSpec) -> String {
    let named = spec.os.as_ref().map(|os| os.name.as_str());
    let selected = spec
        .node_selector
        .as_ref()
        .and_then(|s| s.get(OS_LABEL))
        .map(String::as_str);
    normalize_os(named.or(selected).unwrap_or(DEFAULT_OS).trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(spec: &str) -> Platform {
        Platform::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn normalization_table() {
        // "os/arch[/variant]" split on `/` as-is (empty parts kept) → normalized
        let cases: &[(&str, &str)] = &[
            ("Linux/x86_64", "linux/amd64"),
            ("linux/x86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/AMD64/V3", "linux/amd64/v3"),
            ("linux/i386/x", "linux/386"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/arm64/v8.0", "linux/arm64"),
            ("linux/arm64/9", "linux/arm64/v9"),
            ("linux/arm64/v8.2", "linux/arm64/v8.2"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/5", "linux/arm/v5"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/arm/8", "linux/arm/v8"),
            ("macOS/arm64", "darwin/arm64"),
            ("windows/amd64", "windows/amd64"),
            ("/amd64", "linux/amd64"),
            ("linux/ppc64le/", "linux/ppc64le"),
            ("linux/RISCV64", "linux/riscv64"),
            ("linux/s390x", "linux/s390x"),
        ];
        for (input, want) in cases {
            let mut parts = input.split('/').map(str::to_string);
            let (os, architecture) = (parts.next().unwrap(), parts.next().unwrap());
            let plat = Platform {
                os,
                architecture,
                variant: parts.next(),
            };
            assert_eq!(plat.normalized().to_string(), *want, "{input}");
        }
        for (input, want) in [("x86_64", "amd64"), ("aarch64", "arm64"), ("i386", "386")] {
            assert_eq!(normalize_arch(input), want, "{input}");
        }
    }

    #[test]
    fn parse_table() {
        use PlatformParseError::*;
        let ok: &[(&str, &str)] = &[
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("arm64", "linux/arm64"),
            ("aarch64", "linux/aarch64"),
            ("linux/amd64", "linux/amd64"),
            ("amd64/v3", "linux/amd64/v3"),
            ("arm/v6", "linux/arm/v6"),
            ("windows/amd64", "windows/amd64"),
            ("  linux/arm  ", "linux/arm"),
            ("freebsd/riscv64", "freebsd/riscv64"),
        ];
        for (spec, want) in ok {
            assert_eq!(p(spec).to_string(), *want, "{spec}");
        }
        let err: &[(&str, PlatformParseError)] = &[
            ("", Empty),
            ("  ", Empty),
            ("linux/", EmptyComponent("linux/".into())),
            ("/amd64", EmptyComponent("/amd64".into())),
            ("linux//v7", EmptyComponent("linux//v7".into())),
            ("linux", MissingArchitecture("linux".into())),
            ("foo", UnknownArchitecture("foo".into())),
            ("linux/arm/v7/x", TooManyComponents("linux/arm/v7/x".into())),
        ];
        for (spec, want) in err {
            assert_eq!(Platform::parse(spec).as_ref(), Err(want), "{spec}");
        }
        assert_eq!("linux/arm/v7".parse::<Platform>(), Ok(p("linux/arm/v7")));
    }

    #[test]
    fn deserializes_oci_index_platform() {
        let plat: Platform = serde_json::from_value(
            json!({"architecture": "arm64", "os": "linux", "os.version": "x", "variant": "v8"}),
        )
        .unwrap();
        assert_eq!(plat, p("linux/arm64/v8"));
        let plat: Platform =
            serde_json::from_value(json!({"architecture": "amd64", "os": "linux"})).unwrap();
        assert_eq!(plat.variant, None);
        assert_eq!(
            serde_json::to_value(&plat).unwrap(),
            json!({"os": "linux", "architecture": "amd64"})
        );
    }

    #[test]
    fn can_run_table() {
        // (node, images it runs, images it does not run)
        #[rustfmt::skip]
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("linux/arm64", &["linux/arm64/v8", "linux/aarch64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v5"],
                &["linux/arm64/v8.2", "linux/amd64", "windows/arm64"]),
            ("linux/arm64/v8", &["linux/arm64"], &[]),
            ("linux/arm64/v8.2", &["linux/arm64/v8.1", "linux/arm64"], &["linux/arm64/v8.3"]),
            ("linux/arm64/v9", &["linux/arm64", "linux/arm64/v8.5"], &["linux/arm64/v8.6", "linux/arm64/v9.1"]),
            ("linux/arm64/v9.1", &["linux/arm64/v9", "linux/arm64/v8.6", "linux/arm/v7"], &[]),
            ("linux/arm/v8", &["linux/arm/v7", "linux/arm/v5"], &["linux/arm64"]),
            ("linux/arm/v7", &["linux/arm/v7", "linux/arm/v6", "linux/arm/v5", "linux/arm", "linux/armhf"],
                &["linux/arm/v8", "linux/arm64"]),
            ("linux/arm/v6", &["linux/arm/v5", "linux/armel"], &["linux/arm/v7", "linux/arm"]),
            ("linux/amd64", &["linux/amd64/v1", "linux/x86_64", "linux/386", "linux/i386"],
                &["linux/amd64/v2", "linux/amd64/v3", "windows/amd64", "linux/arm64", "unknown/unknown"]),
            ("linux/amd64/v3", &["linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/386"], &["linux/amd64/v4"]),
            ("linux/386", &["linux/386"], &["linux/amd64"]),
            ("linux/ppc64le", &["linux/ppc64le"], &["linux/s390x"]),
            ("windows/amd64", &["windows/amd64", "windows/386"], &["linux/amd64"]),
        ];
        for (node, runs, not_runs) in cases {
            for (images, want) in [(*runs, true), (*not_runs, false)] {
                for image in images {
                    assert_eq!(can_run(&p(node), &p(image)), want, "{node} runs {image}");
                }
            }
        }
    }

    #[test]
    fn covers_table() {
        let att = p("unknown/unknown");
        assert!(is_attestation(&att));
        assert!(!is_attestation(&p("linux/amd64")));
        // (node arch label, image platforms, expected); an attestation entry
        // appended to the list must never change the answer.
        let cases: &[(&str, &[&str], bool)] = &[
            ("amd64", &["linux/amd64", "linux/arm64"], true),
            ("arm64", &["linux/amd64"], false),
            ("arm64", &[], false),
            ("ppc64le", &[], false),
            ("arm", &["linux/arm/v7"], true),
            ("arm", &["linux/arm/v6"], true),
            ("arm", &["linux/arm/v8"], false),
            ("arm", &["linux/arm64"], false),
            ("arm64", &["linux/arm/v7"], true),
            ("amd64", &["linux/386"], true),
            ("amd64", &["linux/amd64/v2", "linux/amd64/v3"], false),
            ("x86_64", &["linux/amd64"], true),
            ("amd64", &["windows/amd64"], false),
            ("s390x", &["linux/s390x", "linux/riscv64"], true),
            ("riscv64", &["linux/riscv64"], true),
        ];
        for (arch, images, want) in cases {
            let mut plats: Vec<Platform> = images.iter().map(|s| p(s)).collect();
            assert_eq!(covers(arch, &plats), *want, "{arch} {images:?}");
            plats.push(att.clone());
            assert_eq!(
                covers(arch, &plats),
                *want,
                "{arch} {images:?} + attestation"
            );
        }
    }

    /// Builds a PodSpec from `"A=arm64,disk=ssd"` (nodeSelector) and
    /// `"A In amd64,arm64 & Z Exists | B NotIn s390x"` (required affinity:
    /// `|` separates terms, `&` expressions). Keys `A`/`B` are the arch/beta
    /// labels; `-` is an empty term.
    fn pod(selector: &str, affinity: Option<&str>) -> PodSpec {
        let key = |k: &str| match k {
            "A" => ARCH_LABEL.to_string(),
            "B" => BETA_ARCH_LABEL.to_string(),
            other => other.to_string(),
        };
        let mut spec = json!({"containers": []});
        for (k, v) in selector.split(',').filter_map(|kv| kv.split_once('=')) {
            spec["nodeSelector"][key(k)] = json!(v);
        }
        if let Some(affinity) = affinity {
            let term = |t: &str| {
                let exprs: Vec<_> = t
                    .split('&')
                    .map(str::split_whitespace)
                    .filter_map(|mut e| {
                        let (k, op) = (e.next()?, e.next()?);
                        let values: Vec<&str> =
                            e.next().map(|v| v.split(',').collect()).unwrap_or_default();
                        Some(json!({"key": key(k), "operator": op, "values": values}))
                    })
                    .collect();
                json!({"matchExpressions": exprs})
            };
            let terms: Vec<_> = affinity
                .split('|')
                .filter(|t| !t.trim().is_empty())
                .map(|t| if t.trim() == "-" { json!({}) } else { term(t) })
                .collect();
            spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        }
        serde_json::from_value(spec).unwrap()
    }

    /// `None` → "-", else "source [allowed]" or "source not [excluded]".
    fn show(req: Option<ArchRequirement>) -> String {
        let Some(r) = req else { return "-".into() };
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match &r.allowed {
            Some(a) => format!("{} [{}]", r.source.label(), list(a)),
            None => format!("{} not [{}]", r.source.label(), list(&r.excluded)),
        }
    }

    #[test]
    fn pod_requirement_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            ("nothing", "", None, "-"),
            ("nodeSelector", "A=arm64,disk=ssd", None, "nodeSelector [arm64]"),
            ("beta label", "B=amd64", None, "nodeSelector [amd64]"),
            ("normalized", "A=aarch64", None, "nodeSelector [arm64]"),
            ("both labels conflict", "A=arm64,B=amd64", None, "nodeSelector []"),
            ("selector wins", "A=arm64", Some("A In amd64"), "nodeSelector [arm64]"),
            ("other selector", "disk=ssd", Some("A In amd64"), "node affinity [amd64]"),
            ("In union across terms", "", Some("A In amd64 | B In arm64"), "node affinity [amd64,arm64]"),
            ("In & In & NotIn", "", Some("A In amd64,arm64,s390x & A In amd64,arm64 & A NotIn arm64"), "node affinity [amd64]"),
            ("In & zone", "", Some("A In arm64 & zone In a"), "node affinity [arm64]"),
            ("NotIn", "", Some("A NotIn s390x"), "node affinity not [s390x]"),
            ("NotIn terms intersect", "", Some("A NotIn s390x,ppc64le | A NotIn s390x"), "node affinity not [s390x]"),
            ("In re-admits NotIn", "", Some("A In amd64 | A NotIn amd64,s390x"), "node affinity not [s390x]"),
            ("NotIn fully re-admitted", "", Some("A In s390x | A NotIn s390x"), "-"),
            ("term without arch", "", Some("A In arm64 | zone In a"), "-"),
            ("DoesNotExist", "", Some("A DoesNotExist"), "node affinity []"),
            ("Exists", "", Some("A Exists"), "-"),
            ("empty term matches nothing", "", Some("- | A In arm64"), "node affinity [arm64]"),
            ("no terms", "", Some(""), "-"),
        ];
        for (name, selector, affinity, want) in cases {
            let got = show(pod_arch_requirement(&pod(selector, *affinity)));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn placement_precedence_table() {
        let node = |name: &str, arch: &str, os: &str| Node {
            name: name.into(),
            labels: [(ARCH_LABEL, arch), (OS_LABEL, os)]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
            ..Node::default()
        };
        let cluster = vec![
            node("a", "amd64", "linux"),
            node("s", "s390x", "linux"),
            node("w", "amd64", "windows"),
            Node {
                name: "unlabelled".into(),
                ..Node::default()
            },
        ];
        let arm_only = vec![node("r", "arm64", "linux")];
        let policy = ["arm64".to_string(), "S390X".to_string()];
        let windows_pod = json!({"containers": [], "os": {"name": "windows"}});
        let windows_pod: PodSpec = serde_json::from_value(windows_pod).unwrap();
        // (pod, nodes, policy, expected)
        #[rustfmt::skip]
        type Case<'a> = (PodSpec, Option<&'a [Node]>, &'a [String], &'a str);
        let cases: Vec<Case> = vec![
            (
                pod("", None),
                Some(&cluster),
                &policy,
                "linux/amd64,linux/s390x,windows/amd64 from the 3 of the cluster's 4 nodes the pod can be scheduled on",
            ),
            (
                pod("A=amd64", None),
                Some(&cluster),
                &policy,
                "linux/amd64,windows/amd64 from the 2 of the cluster's 4 nodes the pod can be scheduled on, constrained",
            ),
            (
                pod("kubernetes.io/os=linux", None),
                Some(&cluster),
                &[],
                "linux/amd64,linux/s390x from the 2 of the cluster's 4 nodes the pod can be scheduled on",
            ),
            (
                pod("", Some("A NotIn s390x")),
                Some(&cluster),
                &[],
                "linux/amd64,windows/amd64 from the 2 of the cluster's 4 nodes the pod can be scheduled on, constrained",
            ),
            (
                windows_pod.clone(),
                Some(&cluster),
                &[],
                "windows/amd64 from the 1 of the cluster's 4 nodes the pod can be scheduled on",
            ),
            // No Node fits: the pod's own constraint, else the policy, in the pod's OS.
            (
                pod("A=arm64", None),
                Some(&cluster),
                &policy,
                "linux/arm64 from nodeSelector, constrained",
            ),
            (
                pod("A=arm64", None),
                Some(&arm_only),
                &policy,
                "linux/arm64 from the 1 of the cluster's 1 nodes the pod can be scheduled on, constrained",
            ),
            (
                pod("disk=ssd", None),
                Some(&cluster),
                &policy,
                "linux/arm64,linux/s390x from policy",
            ),
            (
                windows_pod,
                Some(&arm_only),
                &policy,
                "windows/arm64,windows/s390x from policy",
            ),
            (
                pod("", Some("A In amd64,arm64")),
                None,
                &policy,
                "linux/amd64,linux/arm64 from node affinity, constrained",
            ),
            (
                pod("", Some("A NotIn s390x")),
                None,
                &policy,
                "linux/arm64 from node affinity, constrained",
            ),
            (pod("", Some("A NotIn s390x")), None, &[], "-"),
            (
                pod("A=arm64,B=amd64", None),
                None,
                &policy,
                " from nodeSelector, constrained",
            ),
            (
                pod("", None),
                None,
                &policy,
                "linux/arm64,linux/s390x from policy",
            ),
            (
                pod("", None),
                Some(&[]),
                &policy,
                "linux/arm64,linux/s390x from policy",
            ),
            (pod("", None), None, &[], "-"),
        ];
        for (i, (spec, nodes, pol, want)) in cases.into_iter().enumerate() {
            let got = match placement(&spec, nodes, pol) {
                Some(p) => format!(
                    "{} from {}{}",
                    p.platforms
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    p.source,
                    if p.pod_constrained {
                        ", constrained"
                    } else {
                        ""
                    }
                ),
                None => "-".into(),
            };
            assert_eq!(got, want, "case {i}");
        }
        let runs = |node: &str, image: &[&str]| {
            let (os, arch) = node.split_once('/').unwrap();
            NodePlatform::new(os, arch).runs(&image.iter().map(|i| p(i)).collect::<Vec<_>>())
        };
        assert!(runs("windows/amd64", &["windows/amd64", "linux/arm64"]));
        assert!(!runs("windows/amd64", &["linux/amd64"]));
        assert!(!runs("linux/amd64", &["windows/amd64"]));
        assert!(runs("Linux/x86_64", &["linux/amd64"]));
    }
}
