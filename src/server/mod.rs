//! The HTTPS webhook: axum handlers kept thin, rustls, reloads and metrics.
//!
//! `start` binds, loads the policies and the certificate, and serves until
//! [`Running::shutdown`]: readiness turns false, the server keeps accepting for the
//! grace period (so that the endpoints controller and kube-proxy, which learn of
//! the terminating pod only after a delay, stop sending to it before it closes),
//! then it stops accepting and drains the in-flight requests.

mod handlers;
pub mod metrics;
mod reload;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::inspector::Inspector;
use crate::policy::{PolicyErrors, PolicySet};
use metrics::Metrics;
use tls::{KeyMaterial, TlsError};

/// The largest AdmissionReview body accepted: an object may be 1.5 MB, and an
/// UPDATE carries it twice.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub policies: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// A CA whose client certificates alone may connect (mTLS); reloaded on change.
    pub client_ca: Option<PathBuf>,
    /// A plain-HTTP listener for `/healthz`, `/readyz` and `/metrics` only: the
    /// kubelet's probes carry no client certificate.
    pub health_listen: Option<SocketAddr>,
    /// How often policy files and the certificate are checked for changes.
    pub reload_interval: Duration,
    /// How long in-flight requests get to finish on shutdown.
    pub drain_timeout: Duration,
    /// How long the server keeps accepting after readiness turns false on shutdown.
    pub shutdown_grace: Duration,
}

/// How facts are gathered: the inspector and the admission deadline, both from the
/// webhook configuration, swapped whole when it is reloaded.
pub struct Lookups {
    pub inspector: Inspector,
    /// The time an admission may spend gathering facts.
    pub deadline: Duration,
}

/// Builds [`Lookups`] from a configuration file, and the files it read (the file,
/// its `caFile`s, its `dockerConfig`), or says why it cannot.
pub type BuildLookups = Box<dyn Fn(&Path) -> Result<(Lookups, Vec<PathBuf>), String> + Send + Sync>;

/// The webhook configuration file and how to build from it; the server polls the
/// files and rebuilds on a change. The wiring (clients) is the caller's: `build`
/// comes from `cli::serve`.
pub struct ConfigReload {
    pub path: PathBuf,
    /// The files the running configuration was built from...
    pub files: Vec<PathBuf>,
    /// ...and their content then: the reloader's baseline.
    pub baseline: FileSnapshot,
    pub build: BuildLookups,
}

/// The bytes of some files (`None`: unreadable), compared to see a change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileSnapshot(Vec<(PathBuf, Option<Vec<u8>>)>);

impl FileSnapshot {
    pub fn read(files: &[PathBuf]) -> FileSnapshot {
        FileSnapshot(
            files
                .iter()
                .map(|f| (f.clone(), std::fs::read(f).ok()))
                .collect(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Policies(#[from] PolicyErrors),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub policies: Arc<ArcSwap<PolicySet>>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    pub lookups: Arc<ArcSwap<Lookups>>,
}

impl AppState {
    pub fn new(policies: PolicySet, lookups: Lookups) -> Self {
        let metrics = Metrics::new(lookups.inspector.telemetry());
        AppState {
            policies: Arc::new(ArcSwap::from_pointee(policies)),
            metrics: Arc::new(metrics),
            ready: Arc::new(AtomicBool::new(false)),
            lookups: Arc::new(ArcSwap::from_pointee(lookups)),
        }
    }
}

/// The routes, without TLS: `POST /validate`, `POST /mutate`, `GET /healthz`,
/// `GET /readyz`, `GET /metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(handlers::validate))
        .route("/mutate", post(handlers::mutate))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `GET /healthz`, `GET /readyz` and `GET /metrics`: what the plain-HTTP health
/// listener serves (no admission endpoint, no request body).
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .layer(DefaultBodyLimit::max(1024))
        .with_state(state)
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    handle: Handle<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    reloader: tokio::task::JoinHandle<()>,
    health: Option<tokio::task::JoinHandle<()>>,
}

/// Loads the policies and the certificate, binds and starts serving. The inspector
/// (registry client, cluster reads, caches) is built by the caller, and so is the
/// way to rebuild it when the configuration file changes: wiring lives at the
/// edge, in `cli::serve`.
pub async fn start(
    config: ServeConfig,
    lookups: Lookups,
    reload: Option<ConfigReload>,
) -> Result<Running, ServeError> {
    // The sources compiled here are the reloader's baseline: a change that lands
    // during start-up is then seen as a change.
    let sources = crate::policy::load_path(&config.policies)?;
    let policies = PolicySet::compile(&sources)?;
    tracing::info!(
        path = %config.policies.display(),
        policies = policies.policies.len(),
        "policies loaded"
    );
    let client_ca = config.client_ca.as_deref();
    let material = KeyMaterial::read(&config.tls_cert, &config.tls_key, client_ca)?;
    let tls = RustlsConfig::from_config(material.server_config(
        &config.tls_cert,
        &config.tls_key,
        client_ca,
    )?);

    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;

    let state = AppState::new(policies, lookups);
    state.metrics.policies_loaded(&sources);
    state.metrics.certificate(&material.cert);
    let handle = Handle::new();
    let app = router(state.clone());
    // TCP_NODELAY: without it Nagle's algorithm holds small HTTP/2 frames back for
    // tens of milliseconds, and the API server speaks HTTP/2 to webhooks.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.clone())
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let server = axum_server::from_tcp(listener)
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?
        .acceptor(acceptor)
        .handle(handle.clone())
        .serve(app.into_make_service());
    let server = tokio::spawn(server);
    let health = match config.health_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?;
            tracing::info!(health_addr = %bound, "serving /healthz, /readyz and /metrics over plain HTTP");
            let app = health_router(state.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "the health listener stopped");
                }
            }))
        }
        None => None,
    };
    let reloader = tokio::spawn(reload::watch(
        config.clone(),
        state.clone(),
        tls,
        material,
        sources,
        reload,
    ));
    state.ready.store(true, Ordering::SeqCst);
    tracing::info!(%addr, "serving HTTPS (TLS 1.2 and 1.3)");
    Ok(Running {
        addr,
        state,
        handle,
        server,
        reloader,
        health,
    })
}

impl Running {
    /// Turns readiness false and keeps serving for `grace`, so that the API server's
    /// connections move to the other replicas first; then stops accepting, lets
    /// in-flight requests finish (up to `drain`), and returns.
    pub async fn shutdown(self, grace: Duration, drain: Duration) {
        self.state.ready.store(false, Ordering::SeqCst);
        if !grace.is_zero() {
            tracing::info!(
                grace_seconds = grace.as_secs_f64(),
                "not ready; still serving for the shutdown grace period"
            );
            tokio::time::sleep(grace).await;
        }
        tracing::info!("closing the listener; draining in-flight requests");
        self.reloader.abort();
        if let Some(health) = &self.health {
            health.abort();
        }
        self.handle.graceful_shutdown(Some(drain));
        match self.server.await {
            Ok(Ok(())) => tracing::info!("drained; bye"),
            Ok(Err(e)) => tracing::error!(error = %e, "server stopped with an error"),
            Err(e) => tracing::error!(error = %e, "server task failed"),
        }
    }
}
