//! The bare server and the warm-path workload, shared by
//! `benches/admission_throughput.rs` (in-process, reqwest) and
//! `examples/bare_admission.rs` (a binary for `scripts/bench-h2load.sh`, h2load).
//!
//! The bare server is the baseline imagegate's `/validate` is measured against: the
//! same TLS and HTTP stack (axum + axum-server + rustls with the configuration
//! [`KeyMaterial::server_config`] builds, TCP_NODELAY, the same body limit), and a
//! handler that only parses the body into a `serde_json::Value` and answers a
//! fixed allow with the request's uid.
//!
//! The workload: three policies of a typical platform team ([`POLICIES`]) and a
//! Pod CREATE of about 5 KB with three containers that they allow, every rule
//! evaluated and none violated ([`admission_review`]).
//!
//! [`KeyMaterial::server_config`]: imagegate::server::tls::KeyMaterial::server_config

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use serde_json::{Value, json};

use imagegate::server::MAX_BODY_BYTES;

pub const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";
pub const DENIED_UID: &str = "0c7a2d3e-91b4-4f0e-8f4e-6d1c2b9a7e55";
/// The image of the denied variant's first container (`latest` is forbidden).
pub const DENIED_IMAGE: &str = "docker.io/library/nginx:latest";

pub const POLICIES: &str = r#"# Three policies of a typical platform team.
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: allowed-registries
spec:
  mode: Enforce
  excludeNamespaces: ["kube-system", "kube-public", "kube-node-lease", "imagegate"]
  registries:
    allow: ["harbor.example.com", "registry.k8s.io/**"]
  blockedImages:
    - "harbor.example.com/legacy/**"
    - "docker.io/library/vulnerable-image:*"
  message: "See https://wiki.example.com/images or ask #platform"
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: release-tags
spec:
  mode: Enforce
  namespaces: ["team-*", "prod-*"]
  images: ["harbor.example.com/**", "registry.k8s.io/**"]
  excludeImages: ["harbor.example.com/sandbox/**"]
  tags:
    forbid: ["latest", "*-dev", "*-SNAPSHOT"]
    allow: ['^v\d+\.\d+\.\d+$']
---
apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata:
  name: known-bad-images
spec:
  mode: Enforce
  excludeNamespaces: ["kube-system"]
  blockedImages:
    - "**/xmrig/**"
    - "docker.io/library/busybox:1.27*"
    - "harbor.example.com/team/app:v0.*"
  tags:
    forbid: ["*-rc*"]
"#;

