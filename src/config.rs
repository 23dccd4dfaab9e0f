//! The webhook's own configuration file (`serve --config`): how to reach
//! registries, where pull credentials come from, which registries the nodes see
//! differently, caching and the deadline. Strict like the policy files: unknown
//! fields are refused. `serve` polls the file, its `caFile`s and its
//! `dockerConfig`, and reloads them like the policies (the last good configuration
//! stays in force when a change is invalid).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::credentials::RegistryPattern;
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
    /// Registries the nodes pull with credentials imagegate cannot see (a kubelet
    /// credential provider for ECR, GAR or ACR, the node's own `config.json`),
    /// written like `auths` keys (`*.dkr.ecr.*.amazonaws.com`, `harbor.example.com`,
    /// `harbor.example.com/team`). For them `unauthorized` and `manifest unknown`
    /// follow the policy's `onRegistryError`, with a message that says why.
    #[serde(default)]
    pub node_credentials: Vec<Spanned<String>>,
    /// Registries the nodes' container runtime pulls through a mirror (containerd
    /// `hosts.toml`), which may hold images or grant access the registry itself
    /// does not: the same as `nodeCredentials`, with its own message.
    #[serde(default)]
    pub mirrors: Vec<Spanned<String>>,
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
    /// The files these settings were read from: the configuration file, then the
    /// `caFile`s and the `dockerConfig` it names. A reload watches them.
    pub files: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        let mut settings = WebhookConfig::default()
            .settings(Path::new("."))
            .expect("the default configuration is valid");
        settings.files.clear();
        settings
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
        let mut ca_files = Vec::new();
        for r in self.registries {
            ca_files.push(r.ca_file.clone());
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
        let mut files = vec![path.to_path_buf()];
        files.extend(ca_files.into_iter().flatten());
        files.extend(self.docker_config.iter().cloned());
        let patterns = |field: &str, list: &[Spanned<String>]| {
            let mut out = Vec::new();
            for (i, p) in list.iter().enumerate() {
                match RegistryPattern::parse(&p.value) {
                    Some(pattern) => out.push(pattern),
                    None => {
                        return Err(ConfigError::Invalid {
                            path: path.display().to_string(),
                            line: p.referenced.line(),
                            message: format!(
                                "{field}[{i}]: `{}` is not a registry pattern: write a host, optionally with globs per label, a port and a path (`*.dkr.ecr.*.amazonaws.com`, `harbor.example.com:8443/team`)",
                                p.value
                            ),
                        });
                    }
                }
            }
            Ok(out)
        };
        let node_credentials = patterns("nodeCredentials", &self.node_credentials)?;
        let mirrors = patterns("mirrors", &self.mirrors)?;
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
                node_credentials,
                mirrors,
                signature_ttl: secs(self.signature_ttl_seconds, 300.0),
                signature_failure_ttl: secs(self.signature_failure_ttl_seconds, 30.0),
            },
            deadline: secs(self.deadline_seconds, 8.0),
            kubernetes_cache: secs(self.kubernetes_cache_seconds, 30.0),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Result<Settings, ConfigError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imagegate.yaml");
        std::fs::write(&path, text).unwrap();
        (WebhookConfig::load(&path), dir)
    }

    #[test]
    fn the_shipped_configuration_is_valid() {
        let manifest = include_str!("../deploy/configmap-config.yaml");
        let configmap: serde_json::Value = serde_saphyr::from_str(manifest).unwrap();
        let text = configmap["data"]["imagegate.yaml"].as_str().unwrap();
        let (settings, _dir) = load(text);
        let settings = settings.unwrap();
        assert_eq!(settings.deadline, Duration::from_secs(8));
        assert!(settings.inspector.node_credentials.is_empty());
    }

    #[test]
    fn node_credentials_and_mirrors_and_the_files_a_reload_watches() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not read as PEM here").unwrap();
        let text = format!(
            "registries:\n  - host: harbor.example.com\n    caFile: {}\ndockerConfig: /etc/docker/config.json\nnodeCredentials: [\"*.dkr.ecr.*.amazonaws.com\", harbor.example.com/team]\nmirrors: [docker.io]\n",
            ca.display()
        );
        let (settings, cfg) = load(&text);
        let settings = settings.unwrap();
        let sources: Vec<&str> = settings
            .inspector
            .node_credentials
            .iter()
            .map(|p| p.source())
            .collect();
        assert_eq!(
            sources,
            ["*.dkr.ecr.*.amazonaws.com", "harbor.example.com/team"]
        );
        assert!(settings.inspector.mirrors[0].matches("docker.io", "library/nginx"));
        assert_eq!(
            settings.files,
            [
                cfg.path().join("imagegate.yaml"),
                ca,
                PathBuf::from("/etc/docker/config.json")
            ]
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (
                "deadlineSeconds: 8\nnodeCredentials:\n  - ok.example.com\n  - \"localhost:abc\"\n",
                ":4: nodeCredentials[1]: `localhost:abc` is not a registry pattern",
            ),
            (
                "mirrors: [\"bad host\"]\n",
                ":1: mirrors[0]: `bad host` is not a registry pattern",
            ),
            (
                "nodeCredential: []\n",
                ":1: error: line 1 column 1: unknown field `nodeCredential`",
            ),
        ];
        for (text, want) in cases {
            let (result, _dir) = load(text);
            let err = result.unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    fn load_ok(text: &str) -> Result<Settings, ConfigError> {
        load(text).0
    }

    #[test]
    fn networks_are_cidr_lists_or_single_addresses() {
        let s =
            load_ok("allowNetworks: [\"127.0.0.0/8\", \"::1\"]\ndenyNetworks: [\"10.1.2.3/16\"]\n")
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
            let e = load_ok(text).unwrap_err().to_string();
            assert!(e.contains(fragment), "{text}: {e}");
        }
    }
}
