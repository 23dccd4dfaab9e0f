//! The objects imagegate admits: Pods and the pod templates of workloads.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, PodOS, PodSpec, Toleration};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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
    /// The pod spec fields the rules read besides images, typed: `nodeSelector`,
    /// `affinity`, `tolerations`, `nodeName`, `os`, `imagePullSecrets` and
    /// `serviceAccountName`. Nothing else is read from the request (the containers
    /// are in `containers`): a rule that reads another field of `pod_spec` must add
    /// it to `LeanPodSpec` in this module, or it reads the field's default.
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
fn malformed_reason(
    pointer: &str,
    path: Option<&serde_path_to_error::Path>,
    e: &serde_json::Error,
) -> String {
    let mut field = pointer.trim_start_matches('/').replace('/', ".");
    let path = path.map_or(".".to_string(), ToString::to_string);
    if path != "." {
        if !path.starts_with('[') {
            field.push('.');
        }
        field.push_str(&path);
    }
    format!("{field}: {}", without_position(e))
}

/// serde_json's message without ` at line L column C`: read from JSON text, the
/// position is within the pod spec, not the body, and says nothing the field
/// path does not.
pub(crate) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(t) if e.line() > 0 => t.to_string(),
        _ => text,
    }
}

/// What makes a container unchanged across an UPDATE: the same kind, name and
/// image, and whether it is pulled (`imagePullPolicy: Never` or not).
#[derive(Debug, Clone, Hash)]
struct Unchanged<'a> {
    kind: ContainerKind,
    name: Cow<'a, str>,
    image: Cow<'a, str>,
    never_pulled: bool,
}

impl<'a> Unchanged<'a> {
    fn of(c: &'a ContainerImage) -> Self {
        Unchanged {
            kind: c.kind,
            name: Cow::Borrowed(&c.name),
            image: Cow::Borrowed(&c.image),
            never_pulled: c.never_pulled,
        }
    }

    /// A container as read from the body: borrowed from it where it can be.
    fn lean(kind: ContainerKind, c: &LeanContainer<'a>) -> Self {
        let text = |t: &Option<Cow<'a, str>>| match t {
            Some(Cow::Borrowed(b)) => Cow::Borrowed(*b),
            Some(Cow::Owned(o)) => Cow::Owned(o.clone()),
            None => Cow::Borrowed(""),
        };
        Unchanged {
            kind,
            name: text(&c.name),
            image: text(&c.image),
            never_pulled: c.never_pulled(),
        }
    }

    /// Whether a container was there before, with the same image: an image that
    /// was `imagePullPolicy: Never` and is now pulled counts as changed (it was
    /// never looked up). At most two lookups.
    fn was_in(mut self, before: &HashSet<Unchanged<'_>>) -> bool {
        if self.never_pulled {
            // Unchanged if it was there pulled or not.
            if before.contains(&self) {
                return true;
            }
            self.never_pulled = false;
        }
        before.contains(&self)
    }
}

impl PartialEq for Unchanged<'_> {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(test)]
        tests::COMPARISONS.with(|n| n.set(n.get() + 1));
        self.kind == other.kind
            && self.never_pulled == other.never_pulled
            && self.name == other.name
            && self.image == other.image
    }
}

impl Eq for Unchanged<'_> {}

/// The containers of an UPDATE's `oldObject`, as (kind, name, image), borrowed
/// from the body: what [`Workload::from_raw_changed`] leaves out.
#[derive(Debug, Default)]
pub struct OldImages<'a>(HashSet<Unchanged<'a>>);

impl<'a> OldImages<'a> {
    /// Reads the old object's containers (`Ok(None)` for a kind imagegate does not
    /// govern). Nothing else of it is read.
    pub fn from_raw(
        group: &str,
        kind: &str,
        old: &'a RawValue,
    ) -> Result<Option<OldImages<'a>>, ObjectError> {
        let Some(spec) = raw_spec(group, kind, RawObject::read(old))? else {
            return Ok(None);
        };
        let mut set = HashSet::with_capacity(spec.len());
        for (kind, list) in spec.lists() {
            for c in list.iter().flatten() {
                set.insert(Unchanged::lean(kind, c));
            }
        }
        Ok(Some(OldImages(set)))
    }
}

