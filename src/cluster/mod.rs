//! Reads from the Kubernetes API: pull secrets, ServiceAccounts and the
//! architectures of Nodes. The one place imagegate talks to the API server; every
//! read is cached briefly and identical reads in flight are coalesced.

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

/// Cached reads from the Kubernetes API.
pub struct Cluster {
    client: kube::Client,
    secrets: Cache<(String, String), Option<Arc<DockerConfig>>>,
    service_accounts: Cache<(String, String), Arc<Vec<String>>>,
    nodes: Cache<(), Arc<BTreeSet<String>>>,
}

impl Cluster {
    /// `ttl`: how long a read is reused (secrets and ServiceAccounts; Nodes twice as long).
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Cluster {
            client,
            secrets: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            service_accounts: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            nodes: Cache::builder()
                .max_capacity(1)
                .time_to_live(ttl * 2)
                .build(),
        }
    }

    /// The docker config of a pull secret, or `None` when it does not exist or holds
    /// no `.dockerconfigjson` / `.dockercfg`.
    pub async fn pull_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<DockerConfig>>, ClusterError> {
        let key = (namespace.to_string(), name.to_string());
        let client = self.client.clone();
        self.secrets
            .try_get_with(key, async move {
                let what = format!("Secret \"{namespace}/{name}\"");
                let api: Api<Secret> = Api::namespaced(client, namespace);
                let secret = api.get_opt(name).await.map_err(|e| ClusterError {
                    what: what.clone(),
                    message: e.to_string(),
                })?;
                let Some(secret) = secret else {
                    return Ok(None);
                };
                // As the kubelet: `.dockerconfigjson` of a kubernetes.io/dockerconfigjson
                // Secret, `.dockercfg` of a kubernetes.io/dockercfg one, nothing else.
                let key = match secret.type_.as_deref() {
                    Some("kubernetes.io/dockerconfigjson") => ".dockerconfigjson",
                    Some("kubernetes.io/dockercfg") => ".dockercfg",
                    _ => return Ok(None),
                };
                let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
                    return Ok(None);
                };
                let config = parse_docker_config(&bytes.0).map_err(|e| ClusterError {
                    what,
                    message: e.to_string(),
                })?;
                Ok(Some(Arc::new(config)))
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
