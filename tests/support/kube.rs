//! A local stand-in for the Kubernetes API server: it serves the real JSON shapes
//! of Secrets, ServiceAccounts and Nodes (and 404 `Status` objects) on 127.0.0.1,
//! so that a real `kube::Client` can be pointed at it. It counts the requests.
//!
//! Node lists are paged as the API server pages them (`limit`, `continue`), and
//! Nodes carry what real ones carry (status, conditions, an image list), so that a
//! test can check imagegate keeps only what it needs. A delay can be set on every
//! answer, to play a slow API server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

#[derive(Default)]
struct Objects {
    secrets: BTreeMap<(String, String), Value>,
    service_accounts: BTreeMap<(String, String), Value>,
    nodes: Vec<Value>,
    requests: Vec<String>,
    delay: Duration,
    node_delay: Duration,
}

#[derive(Clone)]
pub struct FakeApiServer {
    objects: Arc<Mutex<Objects>>,
    pub addr: std::net::SocketAddr,
    _server: Arc<tokio::task::JoinHandle<()>>,
}

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        let objects = Arc::new(Mutex::new(Objects::default()));
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/secrets/{name}", get(secret))
            .route(
                "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
                get(service_account),
            )
            .route("/api/v1/nodes", get(nodes))
            .with_state(objects.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeApiServer {
            objects,
            addr,
            _server: Arc::new(server),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube Client for this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// A kubeconfig file for this server (for the binary's `KUBECONFIG`).
    pub fn kubeconfig(&self, path: &std::path::Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: not-a-real-token\n",
            self.url()
        );
        std::fs::write(path, text).unwrap();
    }

    /// A `kubernetes.io/dockerconfigjson` Secret.
    pub fn add_pull_secret(&self, namespace: &str, name: &str, dockerconfigjson: &Value) {
        let data = base64::engine::general_purpose::STANDARD.encode(dockerconfigjson.to_string());
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "resourceVersion": "101",
                         "creationTimestamp": "2026-11-01T10:00:00Z"},
            "data": {".dockerconfigjson": data}
        });
        self.objects
            .lock()
            .unwrap()
            .secrets
            .insert((namespace.into(), name.into()), secret);
    }

    /// An Opaque Secret (not a pull secret).
    pub fn add_opaque_secret(&self, namespace: &str, name: &str) {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace}, "data": {"password": "c2VjcmV0"}});
        self.objects
            .lock()
            .unwrap()
            .secrets
            .insert((namespace.into(), name.into()), secret);
    }

    /// A Secret of any `type_` with `data` (each value base64-encoded here).
    pub fn add_secret(&self, namespace: &str, name: &str, type_: &str, data: &[(&str, &[u8])]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                let v = base64::engine::general_purpose::STANDARD.encode(v);
                (k.to_string(), Value::String(v))
            })
            .collect();
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"), "resourceVersion": "102"},
            "data": data});
        self.objects
            .lock()
            .unwrap()
            .secrets
            .insert((namespace.into(), name.into()), secret);
    }

    pub fn add_service_account(&self, namespace: &str, name: &str, pull_secrets: &[&str]) {
        let sa = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-sa-{name}"), "resourceVersion": "7"},
            "imagePullSecrets": pull_secrets.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()
        });
        self.objects
            .lock()
            .unwrap()
            .service_accounts
            .insert((namespace.into(), name.into()), sa);
    }

    /// A ready, schedulable, untainted Linux Node.
    pub fn add_node(&self, name: &str, arch: &str) {
        self.add_node_object(node(name, arch, "linux"));
    }

    /// A Node object as given (see [`node`] for a realistic one to start from).
    pub fn add_node_object(&self, node: Value) {
        self.objects.lock().unwrap().nodes.push(node);
    }

    /// Every answer waits this long first (a slow API server).
    pub fn set_delay(&self, delay: Duration) {
        self.objects.lock().unwrap().delay = delay;
    }

    /// Node lists wait this long (on top of [`FakeApiServer::set_delay`]).
    pub fn set_node_delay(&self, delay: Duration) {
        self.objects.lock().unwrap().node_delay = delay;
    }

    /// Requests served, as `GET /path`.
    pub fn requests(&self) -> Vec<String> {
        self.objects.lock().unwrap().requests.clone()
    }

    pub fn count(&self, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.contains(path_contains))
            .count()
    }
}

fn not_found(kind: &str, name: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound",
        "details": {"name": name, "kind": kind}, "code": 404});
    (StatusCode::NOT_FOUND, axum::Json(status)).into_response()
}

/// A Node as the API server returns it: labels, spec, and a status with
/// conditions, capacity and the images on it (which imagegate must not keep).
pub fn node(name: &str, arch: &str, os: &str) -> Value {
    let images: Vec<Value> = (0..40)
        .map(|i| json!({"names": [format!("registry.example.com/team/image-{i}@sha256:{:064x}", i), format!("registry.example.com/team/image-{i}:v{i}")], "sizeBytes": 12_345_678 + i}))
        .collect();
    json!({
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "55",
            "creationTimestamp": "2026-11-01T10:00:00Z",
            "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": os, "kubernetes.io/hostname": name,
                       "beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": os},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "providerID": format!("kind://docker/kind/{name}")},
        "status": {
            "capacity": {"cpu": "8", "memory": "32817852Ki", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32715452Ki", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-01T10:05:00Z",
                "lastTransitionTime": "2026-11-01T10:00:30Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.33.1", "kubeProxyVersion": "v1.33.1",
                "operatingSystem": os, "architecture": arch},
            "images": images
        }
    })
}

#[derive(serde::Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

async fn delay(o: &Arc<Mutex<Objects>>) {
    let delay = o.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

async fn secret(
    State(o): State<Arc<Mutex<Objects>>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    delay(&o).await;
    let mut o = o.lock().unwrap();
    o.requests
        .push(format!("GET /api/v1/namespaces/{ns}/secrets/{name}"));
    match o.secrets.get(&(ns, name.clone())) {
        Some(s) => axum::Json(s.clone()).into_response(),
        None => not_found("secrets", &name),
    }
}

async fn service_account(
    State(o): State<Arc<Mutex<Objects>>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    delay(&o).await;
    let mut o = o.lock().unwrap();
    o.requests.push(format!(
        "GET /api/v1/namespaces/{ns}/serviceaccounts/{name}"
    ));
    match o.service_accounts.get(&(ns, name.clone())) {
        Some(s) => axum::Json(s.clone()).into_response(),
        None => not_found("serviceaccounts", &name),
    }
}

async fn nodes(State(o): State<Arc<Mutex<Objects>>>, Query(q): Query<ListQuery>) -> Response {
    delay(&o).await;
    let node_delay = o.lock().unwrap().node_delay;
    tokio::time::sleep(node_delay).await;
    let mut o = o.lock().unwrap();
    let start: usize = q.continue_.as_deref().map_or(0, |c| c.parse().unwrap());
    o.requests.push(format!(
        "GET /api/v1/nodes?limit={}&continue={start}",
        q.limit.unwrap_or(0)
    ));
    let end = match q.limit {
        Some(limit) if limit > 0 => (start + limit).min(o.nodes.len()),
        _ => o.nodes.len(),
    };
    let mut metadata = json!({"resourceVersion": "1234"});
    if end < o.nodes.len() {
        metadata["continue"] = json!(end.to_string());
        metadata["remainingItemCount"] = json!(o.nodes.len() - end);
    }
    axum::Json(json!({
        "kind": "NodeList", "apiVersion": "v1",
        "metadata": metadata,
        "items": o.nodes[start..end].to_vec()
    }))
    .into_response()
}