impl<'a> LeanPodSpec<'a> {
    /// The three container lists, in the order messages list them.
    fn lists(&self) -> [(ContainerKind, &Option<Vec<LeanContainer<'a>>>); 3] {
        [
            (ContainerKind::InitContainer, &self.init_containers),
            (ContainerKind::Container, &self.containers),
            (
                ContainerKind::EphemeralContainer,
                &self.ephemeral_containers,
            ),
        ]
    }

    /// The number of containers.
    fn len(&self) -> usize {
        self.lists()
            .iter()
            .map(|(_, l)| l.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// The pod spec of a covered object read from its JSON text: only the path to
/// it is walked, and only [`LeanPodSpec`]'s fields are read. `Ok(None)` for a
/// kind imagegate does not govern.
fn raw_spec<'a>(
    group: &str,
    kind: &str,
    object: RawObject<'a>,
) -> Result<Option<LeanPodSpec<'a>>, ObjectError> {
    let Some(pointer) = pod_spec_pointer(group, kind) else {
        return Ok(None);
    };
    let no_spec = || ObjectError::NoPodSpec {
        kind: kind.to_string(),
        pointer,
    };
    // Every pointer starts at the object's `spec`, which `object` already holds.
    let mut keys = pointer.split('/').skip(1);
    if keys.next() != Some("spec") {
        return Err(no_spec());
    }
    let mut at = object.spec.ok_or_else(no_spec)?;
    for key in keys {
        // The object is valid JSON (the request was parsed), so this cannot fail.
        at = raw_field(at, key).ok().flatten().ok_or_else(no_spec)?;
    }
    lean_spec(kind, pointer, || at).map(Some)
}

/// Reads the pod spec at `pointer`, from a tree (`&Value`) or from JSON text; the
/// error names the field (`spec.containers[0].image: invalid type: ...`).
///
/// The plain deserializer runs first; the one that tracks the path (it allocates
/// for every key it passes) runs again only on failure.
fn lean_spec<'de, D, F>(
    kind: &str,
    pointer: &'static str,
    de: F,
) -> Result<LeanPodSpec<'de>, ObjectError>
where
    D: Deserializer<'de, Error = serde_json::Error>,
    F: Fn() -> D,
{
    match LeanPodSpec::deserialize(de()) {
        Ok(spec) => typed_affinity(kind, pointer, spec),
        Err(plain) => {
            let reason = match serde_path_to_error::deserialize::<_, LeanPodSpec<'de>>(de()) {
                Err(e) => malformed_reason(pointer, Some(e.path()), e.inner()),
                Ok(_) => malformed_reason(pointer, None, &plain),
            };
            Err(ObjectError::Malformed {
                kind: kind.to_string(),
                pointer,
                reason,
            })
        }
    }
}

/// The last step of reading a pod spec: its `affinity`, kept as JSON for patches,
/// is read as the typed `Affinity` the rules use.
fn typed_affinity<'de>(
    kind: &str,
    pointer: &'static str,
    mut spec: LeanPodSpec<'de>,
) -> Result<LeanPodSpec<'de>, ObjectError> {
    if let Some(raw) = spec.raw_affinity.as_ref().filter(|v| !v.is_null()) {
        let typed = serde_path_to_error::deserialize::<_, Affinity>(raw).map_err(|e| {
            let mut reason = malformed_reason(pointer, Some(e.path()), e.inner());
            // `spec.nodeAffinity...` -> `spec.affinity.nodeAffinity...`
            let field = pointer.trim_start_matches('/').replace('/', ".");
            if let Some(rest) = reason.strip_prefix(&field) {
                reason = format!("{field}.affinity{rest}");
            }
            ObjectError::Malformed {
                kind: kind.to_string(),
                pointer,
                reason,
            }
        })?;
        spec.affinity = Some(typed);
    }
    Ok(spec)
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

