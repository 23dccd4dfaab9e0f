//! Reads from the Kubernetes API: pull secrets, ServiceAccounts and Nodes. The one
//! place imagegate talks to the API server; every read is cached briefly (Secrets
//! and ServiceAccounts bounded in bytes: they come from users) and identical reads
//! in flight are coalesced.
//!
//! Nodes are listed in pages of [`NODE_PAGE`], and of each only what decides where a
//! pod can land is kept ([`crate::platform::Node`]: name, labels, `NoSchedule` and
//! `NoExecute` taints, the cordon), never its status or image list. The kept list
//! is bounded in bytes ([`NODE_BYTES`]): a cluster whose Nodes need more is an
//! error, and the architectures then come from the pod or the policy.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node as K8sNode, Secret, ServiceAccount};
use kube::Api;
use kube::api::ListParams;
use moka::future::Cache;

use crate::credentials::{DockerConfig, parse_docker_config};
use crate::platform::{Node, Taint, TaintEffect};
use crate::telemetry::{Fact, Telemetry};

/// Nodes asked for per list request.
pub const NODE_PAGE: u32 = 100;
/// The most memory the kept Node list may take (estimated, see
/// [`Node::weight`]): about 20,000 Nodes with ordinary labels.
pub const NODE_BYTES: usize = 16 << 20;
/// The most list pages read (an API server that keeps answering with a continue
/// token and no Nodes cannot keep imagegate reading).
const MAX_NODE_PAGES: usize = 1_000;

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
    nodes: Cache<(), Arc<Vec<Node>>>,
    node_bytes: usize,
    telemetry: Telemetry,
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
            node_bytes: NODE_BYTES,
            telemetry: Telemetry::default(),
        }
    }

    /// Counts cache hits and misses in `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Bounds the kept Node list to `bytes` (default [`NODE_BYTES`]).
    pub fn with_node_bytes(mut self, bytes: usize) -> Self {
        self.node_bytes = bytes;
        self
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
        let entry = self
            .secrets
            .entry(key)
            .or_try_insert_with(async move {
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
            .await;
        self.count(Fact::Secret, &entry);
        entry
            .map(|e| e.into_value())
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
        let entry = self
            .service_accounts
            .entry(key)
            .or_try_insert_with(async move {
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
            .await;
        self.count(Fact::ServiceAccount, &entry);
        entry
            .map(|e| e.into_value())
            .map_err(|e: Arc<ClusterError>| (*e).clone())
    }

    /// The cluster's Nodes, as much of each as decides where a pod can land.
    pub async fn nodes(&self) -> Result<Arc<Vec<Node>>, ClusterError> {
        let client = self.client.clone();
        let budget = self.node_bytes;
        let entry = self
            .nodes
            .entry(())
            .or_try_insert_with(async move { list_nodes(client, budget).await.map(Arc::new) })
            .await;
        self.count(Fact::Nodes, &entry);
        entry
            .map(|e| e.into_value())
            .map_err(|e: Arc<ClusterError>| (*e).clone())
    }

    fn count<V, E>(&self, fact: Fact, entry: &Result<moka::Entry<impl Sized, V>, E>) {
        let hit = entry.as_ref().is_ok_and(|e| !e.is_fresh());
        self.telemetry.cache(fact, hit);
    }
}

/// Lists every Node, page by page, keeping the compact form within `budget` bytes.
async fn list_nodes(client: kube::Client, budget: usize) -> Result<Vec<Node>, ClusterError> {
    let api: Api<K8sNode> = Api::all(client);
    let error = |message: String| ClusterError {
        what: "Nodes".into(),
        message,
    };
    let mut nodes = Vec::new();
    let mut bytes = 0usize;
    let mut token: Option<String> = None;
    for _ in 0..MAX_NODE_PAGES {
        let mut params = ListParams::default().limit(NODE_PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await.map_err(|e| error(e.to_string()))?;
        for node in page.items {
            let node = compact(node);
            bytes += node.weight();
            if bytes > budget {
                return Err(error(format!(
                    "the Nodes take more than {budget} bytes even with only their labels and taints kept; imagegate judges architectures from the pod or the policy instead"
                )));
            }
            nodes.push(node);
        }
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next),
            None => return Ok(nodes),
        }
    }
    Err(error(format!(
        "the Node list did not end after {MAX_NODE_PAGES} pages"
    )))
}

/// What imagegate keeps of a Node.
fn compact(node: K8sNode) -> Node {
    let spec = node.spec.unwrap_or_default();
    Node {
        name: node.metadata.name.unwrap_or_default(),
        labels: node.metadata.labels.unwrap_or_default(),
        taints: spec
            .taints
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| {
                Some(Taint {
                    effect: TaintEffect::parse(&t.effect)?,
                    key: t.key,
                    value: t.value.unwrap_or_default(),
                })
            })
            .collect(),
        unschedulable: spec.unschedulable.unwrap_or(false),
    }
}
