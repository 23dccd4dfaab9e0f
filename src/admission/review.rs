//! The AdmissionReview `admission.k8s.io/v1` envelope: reading requests and
//! building responses that follow the v1 contract exactly.
//!
//! The types are kube's; this module adds what the contract asks and the types do
//! not enforce: the version check, `status.code` 403 on a denial, no patch on a
//! validating reply, and the size limits the API server puts on warnings.

use std::collections::HashMap;

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::StatusSummary;

use super::{ObjectError, Workload};

pub type Request = AdmissionRequest<DynamicObject>;
pub type Review = AdmissionReview<DynamicObject>;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";
/// The API server drops a warning longer than this.
pub const MAX_WARNING_LEN: usize = 256;
/// ... and all warnings together longer than this.
pub const MAX_WARNINGS_TOTAL: usize = 4096;

/// Why a body is not an AdmissionReview imagegate can answer: an HTTP 400.
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
    #[error("the AdmissionReview request has an empty uid")]
    NoUid,
    #[error("the AdmissionReview request has no object for a {operation:?}")]
    NoObject { operation: Operation },
    #[error(transparent)]
    Object(#[from] ObjectError),
}

/// Parses and checks an AdmissionReview body.
pub fn parse(body: &[u8]) -> Result<Request, ReviewError> {
    let review: Review = serde_json::from_slice(body)?;
    if review.types.api_version != API_VERSION || review.types.kind != KIND {
        return Err(ReviewError::Version {
            api_version: review.types.api_version,
            kind: review.types.kind,
        });
    }
    let request: Request = review.try_into().map_err(|_| ReviewError::NoRequest)?;
    if request.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    Ok(request)
}

/// The workload to judge, or `None` when the request has nothing to judge (a
/// DELETE or CONNECT, a kind imagegate does not cover, a subresource other than
/// `ephemeralcontainers`).
///
/// On an UPDATE only the images that are new or changed are judged; for the
/// `pods/ephemeralcontainers` subresource only the ephemeral containers.
pub fn workload(request: &Request) -> Result<Option<Workload>, ReviewError> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Ok(None);
    }
    let ephemeral = match request.sub_resource.as_deref() {
        None => false,
        Some("ephemeralcontainers") => true,
        Some(_) => return Ok(None),
    };
    let kind = &request.kind;
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let read = |object: &DynamicObject| -> Result<Option<Workload>, ReviewError> {
        let mut w = Workload::from_object(&kind.group, &kind.kind, namespace, &object.data)?;
        if let Some(w) = w.as_mut() {
            w.name = object
                .metadata
                .name
                .clone()
                .or_else(|| object.metadata.generate_name.clone())
                .unwrap_or_default();
            if let Some(ns) = object
                .metadata
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
            {
                w.namespace = ns.to_string();
            }
        }
        Ok(w)
    };
    let object = request.object.as_ref().ok_or(ReviewError::NoObject {
        operation: request.operation.clone(),
    })?;
    let Some(mut workload) = read(object)? else {
        return Ok(None);
    };
    if ephemeral {
        workload.retain_ephemeral();
    }
    if request.operation == Operation::Update {
        workload.is_update = true;
        if let Some(old) = request.old_object.as_ref()
            && let Some(old) = read(old)?
        {
            workload.retain_changed(&old);
        }
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
    let mut response = AdmissionResponse::from(request);
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
pub fn limit_warnings(warnings: Vec<String>) -> Vec<String> {
    let total_count = warnings.len();
    let mut out: Vec<String> = Vec::new();
    let mut total = 0;
    for w in warnings {
        let w = truncate(&w, MAX_WARNING_LEN);
        // Keep room for the "N more" line.
        if total + w.len() > MAX_WARNINGS_TOTAL - 64 {
            break;
        }
        total += w.len();
        out.push(w);
    }
    let left = total_count - out.len();
    if left > 0 {
        out.push(format!(
            "... and {left} more warning(s) not shown; see the imagegate log"
        ));
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let ellipsis = "...";
    let mut end = max - ellipsis.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let table: &[(&[u8], &str)] = &[
            (b"", "not a valid AdmissionReview"),
            (b"{", "not a valid AdmissionReview"),
            (b"[]", "not a valid AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#, "not a valid AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#, "expected apiVersion admission.k8s.io/v1"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "kind \"Pod\""),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "has no request"),
        ];
        for (body, fragment) in table {
            let err = parse(body).unwrap_err().to_string();
            assert!(
                err.contains(fragment),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        let mut r = pod_request("CREATE", pod(&[("a", "x")], &[]), Value::Null, None);
        r["uid"] = json!("");
        assert!(matches!(parse(&review(r)), Err(ReviewError::NoUid)));
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
            let req = parse(&review(pod_request(op, object, old, sub))).unwrap();
            let w = workload(&req).unwrap();
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
        let req = parse(&review(pod_request(
            "CREATE",
            Value::Null,
            Value::Null,
            None,
        )))
        .unwrap();
        assert!(
            workload(&req)
                .unwrap_err()
                .to_string()
                .contains("no object")
        );
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
}
