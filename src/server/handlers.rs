//! The HTTP handlers: parse, call the engine, answer. Nothing else lives here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::metrics::{EndpointLabels, LookupLabels, RequestLabels, ViolationLabels};
use crate::admission::Workload;
use crate::admission::review::{self, Answer, Request};
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

pub(super) async fn validate(State(state): State<AppState>, body: Bytes) -> Response {
    admit(&state, Endpoint::Validate, &body).await
}

pub(super) async fn mutate(State(state): State<AppState>, body: Bytes) -> Response {
    admit(&state, Endpoint::Mutate, &body).await
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

async fn admit(state: &AppState, endpoint: Endpoint, body: &[u8]) -> Response {
    let started = Instant::now();
    // A clone of the gauge, not the family's lock guard, lives across the awaits.
    let gauge = (state.metrics.in_flight)
        .get_or_create(&EndpointLabels {
            endpoint: endpoint.as_str(),
        })
        .clone();
    gauge.inc();
    let _in_flight = InFlight(gauge);
    let (status, reply, decision) = match review::parse(body) {
        Err(e) => (
            StatusCode::BAD_REQUEST,
            bad_request(&e.to_string()),
            "invalid",
        ),
        Ok(request) => match review::workload(&request) {
            Err(e) => (
                StatusCode::BAD_REQUEST,
                bad_request(&e.to_string()),
                "invalid",
            ),
            Ok(workload) => {
                let answer = match workload {
                    None => Answer::allow(),
                    Some(workload) => judge(state, endpoint, &request, &workload).await,
                };
                let decision = if answer.allowed { "allowed" } else { "denied" };
                let reply = review::encode(&review::respond(&request, answer));
                (StatusCode::OK, json(reply), decision)
            }
        },
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

async fn judge(
    state: &AppState,
    endpoint: Endpoint,
    request: &Request,
    workload: &Workload,
) -> Answer {
    // One policy set for the whole request, even if a reload lands meanwhile.
    let policies = state.policies.load_full();
    let lookups = state.lookups.load_full();
    let needs = engine::needs(&policies, workload);
    let facts = lookups
        .inspector
        .gather(&needs, workload, lookups.deadline)
        .await;
    if endpoint == Endpoint::Validate {
        count_lookup_failures(state, &facts);
    }
    let mut decision = engine::decide(&policies, workload, &facts);
    if endpoint == Endpoint::Validate {
        let unless_mutated = std::mem::take(&mut decision.unless_mutated);
        decision.violations.extend(unless_mutated);
    }
    match endpoint {
        // The mutating webhook only mutates: the validating one, which runs after
        // every mutation, is where requests are denied and audits are reported.
        Endpoint::Mutate => mutating_answer(decision),
        Endpoint::Validate => {
            record(state, endpoint, request, workload, &decision);
            record_not_checked(request, workload, &decision);
            validating_answer(&decision, workload)
        }
    }
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
    let would_deny = decision.audit_warnings();
    if !would_deny.is_empty() {
        audit_annotations.insert("would-deny".to_string(), would_deny.join("; "));
    }
    if !decision.not_checked.is_empty() {
        audit_annotations.insert("not-checked".to_string(), decision.not_checked.join("; "));
    }
    let warnings = decision.all_warnings();
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

/// Metrics and the structured audit log for every violation.
fn record(
    state: &AppState,
    endpoint: Endpoint,
    request: &Request,
    workload: &Workload,
    decision: &Decision,
) {
    for v in decision.violations.iter().chain(&decision.audit) {
        let mode = match v.mode {
            Mode::Enforce => "Enforce",
            Mode::Audit => "Audit",
        };
        state
            .metrics
            .violations
            .get_or_create(&ViolationLabels {
                endpoint: endpoint.as_str(),
                policy: v.policy.clone(),
                rule: v.rule.as_str(),
                mode,
            })
            .inc();
        tracing::info!(
            target: "imagegate::audit",
            uid = %request.uid,
            dry_run = request.dry_run,
            user = request.user_info.username.as_deref().unwrap_or_default(),
            namespace = %workload.namespace,
            kind = %workload.kind,
            name = %workload.name,
            container = %v.container.name,
            image = %v.container.image,
            policy = %v.policy,
            rule = v.rule.as_str(),
            mode,
            action = if v.mode == Mode::Enforce { "deny" } else { "would deny" },
            message = %v.message,
            "image policy violation"
        );
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
