//! `ophion-server` as library code: the receivers, the store and the API
//! wired together, so that tests and embedders run exactly what the binary
//! runs.
//!
//! ```text
//!  OTLP gRPC / HTTP ─► receiver ─► tail sink ─► memory guard ─► store
//!                                    │ (live log tail)              │
//!  API :8080 ─► /api/v1/* ─► Reader (TelemetryQuery) ◄─────────────────┘
//! ```
//!
//! In a cluster (`[store.cluster] role`), an ingest node runs the
//! receivers and no watch, alerts or healing; a query node runs no
//! receivers; a compact node neither. Every node serves the API.
//!
//! Shutdown: stop accepting (readiness turns 503 first), let in-flight
//! requests finish, write buffered rows out as Parquet, return; all within
//! [`SHUTDOWN_BUDGET`].

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, Instant},
};

use ophion_receiver::OtlpReceiver;
use ophion_store::Store;
use tokio::net::TcpListener;

use crate::{
    api::{self, ApiState, tail},
    auth::Auth,
    config::ServerConfig,
    guard::MemoryGuard,
};

/// How long shutdown may take in all.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(30);

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not open (data directory, metadata, object store).
    #[error("store: {0}")]
    Store(#[from] ophion_store::Error),
    /// The receivers could not be built or served.
    #[error("receiver: {0}")]
    Receiver(#[from] ophion_receiver::Error),
    /// The API address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving the API failed.
    #[error("api: {0}")]
    Serve(std::io::Error),
    /// Users and sessions could not be set up (token secret, first admin).
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The AI service could not start (its saved state).
    #[error("ai: {0}")]
    Ai(#[from] crate::ai::AiError),
    /// The copilot's language model is misconfigured.
    #[error("[ai.llm]: {0}")]
    Llm(#[from] ophion_ai::llm::LlmError),
    /// The route table is invalid (a route listed twice).
    #[error("routes: {0}")]
    Routes(String),
}

/// The addresses actually bound (port 0 in the configuration picks one).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Addresses {
    /// OTLP/gRPC (none on query and compact nodes).
    pub grpc: Option<SocketAddr>,
    /// OTLP/HTTP (none on query and compact nodes).
    pub otlp_http: Option<SocketAddr>,
    /// API, health and metrics.
    pub api: SocketAddr,
    /// Where other cluster nodes read this node's unflushed rows
    /// (`[store.cluster] flight_addr`, as advertised).
    pub flight: Option<String>,
    /// This node's role.
    pub role: ophion_store::config::Role,
}

/// A server with its ports bound, ready to serve.
#[derive(Debug)]
pub struct Server {
    addresses: Addresses,
    /// The OTLP receivers, on nodes that ingest.
    receiver: Option<ophion_receiver::BoundReceiver>,
    api: TcpListener,
    state: Arc<ApiState>,
    tls: Option<ophion_receiver::tls::Tls>,
    routes: Vec<api::routes::Route>,
}

impl Server {
    /// Opens the store (replaying its log) and binds every address.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        let store = Store::open(config.store.clone()).await?;
        let signing = crate::auth::signing::Source::of(
            &config.store.data_dir,
            std::env::var(crate::auth::signing::ENV).ok(),
        );
        // Nodes sharing users must sign their tokens with one key.
        if store.metadata().shared()
            && config.store.cluster.role != ophion_store::config::Role::All
            && signing.0 != crate::auth::signing::Source::Env
        {
            return Err(ServerError::Auth(crate::auth::AuthError::Invalid(format!(
                "a cluster's nodes share their users: give every node the same token signing key in {}",
                crate::auth::signing::ENV
            ))));
        }
        let guard = MemoryGuard::new(Arc::new(store.clone()), config.memory.soft_limit_bytes());
        let tail = tail::LogTail::default();
        let sink = Arc::new(tail::TailSink::new(guard.clone(), tail.clone()));
        let auth = Auth::open(
            store.metadata().clone(),
            config.auth.clone(),
            config.limits.clone(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            signing,
        )
        .await?;
        let admin_password = std::env::var("OPHION_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        if let Some(generated) = auth.bootstrap(admin_password).await? {
            tracing::warn!(
                username = "admin",
                password = %generated,
                "first start: created user admin with this generated password; it is shown once, change it with `ophion passwd`"
            );
        }
        let receiver = OtlpReceiver::builder(sink)
            .config(config.receiver.clone())
            .authenticator(auth.ingest_keys())
            .build()?;
        let reader = crate::read::Reader::new(Arc::new(store.clone()));
        let ai =
            crate::ai::AiService::open(reader.clone(), store.metadata().clone(), config.ai.clone())
                .await?;
        let llm = ophion_ai::llm::provider(&config.ai.llm)?;
        if let Some(l) = &llm {
            tracing::info!(provider = l.name(), model = %config.ai.llm.model, "copilot: language model configured");
        }
        let copilot = crate::copilot::Copilot::open(
            reader.clone(),
            Arc::clone(&ai),
            store.metadata().clone(),
            llm,
            config.ai.llm.max_tokens_per_tenant_per_day,
        )
        .await?;
        let mcp = crate::copilot::mcp::HttpService::new(copilot.tools().clone());
        let dashboards = crate::dashboards::Dashboards::open(store.metadata().clone()).await?;
        let alerts = crate::alerts::Alerts::open(
            store.metadata().clone(),
            reader.clone(),
            config.alerts.clone(),
        )
        .await?;
        let auth = Arc::new(auth);
        let heal = crate::heal::Heal::open(
            store.metadata().clone(),
            Arc::clone(&alerts),
            reader.clone(),
            Arc::clone(&auth),
            config.heal.clone(),
            config.store.data_dir.display().to_string(),
        )
        .await?;
        let state = Arc::new(ApiState {
            store,
            reader,
            ai,
            copilot,
            mcp,
            dashboards,
            alerts,
            heal,
            auth,
            receiver: receiver.clone(),
            guard,
            tail,
            ready: AtomicBool::new(true),
            client_errors: Default::default(),
            server_errors: Default::default(),
            started: Instant::now(),
        });
        let tls = ophion_receiver::tls::Tls::load(&config.tls)?;
        let role = config.store.cluster.role;
        let receiver = if role.ingests() {
            Some(receiver.bind().await?.with_tls(tls.clone()))
        } else {
            None
        };
        let api = TcpListener::bind(config.api_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.api_addr,
                source,
            })?;
        let addresses = Addresses {
            grpc: receiver.as_ref().map(|r| r.grpc_addr()),
            otlp_http: receiver.as_ref().map(|r| r.http_addr()),
            api: api.local_addr().map_err(ServerError::Serve)?,
            flight: state.store.flight_addr().map(str::to_owned),
            role,
        };
        tracing::info!(
            grpc = ?addresses.grpc,
            otlp_http = ?addresses.otlp_http,
            api = %addresses.api,
            flight = ?addresses.flight,
            role = role.as_str(),
            "ophion-server listening"
        );
        Ok(Self {
            addresses,
            receiver,
            api,
            state,
            tls,
            routes: Vec::new(),
        })
    }

    /// Adds an embedder's own API routes beside the built-in ones: each
    /// has a permission and a description, served in the OpenAPI document.
    /// A (method, path) listed twice stops [`Server::serve`] with an error.
    pub fn mount(mut self, routes: Vec<api::routes::Route>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// Where the server listens.
    pub fn addresses(&self) -> Addresses {
        self.addresses.clone()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        // An invalid route table stops the server before it serves anything.
        let app = api::with_routes(Arc::clone(&self.state), self.routes)
            .map_err(|e| ServerError::Routes(e.to_string()))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let state = Arc::clone(&self.state);
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new requests; writing buffered data to Parquet");
            state.set_unready();
            let _ = stop_tx.send(true);
        });
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // In a cluster, the features that read telemetry in the background
        // run on query nodes (and single nodes) only.
        let watches = self.state.store.role().watches();
        if watches && self.state.ai.config().watch {
            let auth = Arc::clone(&self.state.auth);
            let tenants: crate::ai::watch::TenantList = Arc::new(move || {
                let auth = Arc::clone(&auth);
                Box::pin(async move { auth.tenant_ids().await })
            });
            tokio::spawn(Arc::clone(&self.state.ai).run_watch(tenants, stop_rx.clone()));
        }

        // Alerts notify and healing acts: of the nodes sharing a metadata
        // database, the one holding the lease does (a node alone always
        // holds it).
        if watches && self.state.alerts.config().enabled {
            let alerts = Arc::clone(&self.state.alerts);
            tokio::spawn(while_leased(
                self.state.store.clone(),
                "alerts",
                stop_rx.clone(),
                move |stop| tokio::spawn(Arc::clone(&alerts).run(stop)),
            ));
        }
        if watches && self.state.heal.config().enabled {
            let ai = Arc::clone(&self.state.ai);
            self.state
                .heal
                .read_insights_from(Arc::new(move |t| ai.watch_insights(t)));
            let heal = Arc::clone(&self.state.heal);
            tokio::spawn(while_leased(
                self.state.store.clone(),
                "healing",
                stop_rx.clone(),
                move |stop| tokio::spawn(Arc::clone(&heal).run(stop)),
            ));
        }
        if self.state.store.metadata().shared() {
            tokio::spawn(reload_ingest_keys(
                Arc::clone(&self.state.auth),
                stop_rx.clone(),
            ));
        }

        let api_listener = self.api;
        let tls = self.tls.clone();
        let api_stop = stop_rx.clone();
        let api = async move {
            match tls {
                Some(t) => {
                    ophion_receiver::tls::serve_https(
                        api_listener,
                        app,
                        t.acceptor(),
                        wait(api_stop),
                    )
                    .await
                }
                None => {
                    axum::serve(
                        api_listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(wait(api_stop))
                    .await
                }
            }
        };
        let receiver_stop = stop_rx.clone();
        let receiver = async move {
            match self.receiver {
                Some(r) => r.serve(wait(receiver_stop)).await,
                None => Ok(()),
            }
        };
        let serving = async move {
            let (a, r) = tokio::join!(api, receiver);
            a.map_err(ServerError::Serve)?;
            r?;
            Ok::<_, ServerError>(())
        };
        tokio::pin!(serving);
        let mut stopping = stop_rx;
        tokio::select! {
            r = &mut serving => {
                // Serving ended without a shutdown request: an error.
                let flushed = finish(&self.state.store).await;
                return r.and(flushed);
            }
            _ = stopping.wait_for(|s| *s) => {}
        }
        // In-flight requests get part of the budget; open streams (a log
        // tail) are cut when it is spent.
        if tokio::time::timeout(DRAIN, &mut serving).await.is_err() {
            tracing::warn!("connections still open after {DRAIN:?}; closing them");
        }
        finish(&self.state.store).await
    }
}

/// Time in-flight requests get once shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// Writes buffered rows out as Parquet, within what is left of the budget.
async fn finish(store: &Store) -> Result<(), ServerError> {
    match tokio::time::timeout(SHUTDOWN_BUDGET - DRAIN, store.close()).await {
        Ok(Ok(())) => {
            tracing::info!("buffered data written; bye");
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not write buffered data out; it stays in the write-ahead log and is replayed at the next start");
            Err(e.into())
        }
        Err(_) => {
            tracing::error!(
                "shutdown budget spent; buffered data stays in the write-ahead log and is replayed at the next start"
            );
            Ok(())
        }
    }
}
/// Runs the server until `shutdown` completes.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config).await?.serve(shutdown).await
}

