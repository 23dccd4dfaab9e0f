//! Test support shared by the integration tests that need a real OCI registry:
//! - [`registry`]: Debian's `docker-registry` (distribution 2.8.2) started on a free
//!   port with its own config, in plain HTTP, TLS, htpasswd or token-auth mode, and
//!   request counting from its JSON log;
//! - [`referrers`]: a thin server answering the OCI referrers API in front of the
//!   registry (which lacks it) and proxying the rest;
//! - [`token`]: a Docker token server (ES256 JWTs) for the registry's token auth;
//! - [`cosign`]: signature material pushed next to images as cosign does;
//! - [`images`]: real images (OCI or Docker media types, single or multi-platform,
//!   with buildx-like attestations) pushed with oci-client;
//! - [`signer`]: the test signer of `src/signature/testing.rs` (keys, a Fulcio CA
//!   with SCTs, a CT log, Rekor logs, legacy layers and bundles), the same code the
//!   unit tests use, for signatures pushed next to images.
#![allow(dead_code)]

pub mod cosign;
pub mod images;
pub mod kube;
pub mod referrers;
pub mod registry;
#[path = "../../src/signature/testing.rs"]
pub mod signer;
pub mod token;
