//! The AdmissionReview envelope: reading requests and building responses that
//! follow the v1 contract exactly.
//!
//! Requests are read lean ([`read`]): borrowed `#[derive(Deserialize)]` structs
//! hold only the fields imagegate reads, every other field is skipped unread, and
//! the objects stay JSON text until the pod spec is read from them; no tree of
//! the body is built, so a request costs time and memory linear in its size and
//! little more than the body. Replies are kube's types; this module adds what the
//! contract asks and the types do not enforce: the version check, `status.code`
//! 403 on a denial, no patch on a validating reply, and the size limits on
//! warnings and the audit annotation ([`limit_lines`]).
//!
//! Fail closed, answer in-band. Under `failurePolicy: Ignore` an HTTP error admits
//! the object unchecked, so every body that is an AdmissionReview (kind
//! `AdmissionReview`, apiVersion `admission.k8s.io/*`) with a request uid gets an
//! answer with that uid: a decision, or `allowed: false` with the reason
//! ([`Refusal`]: code 400 when the request cannot be judged as sent, 500 when
//! imagegate failed). Only a body with no uid to answer ([`ReviewError`]) gets an
//! HTTP 400; the API server never sends one.

use std::borrow::Cow;
use std::collections::HashMap;

use kube::core::DynamicObject;
pub use kube::core::admission::Operation;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::response::StatusSummary;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::object::{EagerObject, ObjectIn, RawObject, without_position};
use super::{Meta, ObjectError, OldImages, Workload, pod_spec_pointer};

/// The reply's type (kube's, so that its shape is the v1 contract's).
pub type Review = AdmissionReview<DynamicObject>;

pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The API group of every AdmissionReview version (`v1`, `v1beta1`).
pub const API_GROUP_PREFIX: &str = "admission.k8s.io/";
pub const KIND: &str = "AdmissionReview";
/// The API server drops a warning longer than this.
pub const MAX_WARNING_LEN: usize = 256;
/// ... and all warnings together longer than this.
pub const MAX_WARNINGS_TOTAL: usize = 4096;
/// The longest entry of the `would-deny` audit annotation ...
pub const MAX_AUDIT_ENTRY_LEN: usize = 1024;
/// ... and the longest annotation: like warnings, it does not grow with the request.
pub const MAX_AUDIT_ANNOTATION_LEN: usize = 8192;

/// Why a body gets no in-band answer: it is not an AdmissionReview, or it has no
/// uid to answer. An HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not a valid AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "expected apiVersion {API_VERSION} and kind {KIND}, got apiVersion {api_version:?} and kind {kind:?}"
    )]
    Version { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error(
        "the AdmissionReview request's uid is not a short printable identifier (the API server sends a UUID)"
    )]
    BadUid,
    #[error("the AdmissionReview request has an empty uid")]
    NoUid,
}

/// The longest uid echoed: the API server's are 36-character UUIDs.
pub const MAX_UID_LEN: usize = 128;

/// Why an AdmissionReview that has a uid is refused in-band (`allowed: false`).
/// Each message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "imagegate answers AdmissionReview {API_VERSION} only, and this request is {0}: list v1 in the webhook configuration's admissionReviewVersions (deploy/ does); the request is refused so that nothing is admitted unchecked"
    )]
    Version(String),
    #[error(
        "imagegate cannot read this AdmissionReview's request ({0}); it is refused so that nothing is admitted unchecked. The API server does not send such requests: check what is calling the webhook"
    )]
    Unreadable(String),
    #[error(
        "imagegate cannot judge {subject}: the {operation} request carries no object; it is refused so that nothing is admitted unchecked"
    )]
    NoObject { subject: String, operation: String },
    #[error(
        "imagegate cannot judge {subject}: {error}; fix the object so that it follows the Kubernetes API schema of its kind"
    )]
    Malformed { subject: String, error: ObjectError },
    #[error(
        "imagegate failed internally while judging {subject} (request uid {uid}); it is refused so that nothing is admitted unchecked. Retry; if it keeps failing, give the uid to the team that runs imagegate (its log has the details)"
    )]
    Internal { subject: String, uid: String },
}

impl Refusal {
    /// `status.code`: 400 for a request that cannot be judged as sent, 500 when
    /// imagegate failed.
    pub fn code(&self) -> u16 {
        match self {
            Refusal::Internal { .. } => 500,
            _ => 400,
        }
    }

    /// `status.reason`, a Kubernetes `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Internal { .. } => "InternalError",
            _ => "BadRequest",
        }
    }
}

/// What an in-band answer must echo: the request's apiVersion and uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub api_version: String,
    pub uid: String,
}

impl Envelope {
    pub fn of(request: &Request) -> Envelope {
        Envelope {
            api_version: API_VERSION.to_string(),
            uid: request.uid.clone(),
        }
    }
}

/// What imagegate reads of an AdmissionReview's request, owned (the object itself
/// is read into a [`Workload`] by [`read`], and not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub uid: String,
    /// The kind of the object (`group`, `version`, `kind`).
    pub kind: GroupVersionKind,
    pub sub_resource: Option<String>,
    /// The name in the request (empty when the API server generates it).
    pub name: String,
    pub namespace: Option<String>,
    pub operation: Operation,
    /// The requesting user, for the audit log.
    pub username: Option<String>,
    pub dry_run: bool,
    /// The object's metadata, when there is an object.
    pub object_meta: Option<Meta>,
}