/// The pod spec as imagegate reads it: the containers' names, images and pull
/// policies, and the fields the rules read (`nodeSelector`, `affinity`,
/// `tolerations`, `nodeName`, `os`, `imagePullSecrets`, `serviceAccountName`). Everything else is skipped unread ([`IgnoredAny`]):
/// the API server has validated the object against its schema, and a field
/// imagegate does not read cannot change its decision. Strings are borrowed from
/// the body where they hold no escapes.
///
/// Like k8s-openapi's `PodSpec`, every field may be missing or `null`.
#[derive(Deserialize)]
#[serde(rename = "PodSpec", expecting = "PodSpec", rename_all = "camelCase")]
pub(crate) struct LeanPodSpec<'a> {
    #[serde(default, borrow)]
    init_containers: Option<Vec<LeanContainer<'a>>>,
    #[serde(default, borrow)]
    containers: Option<Vec<LeanContainer<'a>>>,
    #[serde(default, borrow)]
    ephemeral_containers: Option<Vec<LeanContainer<'a>>>,
    #[serde(default)]
    node_selector: Option<BTreeMap<String, String>>,
    /// Read as it is (a small tree) for patches that add to it, then typed.
    #[serde(default, rename = "affinity")]
    raw_affinity: Option<Value>,
    #[serde(skip)]
    affinity: Option<Affinity>,
    #[serde(default)]
    image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(default)]
    service_account_name: Option<String>,
    #[serde(default)]
    tolerations: Option<Vec<Toleration>>,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    os: Option<PodOS>,
}

/// A container as imagegate reads it: its name, image and pull policy, nothing else.
#[derive(Deserialize)]
#[serde(expecting = "Container")]
pub(crate) struct LeanContainer<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    image: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "imagePullPolicy")]
    image_pull_policy: Option<Cow<'a, str>>,
}

impl LeanContainer<'_> {
    /// `imagePullPolicy: Never`.
    fn never_pulled(&self) -> bool {
        self.image_pull_policy.as_deref() == Some("Never")
    }
}

/// An object's `metadata`, as far as imagegate reads it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    rename = "ObjectMeta",
    expecting = "ObjectMeta",
    rename_all = "camelCase"
)]
pub struct Meta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub generate_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl Meta {
    /// The name, or the `generateName` prefix of a name still to be generated.
    pub fn name_or_prefix(&self) -> Option<&str> {
        self.name
            .as_deref()
            .or(self.generate_name.as_deref())
            .filter(|n| !n.is_empty())
    }
}

/// The [`Visitor`] methods for every JSON value but an object, which has none of
/// the fields sought: an array is read past, and each reads as the default.
macro_rules! any_other_value_reads_as_default {
    () => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// An object's top-level `metadata` and `spec` as JSON text, found in one pass
/// over the object, everything else skipped unread: all that the request path
/// reads of an object ([`Workload::from_parts_changed`] walks on from `spec`).
/// Deserialized straight from the request, it saves scanning the object again
/// for each field. Any JSON value reads: one that is not an object has neither
/// field. As in Go's encoding/json, the last of duplicate keys wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawObject<'a> {
    pub metadata: Option<&'a RawValue>,
    pub spec: Option<&'a RawValue>,
}

impl<'a> RawObject<'a> {
    /// The fields of `raw` (valid JSON, so this reads whatever it holds).
    pub fn read(raw: &'a RawValue) -> RawObject<'a> {
        if !raw.get().starts_with('{') {
            return RawObject::default();
        }
        serde_json::from_str(raw.get()).unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = RawObject::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "metadata" => object.metadata = map.next_value()?,
                        "spec" => object.spec = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(object)
            }
            any_other_value_reads_as_default!();
        }
        d.deserialize_any(V)
    }
}

/// The value at `key` of the JSON object `raw`, without reading the rest into
/// memory: `None` when `raw` is not an object, or has no such key, or it is `null`.
pub(crate) fn raw_field<'a>(
    raw: &'a RawValue,
    key: &str,
) -> Result<Option<&'a RawValue>, serde_json::Error> {
    struct Field<'k>(&'k str);
    impl<'de, 'k> Visitor<'de> for Field<'k> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k == self.0 {
                    // The last one wins, as in Go's encoding/json.
                    found = map.next_value::<Option<&'de RawValue>>()?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_map(Field(key))
}

/// An object as the request's one pass left it, for [`Workload::from_parts_changed`]:
/// JSON text ([`RawObject`]) or already read ([`EagerObject`]). Either gives the
/// same workload and the same messages.
pub(crate) trait ObjectIn<'a> {
    /// The object's `metadata`, or the path and reason of what is wrong with it.
    fn metadata(&mut self) -> Result<Option<Meta>, String>;
    /// The pod spec of a kind imagegate covers (`Ok(None)` for another kind).
    fn pod_spec(self, group: &str, kind: &str) -> Result<Option<LeanPodSpec<'a>>, ObjectError>;
}