/// How long a node holds a duty's lease without renewing it, and how often
/// it renews: a node that dies hands the duty over within `LEASE_TTL`.
const LEASE_TTL: Duration = Duration::from_secs(15);
const LEASE_RENEW: Duration = Duration::from_secs(5);

/// Runs the duty `start` starts while this node holds the lease `name`,
/// and stops it (through the stop signal it was given) when the lease is
/// lost or cannot be renewed, or the server stops.
async fn while_leased(
    store: ophion_store::Store,
    name: &'static str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    start: impl Fn(tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()>,
) {
    let mut running: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )> = None;
    loop {
        let held = store.lease(name, LEASE_TTL).await.unwrap_or_else(|e| {
            tracing::warn!(duty = name, error = %e, "cannot renew the lease; pausing the duty");
            false
        });
        if held && running.is_none() {
            tracing::info!(duty = name, "this node runs the duty");
            let (tx, rx) = tokio::sync::watch::channel(false);
            running = Some((tx, start(rx)));
        } else if !held && let Some((tx, task)) = running.take() {
            tracing::info!(duty = name, "another node runs the duty");
            let _ = tx.send(true);
            let _ = task.await;
        }
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RENEW) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if let Some((tx, task)) = running {
        let _ = tx.send(true);
        let _ = task.await;
    }
}

/// How soon ingest keys created or revoked on another node sharing the
/// metadata database take effect on this one.
const KEYS_REFRESH: Duration = Duration::from_secs(5);

async fn reload_ingest_keys(auth: Arc<Auth>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(KEYS_REFRESH) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = auth.reload_ingest_keys().await {
            tracing::warn!(error = %e, "cannot read the ingest keys; keeping the last ones");
        }
    }
}
