//! The HTTP handlers: parse, call the engine, answer. Nothing else lives here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{self, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::metrics::{EndpointLabels, LookupLabels, RequestLabels, ViolationLabels};
use super::{AppState, MAX_BODY_BYTES};
use crate::admission::Workload;
use crate::admission::review::{self, Answer, Envelope, Read, Refusal, Rejected, Request};
use crate::engine::{self, Decision, Facts, ImageFacts};
use crate::policy::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }
}

pub(super) async fn validate(
    State(state): State<AppState>,
    request: http::Request<Body>,
) -> Response {
    match collect(request).await {
        Ok(body) => admit(&state, Endpoint::Validate, body).await,
        Err(response) => response,
    }
}

pub(super) async fn mutate(
    State(state): State<AppState>,
    request: http::Request<Body>,
) -> Response {
    match collect(request).await {
        Ok(body) => admit(&state, Endpoint::Mutate, body).await,
        Err(response) => response,
    }
}

/// The body in one buffer, held once: sized from `Content-Length` (at most
/// [`MAX_BODY_BYTES`]) and each frame copied in and dropped as it comes. axum's
/// `Bytes` extractor keeps every frame until it concatenates them, so a large
/// body was held twice at its peak. Over [`MAX_BODY_BYTES`]: 413.
async fn collect(request: http::Request<Body>) -> Result<Bytes, Response> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over {} MiB, the most imagegate reads; the API server never sends one\n",
                MAX_BODY_BYTES / (1024 * 1024)
            ),
        )
            .into_response()
    };
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(length.unwrap_or(0) as usize);
    let mut frames = request.into_body().into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}\n"),
            )
                .into_response()
        })?;
        if buf.len() + frame.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        buf.extend_from_slice(&frame);
    }
    Ok(Bytes::from(buf))
}

/// Bodies up to this size are read on the request's task; larger ones (up to
/// [`super::MAX_BODY_BYTES`], milliseconds of work) on tokio's blocking pool, so
/// that they do not hold up the other requests of a worker thread.
pub const READ_INLINE_MAX_BYTES: usize = 64 * 1024;

/// Reads the body (see [`review::read`]), turning a panic into `Err`.
fn read(body: &[u8]) -> Result<Result<Read, Rejected>, String> {
    std::panic::catch_unwind(|| review::read(body))
        .map_err(|payload| crate::unwind::message(payload.as_ref()))
}

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts a request in flight for as long as it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn admit(state: &AppState, endpoint: Endpoint, body: Bytes) -> Response {
    let started = Instant::now();
    // A clone of the gauge, not the family's lock guard, lives across the awaits.
    let gauge = (state.metrics.in_flight)
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.as_str(),
        })
        .clone();
    gauge.inc();
    let _in_flight = InFlight(gauge);
    let read = if body.len() <= READ_INLINE_MAX_BYTES {
        read(&body)
    } else {
        tokio::task::spawn_blocking(move || read(&body))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    };
    let (status, reply, decision) = match read {
        // Only before a uid is known: past it, `review::read` answers in-band.
        Err(panic) => {
            tracing::error!(
                endpoint = endpoint.as_str(),
                panic,
                "imagegate failed while parsing a request"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                bad_request("imagegate failed while parsing the request; see its log"),
                "error",
            )
        }
        Ok(Err(Rejected::NotAReview(e))) => (
            StatusCode::BAD_REQUEST,
            bad_request(&e.to_string()),
            "invalid",
        ),
        Ok(Err(Rejected::Refused(in_band))) => {
            refused(endpoint, &in_band.envelope, &in_band.refusal)
        }
        Ok(Ok(Read { request, workload })) => {
            // Past this point the uid is known: whatever happens, including a
            // panic, is answered in-band.
            let judged =
                match crate::unwind::catch(judge(state, endpoint, &request, workload)).await {
                    Ok(judged) => judged,
                    Err(panic) => {
                        tracing::error!(
                            uid = %request.uid,
                            endpoint = endpoint.as_str(),
                            panic,
                            "imagegate failed while judging a request; refused in-band"
                        );
                        Err(Refusal::Internal {
                            subject: review::subject(&request),
                            uid: request.uid.clone(),
                        })
                    }
                };
            match judged {
                Ok(answer) => {
                    let decision = if answer.allowed { "allowed" } else { "denied" };
                    let reply = review::encode(&review::respond(&request, answer));
                    (StatusCode::OK, json(reply), decision)
                }
                Err(refusal) => refused(endpoint, &Envelope::of(&request), &refusal),
            }
        }
    };
    let labels = RequestLabels {
        endpoint: endpoint.as_str(),
        decision,
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.as_str(),
        })
        .observe(started.elapsed().as_secs_f64());
    (status, reply).into_response()
}

