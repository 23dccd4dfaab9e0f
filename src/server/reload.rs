//! Reloads of the policy files, the TLS certificate and the webhook configuration
//! (`--config`, its `caFile`s and `dockerConfig`), without a restart.
//!
//! Files are polled rather than watched: a Kubernetes ConfigMap or Secret volume
//! swaps a symlink to a new directory, which inotify watchers on the old files miss.
//! An invalid change is logged and counted, and the last good state stays in force;
//! the new state is swapped in whole, so no request sees a half-loaded set. A new
//! configuration brings new clients and empty caches (a cached failure may have
//! come from the old CA bundle); requests in flight finish with the old ones.
//! A policy change that leaves no policy (an emptied or truncated file, a directory
//! with no policy file) is invalid: the policy set is never empty.

use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;

use super::tls::KeyMaterial;
use super::{AppState, ConfigReload, FileSnapshot, ServeConfig};
use crate::policy::{PolicyErrors, PolicySet, PolicySource, load_path};

pub(super) async fn watch(
    config: ServeConfig,
    state: AppState,
    tls: RustlsConfig,
    material: KeyMaterial,
    compiled: Vec<PolicySource>,
    mut reload: Option<ConfigReload>,
) {
    let mut last_policies: Loaded = Ok(compiled);
    let mut last_material = material;
    let mut tick = tokio::time::interval(config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reload_policies(&config, &state, &mut last_policies);
        reload_certificate(&config, &state, &tls, &mut last_material);
        if let Some(reload) = reload.as_mut() {
            reload_config(reload, &state);
        }
    }
}

fn reload_config(reload: &mut ConfigReload, state: &AppState) {
    let now = FileSnapshot::read(&reload.files);
    if now == reload.baseline {
        return;
    }
    match (reload.build)(&reload.path) {
        Ok((lookups, files)) => {
            tracing::info!(
                path = %reload.path.display(),
                deadline_seconds = lookups.deadline.as_secs_f64(),
                "configuration reloaded"
            );
            state.lookups.store(Arc::new(lookups));
            state.metrics.reload("config", true);
            // A file the new configuration names for the first time is read now.
            reload.baseline = if files == reload.files {
                now
            } else {
                FileSnapshot::read(&files)
            };
            reload.files = files;
        }
        Err(e) => {
            tracing::error!(path = %reload.path.display(), error = %e, "invalid configuration change refused; the last good configuration stays in force");
            state.metrics.reload("config", false);
            reload.baseline = now;
        }
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
                state.metrics.policies_loaded(sources);
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
            state.metrics.certificate(&material.cert);
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
