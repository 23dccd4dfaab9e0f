//! `imagegate serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::Settings;
use crate::inspector::Inspector;
use crate::registry::RegistryClient;
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
    /// Accept only clients presenting a certificate issued by this CA (PEM): mTLS,
    /// so that only the API server can ask for admissions (and make imagegate read
    /// pull secrets). Reloaded when it changes. See README.
    #[arg(long, env = "IMAGEGATE_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// Also serve /healthz, /readyz and /metrics over plain HTTP on this address
    /// (for the kubelet's probes, which carry no client certificate).
    #[arg(long, env = "IMAGEGATE_HEALTH_LISTEN")]
    health_listen: Option<SocketAddr>,
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
        deadline: settings.deadline,
        listen: args.listen,
        policies: args.policies,
        tls_cert,
        tls_key,
        client_ca: args.client_ca,
        health_listen: args.health_listen,
        reload_interval: Duration::from_secs_f64(args.reload_interval.max(0.05)),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout.max(0.0)),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let drain = config.drain_timeout;
        let inspector = inspector(&settings, args.kubernetes).await?;
        let running = server::start(config, inspector).await?;
        shutdown_signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        running.shutdown(drain).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The wiring: the registry client, the cluster reader and the inspector over them.
async fn inspector(settings: &Settings, kubernetes: bool) -> anyhow::Result<Inspector> {
    let cluster = if kubernetes {
        kubernetes_client()
            .await
            .map(|client| Arc::new(Cluster::new(client, settings.kubernetes_cache)))
    } else {
        None
    };
    Ok(Inspector::new(
        RegistryClient::new(settings.registry.clone()),
        cluster,
        settings.inspector.clone(),
    )?)
}

/// A Kubernetes client from the pod's service account or `KUBECONFIG`, when there is one.
async fn kubernetes_client() -> Option<kube::Client> {
    match kube::Config::infer().await {
        Ok(config) => match kube::Client::try_from(config) {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::warn!(error = %e, "no Kubernetes client: pull secrets, ServiceAccounts and Nodes will not be read");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no Kubernetes configuration found: pull secrets, ServiceAccounts and Nodes will not be read");
            None
        }
    }
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
