//! Warm-path throughput of the webhook: AdmissionReviews per second through the
//! HTTPS server over keep-alive connections, measured in the same run beside a bare
//! axum + rustls server that only parses the body as JSON and returns a fixed allow.
//!
//! Both servers use the same rustls configuration (`KeyMaterial::server_config`),
//! the same body limit and the same request body: a Pod CREATE of about 5 KB with
//! three containers, allowed by a set of three policies (every rule evaluated, none
//! violated). The servers run on one tokio runtime and the load generator on another,
//! so that they do not share worker threads; both are in this one process.
//!
//! Run with `cargo bench --bench admission_throughput`. Environment overrides:
//! - `BENCH_SECONDS`: measured seconds per run (default 5; a 1 s warm-up precedes each run)
//! - `BENCH_CONCURRENCY`: concurrent client tasks (default 16)
//! - `BENCH_ROUNDS`: alternating rounds bare/imagegate (default 2)
//! - `BENCH_PROTOCOLS`: `http1`, `h2` or `http1,h2` (default `http1,h2`)
//! - `BENCH_SERVER_THREADS`, `BENCH_CLIENT_THREADS`: worker threads of each runtime (default 2)
//!
//! Both servers set `TCP_NODELAY` on accepted connections, as imagegate does. The bare
//! server, the policies and the review are `benches/bare/mod.rs`, shared with
//! `examples/bare_admission.rs`, which `scripts/bench-h2load.sh` measures from outside
//! with h2load.

mod bare;
mod common;

use common::env_number;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::Value;

use bare::{Bare, DENIED_UID, POLICIES, UID};
use imagegate::inspector::{Inspector, InspectorConfig};
use imagegate::registry::{RegistryClient, RegistryConfig};
use imagegate::server::tls::KeyMaterial;
use imagegate::server::{self, Lookups, ServeConfig};

const WARMUP: Duration = Duration::from_secs(1);

fn main() {
    let settings = Settings::from_env();
    // The library's own rustls configurations name their provider; reqwest's client
    // uses the process default. Already installed is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certs = imagegate::certs::generate(&names, 1).expect("cannot generate the certificates");
    certs
        .write(dir.path(), false)
        .expect("cannot write the certificates");
    let policies = dir.path().join("policies.yaml");
    std::fs::write(&policies, POLICIES).expect("cannot write the policy file");
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");

    let allowed_body = Bytes::from(bare::allowed_body());
    let denied_body = Bytes::from(bare::denied_body());

    let server_rt = runtime("bench-server", settings.server_threads);
    let client_rt = runtime("bench-client", settings.client_threads);

    let imagegate = server_rt
        .block_on(server::start(
            ServeConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                policies: policies.clone(),
                tls_cert: cert_path.clone(),
                tls_key: key_path.clone(),
                client_ca: None,
                health_listen: None,
                reload_interval: Duration::from_secs(2),
                drain_timeout: Duration::from_secs(5),
                shutdown_grace: Duration::ZERO,
            },
            Lookups {
                inspector: Inspector::new(
                    RegistryClient::new(RegistryConfig::default()),
                    None,
                    InspectorConfig::default(),
                )
                .expect("the default inspector builds"),
                deadline: Duration::from_secs(8),
            },
            None,
        ))
        .expect("imagegate does not start");
    let tls = KeyMaterial::read(&cert_path, &key_path, None)
        .expect("cannot read the generated certificate")
        .server_config(&cert_path, &key_path, None)
        .expect("the generated certificate cannot serve TLS");
    let bare = server_rt.block_on(Bare::start(SocketAddr::from(([127, 0, 0, 1], 0)), tls));

    let ca = reqwest::Certificate::from_pem(certs.ca_cert_pem.as_bytes())
        .expect("the generated CA is not PEM");
    let targets = [
        Target {
            label: "bare axum+rustls (parse JSON, fixed allow)",
            url: format!("https://127.0.0.1:{}/validate", bare.addr.port()),
        },
        Target {
            label: "imagegate /validate (3 policies, 3 containers)",
            url: format!("https://127.0.0.1:{}/validate", imagegate.addr.port()),
        },
    ];

    println!(
        "admission_throughput: body {} bytes (Pod CREATE, 3 containers), {} concurrent clients, \
         {} s per run after a {} s warm-up, {} round(s) alternating bare/imagegate",
        allowed_body.len(),
        settings.concurrency,
        settings.seconds.as_secs_f64(),
        WARMUP.as_secs_f64(),
        settings.rounds,
    );
    println!(
        "one process: servers on a {}-worker tokio runtime, load generator (reqwest) on a separate \
         {}-worker runtime; {} CPU(s) available",
        settings.server_threads,
        settings.client_threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut blocks = Vec::new();
    for protocol in &settings.protocols {
        let protocol = *protocol;
        let clients: Vec<reqwest::Client> = targets
            .iter()
            .map(|_| client(protocol, &ca, settings.concurrency))
            .collect();

        // Correctness before speed: the allowed body is allowed, the uid echoes, and
        // imagegate really evaluates (a violating image is denied).
        for (target, client) in targets.iter().zip(&clients) {
            let reply = client_rt.block_on(post_json(
                client,
                &target.url,
                allowed_body.clone(),
                protocol,
            ));
            assert_eq!(
                reply.pointer("/response/allowed"),
                Some(&Value::Bool(true)),
                "{}: the warm-path review is not allowed: {reply}",
                target.label
            );
            assert_eq!(
                reply.pointer("/response/uid").and_then(Value::as_str),
                Some(UID),
                "{}: the reply does not echo the uid: {reply}",
                target.label
            );
        }
        let reply = client_rt.block_on(post_json(
            &clients[1],
            &targets[1].url,
            denied_body.clone(),
            protocol,
        ));
        assert_eq!(
            reply.pointer("/response/allowed"),
            Some(&Value::Bool(false)),
            "imagegate allowed nginx:latest, so it does not evaluate the policies: {reply}"
        );
        assert_eq!(
            reply.pointer("/response/uid").and_then(Value::as_str),
            Some(DENIED_UID),
            "imagegate's denial does not echo the uid: {reply}"
        );

        let mut runs: [Vec<RunResult>; 2] = [Vec::new(), Vec::new()];
        for round in 1..=settings.rounds {
            for (i, (target, client)) in targets.iter().zip(&clients).enumerate() {
                let result = client_rt.block_on(load(
                    client.clone(),
                    &target.url,
                    allowed_body.clone(),
                    protocol,
                    settings.concurrency,
                    settings.seconds,
                ));
                assert_eq!(
                    result.failures, 0,
                    "{}: {} request(s) failed or were not allowed",
                    target.label, result.failures
                );
                assert!(
                    result.requests > 0,
                    "{}: no request completed in the measured window",
                    target.label
                );
                println!(
                    "  {} round {round}: {:<48} {:>9.0} req/s  mean {:>7.0} us",
                    protocol.name(),
                    target.label,
                    result.per_second(),
                    result.mean_latency_us(),
                );
                runs[i].push(result);
            }
        }
        blocks.push(summary(protocol, &settings, &targets, &runs));
    }

    println!();
    for block in blocks {
        println!("{block}");
    }

    server_rt.block_on(async {
        imagegate
            .shutdown(Duration::ZERO, Duration::from_secs(5))
            .await;
        bare.shutdown(Duration::from_secs(5)).await;
    });
    drop(client_rt);
    drop(server_rt);
}