/// An in-band refusal: HTTP 200, `allowed: false`, code 400 (`malformed`) or 500
/// (`error`). `/mutate` refuses too: it runs before `/validate` and may be the only
/// webhook installed, and an object imagegate cannot read is never let through.
fn refused(
    endpoint: Endpoint,
    envelope: &Envelope,
    refusal: &Refusal,
) -> (StatusCode, Response, &'static str) {
    let code = refusal.code();
    if code != 500 {
        tracing::warn!(
            uid = %envelope.uid,
            endpoint = endpoint.as_str(),
            code,
            reason = %refusal,
            "request refused in-band"
        );
    }
    let reply = review::encode(&review::refuse(envelope, refusal));
    let decision = if code == 500 { "error" } else { "malformed" };
    (StatusCode::OK, json(reply), decision)
}

async fn judge(
    state: &AppState,
    endpoint: Endpoint,
    request: &Request,
    workload: Result<Option<Workload>, Refusal>,
) -> Result<Answer, Refusal> {
    #[cfg(test)]
    tests::maybe_panic(request);
    let Some(workload) = workload? else {
        return Ok(Answer::allow());
    };
    let workload = &workload;
    // One policy set for the whole request, even if a reload lands meanwhile.
    let policies = state.policies.load_full();
    let lookups = state.lookups.load_full();
    let needs = engine::needs(&policies, workload);
    // Boxed, and only when there is something to look up: the gathering future is
    // many kilobytes, and held inline it made every request's future that large,
    // copied on each move (a tenth of the warm path's instructions).
    let facts = if needs.is_empty() {
        Facts::default()
    } else {
        Box::pin(lookups.inspector.gather(&needs, workload, lookups.deadline)).await
    };
    if endpoint == Endpoint::Validate {
        count_lookup_failures(state, &facts);
    }
    let mut decision = engine::decide(&policies, workload, &facts);
    if endpoint == Endpoint::Validate {
        let unless_mutated = std::mem::take(&mut decision.unless_mutated);
        decision.violations.extend(unless_mutated);
    }
    Ok(match endpoint {
        // The mutating webhook only mutates: the validating one, which runs after
        // every mutation, is where requests are denied and audits are reported.
        Endpoint::Mutate => mutating_answer(decision),
        Endpoint::Validate => {
            record(state, endpoint, request, workload, &decision);
            record_not_checked(request, workload, &decision);
            validating_answer(&decision, workload)
        }
    })
}

fn count_lookup_failures(state: &AppState, facts: &Facts) {
    // Labelled by kind only: registry hosts come from requests and are unbounded.
    for facts in facts.images.values() {
        if let ImageFacts::Failed(failure) = facts {
            state
                .metrics
                .lookup_failures
                .get_or_create(&LookupLabels {
                    kind: failure.kind.as_str(),
                })
                .inc();
        }
    }
}

fn mutating_answer(decision: Decision) -> Answer {
    Answer {
        warnings: decision.would_mutate,
        patch: Some(json_patch::Patch(decision.patches)),
        ..Answer::allow()
    }
}

