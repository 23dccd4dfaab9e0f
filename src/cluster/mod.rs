//! Reads from the Kubernetes API: pull secrets, ServiceAccounts and the
//! architectures of Nodes. The one place imagegate talks to the API server; every
//! read is cached briefly (Secrets and ServiceAccounts bounded in bytes: they come
//! from users) and identical reads in flight are coalesced.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Secret, ServiceAccount};
use kube::Api;
use kube::api::ListParams;
use moka::future::Cache;

use crate::credentials::{DockerConfig, parse_docker_config};

use crate::platform::ARCH_LABEL;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {what}: {message}")]
pub struct ClusterError {
    pub what: String,
    pub message: String,
}

/// A Secret as the kubelet reads it for image pulls. Never logged: `Debug` of the
/// docker config redacts passwords.
#[derive(Debug, Clone)]
pub enum PullSecret {
    /// No Secret of that name in the namespace.
    Missing,
    /// A Secret of another type (as found; empty when it has none): the kubelet
    /// ignores it for pulls.
    WrongType(String),
    /// Of a docker-config type, but without a usable docker config (why; never the
    /// contents).
    Invalid(String),
    /// The docker config it holds.
    Config(Arc<DockerConfig>),
}

impl PullSecret {
    /// Roughly the bytes it holds, for the cache's bound.
    fn weight(&self) -> u32 {
        let bytes = match self {
            PullSecret::Missing => 0,
            PullSecret::WrongType(t) | PullSecret::Invalid(t) => t.len(),
            PullSecret::Config(c) => c
                .entries()
                .iter()
                .map(|e| e.key.len() + e.username.len() + e.password.len() + 64)
                .sum(),
        };
        u32::try_from(bytes + 128).unwrap_or(u32::MAX)
    }
}

/// The bytes of Secrets kept in the cache: Secrets come from users and may be
/// large (the API server takes up to 1 MiB each).
const SECRET_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// The bytes of ServiceAccount pull secret lists kept in the cache.
const SERVICE_ACCOUNT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Cached reads from the Kubernetes API.
pub struct Cluster {
    client: kube::Client,
    secrets: Cache<(String, String), PullSecret>,
    service_accounts: Cache<(String, String), Arc<Vec<String>>>,
    nodes: Cache<(), Arc<BTreeSet<String>>>,
}

impl Cluster {
    /// `ttl`: how long a read is reused (secrets and ServiceAccounts; Nodes twice as long).
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Cluster {
            client,
            secrets: Cache::builder()
                .max_capacity(SECRET_CACHE_BYTES)
                .weigher(|(ns, name): &(String, String), s: &PullSecret| {
                    s.weight()
                        .saturating_add(u32::try_from(ns.len() + name.len()).unwrap_or(u32::MAX))
                })
                .time_to_live(ttl)
                .build(),
            service_accounts: Cache::builder()
                .max_capacity(SERVICE_ACCOUNT_CACHE_BYTES)
                .weigher(|(ns, name): &(String, String), names: &Arc<Vec<String>>| {
                    let bytes =
                        ns.len() + name.len() + names.iter().map(|n| n.len() + 24).sum::<usize>();
                    u32::try_from(bytes + 64).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
            nodes: Cache::builder()
                .max_capacity(1)
                .time_to_live(ttl * 2)
                .build(),
        }
    }

    /// The docker config of a pull secret, or `None` when it does not exist or is
    /// not of a docker-config type; an error when it cannot be read or parsed.
    pub async fn pull_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<DockerConfig>>, ClusterError> {
        match self.read_pull_secret(namespace, name).await? {
            PullSecret::Config(config) => Ok(Some(config)),
            PullSecret::Missing | PullSecret::WrongType(_) => Ok(None),
            PullSecret::Invalid(message) => Err(ClusterError {
                what: format!("Secret \"{namespace}/{name}\""),
                message,
            }),
        }
    }

    /// A Secret as the kubelet reads it for pulls: `.dockerconfigjson` of a
    /// `kubernetes.io/dockerconfigjson` Secret, `.dockercfg` of a
    /// `kubernetes.io/dockercfg` one, nothing else.
    pub async fn read_pull_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PullSecret, ClusterError> {
        let key = (namespace.to_string(), name.to_string());
        let client = self.client.clone();
        self.secrets
            .try_get_with(key, async move {
                let api: Api<Secret> = Api::namespaced(client, namespace);
                let secret = api.get_opt(name).await.map_err(|e| ClusterError {
                    what: format!("Secret \"{namespace}/{name}\""),
                    message: e.to_string(),
                })?;
                let Some(secret) = secret else {
                    return Ok(PullSecret::Missing);
                };
                let key = match secret.type_.as_deref() {
                    Some("kubernetes.io/dockerconfigjson") => ".dockerconfigjson",
                    Some("kubernetes.io/dockercfg") => ".dockercfg",
                    other => {
                        let t: String = other.unwrap_or_default().chars().take(100).collect();
                        return Ok(PullSecret::WrongType(t));
                    }
                };
                let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
                    return Ok(PullSecret::Invalid(format!("it has no `{key}` data")));
                };
                Ok(match parse_docker_config(&bytes.0) {
                    Ok(config) => PullSecret::Config(Arc::new(config)),
                    Err(e) => PullSecret::Invalid(e.to_string()),
                })
            })
            .await
            .map_err(|e: Arc<ClusterError>| (*e).clone())
    }

    /// The names in a ServiceAccount's `imagePullSecrets` (empty when it does not exist).
    pub async fn service_account_pull_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Vec<String>>, ClusterError> {
        let key = (namespace.to_string(), name.to_string());
        let client = self.client.clone();
        self.service_accounts
            .try_get_with(key, async move {
                let api: Api<ServiceAccount> = Api::namespaced(client, namespace);
                let sa = api.get_opt(name).await.map_err(|e| ClusterError {
                    what: format!("ServiceAccount \"{namespace}/{name}\""),
                    message: e.to_string(),
                })?;
                let names = sa
                    .and_then(|sa| sa.image_pull_secrets)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name)
                    .filter(|n| !n.is_empty())
                    .collect();
                Ok(Arc::new(names))
            })
            .await
            .map_err(|e: Arc<ClusterError>| (*e).clone())
    }

    /// The `kubernetes.io/arch` values of the cluster's Nodes (metadata only).
    pub async fn node_architectures(&self) -> Result<Arc<BTreeSet<String>>, ClusterError> {
        let client = self.client.clone();
        self.nodes
            .try_get_with((), async move {
                let api: Api<Node> = Api::all(client);
                let nodes = api
                    .list_metadata(&ListParams::default())
                    .await
                    .map_err(|e| ClusterError {
                        what: "Nodes".into(),
                        message: e.to_string(),
                    })?;
                let archs = nodes
                    .items
                    .iter()
                    .filter_map(|n| n.metadata.labels.as_ref()?.get(ARCH_LABEL).cloned())
                    .collect();
                Ok(Arc::new(archs))
            })
            .await
            .map_err(|e: Arc<ClusterError>| (*e).clone())
    }
}