struct Settings {
    seconds: Duration,
    concurrency: usize,
    rounds: usize,
    protocols: Vec<Protocol>,
    server_threads: usize,
    client_threads: usize,
}

impl Settings {
    fn from_env() -> Self {
        let protocols = std::env::var("BENCH_PROTOCOLS").unwrap_or_else(|_| "http1,h2".into());
        let protocols = protocols
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p {
                "http1" | "http1.1" | "http/1.1" => Protocol::Http1,
                "h2" | "http2" => Protocol::H2,
                other => panic!("BENCH_PROTOCOLS: unknown protocol {other:?} (http1, h2)"),
            })
            .collect::<Vec<_>>();
        assert!(!protocols.is_empty(), "BENCH_PROTOCOLS names no protocol");
        Settings {
            seconds: Duration::from_secs_f64(env_number("BENCH_SECONDS", 5.0)),
            concurrency: env_number("BENCH_CONCURRENCY", 16.0) as usize,
            rounds: env_number("BENCH_ROUNDS", 2.0) as usize,
            protocols,
            server_threads: env_number("BENCH_SERVER_THREADS", 2.0) as usize,
            client_threads: env_number("BENCH_CLIENT_THREADS", 2.0) as usize,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// HTTP/1.1 keep-alive: one pooled connection per concurrent client.
    Http1,
    /// HTTP/2 by ALPN: one connection, a stream per concurrent request.
    H2,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::H2 => "HTTP/2",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1 keep-alive",
            Protocol::H2 => "HTTP/2 by ALPN, one multiplexed connection",
        }
    }

    fn version(self) -> reqwest::Version {
        match self {
            Protocol::Http1 => reqwest::Version::HTTP_11,
            Protocol::H2 => reqwest::Version::HTTP_2,
        }
    }
}

struct Target {
    label: &'static str,
    url: String,
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build the {name} runtime: {e}"))
}