fn validating_answer(decision: &Decision, workload: &Workload) -> Answer {
    let mut audit_annotations = HashMap::new();
    // Both bounded: an UPDATE may carry 100,000 containers.
    if !decision.audit.is_empty() {
        let would_deny = review::limit_lines(
            decision.audit_lines(workload),
            review::MAX_AUDIT_ENTRY_LEN,
            review::MAX_AUDIT_ANNOTATION_LEN,
            "Audit finding(s)",
        );
        audit_annotations.insert("would-deny".to_string(), would_deny.join("; "));
    }
    if !decision.not_checked.is_empty() {
        let not_checked = review::limit_lines(
            decision.not_checked.iter().cloned(),
            review::MAX_AUDIT_ENTRY_LEN,
            review::MAX_AUDIT_ANNOTATION_LEN,
            "unchecked image(s)",
        );
        audit_annotations.insert("not-checked".to_string(), not_checked.join("; "));
    }
    let warnings = review::limit_warnings_from(decision.warning_lines(workload));
    Answer {
        allowed: decision.allowed(),
        message: if decision.allowed() {
            String::new()
        } else {
            decision.denial_message(workload)
        },
        warnings,
        audit_annotations,
        patch: None,
    }
}

/// The most violations of one request written to the audit log one by one; the
/// rest are counted in one line (an UPDATE may carry 100,000 containers).
const MAX_LOGGED_VIOLATIONS: usize = 1000;

/// Metrics for every violation (one update per policy, rule and mode), and the
/// structured audit log for the first [`MAX_LOGGED_VIOLATIONS`].
fn record(
    state: &AppState,
    endpoint: Endpoint,
    request: &Request,
    workload: &Workload,
    decision: &Decision,
) {
    let mut counts: HashMap<(&str, &'static str, &'static str), u64> = HashMap::new();
    let all = decision.violations.len() + decision.audit.len();
    for (i, v) in decision
        .violations
        .iter()
        .chain(&decision.audit)
        .enumerate()
    {
        let mode = match v.mode {
            Mode::Enforce => "Enforce",
            Mode::Audit => "Audit",
        };
        *counts
            .entry((&v.policy, v.rule.as_str(), mode))
            .or_default() += 1;
        if i >= MAX_LOGGED_VIOLATIONS {
            continue;
        }
        tracing::info!(
            target: "imagegate::audit",
            uid = %request.uid,
            dry_run = request.dry_run,
            user = request.username.as_deref().unwrap_or_default(),
            namespace = %workload.namespace,
            kind = %workload.kind,
            name = %workload.name,
            container = %v.container_in(workload).name,
            image = %v.container_in(workload).image,
            policy = %v.policy,
            rule = v.rule.as_str(),
            mode,
            action = if v.mode == Mode::Enforce { "deny" } else { "would deny" },
            message = %v.message,
            "image policy violation"
        );
    }
    if all > MAX_LOGGED_VIOLATIONS {
        tracing::info!(
            target: "imagegate::audit",
            uid = %request.uid,
            namespace = %workload.namespace,
            kind = %workload.kind,
            name = %workload.name,
            violations = all,
            not_logged = all - MAX_LOGGED_VIOLATIONS,
            "more image policy violations in this request than are logged one by one"
        );
    }
    for ((policy, rule, mode), n) in counts {
        state
            .metrics
            .violations
            .get_or_create(&ViolationLabels {
                endpoint: endpoint.as_str(),
                policy: policy.to_string(),
                rule,
                mode,
            })
            .inc_by(n);
    }
}

