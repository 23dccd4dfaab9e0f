//! The test harness: the real `imagegate` binary, started on a free port with a CA
//! the test generates, and an HTTPS client that trusts only that CA.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_imagegate");

/// Runs `imagegate certs` into `dir` for 127.0.0.1 and localhost.
pub fn generate_certs(dir: &Path) {
    let out = Command::new(BIN)
        .args([
            "certs",
            "--name",
            "127.0.0.1",
            "--name",
            "localhost",
            "--out-dir",
        ])
        .arg(dir)
        .output()
        .expect("run imagegate certs");
    assert!(
        out.status.success(),
        "imagegate certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = String::from_utf8(out.stdout).unwrap();
    assert!(bundle.trim().len() > 100, "certs prints the caBundle");
}

pub fn client_trusting(ca_pem: &[u8]) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).expect("CA PEM")])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A client trusting `ca_pem` that presents `identity_pem` (certificate and key),
/// when given.
pub fn client_with(ca_pem: &[u8], identity_pem: Option<&[u8]>) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem).expect("CA PEM")])
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity_pem {
        builder = builder.identity(reqwest::Identity::from_pem(pem).expect("identity PEM"));
    }
    builder.build().expect("client")
}

pub struct Imagegate {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    log: Arc<Mutex<String>>,
}

impl Imagegate {
    /// Starts imagegate with `policies` written as files into its policy directory,
    /// without Kubernetes API access.
    pub async fn start(policies: &[(&str, &str)]) -> Imagegate {
        Imagegate::start_with(policies, None, None).await
    }

    /// Starts imagegate with a webhook configuration file (`--config`) and a
    /// kubeconfig (`KUBECONFIG`), when given.
    pub async fn start_with(
        policies: &[(&str, &str)],
        config: Option<&str>,
        kubeconfig: Option<&Path>,
    ) -> Imagegate {
        Imagegate::launch(Launch {
            policies,
            config,
            kubeconfig,
            ..Launch::default()
        })
        .await
    }

    /// Like [`Imagegate::start_with`], with more `serve` arguments, and a client
    /// certificate (PEM: certificate and key) for the harness's HTTPS client.
    pub async fn start_custom(
        policies: &[(&str, &str)],
        config: Option<&str>,
        kubeconfig: Option<&Path>,
        extra_args: &[String],
        identity_pem: Option<&[u8]>,
    ) -> Imagegate {
        let args: Vec<&str> = extra_args.iter().map(String::as_str).collect();
        Imagegate::launch(Launch {
            policies,
            config,
            kubeconfig,
            args: &args,
            identity_pem,
            ..Launch::default()
        })
        .await
    }

