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
//!
//! A change is judged only once it has held for two polls in a row: a file caught
//! half-written (an editor's, `cp`'s or a test's non-atomic write) is not refused
//! and counted as a failure, only to be taken a poll later. A reload so takes one
//! to two intervals; a file rewritten on every poll is never taken.

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
    let (mut policies_seen, mut material_seen, mut config_seen) =
        (Settle::default(), Settle::default(), Settle::default());
    let mut tick = tokio::time::interval(config.reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        reload_policies(&config, &state, &mut last_policies, &mut policies_seen);
        reload_certificate(
            &config,
            &state,
            &tls,
            &mut last_material,
            &mut material_seen,
        );
        if let Some(reload) = reload.as_mut() {
            reload_config(reload, &state, &mut config_seen);
        }
    }
}

/// What the previous poll saw of a changed file set, to tell a change that holds
/// from a write in progress.
#[derive(Debug)]
struct Settle<T>(Option<T>);

impl<T> Default for Settle<T> {
    fn default() -> Self {
        Settle(None)
    }
}

impl<T: PartialEq> Settle<T> {
    /// `Some` when `now` (which differs from the state in force) is what the
    /// previous poll saw too; otherwise it is remembered for the next poll.
    fn held(&mut self, now: T) -> Option<T> {
        if self.0.as_ref() == Some(&now) {
            self.0 = None;
            Some(now)
        } else {
            self.0 = Some(now);
            None
        }
    }

    /// The files are back to the state in force: nothing is pending.
    fn clear(&mut self) {
        self.0 = None;
    }
}

fn reload_config(reload: &mut ConfigReload, state: &AppState, seen: &mut Settle<FileSnapshot>) {
    let now = FileSnapshot::read(&reload.files);
    if now == reload.baseline {
        seen.clear();
        return;
    }
    let Some(now) = seen.held(now) else {
        return;
    };
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
fn reload_policies(
    config: &ServeConfig,
    state: &AppState,
    last: &mut Loaded,
    seen: &mut Settle<Loaded>,
) {
    let loaded = load_path(&config.policies);
    if loaded == *last {
        seen.clear();
        return;
    }
    let Some(loaded) = seen.held(loaded) else {
        return;
    };
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
    seen: &mut Settle<KeyMaterial>,
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
        seen.clear();
        return;
    }
    let Some(material) = seen.held(material) else {
        return;
    };
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
            // A cert and key written one after the other, more than a poll
            // apart, are briefly mismatched: the next change is tried again.
            tracing::error!(error = %e, "new certificate refused; keeping the current one");
            state.metrics.reload("certificate", false);
        }
    }
    *last = material;
}

#[cfg(test)]
mod tests {
    use super::Settle;

    /// Each row: what successive polls see of a changed file (`None`: the files
    /// are back to the state in force), and what is taken.
    #[test]
    fn a_change_is_taken_once_it_has_held_for_two_polls() {
        let table: &[(&[Option<&str>], &[&str])] = &[
            (&[Some("a"), Some("a")], &["a"]),
            // Caught half-written, then whole: only the whole file is judged.
            (&[Some("ha"), Some("half"), Some("half")], &["half"]),
            (&[Some("a"), Some("a"), Some("a"), Some("a")], &["a", "a"]),
            // Reverted before it held: nothing.
            (&[Some("a"), None, Some("a")], &[]),
            (&[Some("a"), Some("b"), Some("a"), Some("b")], &[]),
        ];
        for (polls, taken) in table {
            let mut seen = Settle::default();
            let mut got = Vec::new();
            for poll in *polls {
                match poll {
                    Some(now) => got.extend(seen.held(*now)),
                    None => seen.clear(),
                }
            }
            assert_eq!(got, *taken, "{polls:?}");
        }
    }
}
