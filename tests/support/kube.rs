//! A local stand-in for the Kubernetes API server: it serves the real JSON shapes
//! of Secrets, ServiceAccounts and Nodes (and 404 `Status` objects) on 127.0.0.1,
//! so that a real `kube::Client` can be pointed at it. It counts the requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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

    pub fn add_node(&self, name: &str, arch: &str) {
        let node = json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "55",
                "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": name}}
        });
        self.objects.lock().unwrap().nodes.push(node);
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

async fn secret(
    State(o): State<Arc<Mutex<Objects>>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
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
    let mut o = o.lock().unwrap();
    o.requests.push(format!(
        "GET /api/v1/namespaces/{ns}/serviceaccounts/{name}"
    ));
    match o.service_accounts.get(&(ns, name.clone())) {
        Some(s) => axum::Json(s.clone()).into_response(),
        None => not_found("serviceaccounts", &name),
    }
}

async fn nodes(State(o): State<Arc<Mutex<Objects>>>, headers: HeaderMap) -> Response {
    let mut o = o.lock().unwrap();
    o.requests.push("GET /api/v1/nodes".into());
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        accept.contains("as=PartialObjectMetadataList"),
        "imagegate lists Node metadata only: {accept}"
    );
    axum::Json(json!({
        "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "1234"},
        "items": o.nodes.clone()
    }))
    .into_response()
}