/// `group`, `version` and `kind`, as in the request's `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// A request read: what it says, and the workload to judge, or why it cannot be
/// judged (see `workload`).
#[derive(Debug)]
pub struct Read {
    pub request: Request,
    pub workload: Result<Option<Workload>, Refusal>,
}

/// The AdmissionReview as parsed: borrowed from the body, only the fields
/// imagegate reads; every other field is skipped without being kept, and the
/// objects stay JSON text ([`RawValue`]) until [`Workload::from_raw`] reads the
/// few fields of them it needs. No tree of the body is built.
///
/// `O` is how the object is read: [`EagerObject`] in the pass that reads a request
/// the API server sent, [`RawObject`] when that pass cannot read it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a, O> {
    #[serde(default, borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    request: Option<RequestIn<'a, O>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a, O> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    kind: GvkIn<'a>,
    #[serde(default, borrow)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
    operation: Operation,
    #[serde(default, borrow)]
    user_info: Option<UserInfoIn<'a>>,
    /// Only its `metadata` and pod spec are kept, found in the one pass that
    /// parses the body.
    #[serde(default)]
    object: Option<O>,
    #[serde(default, borrow)]
    old_object: Option<&'a RawValue>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
struct GvkIn<'a> {
    #[serde(borrow)]
    group: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct UserInfoIn<'a> {
    #[serde(default, borrow)]
    username: Option<Cow<'a, str>>,
}

/// The envelope of a body that did not parse as an AdmissionReview, read as
/// leniently as possible (any value where a string is expected is "none"), to
/// tell whether it can be answered in-band. No tree is built here either.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LenientIn<'a> {
    #[serde(default, borrow)]
    api_version: Loose<'a>,
    #[serde(default, borrow)]
    kind: Loose<'a>,
    #[serde(default, borrow)]
    request: Loose<'a>,
}

/// Any JSON value: a string is kept, an object's `uid` (when a string) is kept,
/// anything else is skipped.
#[derive(Default)]
enum Loose<'a> {
    #[default]
    Other,
    Text(Cow<'a, str>),
    Object {
        uid: Option<Cow<'a, str>>,
    },
}

impl<'a> Loose<'a> {
    fn text(&self) -> Option<&str> {
        match self {
            Loose::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut uid = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "uid" {
                        uid = match map.next_value::<Loose<'de>>()? {
                            Loose::Text(t) => Some(t),
                            _ => None,
                        };
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Loose::Object { uid })
            }
        }
        d.deserialize_any(V)
    }
}

/// A body imagegate will not judge.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// Nothing to answer in-band: HTTP 400.
    #[error(transparent)]
    NotAReview(#[from] ReviewError),
    /// An AdmissionReview with a uid that cannot be judged: denied in-band.
    #[error("{}", .0.refusal)]
    Refused(Box<InBand>),
}

/// An in-band refusal and what its reply must echo.
#[derive(Debug)]
pub struct InBand {
    pub envelope: Envelope,
    pub refusal: Refusal,
}

impl Rejected {
    fn refused(envelope: Envelope, refusal: Refusal) -> Rejected {
        Rejected::Refused(Box::new(InBand { envelope, refusal }))
    }
}

/// Parses and checks an AdmissionReview body, and reads the workload to judge.
/// Linear in the body, and no tree of it is built: see [`ReviewIn`].
///
/// A body the API server sent is read in one pass ([`EagerObject`]). Any other
/// (not UTF-8, a request whose object does not name its kind first, or that
/// cannot be read as it should) is read again with [`RawObject`]s, which gives the
/// same answer, with the path of a field at fault.
pub fn read(body: &[u8]) -> Result<Read, Rejected> {
    match one_pass(body) {
        Some(review) => judge(review),
        None => read_with_raw_objects(body),
    }
}

/// The body parsed in one pass, when that can be done (see [`read`]).
fn one_pass(body: &[u8]) -> Option<ReviewIn<'_, EagerObject<'_>>> {
    let text = std::str::from_utf8(body).ok()?;
    let review = serde_json::from_str::<ReviewIn<'_, EagerObject<'_>>>(text).ok()?;
    let agrees = review.request.as_ref().is_none_or(|r| {
        r.object
            .as_ref()
            .is_none_or(|o| o.is_kind(&r.kind.group, &r.kind.kind))
    });
    agrees.then_some(review)
}

/// [`read`] in one pass: `None` when the body cannot be read so. For tests that
/// check both readings agree.
#[doc(hidden)]
pub fn read_in_one_pass(body: &[u8]) -> Option<Result<Read, Rejected>> {
    one_pass(body).map(judge)
}

/// [`read`] with the objects kept as JSON text and read after the pass: what it
/// does with a body the one pass cannot read. Public for tests that check both
/// readings agree.
#[doc(hidden)]
pub fn read_with_raw_objects(body: &[u8]) -> Result<Read, Rejected> {
    match serde_json::from_slice::<ReviewIn<'_, RawObject<'_>>>(body) {
        Ok(review) => judge(review),
        Err(e) => Err(unreadable(body, e)),
    }
}

