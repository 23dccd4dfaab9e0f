//! Test support shared by the integration tests that need a real OCI registry:
//! - [`registry`]: Debian's `docker-registry` (distribution 2.8.2) started on a free
//!   port with its own config, in plain HTTP, TLS, htpasswd or token-auth mode, and
//!   request counting from its JSON log;
//! - [`token`]: a Docker token server (ES256 JWTs) for the registry's token auth;
//! - [`images`]: real images (OCI or Docker media types, single or multi-platform,
//!   with buildx-like attestations) pushed with oci-client.
#![allow(dead_code)]

pub mod images;
pub mod kube;
pub mod registry;
pub mod token;
