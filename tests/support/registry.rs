//! A real registry for tests: Debian's `docker-registry` (distribution 2.8.2),
//! started on 127.0.0.1 (or `[::1]`, [`Registry::start_ipv6`]) with its own generated
//! config in a temporary directory (never the packaged service or
//! `/etc/docker/registry`).
//!
//! Request counting: the registry writes one JSON log line (or more) per request to
//! its stderr, with `http.request.id`, `http.request.method`, `http.request.uri`
//! and, on most, `http.response.status`. Stderr goes to a file in the temporary
//! directory, and [`Registry::requests`] reads that file on every call: one
//! [`LoggedRequest`] per distinct request id, in the order the registry logged them.
//!
//! Ordering: distribution logs a request from inside its handler, before the handler
//! returns, and Go's HTTP servers (HTTP/1.1 and HTTP/2) only send a small response
//! (anything under about 4 KiB: manifests, HEADs, errors, 401s) when the handler
//! returns. The write to the file is a plain `write(2)`, so by the time a client has
//! such a response, its log line is in the file: counting right after the call is
//! race-free. Responses bigger than the buffer (large blobs) are streamed while the
//! handler runs, so their line may come a moment after the client is done: use
//! [`Registry::wait_for_count`] for those.
//!
//! What is not counted: requests that never reach distribution's dispatcher, that is
//! paths outside its API (`GET /nothing` answers "404 page not found" without a JSON
//! line). They are in the access log (stdout, Apache combined format, see
//! [`Registry::access_log`]). Everything under `/v2/` is counted, including 401s
//! (logged as "error authorizing context") and 404s ("response completed with error").

use std::collections::HashMap;
use std::fs::File;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The registry binary; `IMAGEGATE_TEST_REGISTRY` overrides it.
pub const DEFAULT_REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long to wait for `GET /v2/` to answer after starting the binary.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many ports to try when the registry cannot bind the one picked.
const BIND_ATTEMPTS: usize = 3;

/// What kind of registry to start.
#[derive(Clone, Debug)]
pub enum Kind {
    /// Plain HTTP, no authentication.
    Plain,
    /// HTTPS with a CA the harness generates: the leaf is valid for the IP addresses
    /// `127.0.0.1` and `::1` and the DNS name `localhost`.
    Tls,
    /// HTTPS whose leaf is valid for `localhost` only: reaching it as `127.0.0.1`
    /// fails with a name mismatch (rustls `NotValidForName`).
    TlsWithoutIpSan,
    /// TLS plus HTTP basic authentication from a bcrypt htpasswd file.
    Htpasswd { user: String, password: String },
    /// TLS plus token authentication: `realm` is the token server's URL, tokens must
    /// be issued by `issuer` for `service` and signed by the key of one of the
    /// certificates in `root_cert_pem` (see [`crate::support::token::TokenServer::kind`]).
    Token {
        realm: String,
        service: String,
        issuer: String,
        root_cert_pem: String,
    },
}

impl Kind {
    pub fn htpasswd(user: &str, password: &str) -> Kind {
        Kind::Htpasswd {
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// Whether the registry speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Kind::Plain)
    }
}

/// One request, as the registry logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `http.request.id`
    pub id: String,
    /// `http.request.method`, e.g. `HEAD`
    pub method: String,
    /// `http.request.uri`: the path with its query string, e.g. `/v2/a/b/manifests/v1`
    pub uri: String,
    /// `http.response.status`, when a line of this request has it (401s have none).
    pub status: Option<u16>,
    /// `msg` of the first line of this request (e.g. "response completed").
    pub msg: String,
}

/// A running registry; the process is killed on drop.
pub struct Registry {
    child: Child,
    kind: Kind,
    /// The loopback address it listens on.
    ip: IpAddr,
    port: u16,
    ca_pem: Option<String>,
    dir: tempfile::TempDir,
    /// Requests before this index are hidden by [`Registry::reset_counts`].
    offset: AtomicUsize,
}

