//! The measurements the async side takes (cache hits and misses of the inspector
//! and the cluster reader, registry lookup latency by outcome), kept apart from the
//! server so that those modules need not know it. The server registers them with
//! the rest of its metrics and renders them at `GET /metrics`; a reload of the
//! configuration builds new caches but keeps these counters.
//!
//! Labels are bounded: fact kinds and outcomes are fixed names, never a registry
//! host or an image (those come from requests).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets, in seconds: 1 ms doubling to 16.4 s, then 30 s (the API server's
/// largest webhook `timeoutSeconds`), so that every deadline imagegate can be given
/// (8 s by default) falls inside them.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384, 30.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The kinds of facts that are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fact {
    /// A tag's (or a digest's) resolution, and failures.
    Digest,
    /// A manifest's platforms, by digest.
    Platforms,
    /// A pull secret read from the Kubernetes API.
    Secret,
    /// A ServiceAccount's pull secret names.
    ServiceAccount,
    /// The cluster's Nodes.
    Nodes,
    /// The verified signatures of a digest, per repository and authority set.
    Signatures,
}

impl Fact {
    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Digest => "digest",
            Fact::Platforms => "platforms",
            Fact::Secret => "secret",
            Fact::ServiceAccount => "serviceaccount",
            Fact::Nodes => "nodes",
            Fact::Signatures => "signatures",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `digest`, `platforms`, `secret`, `serviceaccount`, `nodes`.
    pub fact: &'static str,
    /// `hit` (cached, or joined a lookup in flight) or `miss` (looked up).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `found`, or the failure kind (`manifest-unknown`, `unauthorized`, `timeout`, ...).
    pub outcome: &'static str,
}

/// Cheap to clone: every clone moves the same counters.
#[derive(Clone)]
pub struct Telemetry {
    pub cache: Family<CacheLabels, Counter>,
    pub lookups: Family<OutcomeLabels, Histogram>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            cache: Family::default(),
            lookups: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl Telemetry {
    /// Counts a cache read: `hit` when the value was cached or another caller was
    /// already fetching it.
    pub fn cache(&self, fact: Fact, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&CacheLabels {
                fact: fact.as_str(),
                result,
            })
            .inc();
    }

    /// Records how long one registry lookup (of a tag's digest, with every
    /// candidate credential) took, by outcome.
    pub fn lookup(&self, outcome: &'static str, seconds: f64) {
        self.lookups
            .get_or_create(&OutcomeLabels { outcome })
            .observe(seconds);
    }

    /// Adds these metrics to `registry` (prefixed as the registry is).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cache_requests",
            "Cache reads by fact kind and result (hit: cached or already in flight; miss: looked up)",
            self.cache.clone(),
        );
        registry.register(
            "registry_lookup_duration_seconds",
            "Time for one registry lookup of a digest (every candidate credential), by outcome",
            self.lookups.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders_with_bounded_labels() {
        let t = Telemetry::default();
        let mut registry = Registry::with_prefix("imagegate");
        t.register(&mut registry);
        t.clone().cache(Fact::Digest, false);
        t.cache(Fact::Digest, true);
        t.cache(Fact::Digest, true);
        t.lookup("found", 0.003);
        t.lookup("timeout", 8.0);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for line in [
            "imagegate_cache_requests_total{fact=\"digest\",result=\"hit\"} 2",
            "imagegate_cache_requests_total{fact=\"digest\",result=\"miss\"} 1",
            "imagegate_registry_lookup_duration_seconds_bucket{le=\"0.004\",outcome=\"found\"} 1",
            "imagegate_registry_lookup_duration_seconds_bucket{le=\"4.096\",outcome=\"timeout\"} 0",
            "imagegate_registry_lookup_duration_seconds_bucket{le=\"8.192\",outcome=\"timeout\"} 1",
        ] {
            assert!(out.contains(line), "{line} in\n{out}");
        }
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(*LATENCY_BUCKETS.last().unwrap() >= 30.0);
    }
}