impl<'a> ObjectIn<'a> for RawObject<'a> {
    fn metadata(&mut self) -> Result<Option<Meta>, String> {
        let Some(meta) = self.metadata else {
            return Ok(None);
        };
        match serde_json::from_str::<Meta>(meta.get()) {
            Ok(meta) => Ok(Some(meta)),
            Err(plain) => {
                let mut de = serde_json::Deserializer::from_str(meta.get());
                Err(match serde_path_to_error::deserialize::<_, Meta>(&mut de) {
                    Err(e) if e.path().to_string() != "." => {
                        format!("metadata.{}: {}", e.path(), without_position(e.inner()))
                    }
                    Err(e) => format!("metadata: {}", without_position(e.inner())),
                    Ok(_) => format!("metadata: {}", without_position(&plain)),
                })
            }
        }
    }

    fn pod_spec(self, group: &str, kind: &str) -> Result<Option<LeanPodSpec<'a>>, ObjectError> {
        raw_spec(group, kind, self)
    }
}

/// An object read in the one pass that parses the request, for the kind it names
/// itself (`apiVersion` and `kind`, which the API server writes before `metadata`
/// and `spec`): its metadata, and the pod spec at that kind's pointer, read as the
/// parser reaches it. The object is scanned once, where [`RawObject`] scans its
/// `metadata` and `spec` again.
///
/// What this pass cannot read exactly as [`RawObject`] would fails it: a `spec`
/// before the kind, a duplicate key on the way to the pod spec, a field that does
/// not hold what it should. The caller then reads the request again with
/// [`RawObject`], which gives the answer with the path of the field at fault. Its
/// reading may be used only for a request whose kind is the object's
/// ([`EagerObject::is_kind`]).
#[derive(Default)]
pub(crate) struct EagerObject<'a> {
    api_version: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    metadata: Option<Meta>,
    spec: EagerSpec<'a>,
}

// One per request, never in a collection: boxing the spec would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Default)]
enum EagerSpec<'a> {
    /// No `spec` key.
    #[default]
    Absent,
    /// A kind imagegate does not cover: its `spec` was skipped.
    NotCovered,
    /// What is at the kind's pod spec pointer: `None` when something on the way
    /// is missing, `null` or not an object.
    At(&'static str, Option<LeanPodSpec<'a>>),
}

impl EagerObject<'_> {
    /// Whether the object names itself as `group`'s `kind` (`apps/v1` is group
    /// `apps`, `v1` the core group).
    pub(crate) fn is_kind(&self, group: &str, kind: &str) -> bool {
        let (Some(api_version), Some(own)) = (&self.api_version, &self.kind) else {
            return false;
        };
        own == kind && group_of(api_version) == group
    }
}

/// The API group of an `apiVersion`: `apps` of `apps/v1`, the core group `""` of `v1`.
fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

/// Fails the one pass (see [`EagerObject`]); never shown to anyone.
fn not_in_one_pass<E: serde::de::Error>() -> E {
    E::custom("the object cannot be read in one pass")
}

