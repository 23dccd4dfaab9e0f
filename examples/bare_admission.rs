//! The bare server of `benches/admission_throughput.rs` as its own process, and the
//! same workload as files: what `scripts/bench-h2load.sh` measures imagegate against
//! from outside, with h2load.
//!
//! ```text
//! bare_admission fixtures DIR               writes DIR/policies.yaml, DIR/review.json
//!                                           (allowed) and DIR/denied.json (denied)
//! bare_admission serve ADDR CERT KEY        serves POST /validate over HTTPS on ADDR
//!                                           until SIGINT or SIGTERM
//! ```
//!
//! `serve` builds its rustls configuration with imagegate's own
//! (`KeyMaterial::server_config`: TLS 1.3 and 1.2, aws-lc-rs, h2 and http/1.1 by
//! ALPN) from the same certificate, and runs on `tokio::runtime::Runtime::new()`,
//! as `imagegate serve` does, with the same allocator (jemalloc).

#[path = "../benches/bare/mod.rs"]
mod bare;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use imagegate::server::tls::KeyMaterial;

/// The allocator `imagegate` runs with (src/main.rs), so that the comparison
/// measures the request path, not the allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "usage: bare_admission fixtures DIR | bare_admission serve ADDR CERT KEY";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["fixtures", dir] => fixtures(Path::new(dir)),
        ["serve", addr, cert, key] => match addr.parse::<SocketAddr>() {
            Ok(addr) => serve(addr, PathBuf::from(cert), PathBuf::from(key)),
            Err(e) => {
                eprintln!("bare_admission: {addr:?} is not an address like 127.0.0.1:8443: {e}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn fixtures(dir: &Path) -> ExitCode {
    let files = [
        ("policies.yaml", bare::POLICIES.as_bytes().to_vec()),
        ("review.json", bare::allowed_body()),
        ("denied.json", bare::denied_body()),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("bare_admission: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn serve(addr: SocketAddr, cert: PathBuf, key: PathBuf) -> ExitCode {
    let tls = match KeyMaterial::read(&cert, &key, None)
        .and_then(|material| material.server_config(&cert, &key, None))
    {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("bare_admission: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bare_admission: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = bare::Bare::start(addr, tls).await;
        println!("bare_admission: serving https://{}/validate", server.addr);
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    eprintln!("bare_admission: cannot listen for SIGTERM: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        server.shutdown(Duration::from_secs(5)).await;
        ExitCode::SUCCESS
    })
}
