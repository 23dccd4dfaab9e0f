//! Prometheus metrics, rendered in the text format at `GET /metrics`.
//!
//! Besides the request counters: requests in flight, the policy set in force (a
//! generation that counts successful loads, and the hash of its files), the
//! serving certificate's expiry, build information, and the [`Telemetry`] of the
//! inspector (cache hits and misses per fact kind, lookup latency by outcome).
//! Latency buckets reach past any admission deadline ([`LATENCY_BUCKETS`]).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use sha2::Digest;

use crate::policy::PolicySource;
use crate::telemetry::{LATENCY_BUCKETS, Telemetry, latency_histogram};

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
    /// `policies`, `certificate` or `config`.
    pub what: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `manifest-unknown`, `unauthorized`, `tls-unknown-authority`, `timeout`, ...
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicySetLabels {
    /// The first 16 hex digits of the SHA-256 of the policy files (names and
    /// content, in load order).
    pub hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    /// `IMAGEGATE_GIT_COMMIT` at build time (`scripts/build-image.sh` sets it).
    commit: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub lookup_failures: Family<LookupLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub in_flight: Family<EndpointLabels, Gauge>,
    pub violations: Family<ViolationLabels, Counter>,
    pub latency: Family<EndpointLabels, Histogram>,
    pub reloads: Family<ReloadLabels, Counter>,
    pub policy_generation: Gauge,
    pub policy_set: Family<PolicySetLabels, Gauge>,
    pub certificate_expiry: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&Telemetry::default())
    }
}

impl Metrics {
    /// The metrics, with the inspector's `telemetry` among them.
    pub fn new(telemetry: &Telemetry) -> Self {
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
        let in_flight = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "admission_requests_in_flight",
            "AdmissionReviews being answered now, by endpoint",
            in_flight.clone(),
        );
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "admission_duration_seconds",
            format!(
                "Time to answer an AdmissionReview, from body to reply (buckets {} s to {} s)",
                LATENCY_BUCKETS[0],
                LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1]
            ),
            latency.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Policy, certificate and configuration reloads, by result",
            reloads.clone(),
        );
        let policy_generation = Gauge::default();
        registry.register(
            "policy_generation",
            "How many policy sets have been loaded since start (1 after start, +1 per successful reload)",
            policy_generation.clone(),
        );
        let policy_set = Family::<PolicySetLabels, Gauge>::default();
        registry.register(
            "policy_set",
            "The policy set in force: 1, labelled with the hash of its files",
            policy_set.clone(),
        );
        let certificate_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the serving certificate expires (notAfter, Unix time)",
            certificate_expiry.clone(),
        );
        registry.register(
            "build",
            "The version and commit of this binary",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("IMAGEGATE_GIT_COMMIT").unwrap_or("unknown"),
            }),
        );
        telemetry.register(&mut registry);
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
            in_flight,
            violations,
            latency,
            reloads,
            policy_generation,
            policy_set,
            certificate_expiry,
        }
    }

    /// A policy set was loaded from `sources`: the generation moves on and the hash
    /// is the new one's.
    pub fn policies_loaded(&self, sources: &[PolicySource]) {
        let mut hasher = sha2::Sha256::new();
        for source in sources {
            hasher.update(source.path.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(source.text.as_bytes());
            hasher.update([0]);
        }
        let hash = hex::encode(hasher.finalize())[..16].to_string();
        self.policy_set.clear();
        self.policy_set
            .get_or_create(&PolicySetLabels { hash })
            .set(1);
        self.policy_generation.inc();
    }

    /// The serving certificate in force is the first of `cert_pem`.
    pub fn certificate(&self, cert_pem: &[u8]) {
        match super::tls::not_after(cert_pem) {
            Some(seconds) => {
                self.certificate_expiry.set(seconds as f64);
            }
            None => tracing::warn!("cannot read the serving certificate's expiry"),
        }
    }

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