fn client(protocol: Protocol, ca: &reqwest::Certificate, concurrency: usize) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(Duration::from_secs(300))
        .timeout(Duration::from_secs(10));
    let builder = match protocol {
        Protocol::Http1 => builder.http1_only(),
        // Both servers offer h2 first by ALPN, as does reqwest.
        Protocol::H2 => builder,
    };
    builder.build().expect("cannot build the reqwest client")
}

/// One POST, its reply parsed: for the correctness checks, not the measurement.
async fn post_json(client: &reqwest::Client, url: &str, body: Bytes, protocol: Protocol) -> Value {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    assert_eq!(
        response.version(),
        protocol.version(),
        "POST {url} did not use {}",
        protocol.name()
    );
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: cannot read the reply: {e}"));
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "POST {url}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("POST {url}: the reply is not JSON ({e}): {bytes:?}"))
}

struct RunResult {
    /// Successful requests completed inside the measured window.
    requests: u64,
    /// Failed requests, warm-up included.
    failures: u64,
    window: Duration,
    /// Latency of every request counted in `requests`, in microseconds.
    latencies_us: Vec<u32>,
}

impl RunResult {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    fn mean_latency_us(&self) -> f64 {
        let sum: u64 = self.latencies_us.iter().map(|&l| u64::from(l)).sum();
        sum as f64 / self.latencies_us.len().max(1) as f64
    }

    /// The `q` quantile of the latencies (they must be sorted).
    fn quantile_us(&self, q: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i]
    }
}

/// `concurrency` tasks POST `body` back to back over the client's pooled
/// connections: `WARMUP`, then `window` measured. A request counts when it completes
/// inside the window with status 200 and an allow.
async fn load(
    client: reqwest::Client,
    url: &str,
    body: Bytes,
    protocol: Protocol,
    concurrency: usize,
    window: Duration,
) -> RunResult {
    let url: Arc<str> = Arc::from(url);
    let measure_from = Instant::now() + WARMUP;
    let until = measure_from + window;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut latencies_us = Vec::with_capacity(16 * 1024);
                let mut failures = 0u64;
                loop {
                    let started = Instant::now();
                    if started >= until {
                        break;
                    }
                    let ok = one_request(&client, &url, body.clone(), protocol).await;
                    let done = Instant::now();
                    if !ok {
                        failures += 1;
                    } else if started >= measure_from && done <= until {
                        let us = (done - started).as_micros();
                        latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
                (latencies_us, failures)
            })
        })
        .collect();
    let mut result = RunResult {
        requests: 0,
        failures: 0,
        window,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let (latencies_us, failures) = task.await.expect("a load task panicked");
        result.failures += failures;
        result.latencies_us.extend(latencies_us);
    }
    result.requests = result.latencies_us.len() as u64;
    result.latencies_us.sort_unstable();
    result
}

async fn one_request(client: &reqwest::Client, url: &str, body: Bytes, protocol: Protocol) -> bool {
    let Ok(response) = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    else {
        return false;
    };
    if response.status() != reqwest::StatusCode::OK || response.version() != protocol.version() {
        return false;
    }
    match response.bytes().await {
        Ok(reply) => contains(&reply, br#""allowed":true"#),
        Err(_) => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn summary(
    protocol: Protocol,
    settings: &Settings,
    targets: &[Target],
    runs: &[Vec<RunResult>; 2],
) -> String {
    let mean =
        |rs: &[RunResult]| rs.iter().map(RunResult::per_second).sum::<f64>() / rs.len() as f64;
    let best = |rs: &[RunResult]| rs.iter().map(RunResult::per_second).fold(0.0, f64::max);
    let mut out = format!(
        "admission_throughput (HTTPS, {}, {} concurrent clients, {} s per run, mean of {} run(s))\n",
        protocol.description(),
        settings.concurrency,
        settings.seconds.as_secs_f64(),
        settings.rounds,
    );
    for (target, rs) in targets.iter().zip(runs) {
        // Latency over all runs together.
        let mut all = RunResult {
            requests: 0,
            failures: 0,
            window: Duration::ZERO,
            latencies_us: rs
                .iter()
                .flat_map(|r| r.latencies_us.iter().copied())
                .collect(),
        };
        all.latencies_us.sort_unstable();
        out += &format!(
            "{:<48} {:>9.0} req/s (best {:.0}); latency mean {:.0} us, p50 {} us, p99 {} us\n",
            format!("{}:", target.label),
            mean(rs),
            best(rs),
            all.mean_latency_us(),
            all.quantile_us(0.50),
            all.quantile_us(0.99),
        );
    }
    let ratio = mean(&runs[1]) / mean(&runs[0]);
    let best_ratio = best(&runs[1]) / best(&runs[0]);
    out += &format!("ratio imagegate/bare: {ratio:.2} (best/best {best_ratio:.2})\n");
    out
}
