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
//! - [`registry`]: imagegate's own bounded OCI read client: size limits, digest
//!   verification, bearer tokens, outbound address checks, failure classes.
//! - [`credentials`]: docker config files and the kubelet's `auths` matching.
//! - [`platform`]: containerd's platform matching; where a pod may run.
//! - [`cluster`]: the one door to the Kubernetes API (Secrets, ServiceAccounts, Nodes).
//! - [`telemetry`]: the cache and lookup measurements the async side takes and the
//!   server renders.
//! - [`config`]: the webhook's configuration file (`serve --config`).
//! - [`signature`]: offline cosign / Sigstore verification (bundles, legacy `.sig`
//!   and `.att` layers, keys and keyless, Rekor, timestamps): pure functions over
//!   bytes the inspector fetched.
//! - [`server`]: the HTTPS webhook (axum + rustls), reloads, metrics.
//! - [`certs`]: CA and serving certificates for the webhook.
//! - [`unwind`]: panics caught and turned into answers (the handlers, each registry
//!   lookup), so that no input drops a connection.
//! - [`doctor`]: `imagegate doctor`, the pull of one image checked step by step,
//!   explained with the webhook's own classification.
//! - [`cli`]: the command line; the wiring of clients lives in `cli::serve` and
//!   `cli::doctor`.
//!
//! No unsafe code: `#![forbid(unsafe_code)]` here and in the binary, and
//! `unsafe_code = "forbid"` in the `[lints]` table of Cargo.toml, which CI enforces
//! with the rest of that table (`cargo clippy --all-targets -- -D warnings`).
//! Beside the unit tests, `tests/fuzz.rs` fuzzes every parser of hostile input and
//! `tests/soak.rs` soaks the binary (README.md, "Fuzzing and soak").

#![forbid(unsafe_code)]

pub mod admission;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod engine;
pub mod inspector;
pub mod matching;
pub mod platform;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod server;
pub mod signature;
pub mod telemetry;
pub mod unwind;
