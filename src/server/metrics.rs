//! Prometheus metrics, rendered in the text format at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate` or `mutate`.
    pub endpoint: &'static str,
    /// `allowed`, `denied`, `malformed` (refused in-band with code 400: the
    /// request cannot be judged as sent), `error` (refused in-band with code 500:
    /// imagegate failed while judging), or `invalid` (HTTP 400: not an
    /// AdmissionReview, or no uid to answer).
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViolationLabels {
    pub endpoint: &'static str,
    pub policy: String,
    pub rule: &'static str,
    /// `Enforce` (denied) or `Audit` (reported only).
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `policies` or `certificate`.
    pub what: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `manifest-unknown`, `unauthorized`, `tls-unknown-authority`, `timeout`, ...
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub lookup_failures: Family<LookupLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub violations: Family<ViolationLabels, Counter>,
    pub latency: Family<EndpointLabels, Histogram>,
    pub reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("imagegate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "AdmissionReviews answered, by endpoint and decision",
            requests.clone(),
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        registry.register(
            "policy_violations",
            "Rule violations found, by endpoint, policy, rule and mode (Audit ones are only reported)",
            violations.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~1.6 s
            Histogram::new(exponential_buckets(0.00005, 2.0, 16))
        });
        registry.register(
            "admission_duration_seconds",
            "Time to answer an AdmissionReview, from body to reply",
            latency.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Policy and certificate reloads, by result",
            reloads.clone(),
        );
        let lookup_failures = Family::<LookupLabels, Counter>::default();
        registry.register(
            "registry_lookup_failures",
            "Images whose registry lookup failed, per admission, by kind of failure (the log names the registry)",
            lookup_failures.clone(),
        );
        Metrics {
            registry,
            lookup_failures,
            requests,
            violations,
            latency,
            reloads,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn reload(&self, what: &'static str, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                what,
                result: if ok { "success" } else { "failure" },
            })
            .inc();
    }
}
