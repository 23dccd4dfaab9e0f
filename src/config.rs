//! The webhook's own configuration file (`serve --config`): how to reach
//! registries, where pull credentials come from, caching and the deadline.
//! Strict like the policy files: unknown fields are refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::inspector::InspectorConfig;
use crate::registry::{RegistryConfig, RegistrySettings};

/// `imagegate serve --config FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// Registries that need a CA bundle or plain HTTP.
    #[serde(default)]
    pub registries: Vec<RegistryEntry>,
    /// Pull secrets (`namespace/name`) tried for every pod after its own and its
    /// ServiceAccount's.
    #[serde(default)]
    pub pull_secrets: Vec<String>,
    /// A docker config file (`config.json`) tried last.
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
    /// Seconds an admission may spend on registry lookups; keep it below the
    /// webhook's `timeoutSeconds`. Default 8 (against the usual 10).
    #[serde(default)]
    pub deadline_seconds: Option<f64>,
    /// Seconds a tag's digest is trusted. Default 60.
    #[serde(default)]
    pub tag_ttl_seconds: Option<f64>,
    /// Seconds a failed lookup is remembered. Default 10.
    #[serde(default)]
    pub failure_ttl_seconds: Option<f64>,
    /// Seconds verified signatures of a digest are trusted before they are fetched
    /// and verified again. Default 300.
    #[serde(default)]
    pub signature_ttl_seconds: Option<f64>,
    /// Seconds a signature lookup that verified nothing, or failed, is remembered.
    /// Default 30.
    #[serde(default)]
    pub signature_failure_ttl_seconds: Option<f64>,
    /// Seconds Kubernetes reads (Secrets, ServiceAccounts) are reused; Nodes twice
    /// as long. Default 30.
    #[serde(default)]
    pub kubernetes_cache_seconds: Option<f64>,
    /// Concurrent requests per registry. Default 16.
    #[serde(default)]
    pub max_concurrent_per_registry: Option<usize>,
    /// Networks (CIDR, or one address) lookups may reach although a default
    /// refuses them (loopback, link-local, unspecified).
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Networks lookups may never reach (besides the defaults); beats
    /// `allowNetworks`. Registries listed in `registries` are let through.
    #[serde(default)]
    pub deny_networks: Vec<String>,
}

/// How to reach one registry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryEntry {
    /// `host[:port]` as in image references (`harbor.example.com`, `10.0.0.5:5000`).
    pub host: String,
    /// A PEM file with the CA certificates to trust for this registry.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Plain HTTP. Only for registries that serve no TLS.
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: u64,
        message: String,
    },
}

/// The settings `serve` runs with, derived from the file.
#[derive(Debug, Clone)]
pub struct Settings {
    pub registry: RegistryConfig,
    pub inspector: InspectorConfig,
    pub deadline: Duration,
    pub kubernetes_cache: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        WebhookConfig::default()
            .settings(Path::new("."))
            .expect("the default configuration is valid")
    }
}

impl WebhookConfig {
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let config: WebhookConfig =
            serde_saphyr::from_str(&text).map_err(|e| ConfigError::Invalid {
                path: path.display().to_string(),
                line: e.location().map_or(0, |l| l.line()),
                message: e.to_string().lines().next().unwrap_or_default().to_string(),
            })?;
        config.settings(path)
    }

    fn settings(self, path: &Path) -> Result<Settings, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            line: 0,
            message,
        };
        let mut registries = Vec::new();
        for r in self.registries {
            let ca_pem = match &r.ca_file {
                Some(file) => Some(std::fs::read(file).map_err(|e| ConfigError::Read {
                    path: file.display().to_string(),
                    message: e.to_string(),
                })?),
                None => None,
            };
            if r.host.contains("://") || r.host.contains('/') {
                return Err(invalid(format!(
                    "registries[].host takes host[:port], not a URL: {}",
                    r.host
                )));
            }
            // Named as image references name their registry, so that the two meet.
            let host = crate::reference::normalize_host(&r.host)
                .map_err(|e| invalid(format!("registries[].host {}: {e}", r.host)))?;
            registries.push(RegistrySettings {
                host,
                ca_pem,
                insecure: r.insecure,
            });
        }
        let mut pull_secrets = Vec::new();
        for s in self.pull_secrets {
            match s.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                    pull_secrets.push((ns.into(), name.into()))
                }
                _ => return Err(invalid(format!("pullSecrets takes namespace/name: {s}"))),
            }
        }
        let networks = |list: &[String], field: &str| -> Result<Vec<ipnet::IpNet>, ConfigError> {
            list.iter()
                .map(|n| {
                    n.parse::<ipnet::IpNet>()
                        .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map(|net| net.trunc())
                        .map_err(|_| {
                            invalid(format!(
                                "{field} takes CIDR networks such as 10.0.0.0/8 or fd00::/8: {n}"
                            ))
                        })
                })
                .collect()
        };
        let allow_networks = networks(&self.allow_networks, "allowNetworks")?;
        let deny_networks = networks(&self.deny_networks, "denyNetworks")?;
        let secs =
            |v: Option<f64>, default: f64| Duration::from_secs_f64(v.unwrap_or(default).max(0.0));
        let registry = RegistryConfig {
            registries,
            max_concurrent_per_registry: self.max_concurrent_per_registry.unwrap_or(16).max(1),
            allow_networks,
            deny_networks,
            ..RegistryConfig::default()
        };
        Ok(Settings {
            registry,
            inspector: InspectorConfig {
                tag_ttl: secs(self.tag_ttl_seconds, 60.0),
                failure_ttl: secs(self.failure_ttl_seconds, 10.0),
                pull_secrets,
                docker_config: self.docker_config,
                signature_ttl: secs(self.signature_ttl_seconds, 300.0),
                signature_failure_ttl: secs(self.signature_failure_ttl_seconds, 30.0),
            },
            deadline: secs(self.deadline_seconds, 8.0),
            kubernetes_cache: secs(self.kubernetes_cache_seconds, 30.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Settings, ConfigError> {
        let file = tempfile_path(text);
        let r = WebhookConfig::load(&file);
        let _ = std::fs::remove_file(&file);
        r
    }

    fn tempfile_path(text: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "imagegate-config-test-{}-{}.yaml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn networks_are_cidr_lists_or_single_addresses() {
        let s =
            load("allowNetworks: [\"127.0.0.0/8\", \"::1\"]\ndenyNetworks: [\"10.1.2.3/16\"]\n")
                .unwrap();
        let shown: Vec<String> = s
            .registry
            .allow_networks
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["127.0.0.0/8", "::1/128"]);
        assert_eq!(s.registry.deny_networks[0].to_string(), "10.1.0.0/16");
        assert!(Settings::default().registry.allow_networks.is_empty());
        for (text, fragment) in [
            (
                "allowNetworks: [\"localhost\"]\n",
                "allowNetworks takes CIDR networks",
            ),
            (
                "denyNetworks: [\"10.0.0.0/33\"]\n",
                "denyNetworks takes CIDR networks",
            ),
            ("allowNetwork: []\n", "unknown field"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(fragment), "{text}: {e}");
        }
    }
}