impl<'a> ObjectIn<'a> for EagerObject<'a> {
    fn metadata(&mut self) -> Result<Option<Meta>, String> {
        Ok(self.metadata.take())
    }

    fn pod_spec(self, group: &str, kind: &str) -> Result<Option<LeanPodSpec<'a>>, ObjectError> {
        let Some(pointer) = pod_spec_pointer(group, kind) else {
            return Ok(None);
        };
        match self.spec {
            EagerSpec::At(at, Some(spec)) if at == pointer => {
                typed_affinity(kind, pointer, spec).map(Some)
            }
            // Missing, or (never: the caller checks `is_kind`) another kind's.
            _ => Err(ObjectError::NoPodSpec {
                kind: kind.to_string(),
                pointer,
            }),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EagerObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EagerObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut object = EagerObject::default();
                let mut metadata_seen = false;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "apiVersion" | "kind" => {
                            let slot = if key == "kind" {
                                &mut object.kind
                            } else {
                                &mut object.api_version
                            };
                            if slot.is_some() || !matches!(object.spec, EagerSpec::Absent) {
                                return Err(not_in_one_pass());
                            }
                            *slot = Some(map.next_value()?);
                        }
                        "metadata" => {
                            if std::mem::replace(&mut metadata_seen, true) {
                                return Err(not_in_one_pass());
                            }
                            object.metadata = map.next_value()?;
                        }
                        "spec" => {
                            let (Some(api_version), Some(kind), EagerSpec::Absent) =
                                (&object.api_version, &object.kind, &object.spec)
                            else {
                                return Err(not_in_one_pass());
                            };
                            object.spec = match pod_spec_pointer(group_of(api_version), kind) {
                                None => {
                                    map.next_value::<IgnoredAny>()?;
                                    EagerSpec::NotCovered
                                }
                                Some(pointer) => {
                                    let rest = &pointer["/spec".len()..];
                                    EagerSpec::At(pointer, map.next_value_seed(SpecAt(rest))?)
                                }
                            };
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(object)
            }
        }
        d.deserialize_map(V)
    }
}

/// The pod spec at `.0` (`/template/spec`, or `""` for here) below a value, as
/// [`raw_spec`] finds it: `None` when a step is missing, `null` or not an object.
struct SpecAt(&'static str);

impl<'de> serde::de::DeserializeSeed<'de> for SpecAt {
    type Value = Option<LeanPodSpec<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let Some(path) = self.0.strip_prefix('/') else {
            return Option::<LeanPodSpec<'de>>::deserialize(d);
        };
        let (key, rest) = path.find('/').map_or((path, ""), |i| path.split_at(i));
        d.deserialize_any(Step { key, rest })
    }
}

/// One step of [`SpecAt`]: the value of `key` in an object, read on at `rest`.
struct Step {
    key: &'static str,
    rest: &'static str,
}

