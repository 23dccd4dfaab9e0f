//! Reloads of the policy files and the TLS certificate, without a restart.
//!
//! Files are polled rather than watched: a Kubernetes ConfigMap or Secret volume
//! swaps a symlink to a new directory, which inotify watchers on the old files miss.
//! An invalid change is logged and counted, and the last good state stays in force;
//! the new state is swapped in whole, so no request sees a half-loaded set. A
//! policy change that leaves no policy (an emptied or truncated file, a directory
//! with no policy file) is invalid: the policy set is never empty.

use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;

use super::tls::KeyMaterial;
use super::{AppState, ServeConfig};
use crate::policy::{PolicyErrors, PolicySet, PolicySource, load_path};

pub(super) async fn watch(
    config: ServeConfig,
    state: AppState,
    tls: RustlsConfig,
    material: KeyMaterial,
    compiled: Vec<PolicySource>,
) {
    let mut last_policies: Loaded = Ok(compiled);
    let mut last_material = material;
    let mut tick = tokio::time::interval(config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reload_policies(&config, &state, &mut last_policies);
        reload_certificate(&config, &state, &tls, &mut last_material);
    }
}

/// What the last poll read: the files' texts, or why they could not be read.
type Loaded = Result<Vec<PolicySource>, PolicyErrors>;

/// Reloads the policies when the files changed. Each change is judged once: a
/// refused change (unreadable, not UTF-8, empty, invalid) is logged and counted
/// once, not on every poll, and the last good set stays in force until a valid
/// change comes.
fn reload_policies(config: &ServeConfig, state: &AppState, last: &mut Loaded) {
    let loaded = load_path(&config.policies);
    if loaded == *last {
        return;
    }
    match &loaded {
        Err(errors) => {
            tracing::error!(errors = %errors, "policy files cannot be read; the last good policies stay in force");
            state.metrics.reload("policies", false);
        }
        Ok(sources) => match PolicySet::compile(sources) {
            Ok(set) => {
                tracing::info!(policies = set.policies.len(), "policies reloaded");
                state.policies.store(Arc::new(set));
                state.metrics.reload("policies", true);
            }
            Err(errors) => {
                tracing::error!(errors = %errors, "invalid policy change refused; the last good policies stay in force");
                state.metrics.reload("policies", false);
            }
        },
    }
    *last = loaded;
}

fn reload_certificate(
    config: &ServeConfig,
    state: &AppState,
    tls: &RustlsConfig,
    last: &mut KeyMaterial,
) {
    let material = match KeyMaterial::read(
        &config.tls_cert,
        &config.tls_key,
        config.client_ca.as_deref(),
    ) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "certificate cannot be read; keeping the current one");
            return;
        }
    };
    if material == *last {
        return;
    }
    match material.server_config(
        &config.tls_cert,
        &config.tls_key,
        config.client_ca.as_deref(),
    ) {
        Ok(server_config) => {
            tls.reload_from_config(server_config);
            tracing::info!("TLS certificate reloaded");
            state.metrics.reload("certificate", true);
        }
        Err(e) => {
            // A cert and key written one after the other are briefly mismatched:
            // the next poll tries again.
            tracing::error!(error = %e, "new certificate refused; keeping the current one");
            state.metrics.reload("certificate", false);
        }
    }
    *last = material;
}