    /// Starts the binary `launch.bin` (default: the one cargo built) as described.
    pub async fn launch(launch: Launch<'_>) -> Imagegate {
        let Launch {
            policies,
            config,
            kubeconfig,
            args,
            bin,
            identity_pem,
        } = launch;
        let dir = tempfile::tempdir().unwrap();
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir_all(&policy_dir).unwrap();
        for (name, text) in policies {
            std::fs::write(policy_dir.join(name), text).unwrap();
        }
        let tls = dir.path().join("tls");
        generate_certs(&tls);
        let mut command = Command::new(bin.unwrap_or(Path::new(BIN)));
        command.args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--reload-interval",
            "0.1",
        ]);
        command.args(args);
        if let Some(config) = config {
            let path = dir.path().join("imagegate.yaml");
            std::fs::write(&path, config).unwrap();
            command.arg("--config").arg(path);
        }
        match kubeconfig {
            Some(k) => command.env("KUBECONFIG", k),
            None => command.args(["--kubernetes", "false"]),
        };
        let mut child = command
            .arg("--policies")
            .arg(&policy_dir)
            .arg("--tls-cert")
            .arg(tls.join("tls.crt"))
            .arg("--tls-key")
            .arg(tls.join("tls.key"))
            .env("RUST_LOG", "info")
            // Short, so that terminating is quick; a test that needs a grace period
            // passes --shutdown-grace, which wins over the variable.
            .env("IMAGEGATE_SHUTDOWN_GRACE", "0.2")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn imagegate");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = v.get("addr").and_then(Value::as_str)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("imagegate did not start:\n{}", log.lock().unwrap());
            }
        };
        let ca = std::fs::read(tls.join("ca.crt")).unwrap();
        let ig = Imagegate {
            child,
            addr,
            dir,
            client: client_with(&ca, identity_pem),
            log,
        };
        let ready = ig
            .client
            .get(ig.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200);
        ig
    }

    /// The `--config` file it was started with (rewrite it to test a reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("imagegate.yaml")
    }

    /// Sends SIGTERM and returns at once.
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    /// The process id of the running binary.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CA that signed the serving certificate (PEM).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.tls_dir().join("ca.crt")).unwrap()
    }

    /// A JSON log field of the first line that has it (e.g. `health_addr`).
    pub async fn log_field(&self, field: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for line in self.log().lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line)
                    && let Some(value) = v.get(field).and_then(Value::as_str)
                {
                    return value.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {field} in the log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        resp.text().await.expect("metrics text")
    }

    /// POSTs `body` to `path`, returning the status and the body (JSON when it is).
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let resp = self
            .client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// POSTs an AdmissionReview and returns its `response`, checking the envelope.
    pub async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, 200, "{body}");
        let reply: Value = serde_json::from_str(&body).expect("JSON reply");
        assert_eq!(reply["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(reply["kind"], "AdmissionReview");
        let response = reply["response"].clone();
        assert_eq!(response["uid"], review["request"]["uid"], "uid echoed");
        if path == "/validate" {
            assert!(response.get("patch").is_none() && response.get("patchType").is_none());
        }
        if response["allowed"] == false {
            assert_eq!(response["status"]["code"], 403);
        }
        response
    }

    /// Waits until `GET /metrics` shows `line`, or panics after 10 s.
    pub async fn wait_for_metric(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut metrics = String::new();
        while Instant::now() < deadline {
            metrics = self.metrics().await;
            if metrics.lines().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "/metrics never showed {line:?}:\n{metrics}\nlog:\n{}",
            self.log()
        );
    }

    /// Replaces the policy file `name` with `bytes` at once (written to a hidden
    /// file, then renamed over it), as a ConfigMap volume swaps its files: the
    /// reloader sees the old content or the new, never a write in progress.
    pub fn replace_policy(&self, name: &str, bytes: &[u8]) {
        let tmp = self.policy_dir().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.policy_dir().join(name)).unwrap();
    }

    /// POSTs an AdmissionReview that imagegate must refuse in-band: checks HTTP 200,
    /// the echoed apiVersion and uid, `allowed: false` and `status.code`, and
    /// returns `status.message`.
    pub async fn refused(&self, path: &str, review: &Value, code: u16) -> String {
        let (status, body) = self.post(path, serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
        let reply: Value = serde_json::from_str(&body).expect("JSON reply");
        assert_eq!(reply["apiVersion"], review["apiVersion"], "{body}");
        assert_eq!(reply["kind"], "AdmissionReview");
        let response = &reply["response"];
        assert_eq!(response["uid"], review["request"]["uid"], "uid echoed");
        assert_eq!(response["allowed"], false, "{body}");
        assert_eq!(response["status"]["code"], code, "{body}");
        assert!(response.get("patch").is_none(), "{body}");
        response["status"]["message"]
            .as_str()
            .expect("a message")
            .to_string()
    }

    /// Waits until `cond` holds for the log, or panics after 10 s.
    pub async fn wait_for_log(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(what) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("log never showed {what:?}:\n{}", self.log());
    }

    /// Waits until `what` shows `n` times in the log, or panics after 10 s.
    pub async fn wait_for_log_count(&self, what: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().matches(what).count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("log never showed {what:?} {n} times:\n{}", self.log());
    }

    /// Sends SIGTERM and waits for the exit (asynchronously: the client's
    /// connections must keep answering while the server drains them).
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "imagegate did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How to start imagegate: policies, an optional `--config` text and kubeconfig,
/// more `serve` flags, another binary.
#[derive(Default)]
pub struct Launch<'a> {
    pub policies: &'a [(&'a str, &'a str)],
    pub config: Option<&'a str>,
    pub kubeconfig: Option<&'a Path>,
    pub args: &'a [&'a str],
    pub bin: Option<&'a Path>,
    /// A client certificate (PEM: certificate and key) for the harness's client.
    pub identity_pem: Option<&'a [u8]>,
}

impl Drop for Imagegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A policy document.
pub fn policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: imagegate.dev/v1alpha1\nkind: ImagePolicy\nmetadata:\n  name: {name}\nspec:\n{}",
        spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
    )
}

pub fn containers(images: &[(&str, &str)]) -> Value {
    Value::Array(
        images
            .iter()
            .map(|(n, i)| json!({"name": n, "image": i}))
            .collect(),
    )
}

pub fn pod_spec(images: &[(&str, &str)]) -> Value {
    json!({"containers": containers(images), "restartPolicy": "Always"})
}

/// An object of `kind` whose pod spec runs `images`.
pub fn object(kind: &str, name: &str, images: &[(&str, &str)]) -> Value {
    let spec = pod_spec(images);
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": spec});
    let (api_version, body) = match kind {
        "Pod" => ("v1", spec),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => (
            "apps/v1",
            json!({"selector": {"matchLabels": {"app": name}}, "template": template}),
        ),
        "ReplicationController" => (
            "v1",
            json!({"selector": {"app": name}, "template": template}),
        ),
        "Job" => ("batch/v1", json!({"template": template})),
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}),
        ),
        other => panic!("no fixture for {other}"),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "team"}, "spec": body})
}

/// An AdmissionReview for `object`, shaped like the API server's.
pub fn review(
    operation: &str,
    object: &Value,
    old: Option<&Value>,
    sub_resource: Option<&str>,
) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap();
    let resource = format!("{}s", kind.to_lowercase());
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", rand_u32(), rand_u32());
    let mut request = json!({
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"],
        "operation": operation,
        "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": false,
        "options": {"kind": if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }, "apiVersion": "meta.k8s.io/v1"}
    });
    if let Some(sub) = sub_resource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed) ^ std::process::id()
}