impl<'de> Visitor<'de> for Step {
    type Value = Option<LeanPodSpec<'de>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.key {
                if found.is_some() {
                    return Err(not_in_one_pass());
                }
                found = Some(map.next_value_seed(SpecAt(self.rest))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found.flatten())
    }
    any_other_value_reads_as_default!();
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
        let spec = object
            .pointer(pointer)
            .filter(|v| !v.is_null())
            .ok_or_else(|| ObjectError::NoPodSpec {
                kind: kind.to_string(),
                pointer,
            })?;
        let spec = lean_spec(kind, pointer, || spec)?;
        let text = |p: &str| object.pointer(p).and_then(Value::as_str).map(String::from);
        let meta = Meta {
            name: text("/metadata/name"),
            generate_name: text("/metadata/generateName"),
            namespace: text("/metadata/namespace"),
        };
        Ok(Some(Workload::of(
            kind,
            pointer,
            namespace,
            &meta,
            spec,
            |_, _| true,
        )))
    }

    /// Reads a covered object from its JSON text without building a tree of it:
    /// only the path to the pod spec and the fields in [`LeanPodSpec`] are read.
    /// `meta` is the object's metadata, read by the caller.
    pub fn from_raw(
        group: &str,
        kind: &str,
        namespace: &str,
        meta: &Meta,
        object: &RawValue,
    ) -> Result<Option<Workload>, ObjectError> {
        Workload::from_raw_changed(group, kind, namespace, meta, object, None)
    }

    /// [`Workload::from_raw`] for an UPDATE: only the containers whose image is new
    /// or changed since `old` are kept (as [`Workload::retain_changed`] does), and
    /// the unchanged ones are never copied out of the body. Linear: one hash
    /// lookup per container.
    pub fn from_raw_changed(
        group: &str,
        kind: &str,
        namespace: &str,
        meta: &Meta,
        object: &RawValue,
        old: Option<&OldImages<'_>>,
    ) -> Result<Option<Workload>, ObjectError> {
        Workload::from_parts_changed(group, kind, namespace, meta, RawObject::read(object), old)
    }

    /// [`Workload::from_raw_changed`] from the object as the request's one pass
    /// left it (no further pass over an object read in it).
    pub(crate) fn from_parts_changed<'a>(
        group: &str,
        kind: &str,
        namespace: &str,
        meta: &Meta,
        object: impl ObjectIn<'a>,
        old: Option<&OldImages<'_>>,
    ) -> Result<Option<Workload>, ObjectError> {
        let Some(pointer) = pod_spec_pointer(group, kind) else {
            return Ok(None);
        };
        let Some(spec) = object.pod_spec(group, kind)? else {
            return Ok(None);
        };
        Ok(Some(Workload::of(
            kind,
            pointer,
            namespace,
            meta,
            spec,
            |k, c| old.is_none_or(|old| !Unchanged::lean(k, c).was_in(&old.0)),
        )))
    }

    fn of(
        kind: &str,
        pointer: &'static str,
        namespace: &str,
        meta: &Meta,
        spec: LeanPodSpec<'_>,
        keep: impl Fn(ContainerKind, &LeanContainer<'_>) -> bool,
    ) -> Workload {
        let mut containers = Vec::new();
        for (kind, list) in spec.lists() {
            for (i, c) in list.iter().flatten().enumerate() {
                if !keep(kind, c) {
                    continue;
                }
                containers.push(ContainerImage {
                    kind,
                    name: c.name.as_deref().unwrap_or_default().to_string(),
                    image: c.image.as_deref().unwrap_or_default().to_string(),
                    pointer: format!("{pointer}/{}/{i}/image", kind.field()),
                    never_pulled: c.never_pulled(),
                });
            }
        }
        containers.shrink_to_fit();
        Workload {
            kind: kind.to_string(),
            name: meta.name_or_prefix().unwrap_or_default().to_string(),
            namespace: meta
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(namespace)
                .to_string(),
            pod_spec_pointer: pointer,
            containers,
            pod_spec: PodSpec {
                node_selector: spec.node_selector,
                affinity: spec.affinity,
                image_pull_secrets: spec.image_pull_secrets,
                service_account_name: spec.service_account_name,
                tolerations: spec.tolerations,
                node_name: spec.node_name,
                os: spec.os,
                ..PodSpec::default()
            },
            raw_affinity: spec.raw_affinity,
            change: SpecChange::Any,
        }
    }

    /// Keeps only the containers whose image is new or changed since `old`: an UPDATE
    /// that scales a Deployment or edits a label is not re-judged on images that were
    /// admitted before. An image that was `imagePullPolicy: Never` and is now pulled
    /// counts as changed: it was never looked up.
    ///
    /// Linear in the number of containers: the old ones go into a hash set once,
    /// and each new one is one lookup (an UPDATE may carry 100,000 containers).
    pub fn retain_changed(&mut self, old: &Workload) {
        let before: HashSet<Unchanged<'_>> = old.containers.iter().map(Unchanged::of).collect();
        self.containers
            .retain(|c| !Unchanged::of(c).was_in(&before));
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
    fn the_object_s_metadata_and_spec_are_found_in_one_pass() {
        // (object text, metadata text, spec text)
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                r#"{"apiVersion":"v1","metadata":{"name":"a"},"spec":{"containers":[]},"status":{}}"#,
                Some(r#"{"name":"a"}"#),
                Some(r#"{"containers":[]}"#),
            ),
            // Nested keys of the same name are not the object's.
            (
                r#"{"status":{"spec":1,"metadata":2},"x":[{"spec":3}]}"#,
                None,
                None,
            ),
            // The last of duplicate keys wins, as in Go's encoding/json.
            (
                r#"{"spec":{"a":1},"metadata":{},"spec":{"b":2}}"#,
                Some("{}"),
                Some(r#"{"b":2}"#),
            ),
            // An escaped key is the key it spells.
            (r#"{"spec":{"c":3}}"#, None, Some(r#"{"c":3}"#)),
            // null is no value.
            (r#"{"metadata":null,"spec":null}"#, None, None),
            // A value that is not an object has neither field.
            (r#""spec""#, None, None),
            (r#"["spec",{"spec":1}]"#, None, None),
            ("42", None, None),
            ("-1.5", None, None),
            ("true", None, None),
        ];
        for (text, metadata, spec) in cases {
            let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
            let read = RawObject::read(&raw);
            assert_eq!(read.metadata.map(RawValue::get), *metadata, "{text}");
            assert_eq!(read.spec.map(RawValue::get), *spec, "{text}");
            // Deserialized in place (as the request's object is), the same.
            let parsed: RawObject<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(parsed.metadata.map(RawValue::get), *metadata, "{text}");
            assert_eq!(parsed.spec.map(RawValue::get), *spec, "{text}");
        }
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

    thread_local! {
        /// Container comparisons made by [`Workload::retain_changed`] on this thread.
        pub(super) static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A pod with `n` containers, `changed` of which (spread evenly) have a new image.
    fn many(n: usize, changed: usize) -> (Workload, Workload) {
        let (new, old) = many_json(n, changed);
        let read = |v: &Value| Workload::from_object("", "Pod", "ns", v).unwrap().unwrap();
        (read(&new), read(&old))
    }

    fn many_json(n: usize, changed: usize) -> (Value, Value) {
        let spec = |new: bool| {
            let containers: Vec<Value> = (0..n)
                .map(|i| {
                    let tag = if new && changed > 0 && i % (n / changed) == 0 { 2 } else { 1 };
                    json!({"name": format!("c{i}"), "image": format!("registry.example/app{i}:{tag}")})
                })
                .collect();
            json!({"spec": {"containers": containers}})
        };
        (spec(true), spec(false))
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
        // The same from the body's JSON text, as the webhook reads an UPDATE.
        let count_raw = |n: usize| {
            let (new, old) = many_json(n, 10);
            let (new, old) = (
                RawValue::from_string(new.to_string()).unwrap(),
                RawValue::from_string(old.to_string()).unwrap(),
            );
            COMPARISONS.with(|c| c.set(0));
            let old = OldImages::from_raw("", "Pod", &old).unwrap().unwrap();
            let w = Workload::from_raw_changed("", "Pod", "ns", &Meta::default(), &new, Some(&old))
                .unwrap()
                .unwrap();
            assert_eq!(w.containers.len(), 10, "{n}");
            assert!(w.containers.iter().all(|c| c.image.ends_with(":2")));
            assert_eq!(
                w.containers[1].pointer,
                format!("/spec/containers/{}/image", n / 10)
            );
            COMPARISONS.with(|c| c.get())
        };
        let (n, two_n) = (count_raw(50_000), count_raw(100_000));
        assert!(
            two_n <= 100_000 * 11 / 10,
            "{two_n} comparisons for 100,000 containers"
        );
        assert!(two_n * 10 <= n * 25, "{n} then {two_n}: not linear");
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

    /// The fields the rules read come out of the lean reader as k8s-openapi's
    /// `PodSpec` reads them, from a tree and from JSON text alike.
    #[test]
    fn the_fields_the_rules_read_are_read_whole() {
        let spec = json!({
            "containers": [{"name": "app", "image": "nginx:1", "imagePullPolicy": "Never",
                            "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "b"}]}],
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}},
                "podAntiAffinity": {"x-unknown": 1}},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeName": "node-1",
            "os": {"name": "linux"},
            "imagePullSecrets": [{"name": "regcred"}],
            "serviceAccountName": "builder",
            "volumes": [{"name": "v", "emptyDir": {}}],
            "restartPolicy": "Always"
        });
        let typed: PodSpec = serde_json::from_value(spec.clone()).unwrap();
        let object = json!({"metadata": {"name": "p"}, "spec": spec});
        let raw = RawValue::from_string(object.to_string()).unwrap();
        let from_tree = Workload::from_object("", "Pod", "ns", &object)
            .unwrap()
            .unwrap();
        let from_text = Workload::from_raw("", "Pod", "ns", &Meta::default(), &raw)
            .unwrap()
            .unwrap();
        for w in [from_tree, from_text] {
            let read = &w.pod_spec;
            assert_eq!(read.node_selector, typed.node_selector);
            assert_eq!(read.affinity, typed.affinity);
            assert_eq!(read.tolerations, typed.tolerations);
            assert_eq!(read.node_name, typed.node_name);
            assert_eq!(read.os, typed.os);
            assert_eq!(read.image_pull_secrets, typed.image_pull_secrets);
            assert_eq!(read.service_account_name, typed.service_account_name);
            assert_eq!(w.raw_affinity.as_ref(), spec.get("affinity"));
            assert!(w.containers[0].never_pulled);
            assert_eq!(w.containers[0].image, "nginx:1");
        }
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
