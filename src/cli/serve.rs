//! `imagegate serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::{Settings, WebhookConfig};
use crate::inspector::Inspector;
use crate::registry::RegistryClient;
use crate::server::{self, ConfigReload, FileSnapshot, Lookups, ServeConfig};
use crate::telemetry::Telemetry;

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
    /// secrets, docker config, registries pulled with node credentials or through
    /// mirrors, caches and the lookup deadline. Reloaded when it, a caFile or the
    /// dockerConfig changes. See README.
    #[arg(long, env = "IMAGEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Read pull secrets, ServiceAccounts and Nodes from the Kubernetes API (in
    /// cluster, or through KUBECONFIG). `false` leaves them out.
    #[arg(long, env = "IMAGEGATE_KUBERNETES", default_value_t = true, action = clap::ArgAction::Set)]
    kubernetes: bool,
    /// Seconds in-flight requests get to finish after the listener closes.
    #[arg(long, env = "IMAGEGATE_DRAIN_TIMEOUT", default_value_t = 25.0)]
    drain_timeout: f64,
    /// Seconds to keep accepting after SIGTERM, with /readyz answering 503, before
    /// the listener closes: the time the Service's endpoints and the API server
    /// take to stop sending to this pod. Keep terminationGracePeriodSeconds above
    /// this plus --drain-timeout.
    #[arg(long, env = "IMAGEGATE_SHUTDOWN_GRACE", default_value_t = 5.0)]
    shutdown_grace: f64,
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
    let (settings, baseline) = match &args.config {
        Some(path) => {
            // The reloader's baseline is read before the settings that run: a change
            // that lands in between is then seen as a change. (The first load only
            // says which files the configuration names.)
            let files = WebhookConfig::load(path)?.files;
            let baseline = FileSnapshot::read(&files);
            (WebhookConfig::load(path)?, baseline)
        }
        None => (Settings::default(), FileSnapshot::default()),
    };
    let config = ServeConfig {
        listen: args.listen,
        policies: args.policies,
        tls_cert,
        tls_key,
        client_ca: args.client_ca,
        health_listen: args.health_listen,
        reload_interval: Duration::from_secs_f64(args.reload_interval.max(0.05)),
        drain_timeout: Duration::from_secs_f64(args.drain_timeout.max(0.0)),
        shutdown_grace: Duration::from_secs_f64(args.shutdown_grace.max(0.0)),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (grace, drain) = (config.shutdown_grace, config.drain_timeout);
        let client = match args.kubernetes {
            true => kubernetes_client().await,
            false => None,
        };
        let telemetry = Telemetry::default();
        let lookups = build_lookups(&settings, client.clone(), telemetry.clone())?;
        let reload = args.config.map(|path| ConfigReload {
            path,
            files: settings.files.clone(),
            baseline,
            build: Box::new(move |path: &Path| {
                let settings = WebhookConfig::load(path).map_err(|e| e.to_string())?;
                let lookups = build_lookups(&settings, client.clone(), telemetry.clone())
                    .map_err(|e| format!("{e:#}"))?;
                Ok((lookups, settings.files))
            }),
        });
        let running = server::start(config, lookups, reload).await?;
        shutdown_signal().await;
        tracing::info!(
            grace_seconds = grace.as_secs_f64(),
            drain_seconds = drain.as_secs_f64(),
            "shutting down"
        );
        running.shutdown(grace, drain).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The wiring: the registry client, the cluster reader and the inspector over them,
/// from `settings`; built at start and again on every configuration change.
fn build_lookups(
    settings: &Settings,
    client: Option<kube::Client>,
    telemetry: Telemetry,
) -> anyhow::Result<Lookups> {
    let cluster = client.map(|client| {
        Arc::new(Cluster::new(client, settings.kubernetes_cache).with_telemetry(telemetry.clone()))
    });
    let inspector = Inspector::new(
        RegistryClient::new(settings.registry.clone()),
        cluster,
        settings.inspector.clone(),
    )?
    .with_telemetry(telemetry);
    Ok(Lookups {
        inspector,
        deadline: settings.deadline,
    })
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