/// Installs aws-lc-rs as the process-wide rustls provider (once; later calls are
/// no-ops). reqwest and oci-client need it because two providers are linked in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl Registry {
    /// Starts a registry of `kind` and waits until `GET /v2/` answers (200 or 401).
    /// Panics, with the registry's output, if it does not within 10 s.
    pub async fn start(kind: Kind) -> Registry {
        Registry::start_on(kind, IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    /// Like [`Registry::start`], listening on the IPv6 loopback `[::1]` only: image
    /// references name it `[::1]:PORT/...`.
    pub async fn start_ipv6(kind: Kind) -> Registry {
        Registry::start_on(kind, IpAddr::V6(Ipv6Addr::LOCALHOST)).await
    }

    async fn start_on(kind: Kind, ip: IpAddr) -> Registry {
        install_crypto_provider();
        let bin = std::env::var("IMAGEGATE_TEST_REGISTRY")
            .unwrap_or_else(|_| DEFAULT_REGISTRY_BIN.to_string());
        assert!(
            Path::new(&bin).exists(),
            "{bin} is missing: install Debian's docker-registry (scripts/test.sh does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("imagegate-registry-")
            .tempdir()
            .expect("temporary directory");
        let ca_pem = write_static_files(&kind, dir.path());

        for attempt in 1..=BIND_ATTEMPTS {
            let port = free_port(ip);
            let config = config(&kind, dir.path(), SocketAddr::new(ip, port));
            let config_path = dir.path().join("config.yml");
            std::fs::write(
                &config_path,
                serde_json::to_string_pretty(&config).expect("config"),
            )
            .expect("write config");

            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .arg(&config_path)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(File::create(dir.path().join("stdout.log")).expect("stdout.log"))
                .stderr(File::create(dir.path().join("stderr.log")).expect("stderr.log"));
            // The registry lets REGISTRY_* variables override its config file.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(name);
                }
            }
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
            let addr = SocketAddr::new(ip, port);
            match wait_ready(&mut child, &kind, addr, ca_pem.as_deref(), dir.path()).await {
                Ok(()) => {
                    let registry = Registry {
                        child,
                        kind,
                        ip,
                        port,
                        ca_pem,
                        dir,
                        offset: AtomicUsize::new(0),
                    };
                    // The readiness probes are not the test's requests.
                    registry.reset_counts();
                    return registry;
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    match e {
                        // Someone took the port between our probe and the registry's bind.
                        Exited(logs)
                            if attempt < BIND_ATTEMPTS
                                && logs.contains("address already in use") => {}
                        Exited(logs) => panic!("the registry exited at start:\n{logs}"),
                        TimedOut(logs) => panic!(
                            "the registry did not answer GET /v2/ within {READY_TIMEOUT:?}:\n{logs}"
                        ),
                    }
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The kind this registry was started with.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// `127.0.0.1:PORT` (or `[::1]:PORT`), the registry part of image references.
    pub fn host(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.kind.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `127.0.0.1:PORT/<repository_and_tag>`.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.host())
    }

    /// The PEM of the CA that signed the registry's certificate (TLS kinds).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The temporary directory with the config, storage, certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A reqwest client for this registry: trusts only the test CA for TLS kinds,
    /// 10 s timeout. It sends `Accept: */*` unless a request sets another Accept.
    pub fn http_client(&self) -> reqwest::Client {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = &self.ca_pem {
            builder = builder
                .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM")]);
        }
        builder.build().expect("reqwest client")
    }

    /// Every request logged since the last [`Registry::reset_counts`] (or the start),
    /// as (method, uri).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.logged_requests()
            .into_iter()
            .map(|r| (r.method, r.uri))
            .collect()
    }

    /// Like [`Registry::requests`], with request ids, statuses and messages.
    pub fn logged_requests(&self) -> Vec<LoggedRequest> {
        let all = self.all_requests();
        let offset = self.offset.load(Ordering::SeqCst).min(all.len());
        all[offset..].to_vec()
    }

    /// How many requests with `method` (case-insensitive) and a URI containing
    /// `path_contains` were logged since the last reset.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.logged_requests()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.uri.contains(path_contains))
            .count()
    }

    /// Forgets the requests logged so far for [`Registry::requests`] and
    /// [`Registry::count`].
    pub fn reset_counts(&self) {
        self.offset
            .store(self.all_requests().len(), Ordering::SeqCst);
    }

    /// Waits until [`Registry::count`] reaches `n` or `timeout` passes, and returns
    /// the last count (assert on it).
    pub async fn wait_for_count(
        &self,
        method: &str,
        path_contains: &str,
        n: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = self.count(method, path_contains);
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The registry's JSON log (stderr) so far.
    pub fn json_log(&self) -> String {
        read_lossy(&self.dir.path().join("stderr.log"))
    }

    /// The registry's access log (stdout, Apache combined format) so far.
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.path().join("stdout.log"))
    }

    /// Both logs, for assertion messages.
    pub fn logs(&self) -> String {
        logs(self.dir.path())
    }

    fn all_requests(&self) -> Vec<LoggedRequest> {
        parse_requests(&self.json_log())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    /// Kills the registry. When the test is failing (or `IMAGEGATE_TEST_REGISTRY_LOGS`
    /// is set), prints its logs first.
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || std::env::var_os("IMAGEGATE_TEST_REGISTRY_LOGS").is_some() {
            eprintln!(
                "registry {} ({:?}):\n{}",
                self.host(),
                kind_name(&self.kind),
                self.logs()
            );
        }
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Plain => "plain",
        Kind::Tls => "tls",
        Kind::TlsWithoutIpSan => "tls without IP SAN",
        Kind::Htpasswd { .. } => "htpasswd",
        Kind::Token { .. } => "token",
    }
}

