//! `imagegate serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::server::{self, ServeConfig};

const DEFAULT_CERT: &str = "certs/tls.crt";
const DEFAULT_KEY: &str = "certs/tls.key";

#[derive(Debug, clap::Args)]
pub(super) struct ServeArgs {
    /// A policy file or a directory of them; reloaded when it changes.
    #[arg(long, env = "IMAGEGATE_POLICIES", default_value = "policies/")]
    policies: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "IMAGEGATE_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// PEM certificate chain; reloaded when it changes. [default: certs/tls.crt,
    /// generated as a self-signed development certificate when missing]
    #[arg(long, env = "IMAGEGATE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key. [default: certs/tls.key]
    #[arg(long, env = "IMAGEGATE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Seconds between checks of the policy files and the certificate for changes.
    #[arg(long, env = "IMAGEGATE_RELOAD_INTERVAL", default_value_t = 2.0)]
    reload_interval: f64,
    /// The webhook configuration file: registries (CA bundles, plain HTTP), pull
    /// secrets, docker config, caches and the lookup deadline. See README.
    #[arg(long, env = "IMAGEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Read pull secrets, ServiceAccounts and Nodes from the Kubernetes API (in
    /// cluster, or through KUBECONFIG). `false` leaves them out.
    #[arg(long, env = "IMAGEGATE_KUBERNETES", default_value_t = true, action = clap::ArgAction::Set)]
    kubernetes: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "IMAGEGATE_DRAIN_TIMEOUT", default_value_t = 25.0)]
    drain_timeout: f64,
}

pub(super) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (tls_cert, tls_key) = match (args.tls_cert, args.tls_key) {
        (None, None) => {
            let (cert, key) = (PathBuf::from(DEFAULT_CERT), PathBuf::from(DEFAULT_KEY));
            if !cert.exists() || !key.exists() {
                dev_certificate(Path::new("certs"))?;
            }
            (cert, key)
        }
        (cert, key) => (
            cert.unwrap_or_else(|| DEFAULT_CERT.into()),
            key.unwrap_or_else(|| DEFAULT_KEY.into()),
        ),
    };
    let settings = match &args.config {
        Some(path) => crate::config::WebhookConfig::load(path)?,
        None => crate::config::Settings::default(),
    };
    let config = ServeConfig {
        settings,
        kubernetes: args.kubernetes,
        listen: args.listen,
        policies: args.policies,
        tls_cert,
        tls_key,
        reload_interval: Duration::from_secs_f64(args.reload_interval.max(0.05)),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout.max(0.0)),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let drain = config.drain_timeout;
        let running = server::start(config).await?;
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown(drain).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// A self-signed development certificate, so that `serve` works on a fresh clone.
fn dev_certificate(dir: &Path) -> anyhow::Result<()> {
    let names: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "imagegate",
        "imagegate.imagegate.svc",
    ]
    .map(String::from)
    .to_vec();
    let certs =
        crate::certs::generate(&names, 365).context("generating a development certificate")?;
    certs.write(dir, false)?;
    tracing::warn!(
        dir = %dir.display(),
        "no TLS certificate was given and none exists: generated a development CA and certificate for localhost \
         (trust certs/ca.crt); use --tls-cert and --tls-key, or cert-manager, in a cluster"
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
