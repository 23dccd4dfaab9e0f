//! Time to ready: from `imagegate serve` being started to its first answer over
//! TLS (`GET /readyz` → 200, the first handshake included), with 100 policies, and
//! in the same run two baselines on the same binary: the same server with one
//! policy, and `imagegate --version` (what starting any process costs here).
//!
//! The policies are those of `scripts/measure-startup.sh`: each names its own
//! namespaces, registries and images, and they share their tag rules, as a
//! platform team's policies do.
//!
//! Run with `cargo bench --bench startup`. Environment overrides:
//! - `BENCH_RUNS`: measured starts of each kind (default 15; one unmeasured start
//!   of each comes first)
//! - `BENCH_POLICIES`: policies of the large set (default 100)
//!
//! The client is a plain rustls connection over a blocking socket, polled in a
//! tight loop, so that what is measured is the server's start, not a client's.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::env_number;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const BIN: &str = env!("CARGO_BIN_EXE_imagegate");
const GIVE_UP: Duration = Duration::from_secs(30);

fn policy(i: usize) -> String {
    format!(
        r#"apiVersion: imagegate.dev/v1alpha1
kind: ImagePolicy
metadata: {{name: p{i}}}
spec:
  namespaces: ["team-{i}-*"]
  excludeImages: ["harbor.example.com/tools-{i}/**"]
  registries:
    allow: ["harbor.example.com", "registry.k8s.io/**", "ghcr.io/org-{i}/**"]
  blockedImages: ["harbor.example.com/legacy-{i}/**"]
  tags:
    forbid: [latest, "*-dev"]
    allow: ['^v\d+\.\d+\.\d+$']
"#
    )
}

fn policy_dir(root: &Path, n: usize) -> PathBuf {
    let dir = root.join(format!("policies-{n}"));
    std::fs::create_dir_all(&dir).expect("creating the policy directory");
    for i in 1..=n {
        std::fs::write(dir.join(format!("p{i}.yaml")), policy(i)).expect("writing a policy");
    }
    dir
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

struct Start {
    listening: Duration,
    ready: Duration,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(policies: &Path, tls: &Path, client: &Arc<rustls::ClientConfig>) -> Start {
    let addr = free_port();
    let began = Instant::now();
    let _server = Server(
        Command::new(BIN)
            .arg("serve")
            .arg("--policies")
            .arg(policies)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--tls-cert")
            .arg(tls.join("tls.crt"))
            .arg("--tls-key")
            .arg(tls.join("tls.key"))
            .args(["--kubernetes", "false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting imagegate serve"),
    );
    let listening = loop {
        if TcpStream::connect(addr).is_ok() {
            break began.elapsed();
        }
        assert!(began.elapsed() < GIVE_UP, "imagegate did not listen");
    };
    loop {
        if readyz(addr, client) {
            return Start {
                listening,
                ready: began.elapsed(),
            };
        }
        assert!(began.elapsed() < GIVE_UP, "imagegate did not become ready");
    }
}

/// One `GET /readyz` over a new TLS connection; true on a 200.
fn readyz(addr: SocketAddr, client: &Arc<rustls::ClientConfig>) -> bool {
    let Ok(tcp) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("127.0.0.1").expect("an IP address is a server name");
    let conn = rustls::ClientConnection::new(client.clone(), name).expect("a client connection");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if tls.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn version_run() -> Duration {
    let began = Instant::now();
    let status = Command::new(BIN)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .expect("running imagegate --version");
    assert!(status.success());
    began.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn max(v: &[Duration]) -> Duration {
    v.iter().copied().max().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; this target takes no arguments of its own.
    let runs = env_number("BENCH_RUNS", 15.0) as usize;
    let n = env_number("BENCH_POLICIES", 100.0) as usize;
    let root = tempfile::tempdir().expect("a temporary directory");
    let tls = root.path().join("tls");
    let status = Command::new(BIN)
        .args(["certs", "--name", "127.0.0.1", "--out-dir"])
        .arg(&tls)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running imagegate certs");
    assert!(status.success(), "imagegate certs failed");
    let ca = CertificateDer::from_pem_file(tls.join("ca.crt")).expect("reading ca.crt");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("the CA certificate");
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let many = policy_dir(root.path(), n);
    let one = policy_dir(root.path(), 1);

    // One unmeasured start of each kind: the client's own first handshake, the
    // page cache.
    version_run();
    start(&one, &tls, &client);
    start(&many, &tls, &client);

    let (mut version, mut ready_one, mut ready_many, mut listen_many) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so that whatever else the machine does weighs on all three.
    for _ in 0..runs {
        version.push(version_run());
        ready_one.push(start(&one, &tls, &client).ready);
        let s = start(&many, &tls, &client);
        listen_many.push(s.listening);
        ready_many.push(s.ready);
    }
    let worst = max(&ready_many);
    let (v, r1, rn, ln) = (
        median(version),
        median(ready_one),
        median(ready_many),
        median(listen_many),
    );
    println!("startup ({runs} runs each, medians; the first TLS handshake included in ready):");
    println!("  imagegate --version (process start):  {}", ms(v));
    println!("  serve, 1 policy: ready after          {}", ms(r1));
    println!(
        "  serve, {n} policies: listening after  {}, ready after {} (slowest {})",
        ms(ln),
        ms(rn),
        ms(worst)
    );
    println!(
        "  ratio ready({n}) / ready(1) = {:.2}; {n} policies cost {} over one",
        rn.as_secs_f64() / r1.as_secs_f64(),
        ms(rn.saturating_sub(r1))
    );
    println!(
        "  goal (issue 11): ready with 100 policies in <= 50 ms: {}",
        if n == 100 && rn <= Duration::from_millis(50) {
            "met"
        } else if n == 100 {
            "NOT met"
        } else {
            "not measured (BENCH_POLICIES != 100)"
        }
    );
}