/// The baseline: the same TLS and HTTP stack, a handler that only parses the body
/// as JSON and allows.
pub struct Bare {
    pub addr: SocketAddr,
    handle: Handle<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Bare {
    /// Serves on `listen` (port 0: any free port; see [`Bare::addr`]).
    pub async fn start(listen: SocketAddr, tls: Arc<rustls::ServerConfig>) -> Self {
        let listener = std::net::TcpListener::bind(listen)
            .unwrap_or_else(|e| panic!("the bare server cannot bind {listen}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("cannot make the bare server's listener non-blocking");
        let addr = listener
            .local_addr()
            .expect("the bare server's listener has no address");
        let app = Router::new()
            .route("/validate", post(bare_validate))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
        let handle = Handle::new();
        let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(tls))
            .acceptor(axum_server::accept::NoDelayAcceptor::new());
        let server = tokio::spawn(
            axum_server::from_tcp(listener)
                .expect("the bare server cannot use its listener")
                .acceptor(acceptor)
                .handle(handle.clone())
                .serve(app.into_make_service()),
        );
        Bare {
            addr,
            handle,
            server,
        }
    }

    pub async fn shutdown(self, drain: Duration) {
        self.handle.graceful_shutdown(Some(drain));
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("the bare server stopped with an error: {e}"),
            Err(e) => eprintln!("the bare server task failed: {e}"),
        }
    }
}

async fn bare_validate(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(review) => {
            let uid = review.pointer("/request/uid").cloned().unwrap_or_default();
            Json(json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": true},
            }))
            .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// A Pod CREATE as the API server sends it for a Deployment's ReplicaSet: labels,
/// annotations, an owner, managed fields, three containers and the usual spec bulk.
/// `first_image` replaces the first container's image (for the denied variant).
/// About 5 KB as JSON.
pub fn admission_review(uid: &str, first_image: Option<&str>) -> Value {
    // Tags only: a tag beside a digest counts only when preflight checks it in the
    // registry, and this bench has none.
    let app = first_image.unwrap_or("harbor.example.com/team/app:v1.2.3");
    let proxy = "harbor.example.com/mirror/envoy:v1.30.2";
    let sync = "registry.k8s.io/git-sync/git-sync:v4.2.3";
    let namespace = "team-payments";
    let metadata = json!({
        "generateName": "checkout-7d4b9c8f6d-",
        "namespace": namespace,
        "uid": "b1f0e2c4-8a7d-4e3f-9c2b-5a6d7e8f9a0b",
        "creationTimestamp": "2025-06-12T09:41:07Z",
        "labels": {
            "app.kubernetes.io/name": "checkout",
            "app.kubernetes.io/instance": "checkout-prod",
            "app.kubernetes.io/version": "1.2.3",
            "app.kubernetes.io/component": "api",
            "app.kubernetes.io/part-of": "payments",
            "app.kubernetes.io/managed-by": "Helm",
            "pod-template-hash": "7d4b9c8f6d",
            "team": "payments"
        },
        "annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-06-12T09:40:55Z",
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9090",
            "prometheus.io/path": "/metrics"
        },
        "ownerReferences": [{
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "checkout-7d4b9c8f6d",
            "uid": "e3a1b2c4-d5e6-47f8-9a0b-1c2d3e4f5a6b",
            "controller": true,
            "blockOwnerDeletion": true
        }],
        "managedFields": [{
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-06-12T09:41:07Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": {".": {}, "f:kubectl.kubernetes.io/restartedAt": {}, "f:prometheus.io/path": {}, "f:prometheus.io/port": {}, "f:prometheus.io/scrape": {}},
                    "f:generateName": {},
                    "f:labels": {".": {}, "f:app.kubernetes.io/component": {}, "f:app.kubernetes.io/instance": {}, "f:app.kubernetes.io/name": {}, "f:pod-template-hash": {}, "f:team": {}},
                    "f:ownerReferences": {".": {}, "k:{\"uid\":\"e3a1b2c4-d5e6-47f8-9a0b-1c2d3e4f5a6b\"}": {}}
                }
            }
        }]
    });
    let spec = json!({
        "volumes": [
            {"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
            {"name": "repo", "emptyDir": {}},
            {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
            ]}}
        ],
        "containers": [
            {
                "name": "app",
                "image": app,
                "args": ["--config=/etc/checkout/config.yaml", "--listen=:8080"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "LOG_LEVEL", "value": "info"}
                ],
                "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}},
                "volumeMounts": [
                    {"name": "config", "readOnly": true, "mountPath": "/etc/checkout"},
                    {"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
                ],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
            },
            {
                "name": "envoy",
                "image": proxy,
                "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
                "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}],
                "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            },
            {
                "name": "git-sync",
                "image": sync,
                "args": ["--repo=https://git.example.com/payments/checkout-config", "--period=60s", "--root=/repo"],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                "volumeMounts": [{"name": "repo", "mountPath": "/repo"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "checkout",
        "serviceAccount": "checkout",
        "securityContext": {"runAsUser": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    });
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "5d6c3b1e-2f4a-4c8e-9b7d-1a2b3c4d5e6f",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": metadata,
                "spec": spec,
                "status": {}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The warm-path body: [`admission_review`] with [`UID`], allowed, as JSON bytes.
pub fn allowed_body() -> Vec<u8> {
    serde_json::to_vec(&admission_review(UID, None)).expect("the review serializes")
}

/// The same review with [`DENIED_IMAGE`] first and [`DENIED_UID`]: imagegate denies it.
pub fn denied_body() -> Vec<u8> {
    serde_json::to_vec(&admission_review(DENIED_UID, Some(DENIED_IMAGE)))
        .expect("the review serializes")
}