/// [`read`] once the body is parsed.
fn judge<'a, O: ObjectIn<'a>>(review: ReviewIn<'a, O>) -> Result<Read, Rejected> {
    envelope(
        review.api_version.as_deref(),
        review.kind.as_deref(),
        review.request.is_some(),
        review.request.as_ref().map(|r| r.uid.as_ref()),
    )?;
    let Some(mut r) = review.request else {
        return Err(Rejected::NotAReview(ReviewError::NoRequest));
    };
    let in_band = |refusal| {
        Rejected::refused(
            Envelope {
                api_version: API_VERSION.to_string(),
                uid: r.uid.to_string(),
            },
            refusal,
        )
    };
    // The object's metadata is read here, strictly: it names the object in every
    // message.
    let object_meta = match r.object.as_mut().map(ObjectIn::metadata).transpose() {
        Ok(meta) => meta
            .flatten()
            .or(r.object.as_ref().map(|_| Meta::default())),
        Err(detail) => {
            return Err(in_band(Refusal::Unreadable(format!(
                "request.object.{detail}"
            ))));
        }
    };
    let request = Request {
        uid: r.uid.into_owned(),
        kind: GroupVersionKind {
            group: r.kind.group.into_owned(),
            version: r.kind.version.into_owned(),
            kind: r.kind.kind.into_owned(),
        },
        sub_resource: r.sub_resource.map(Cow::into_owned),
        name: r.name.map(Cow::into_owned).unwrap_or_default(),
        namespace: r.namespace.map(Cow::into_owned),
        operation: r.operation,
        username: r.user_info.and_then(|u| u.username).map(Cow::into_owned),
        dry_run: r.dry_run.unwrap_or_default(),
        object_meta,
    };
    // A panic while reading the objects is refused in-band like one while judging.
    let workload = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        workload(&request, r.object, r.old_object)
    })) {
        Ok(workload) => workload,
        Err(payload) => {
            tracing::error!(
                uid = %request.uid,
                panic = crate::unwind::message(payload.as_ref()),
                "imagegate failed while reading a request; refused in-band"
            );
            Err(Refusal::Internal {
                subject: subject(&request),
                uid: request.uid.clone(),
            })
        }
    };
    Ok(Read { request, workload })
}

/// Parses and checks an AdmissionReview body: [`read`] without the workload.
pub fn parse(body: &[u8]) -> Result<Request, Rejected> {
    read(body).map(|r| r.request)
}

/// The envelope of an AdmissionReview imagegate can answer in-band, or why not.
fn envelope(
    api_version: Option<&str>,
    kind: Option<&str>,
    has_request: bool,
    uid: Option<&str>,
) -> Result<Envelope, Rejected> {
    let api_version = match api_version {
        Some(v) if v.starts_with(API_GROUP_PREFIX) && kind == Some(KIND) => v,
        _ => {
            return Err(ReviewError::Version {
                api_version: api_version.unwrap_or_default().to_string(),
                kind: kind.unwrap_or_default().to_string(),
            }
            .into());
        }
    };
    if !has_request {
        return Err(ReviewError::NoRequest.into());
    }
    let Some(uid) = uid.filter(|u| !u.is_empty()) else {
        return Err(ReviewError::NoUid.into());
    };
    // The API server's uids are UUIDs. Anything else is not from it, and is echoed
    // and logged only if it is short and printable.
    if uid.len() > MAX_UID_LEN || !uid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ReviewError::BadUid.into());
    }
    let envelope = Envelope {
        api_version: api_version.to_string(),
        uid: uid.to_string(),
    };
    if api_version != API_VERSION {
        let refusal = Refusal::Version(api_version.to_string());
        return Err(Rejected::refused(envelope, refusal));
    }
    Ok(envelope)
}

/// A body that does not deserialize as an AdmissionReview: refused in-band when it
/// is one with a uid (a field of the request has the wrong shape), else a 400.
/// Only this error path reads the body a second and third time, and neither
/// builds a tree of it.
fn unreadable(body: &[u8], error: serde_json::Error) -> Rejected {
    let Ok(lenient) = serde_json::from_slice::<LenientIn<'_>>(body) else {
        return ReviewError::Json(error).into();
    };
    let (has_request, uid) = match &lenient.request {
        Loose::Object { uid } => (true, uid.as_deref()),
        _ => (false, None),
    };
    match envelope(
        lenient.api_version.text(),
        lenient.kind.text(),
        has_request,
        uid,
    ) {
        Err(rejected) => rejected,
        Ok(envelope) => {
            // Read it again, for the path of the field at fault.
            let mut de = serde_json::Deserializer::from_slice(body);
            let detail =
                match serde_path_to_error::deserialize::<_, ReviewIn<'_, RawObject<'_>>>(&mut de) {
                    Err(e) => {
                        let path = e.path().to_string();
                        match path.strip_prefix("request") {
                            Some(rest) if !rest.is_empty() => {
                                format!("{path}: {}", without_position(e.inner()))
                            }
                            _ => format!("request: {}", without_position(e.inner())),
                        }
                    }
                    Ok(_) => error.to_string(),
                };
            Rejected::refused(envelope, Refusal::Unreadable(detail))
        }
    }
}

/// `Pod "web" in namespace "team"`, for messages about a request.
pub fn subject(request: &Request) -> String {
    let name = request
        .object_meta
        .as_ref()
        .and_then(Meta::name_or_prefix)
        .unwrap_or(&request.name);
    let mut out = request.kind.kind.clone();
    if !name.is_empty() {
        out.push_str(&format!(" \"{name}\""));
    }
    if let Some(ns) = request.namespace.as_deref().filter(|n| !n.is_empty()) {
        out.push_str(&format!(" in namespace \"{ns}\""));
    }
    out
}

fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The workload to judge, or `None` when the request has nothing to judge (a
/// DELETE or CONNECT, a kind imagegate does not cover, a subresource other than
/// `ephemeralcontainers`).
///
/// On an UPDATE only the images that are new or changed are judged; for the
/// `pods/ephemeralcontainers` subresource only the ephemeral containers. An
/// `oldObject` that cannot be read is ignored: every image is then judged, as on a
/// CREATE.
fn workload<'a>(
    request: &Request,
    object: Option<impl ObjectIn<'a>>,
    old_object: Option<&RawValue>,
) -> Result<Option<Workload>, Refusal> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(None);
    }
    let ephemeral = match request.sub_resource.as_deref() {
        None => false,
        Some("ephemeralcontainers") => true,
        Some(_) => return Ok(None),
    };
    let kind = &request.kind;
    if pod_spec_pointer(&kind.group, &kind.kind).is_none() {
        return Ok(None);
    }
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let object = object.ok_or_else(|| Refusal::NoObject {
        subject: subject(request),
        operation: operation_name(&request.operation).to_string(),
    })?;
    // On an UPDATE only the images that are new or changed are judged. Only the
    // images of the old object are read; one that cannot be read is not an error.
    let old = match old_object {
        Some(old) if request.operation == Operation::Update => {
            match OldImages::from_raw(&kind.group, &kind.kind, old) {
                Ok(old) => old,
                Err(e) => {
                    tracing::warn!(
                        uid = %request.uid,
                        error = %e,
                        "the oldObject cannot be read; judging every image of the object"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let meta = request.object_meta.clone().unwrap_or_default();
    let read_object = Workload::from_parts_changed(
        &kind.group,
        &kind.kind,
        namespace,
        &meta,
        object,
        old.as_ref(),
    )
    .map_err(|error| Refusal::Malformed {
        subject: subject(request),
        error,
    })?;
    drop(old);
    let Some(mut workload) = read_object else {
        return Ok(None);
    };
    if ephemeral {
        workload.retain_ephemeral();
    }
    // A Pod's spec is immutable but for its images (and a few fields imagegate
    // does not write).
    if request.operation == Operation::Update
        && workload.kind == "Pod"
        && workload.change == super::SpecChange::Any
    {
        workload.change = super::SpecChange::PodUpdate;
    }
    Ok(Some(workload))
}

/// What to answer, before it is put into the v1 shape.
#[derive(Debug, Default, Clone)]
pub struct Answer {
    pub allowed: bool,
    /// The denial message (ignored when allowed).
    pub message: String,
    pub warnings: Vec<String>,
    pub audit_annotations: HashMap<String, String>,
    /// A JSON Patch, only ever on a mutating reply.
    pub patch: Option<json_patch::Patch>,
}

impl Answer {
    pub fn allow() -> Self {
        Answer {
            allowed: true,
            ..Answer::default()
        }
    }
}

/// Builds the AdmissionReview reply for `request`.
pub fn respond(request: &Request, answer: Answer) -> Review {
    // What kube's `AdmissionResponse::from(&AdmissionRequest)` makes.
    let mut response = AdmissionResponse::invalid("");
    response.types.api_version = API_VERSION.to_string();
    response.types.kind = KIND.to_string();
    response.uid = request.uid.clone();
    response.allowed = true;
    response.result = Default::default();
    if !answer.allowed {
        response = response.deny(answer.message);
        response.result.code = 403;
        response.result.reason = "Forbidden".into();
        response.result.status = Some(StatusSummary::Failure);
    }
    let warnings = limit_warnings(answer.warnings);
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response.audit_annotations = answer.audit_annotations;
    if let Some(patch) = answer.patch.filter(|p| !p.0.is_empty()) {
        response = response
            .with_patch(patch)
            .expect("a JSON patch always serializes");
    }
    response.into_review()
}

/// Builds the in-band refusal: `allowed: false`, `status.code` 400 or 500, the
/// reason in `status.message`, with the request's apiVersion and uid.
pub fn refuse(envelope: &Envelope, refusal: &Refusal) -> Review {
    let mut response = AdmissionResponse::invalid(refusal.to_string());
    response.types.api_version = envelope.api_version.clone();
    response.types.kind = KIND.to_string();
    response.uid = envelope.uid.clone();
    response.result.code = refusal.code();
    response.result.reason = refusal.reason().into();
    response.result.status = Some(StatusSummary::Failure);
    response.into_review()
}

/// Serializes a reply. kube writes `patch` as an array of numbers; the v1 contract
/// (Go's `[]byte`) is a base64 string, which is what this writes.
pub fn encode(review: &Review) -> Vec<u8> {
    use base64::Engine;
    let has_patch = review.response.as_ref().is_some_and(|r| r.patch.is_some());
    if !has_patch {
        return serde_json::to_vec(review).expect("a review always serializes");
    }
    let mut value = serde_json::to_value(review).expect("a review always serializes");
    if let Some(patch) = review.response.as_ref().and_then(|r| r.patch.as_ref()) {
        value["response"]["patch"] =
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&value).expect("a value always serializes")
}

/// Cuts each warning to [`MAX_WARNING_LEN`] bytes and the list to
/// [`MAX_WARNINGS_TOTAL`] bytes in all, saying how many were left out.
/// A list that already fits (such as one made by [`limit_warnings_from`]) is kept
/// as it is.
pub fn limit_warnings(warnings: Vec<String>) -> Vec<String> {
    let fits = warnings.iter().all(|w| w.len() <= MAX_WARNING_LEN)
        && warnings.iter().map(String::len).sum::<usize>() <= MAX_WARNINGS_TOTAL;
    if fits {
        return warnings;
    }
    limit_warnings_from(warnings)
}

/// [`limit_warnings`] on warnings made as they are read: those past the limit are
/// never made.
pub fn limit_warnings_from<I>(warnings: I) -> Vec<String>
where
    I: IntoIterator<Item = String>,
    I::IntoIter: ExactSizeIterator,
{
    limit_lines(warnings, MAX_WARNING_LEN, MAX_WARNINGS_TOTAL, "warning(s)")
}

/// Cuts each line to `max_each` bytes and the list to `max_total` bytes in all,
/// ending with one line that says how many `what` were left out. Lines past the
/// limit are never made: the iterator is read only as far as it fits.
pub fn limit_lines<I>(lines: I, max_each: usize, max_total: usize, what: &str) -> Vec<String>
where
    I: IntoIterator<Item = String>,
    I::IntoIter: ExactSizeIterator,
{
    let lines = lines.into_iter();
    let total_count = lines.len();
    let mut out: Vec<String> = Vec::new();
    let mut total = 0;
    for line in lines {
        let line = crate::engine::cut(line, max_each);
        // Keep room for the "N more" line.
        if total + line.len() > max_total - 64 {
            break;
        }
        total += line.len();
        out.push(line);
    }
    let left = total_count - out.len();
    if left > 0 {
        out.push(format!(
            "... and {} more {what} not shown; see the imagegate log",
            crate::engine::thousands(left)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Written by the kube-typed implementation before the lean parser replaced it.
    const GOLDEN: [&str; 4] = [
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":true,"status":{}}}"#,
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":false,"status":{"status":"Failure","code":403,"message":"no \"x\"","reason":"Forbidden"},"auditAnnotations":{"would-deny":"z"},"warnings":["w"]}}"#,
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patch":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9zcGVjL2NvbnRhaW5lcnMvMC9pbWFnZSIsInZhbHVlIjoieSJ9XQ==","patchType":"JSONPatch","status":{},"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"}}"#,
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","allowed":false,"status":{"status":"Failure","code":400,"message":"imagegate cannot read this AdmissionReview's request (request.x: bad); it is refused so that nothing is admitted unchecked. The API server does not send such requests: check what is calling the webhook","reason":"BadRequest"}}}"#,
    ];
    use serde_json::{Value, json};

    fn review(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
            .unwrap()
    }

    fn pod_request(operation: &str, object: Value, old: Value, sub: Option<&str>) -> Value {
        let mut r = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web", "namespace": "team", "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object, "oldObject": old, "dryRun": false
        });
        if let Some(s) = sub {
            r["subResource"] = json!(s);
        }
        r
    }

    fn pod(images: &[(&str, &str)], ephemeral: &[(&str, &str)]) -> Value {
        let c = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(n, i)| json!({"name": n, "image": i}))
                .collect::<Vec<_>>()
        };
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team"},
               "spec": {"containers": c(images), "ephemeralContainers": c(ephemeral)}})
    }

    #[test]
    fn rejects_what_is_not_a_v1_admission_review() {
        // Nothing to answer in-band: an HTTP 400.
        let table: &[(&[u8], &str)] = &[
            (b"", "not a valid AdmissionReview"),
            (b"{", "not a valid AdmissionReview"),
            (b"[]", "expected apiVersion admission.k8s.io/v1"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#, "empty uid"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#, "has no request"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "kind \"Pod\""),
            (br#"{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"u"}}"#, "apiVersion \"v1\""),
            (br#"{"kind":"AdmissionReview","request":{"uid":"u"}}"#, "apiVersion \"\""),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "has no request"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#, "empty uid"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a\nb"}}"#, "not a short printable identifier"),
        ];
        for (body, fragment) in table {
            let err = parse(body).unwrap_err();
            assert!(
                matches!(err, Rejected::NotAReview(_)) && err.to_string().contains(fragment),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        let mut r = pod_request("CREATE", pod(&[("a", "x")], &[]), Value::Null, None);
        r["uid"] = json!("");
        assert!(matches!(
            parse(&review(r)),
            Err(Rejected::NotAReview(ReviewError::NoUid))
        ));
    }

    #[test]
    fn an_admission_review_with_a_uid_is_refused_in_band() {
        let uid = "705ab4f5-6393-11e8-b7cc-42010a800002";
        let envelope = |api_version: &str| Envelope {
            api_version: api_version.into(),
            uid: uid.into(),
        };
        let mut v1beta1 = pod_request("CREATE", pod(&[("a", "x")], &[]), Value::Null, None);
        v1beta1["uid"] = json!(uid);
        let v1beta1 =
            json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": KIND, "request": v1beta1});
        let mut no_kind = pod_request("CREATE", pod(&[("a", "x")], &[]), Value::Null, None);
        no_kind.as_object_mut().unwrap().remove("kind");
        let mut labels = pod_request("CREATE", pod(&[("a", "x")], &[]), Value::Null, None);
        // Only what imagegate reads is checked: labels are not, the name is.
        labels["object"]["metadata"]["labels"] = json!(["x"]);
        assert!(read(&review(labels.clone())).is_ok());
        labels["object"]["metadata"]["name"] = json!(5);
        // (body, envelope, refusal message fragment)
        let table: Vec<(Vec<u8>, Envelope, &str)> = vec![
            (
                serde_json::to_vec(&v1beta1).unwrap(),
                envelope("admission.k8s.io/v1beta1"),
                "this request is admission.k8s.io/v1beta1",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"}}"#.to_vec(),
                envelope("admission.k8s.io/v1beta1"),
                "this request is admission.k8s.io/v1beta1",
            ),
            (review(no_kind), envelope(API_VERSION), "(request: missing field `kind`)"),
            (
                review(labels),
                envelope(API_VERSION),
                "(request.object.metadata.name: invalid type: integer `5`, expected a string)",
            ),
        ];
        for (body, expected, fragment) in table {
            match parse(&body) {
                Err(Rejected::Refused(in_band)) => {
                    let InBand {
                        envelope: got,
                        refusal,
                    } = *in_band;
                    assert_eq!(got, expected);
                    assert_eq!(refusal.code(), 400);
                    assert!(refusal.to_string().contains(fragment), "{refusal}");
                    // The reply echoes the apiVersion and the uid.
                    let reply: Value =
                        serde_json::from_slice(&encode(&refuse(&got, &refusal))).unwrap();
                    assert_eq!(reply["apiVersion"], expected.api_version.as_str());
                    assert_eq!(reply["kind"], KIND);
                    assert_eq!(reply["response"]["uid"], uid);
                    assert_eq!(reply["response"]["allowed"], false);
                    assert_eq!(reply["response"]["status"]["code"], 400);
                    assert_eq!(reply["response"]["status"]["status"], "Failure");
                    assert_eq!(reply["response"]["status"]["message"], refusal.to_string());
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(&body)),
            }
        }
    }

    #[test]
    fn reads_the_workload_of_create_update_and_ephemeral_requests() {
        let old = pod(&[("app", "nginx:1"), ("side", "envoy:1")], &[]);
        let new = pod(
            &[("app", "nginx:2"), ("side", "envoy:1")],
            &[("dbg", "busybox")],
        );
        // (operation, object, old object, subresource, images judged)
        type Case<'a> = (&'a str, Value, Value, Option<&'a str>, Option<Vec<&'a str>>);
        let table: Vec<Case> = vec![
            (
                "CREATE",
                new.clone(),
                Value::Null,
                None,
                Some(vec!["nginx:2", "envoy:1", "busybox"]),
            ),
            (
                "UPDATE",
                new.clone(),
                old.clone(),
                None,
                Some(vec!["nginx:2", "busybox"]),
            ),
            (
                "UPDATE",
                new.clone(),
                old.clone(),
                Some("ephemeralcontainers"),
                Some(vec!["busybox"]),
            ),
            (
                "UPDATE",
                new.clone(),
                new.clone(),
                Some("ephemeralcontainers"),
                Some(vec![]),
            ),
            ("UPDATE", new.clone(), old.clone(), Some("status"), None),
            ("DELETE", Value::Null, old.clone(), None, None),
        ];
        for (op, object, old, sub, expected) in table {
            let w = read(&review(pod_request(op, object, old, sub)))
                .unwrap()
                .workload
                .unwrap();
            let images = w.map(|w| {
                w.containers
                    .into_iter()
                    .map(|c| c.image)
                    .collect::<Vec<_>>()
            });
            assert_eq!(
                images,
                expected.map(|v| v.into_iter().map(String::from).collect()),
                "{op} {sub:?}"
            );
        }
        let req = read(&review(pod_request(
            "CREATE",
            Value::Null,
            Value::Null,
            None,
        )))
        .unwrap();
        assert!(matches!(
            req.workload,
            Err(Refusal::NoObject { operation, .. }) if operation == "CREATE"
        ));
        // An oldObject that cannot be read: every image is judged, as on a CREATE.
        let mut broken_old = old.clone();
        broken_old["spec"]["containers"] = json!("x");
        let req = read(&review(pod_request(
            "UPDATE",
            new.clone(),
            broken_old,
            None,
        )))
        .unwrap();
        let images: Vec<String> = req
            .workload
            .unwrap()
            .unwrap()
            .containers
            .into_iter()
            .map(|c| c.image)
            .collect();
        assert_eq!(images, ["nginx:2", "envoy:1", "busybox"]);
        // A kind imagegate does not cover needs no object.
        let mut cm = pod_request("CREATE", Value::Null, Value::Null, None);
        cm["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
        assert!(read(&review(cm)).unwrap().workload.unwrap().is_none());
    }

    #[test]
    fn only_images_may_change_on_a_pod_update_or_an_ephemeral_request() {
        let old = pod(&[("app", "nginx:1")], &[]);
        let new = pod(&[("app", "nginx:2")], &[("dbg", "busybox")]);
        let mut deployment = pod_request("UPDATE", Value::Null, Value::Null, None);
        deployment["kind"] = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        deployment["object"] =
            json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": new["spec"]}}});
        deployment["oldObject"] =
            json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": old["spec"]}}});
        use crate::admission::SpecChange;
        // (request, what it may change)
        let table = [
            (
                pod_request("CREATE", new.clone(), Value::Null, None),
                SpecChange::Any,
            ),
            (
                pod_request("UPDATE", new.clone(), old.clone(), None),
                SpecChange::PodUpdate,
            ),
            (
                pod_request(
                    "UPDATE",
                    new.clone(),
                    old.clone(),
                    Some("ephemeralcontainers"),
                ),
                SpecChange::EphemeralContainers,
            ),
            (deployment, SpecChange::Any),
        ];
        for (request, change) in table {
            let w = read(&review(request.clone()))
                .unwrap()
                .workload
                .unwrap()
                .unwrap();
            assert_eq!(w.change, change, "{request}");
        }
    }

    #[test]
    fn replies_follow_the_v1_contract() {
        let req = parse(&review(pod_request(
            "CREATE",
            pod(&[("a", "x")], &[]),
            Value::Null,
            None,
        )))
        .unwrap();
        let to_json = |r: Review| serde_json::from_slice::<Value>(&encode(&r)).unwrap();
        let allow = to_json(respond(&req, Answer::allow()));
        assert_eq!(allow["apiVersion"], API_VERSION);
        assert_eq!(allow["kind"], KIND);
        assert_eq!(
            allow["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(allow["response"]["allowed"], true);
        assert!(
            allow["response"].get("patch").is_none()
                && allow["response"].get("patchType").is_none()
        );
        assert!(allow["response"].get("warnings").is_none());

        let deny = Answer {
            allowed: false,
            message: "no".into(),
            warnings: vec!["w".into()],
            ..Answer::default()
        };
        let deny = to_json(respond(&req, deny));
        assert_eq!(deny["response"]["allowed"], false);
        assert_eq!(deny["response"]["status"]["code"], 403);
        assert_eq!(deny["response"]["status"]["message"], "no");
        assert_eq!(deny["response"]["warnings"], json!(["w"]));

        let patch: json_patch::Patch = serde_json::from_value(
            json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "y"}]),
        )
        .unwrap();
        let mutate = to_json(respond(
            &req,
            Answer {
                patch: Some(patch),
                ..Answer::allow()
            },
        ));
        assert_eq!(mutate["response"]["patchType"], "JSONPatch");
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(mutate["response"]["patch"].as_str().expect("base64 string"))
            .unwrap();
        let decoded: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded[0]["path"], "/spec/containers/0/image");
    }

    /// The replies byte for byte: allow, deny with warnings and an audit
    /// annotation, a patch, and an in-band refusal.
    #[test]
    fn replies_are_exact() {
        let req = parse(&review(pod_request(
            "CREATE",
            pod(&[("a", "x")], &[]),
            Value::Null,
            None,
        )))
        .unwrap();
        let text = |r: Review| String::from_utf8(encode(&r)).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(
            json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "y"}]),
        )
        .unwrap();
        let deny = Answer {
            allowed: false,
            message: "no \"x\"".into(),
            warnings: vec!["w".into()],
            audit_annotations: HashMap::from([("would-deny".to_string(), "z".to_string())]),
            patch: None,
        };
        let got = [
            text(respond(&req, Answer::allow())),
            text(respond(&req, deny)),
            text(respond(
                &req,
                Answer {
                    patch: Some(patch),
                    ..Answer::allow()
                },
            )),
            text(refuse(
                &Envelope::of(&req),
                &Refusal::Unreadable("request.x: bad".into()),
            )),
        ];
        let expected: [&str; 4] = GOLDEN;
        assert_eq!(got, expected);
    }

    #[test]
    fn warnings_fit_the_api_server_limits() {
        let long = "é".repeat(300);
        let out = limit_warnings(vec![long.clone(); 40]);
        assert!(
            out.iter().all(|w| w.len() <= MAX_WARNING_LEN),
            "each within 256"
        );
        assert!(out.iter().map(String::len).sum::<usize>() <= MAX_WARNINGS_TOTAL);
        assert!(out.last().unwrap().contains("more warning(s) not shown"));
        assert!(out[0].ends_with("..."));
        assert_eq!(limit_warnings(vec!["a".into(), "b".into()]), ["a", "b"]);
    }

    #[test]
    fn the_one_pass_reads_what_the_two_passes_read() {
        // A review of `kind` (group, kind) whose request carries `object` and `old`
        // as written, keys in the order given.
        fn body(group: &str, kind: &str, operation: &str, object: &str, old: &str) -> Vec<u8> {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u-1","kind":{{"group":"{group}","version":"v1","kind":"{kind}"}},"name":"web","namespace":"team","operation":"{operation}","object":{object},"oldObject":{old}}}}}"#
            )
            .into_bytes()
        }
        let pod = |spec: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web","managedFields":[{{"x":"y"}}]}},"spec":{spec},"status":{{}}}}"#
            )
        };
        let app = r#"{"containers":[{"name":"app","image":"nginx:1.25","imagePullPolicy":"Never","ports":[{"containerPort":80}]}],"initContainers":[{"name":"init","image":"busybox"}],"nodeSelector":{"kubernetes.io/arch":"arm64"},"affinity":{"nodeAffinity":{}},"tolerations":[{"key":"k","operator":"Exists"}],"imagePullSecrets":[{"name":"pull"}],"serviceAccountName":"sa","os":{"name":"linux"},"volumes":[]}"#;
        let deployment = |template: &str| {
            format!(
                r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"generateName":"web-"}},"spec":{{"replicas":3,"template":{template},"selector":{{}}}}}}"#
            )
        };
        let pod_body = |spec: &str| body("", "Pod", "CREATE", &pod(spec), "null");
        let mut invalid_utf8 = pod_body(app);
        let at = invalid_utf8.len() - 20;
        invalid_utf8.splice(at..at, *b"\"x\":\"\xff\",");
        // (what, body, read in one pass)
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("a Pod, as the API server writes it", pod_body(app), true),
            (
                "a Deployment",
                body(
                    "apps",
                    "Deployment",
                    "CREATE",
                    &deployment(&format!(r#"{{"metadata":{{}},"spec":{app}}}"#)),
                    "null",
                ),
                true,
            ),
            (
                "a CronJob",
                body(
                    "batch",
                    "CronJob",
                    "CREATE",
                    &format!(
                        r#"{{"apiVersion":"batch/v1","kind":"CronJob","spec":{{"jobTemplate":{{"spec":{{"template":{{"spec":{app}}}}}}}}}}}"#
                    ),
                    "null",
                ),
                true,
            ),
            (
                "an UPDATE",
                body(
                    "",
                    "Pod",
                    "UPDATE",
                    &pod(app),
                    &pod(r#"{"containers":[{"name":"app","image":"nginx:1.24"}]}"#),
                ),
                true,
            ),
            (
                "a kind imagegate does not cover",
                body(
                    "",
                    "ConfigMap",
                    "CREATE",
                    r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"spec":{"a":1},"data":{}}"#,
                    "null",
                ),
                true,
            ),
            ("no object", body("", "Pod", "CREATE", "null", "null"), true),
            ("no pod spec", pod_body("null"), true),
            (
                "a null template",
                body("apps", "Deployment", "CREATE", &deployment("null"), "null"),
                true,
            ),
            (
                "a template that is a number",
                body("apps", "Deployment", "CREATE", &deployment("5"), "null"),
                true,
            ),
            (
                "a template that is a list",
                body(
                    "apps",
                    "Deployment",
                    "CREATE",
                    &deployment("[{\"spec\":{}}]"),
                    "null",
                ),
                true,
            ),
            (
                "a template without a spec",
                body(
                    "apps",
                    "Deployment",
                    "CREATE",
                    &deployment("{\"metadata\":{}}"),
                    "null",
                ),
                true,
            ),
            (
                "an affinity of the wrong shape",
                pod_body(r#"{"containers":[],"affinity":{"nodeAffinity":5}}"#),
                true,
            ),
            (
                "an escaped key",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    &pod(app).replace("\"spec\"", "\"sp\\u0065c\""),
                    "null",
                ),
                true,
            ),
            // Read again with RawObjects.
            (
                "an object that does not name its kind",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    &format!(r#"{{"metadata":{{}},"spec":{app}}}"#),
                    "null",
                ),
                false,
            ),
            (
                "a spec before the kind",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    &format!(r#"{{"spec":{app},"apiVersion":"v1","kind":"Pod"}}"#),
                    "null",
                ),
                false,
            ),
            (
                "a kind after the spec",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    &format!(r#"{{"apiVersion":"v1","kind":"Pod","spec":{app},"kind":"Pod"}}"#),
                    "null",
                ),
                false,
            ),
            (
                "two specs (the last wins)",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    &format!(
                        r#"{{"apiVersion":"v1","kind":"Pod","spec":{app},"spec":{{"containers":[{{"image":"evil"}}]}}}}"#
                    ),
                    "null",
                ),
                false,
            ),
            (
                "two templates",
                body(
                    "apps",
                    "Deployment",
                    "CREATE",
                    &format!(
                        r#"{{"apiVersion":"apps/v1","kind":"Deployment","spec":{{"template":{{"spec":{app}}},"template":{{"spec":{{"containers":[{{"image":"evil"}}]}}}}}}}}"#
                    ),
                    "null",
                ),
                false,
            ),
            (
                "two metadata",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    &format!(
                        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"a"}},"metadata":{{"name":"b"}},"spec":{app}}}"#
                    ),
                    "null",
                ),
                false,
            ),
            (
                "a request of another kind than the object",
                body("apps", "Deployment", "CREATE", &pod(app), "null"),
                false,
            ),
            (
                "a request of another group than the object",
                body("apps", "Pod", "CREATE", &pod(app), "null"),
                false,
            ),
            (
                "a malformed pod spec",
                pod_body(r#"{"containers":[{"name":"app","image":5}]}"#),
                false,
            ),
            ("a pod spec that is a number", pod_body("5"), false),
            (
                "malformed metadata",
                body(
                    "",
                    "Pod",
                    "CREATE",
                    r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":5},"spec":{}}"#,
                    "null",
                ),
                false,
            ),
            (
                "an object that is a number",
                body("", "Pod", "CREATE", "5", "null"),
                false,
            ),
            ("a string that is not UTF-8", invalid_utf8, false),
            ("not a review", b"[1,2]".to_vec(), false),
        ];
        for (what, body, one_pass) in &cases {
            let text = String::from_utf8_lossy(body);
            assert_eq!(
                read_in_one_pass(body).is_some(),
                *one_pass,
                "{what}: {text}"
            );
            let (read, raw) = (read(body), read_with_raw_objects(body));
            assert_eq!(format!("{read:?}"), format!("{raw:?}"), "{what}: {text}");
        }
        // The cases read something: workloads, refusals and errors alike.
        let outcome = |i: usize| format!("{:?}", read(&cases[i].1));
        assert!(outcome(0).contains("nginx:1.25") && outcome(0).contains("arm64"));
        assert!(outcome(2).contains("/spec/jobTemplate/spec/template/spec/containers/0/image"));
        assert!(outcome(6).contains("NoPodSpec"), "{}", outcome(6));
        assert!(
            outcome(11).contains("spec.affinity.nodeAffinity"),
            "{}",
            outcome(11)
        );
        assert!(outcome(16).contains("evil"), "{}", outcome(16));
        assert!(
            outcome(21).contains("spec.containers[0].image"),
            "{}",
            outcome(21)
        );
    }
}
