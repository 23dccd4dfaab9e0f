//! imagegate: a Kubernetes admission webhook for container image policy.
//!
//! The house, room by room:
//! - [`reference`]: image references parsed and normalized as the runtime does.
//! - [`matching`]: image, registry and namespace patterns, compiled once.
//! - [`policy`]: policy files, strict deserialization, validation and compilation.
//! - [`admission`]: reading AdmissionReviews and the objects in them, building replies.
//! - [`engine`]: the pure decision: policies + object + image facts -> decision.
//! - [`server`]: the HTTPS webhook (axum + rustls), reloads, metrics.
//! - [`certs`]: CA and serving certificates for the webhook.
//! - [`cli`]: the command line (`serve`, `check`, `policy validate`, `certs`).

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