/// Waits until `GET /v2/` answers 200 or 401. Every TLS leaf is valid for
/// `localhost`, so for TLS kinds the probe goes to `localhost` pinned to the address
/// the registry listens on (no DNS).
async fn wait_ready(
    child: &mut Child,
    kind: &Kind,
    addr: SocketAddr,
    ca_pem: Option<&str>,
    dir: &Path,
) -> Result<(), NotReady> {
    let port = addr.port();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .resolve("localhost", addr);
    if let Some(ca) = ca_pem {
        builder = builder
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM")]);
    }
    let client = builder.build().expect("reqwest client");
    let url = if kind.is_tls() {
        format!("https://localhost:{port}/v2/")
    } else {
        format!("http://{addr}/v2/")
    };
    let listening = format!("listening on {addr}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Exited(format!("exit status {status}\n{}", logs(dir))));
        }
        // The log line makes sure the answer came from this process, not from
        // something else that took the port.
        if let Ok(res) = client.get(&url).send().await
            && matches!(res.status().as_u16(), 200 | 401)
            && read_lossy(&dir.join("stderr.log")).contains(&listening)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TimedOut(logs(dir)));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

enum NotReady {
    Exited(String),
    TimedOut(String),
}
use NotReady::{Exited, TimedOut};

/// A port that was free a moment ago (bound on `ip`, port 0, then released).
fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("bind {ip} port 0: {e}"))
        .port()
}

/// Writes the certificates, key and htpasswd file the kind needs; returns the CA.
fn write_static_files(kind: &Kind, dir: &Path) -> Option<String> {
    let names: &[&str] = match kind {
        Kind::Plain => return None,
        Kind::TlsWithoutIpSan => &["localhost"],
        _ => &["127.0.0.1", "::1", "localhost"],
    };
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certs = imagegate::certs::generate(&names, 2).expect("generate test certificates");
    std::fs::write(dir.join("tls.crt"), &certs.cert_pem).expect("write tls.crt");
    std::fs::write(dir.join("tls.key"), &certs.key_pem).expect("write tls.key");
    std::fs::write(dir.join("ca.crt"), &certs.ca_cert_pem).expect("write ca.crt");

    match kind {
        Kind::Htpasswd { user, password } => {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run htpasswd (apt-get install apache2-utils): {e}")
                });
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(dir.join("htpasswd"), &out.stdout).expect("write htpasswd");
        }
        Kind::Token { root_cert_pem, .. } => {
            std::fs::write(dir.join("token-root.crt"), root_cert_pem).expect("write token cert");
        }
        _ => {}
    }
    Some(certs.ca_cert_pem)
}

/// The registry config. JSON is YAML, so the file is written as JSON.
fn config(kind: &Kind, dir: &Path, addr: SocketAddr) -> Value {
    let path = |p: &str| dir.join(p).display().to_string();
    let mut secret = [0u8; 16];
    aws_lc_rs::rand::fill(&mut secret).expect("random");
    let mut http = json!({
        "addr": addr.to_string(),
        "secret": hex::encode(secret),
    });
    if kind.is_tls() {
        http["tls"] = json!({ "certificate": path("tls.crt"), "key": path("tls.key") });
    }
    let mut config = json!({
        "version": "0.1",
        "log": {
            "level": "info",
            "formatter": "json",
            "accesslog": { "disabled": false },
        },
        "storage": {
            "filesystem": { "rootdirectory": path("data") },
            "delete": { "enabled": true },
            "maintenance": { "uploadpurging": { "enabled": false } },
        },
        "http": http,
    });
    match kind {
        Kind::Htpasswd { .. } => {
            config["auth"] = json!({
                "htpasswd": { "realm": "imagegate-test", "path": path("htpasswd") }
            });
        }
        Kind::Token {
            realm,
            service,
            issuer,
            ..
        } => {
            config["auth"] = json!({
                "token": {
                    "realm": realm,
                    "service": service,
                    "issuer": issuer,
                    "rootcertbundle": path("token-root.crt"),
                }
            });
        }
        _ => {}
    }
    config
}

/// One [`LoggedRequest`] per `http.request.id`, in order of first appearance.
/// Lines that are not JSON or not about a request are skipped, and so is a last
/// line still being written (no newline yet).
fn parse_requests(log: &str) -> Vec<LoggedRequest> {
    let complete = match log.rfind('\n') {
        Some(end) => &log[..end],
        None => "",
    };
    let mut out: Vec<LoggedRequest> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for line in complete.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(id), Some(method), Some(uri)) = (
            field("http.request.id"),
            field("http.request.method"),
            field("http.request.uri"),
        ) else {
            continue;
        };
        let status = v
            .get("http.response.status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        match by_id.get(&id) {
            Some(&i) => {
                if out[i].status.is_none() {
                    out[i].status = status;
                }
            }
            None => {
                by_id.insert(id.clone(), out.len());
                out.push(LoggedRequest {
                    id,
                    method,
                    uri,
                    status,
                    msg: field("msg").unwrap_or_default(),
                });
            }
        }
    }
    out
}

fn read_lossy(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

fn logs(dir: &Path) -> String {
    format!(
        "--- registry stdout (access log) ---\n{}\n--- registry stderr ---\n{}",
        read_lossy(&dir.join("stdout.log")),
        read_lossy(&dir.join("stderr.log"))
    )
}
