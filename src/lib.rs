//! imagegate: a Kubernetes admission webhook for container image policy.
//!
//! The house, room by room, in the order a request travels:
//! - [`reference`]: image references parsed and normalized as the runtime does.
//! - [`matching`]: image, registry and namespace patterns, compiled once.
//! - [`policy`]: policy files, strict deserialization, validation and compilation.
//! - [`admission`]: reading AdmissionReviews and the objects in them, building replies.
//! - [`engine`]: the pure decision: policies + object + facts -> decision. It owns
//!   its fact types and does no I/O.
//! - [`inspector`]: gathers the facts the engine will read (digests, platforms,
//!   pull failures, Node architectures) under the admission deadline, cached and
//!   coalesced.
//! - [`registry`]: the registry client, per-registry TLS, failure classification.
//! - [`credentials`]: docker config files and the kubelet's `auths` matching.
//! - [`platform`]: containerd's platform matching; where a pod may run.
//! - [`cluster`]: the one door to the Kubernetes API (Secrets, ServiceAccounts, Nodes).
//! - [`telemetry`]: the cache and lookup measurements the async side takes and the
//!   server renders.
//! - [`config`]: the webhook's configuration file (`serve --config`).
//! - [`server`]: the HTTPS webhook (axum + rustls), reloads, metrics.
//! - [`certs`]: CA and serving certificates for the webhook.
//! - [`cli`]: the command line; the wiring of clients lives in `cli::serve`.

pub mod admission;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod engine;
pub mod inspector;
pub mod matching;
pub mod platform;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod server;
pub mod telemetry;
