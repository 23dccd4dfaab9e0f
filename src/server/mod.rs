//! The HTTPS webhook: axum handlers kept thin, rustls, reloads and metrics.
//!
//! `start` binds, loads the policies and the certificate, and serves until
//! [`Running::shutdown`] drains the in-flight requests.

mod handlers;
pub mod metrics;
mod reload;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// The time an admission may spend gathering facts.
    pub deadline: Duration,
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
    pub inspector: Arc<Inspector>,
    /// The time an admission may spend gathering facts.
    pub deadline: Duration,
}

impl AppState {
    pub fn new(policies: PolicySet, inspector: Inspector, deadline: Duration) -> Self {
        AppState {
            policies: Arc::new(ArcSwap::from_pointee(policies)),
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            inspector: Arc::new(inspector),
            deadline,
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
/// (registry client, cluster reads, caches) is built by the caller: wiring lives at
/// the edge, in `cli::serve`.
pub async fn start(config: ServeConfig, inspector: Inspector) -> Result<Running, ServeError> {
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

    let state = AppState::new(policies, inspector, config.deadline);
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
    /// Stops accepting, lets in-flight requests finish (up to `drain`), then returns.
    pub async fn shutdown(self, drain: Duration) {
        self.state.ready.store(false, Ordering::SeqCst);
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