/// The structured audit log of what was not checked (`imagePullPolicy: Never`).
fn record_not_checked(request: &Request, workload: &Workload, decision: &Decision) {
    for note in &decision.not_checked {
        tracing::info!(
            target: "imagegate::audit",
            uid = %request.uid,
            namespace = %workload.namespace,
            kind = %workload.kind,
            name = %workload.name,
            action = "not checked",
            message = %note,
            "image not looked up"
        );
    }
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn bad_request(message: &str) -> Response {
    tracing::warn!(error = message, "malformed admission request");
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::inspector::{Inspector, InspectorConfig};
    use crate::policy::{PolicySet, load_sources};
    use crate::registry::{RegistryClient, RegistryConfig};

    /// The uid that makes `judge` panic. The trigger exists only in this crate's
    /// unit-test build (`#[cfg(test)]`): the binary has none.
    const PANIC_UID: &str = "00000000-0000-4000-8000-00000000dead";

    pub(super) fn maybe_panic(request: &Request) {
        if request.uid == PANIC_UID {
            panic!("a test-only panic while judging");
        }
    }

    const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

    fn state() -> AppState {
        state_with(
            "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: tags}\nspec:\n  tags:\n    forbid: [latest]\n",
        )
    }

    /// A state with `policy` (YAML) and an inspector that reaches no cluster.
    fn state_with(policy: &str) -> AppState {
        let policies = PolicySet::compile(&load_sources(&[("p.yaml", policy)])).unwrap();
        let inspector = Inspector::new(
            RegistryClient::new(RegistryConfig::default()),
            None,
            InspectorConfig::default(),
        )
        .unwrap();
        AppState::new(
            policies,
            crate::server::Lookups {
                inspector,
                deadline: std::time::Duration::from_secs(1),
            },
        )
    }

    fn review(kind: (&str, &str), object: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": UID,
                "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                "resource": {"group": kind.0, "version": "v1", "resource": "things"},
                "name": "web", "namespace": "team", "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": object, "dryRun": false
            }
        })
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team"}, "spec": spec})
    }

    /// POSTs `body` to the handler: the HTTP status and the body (JSON, or the text
    /// of a 400 as a JSON string).
    async fn post(state: &AppState, endpoint: Endpoint, body: &[u8]) -> (u16, Value) {
        let response = admit(state, endpoint, Bytes::copy_from_slice(body)).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body)
    }

    #[tokio::test]
    async fn a_panic_while_judging_is_refused_in_band_with_code_500() {
        let state = state();
        let mut body = review(
            ("", "Pod"),
            pod(json!({"containers": [{"name": "a", "image": "nginx:1"}]})),
        );
        body["request"]["uid"] = json!(PANIC_UID);
        let body = serde_json::to_vec(&body).unwrap();
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let (status, reply) = post(&state, endpoint, &body).await;
            assert_eq!(status, 200, "{reply}");
            let r = &reply["response"];
            assert_eq!(r["uid"], PANIC_UID);
            assert_eq!(r["allowed"], false);
            assert_eq!(r["status"]["code"], 500);
            assert_eq!(r["status"]["reason"], "InternalError");
            let msg = r["status"]["message"].as_str().unwrap();
            assert!(
                msg.starts_with(
                    "imagegate failed internally while judging Pod \"web\" in namespace \"team\""
                ) && msg.contains(PANIC_UID),
                "{msg}"
            );
            assert!(r.get("patch").is_none());
        }
        // The same state keeps answering.
        let ok = review(
            ("", "Pod"),
            pod(json!({"containers": [{"name": "a", "image": "nginx:1"}]})),
        );
        let (status, reply) = post(
            &state,
            Endpoint::Validate,
            &serde_json::to_vec(&ok).unwrap(),
        )
        .await;
        assert_eq!((status, &reply["response"]["allowed"]), (200, &json!(true)));
        let metrics = state.metrics.render();
        for endpoint in ["validate", "mutate"] {
            let line = format!(
                "imagegate_admission_requests_total{{endpoint=\"{endpoint}\",decision=\"error\"}} 1"
            );
            assert!(metrics.contains(&line), "{metrics}");
        }
    }

    /// Malformed requests with a uid: HTTP 200, `allowed: false`, code 400, and a
    /// message that says what is wrong and where, on both endpoints.
    #[tokio::test]
    async fn malformed_objects_are_refused_in_band_with_code_400() {
        let deployment = |spec: Value| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec});
        let mut no_object = review(("", "Pod"), Value::Null);
        no_object["request"]["operation"] = json!("UPDATE");
        let mut v1beta1 = review(("", "Pod"), pod(json!({"containers": []})));
        v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
        let mut bad_metadata = review(("", "Pod"), pod(json!({"containers": []})));
        bad_metadata["request"]["object"]["metadata"] = json!("web");
        let mut bad_operation = review(("", "Pod"), pod(json!({"containers": []})));
        bad_operation["request"]["operation"] = json!("PATCH");
        // (body, apiVersion echoed, message fragments)
        let table: Vec<(Value, &str, Vec<&str>)> = vec![
            (
                review(("", "Pod"), pod(json!({"containers": "x"}))),
                "admission.k8s.io/v1",
                vec![
                    "imagegate cannot judge Pod \"web\" in namespace \"team\": the Pod's pod spec at /spec is malformed: spec.containers: invalid type: string \"x\", expected a sequence",
                    "fix the object",
                ],
            ),
            (
                review(
                    ("", "Pod"),
                    pod(json!({"containers": [{"name": "a", "image": 5}]})),
                ),
                "admission.k8s.io/v1",
                vec!["spec.containers[0].image: invalid type: integer `5`, expected a string"],
            ),
            (
                review(
                    ("", "Pod"),
                    pod(
                        json!({"initContainers": [{"name": "i", "image": "busybox:1"}], "containers": [{"name": "a", "image": ["nginx"]}]}),
                    ),
                ),
                "admission.k8s.io/v1",
                vec!["spec.containers[0].image: invalid type: sequence, expected a string"],
            ),
            (
                review(
                    ("apps", "Deployment"),
                    deployment(json!({"template": {"metadata": {}}})),
                ),
                "admission.k8s.io/v1",
                vec![
                    "imagegate cannot judge Deployment \"web\" in namespace \"team\": the Deployment has no pod spec at /spec/template/spec",
                ],
            ),
            (
                review(
                    ("apps", "Deployment"),
                    deployment(json!({"template": {"spec": null}})),
                ),
                "admission.k8s.io/v1",
                vec!["has no pod spec at /spec/template/spec"],
            ),
            (
                review(("", "Pod"), Value::Null),
                "admission.k8s.io/v1",
                vec![
                    "imagegate cannot judge Pod \"web\" in namespace \"team\": the CREATE request carries no object",
                ],
            ),
            (
                no_object,
                "admission.k8s.io/v1",
                vec!["the UPDATE request carries no object"],
            ),
            (
                v1beta1,
                "admission.k8s.io/v1beta1",
                vec![
                    "imagegate answers AdmissionReview admission.k8s.io/v1 only, and this request is admission.k8s.io/v1beta1: list v1 in the webhook configuration's admissionReviewVersions",
                ],
            ),
            (
                bad_metadata,
                "admission.k8s.io/v1",
                vec![
                    "imagegate cannot read this AdmissionReview's request (request.object",
                    "check what is calling the webhook",
                ],
            ),
            (
                bad_operation,
                "admission.k8s.io/v1",
                vec!["(request.operation: unknown variant `PATCH`"],
            ),
        ];
        let state = state();
        let mut n = 0;
        for (body, api_version, fragments) in &table {
            let bytes = serde_json::to_vec(body).unwrap();
            for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
                n += 1;
                let (status, reply) = post(&state, endpoint, &bytes).await;
                assert_eq!(status, 200, "{endpoint:?} {body}: {reply}");
                assert_eq!(reply["apiVersion"], *api_version);
                assert_eq!(reply["kind"], "AdmissionReview");
                let r = &reply["response"];
                assert_eq!(r["uid"], UID);
                assert_eq!(r["allowed"], false, "{reply}");
                assert_eq!(r["status"]["code"], 400);
                assert_eq!(r["status"]["reason"], "BadRequest");
                let msg = r["status"]["message"].as_str().unwrap();
                for fragment in fragments {
                    assert!(msg.contains(fragment), "{msg}\nlacks: {fragment}");
                }
            }
        }
        let metrics = state.metrics.render();
        let line = format!(
            "imagegate_admission_requests_total{{endpoint=\"mutate\",decision=\"malformed\"}} {}",
            n / 2
        );
        assert!(metrics.contains(&line), "{metrics}");
    }

    /// Thousands of containers: the denial message, the warnings and the audit
    /// annotation stay bounded, and each says how many it leaves out.
    #[tokio::test]
    async fn answers_are_bounded_whatever_the_number_of_containers() {
        let policy = "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: audit}\nspec:\n  mode: Audit\n  tags:\n    forbid: [latest]\n---\napiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata: {name: digests}\nspec:\n  tags:\n    requireDigest: true\n";
        let state = state_with(policy);
        let n = 2_000;
        let containers: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("c{i}"), "image": format!("registry.example/team/app{i}:latest")}))
            .collect();
        let body = review(("", "Pod"), pod(json!({ "containers": containers })));
        let (status, reply) = post(
            &state,
            Endpoint::Validate,
            &serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let r = &reply["response"];
        assert_eq!(r["allowed"], false);
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(msg.starts_with("imagegate denied Pod \"web\" in namespace \"team\": 2,000 image policy violations\n"), "{msg}");
        assert!(msg.ends_with("- ... and 1,950 more violations not shown, in 1,950 more containers; run `imagegate check` on the manifest to list every one"), "{msg}");
        assert!(msg.len() <= engine::MAX_DENIAL_BYTES + 256);
        let annotation = r["auditAnnotations"]["would-deny"].as_str().unwrap();
        assert!(
            annotation.len() <= review::MAX_AUDIT_ANNOTATION_LEN,
            "{}",
            annotation.len()
        );
        assert!(
            annotation.starts_with(
                "would deny: container \"c0\" image \"registry.example/team/app0:latest\""
            ),
            "{annotation}"
        );
        assert!(annotation.contains("; ... and 1,9"), "{annotation}");
        assert!(
            annotation.ends_with(" more Audit finding(s) not shown; see the imagegate log"),
            "{annotation}"
        );
        let warnings: Vec<&str> = r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert!(warnings.iter().map(|w| w.len()).sum::<usize>() <= review::MAX_WARNINGS_TOTAL);
        assert!(
            warnings
                .last()
                .unwrap()
                .ends_with(" more warning(s) not shown; see the imagegate log"),
            "{warnings:?}"
        );
        // The whole reply is small.
        assert!(serde_json::to_vec(&reply).unwrap().len() < 48 * 1024);
    }

    /// Bodies with no uid to answer: HTTP 400 with the reason.
    #[tokio::test]
    async fn bodies_without_a_uid_to_answer_get_http_400() {
        let good = review(("", "Pod"), pod(json!({"containers": []})));
        let with = |pointer: &str, value: Value| {
            let mut b = good.clone();
            *b.pointer_mut(pointer).unwrap() = value;
            serde_json::to_vec(&b).unwrap()
        };
        let mut no_request = good.clone();
        no_request.as_object_mut().unwrap().remove("request");
        let table: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not a valid AdmissionReview"),
            (b"not json".to_vec(), "not a valid AdmissionReview"),
            (vec![0xff, 0xfe, 0x00], "not a valid AdmissionReview"),
            (b"{}".to_vec(), "expected apiVersion admission.k8s.io/v1"),
            (serde_json::to_vec(&no_request).unwrap(), "has no request"),
            (with("/request", json!("x")), "has no request"),
            (with("/request/uid", json!("")), "empty uid"),
            (with("/request/uid", json!(42)), "empty uid"),
            (with("/kind", json!("Pod")), "kind \"Pod\""),
            (with("/apiVersion", json!("v1")), "apiVersion \"v1\""),
        ];
        let state = state();
        for (body, fragment) in table {
            let (status, reply) = post(&state, Endpoint::Validate, &body).await;
            assert_eq!(status, 400, "{}: {reply}", String::from_utf8_lossy(&body));
            let text = reply.as_str().unwrap_or_default();
            assert!(text.contains(fragment), "{text:?} lacks {fragment:?}");
        }
    }
}
