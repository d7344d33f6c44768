//! # ophion-receiver
//!
//! OTLP receivers for traces, metrics and logs that turn telemetry into
//! Ophion's Arrow batches and hand them to any
//! [`ophion_core::TelemetrySink`]. Embeddable: serve it on
//! its own ports, or mount its HTTP routes in your axum app and its gRPC
//! services in your tonic server.
//!
//! ```text
//!  gRPC :4317 ─► front door (auth, slot, capped gunzip) ─► tonic decode ─┐
//!  HTTP :4318 ─► auth, slot, body limit ─► gunzip (capped) ─► decode ───┤
//!                                       (protobuf or JSON, see [json])  │
//!                                 convert (pure, see [convert]) ◄───────┘
//!                                        │ valid rows + rejections by reason
//!                                        ▼
//!                                 sink.write(tenant, batch) ── Ok = durable
//!                                        │
//!                    200 / OK (+ partial_success) · 400 · 413 · 415 · 503+Retry-After
//! ```
//!
//! Answers follow the OTLP specification: a partial success reports the
//! count of rejected items and why, errors carry a `google.rpc.Status`,
//! retryable failures (overload, storage unavailable) carry `Retry-After`
//! or `RetryInfo`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ophion_core::MemorySink;
//! use ophion_receiver::{OtlpReceiver, ReceiverConfig};
//!
//! let sink = Arc::new(MemorySink::new());
//! let receiver = OtlpReceiver::builder(sink).config(ReceiverConfig::default()).build()?;
//! let bound = receiver.bind().await?;
//! println!("gRPC on {}, HTTP on {}", bound.grpc_addr(), bound.http_addr());
//! bound.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! Embedding in an existing server instead:
//! [`OtlpReceiver::http_router`] gives an `axum::Router` with the three
//! `/v1/*` routes and [`OtlpReceiver::grpc_routes`] gives `tonic` routes.
//!
//! [`OtlpReceiver::forwarder`] builds a receiver that hands each request
//! on to a [`RequestSink`] as protobuf instead of converting it ([`forward`]:
//! what `ophion-agent` queues and sends on).
//!
//! An [`Authenticator`] decides, from the headers and the peer address and
//! before any body is read, which tenant a request writes to (or refuses it,
//! rate limits included). [`tls`] serves both ports over rustls when a
//! certificate is configured ([`BoundReceiver::with_tls`]).
//!
//! This crate has no cargo features.

pub mod auth;
pub mod config;
pub mod convert;
pub mod error;
pub mod forward;
mod grpc;
mod http;
pub mod json;
mod service;
pub mod stats;
pub mod tls;

use std::{future::Future, net::SocketAddr, sync::Arc};

use ophion_core::{Clock, SystemClock, TelemetrySink};
use tokio::{net::TcpListener, sync::Semaphore};

pub use auth::{AuthError, Authenticator};
pub use config::{Limits, ReceiverConfig};
pub use error::{Error, Result};
pub use forward::{EncodedRequest, RequestSink};
pub use service::{DecodedRequest, convert_decoded, decode};
pub use stats::StatsSnapshot;

use service::{Shared, Target};

/// Builds an [`OtlpReceiver`].
#[derive(Debug)]
pub struct ReceiverBuilder {
    target: Target,
    config: ReceiverConfig,
    clock: Arc<dyn Clock>,
    auth: Option<Arc<dyn Authenticator>>,
}

impl ReceiverBuilder {
    /// Listen addresses and limits (default: [`ReceiverConfig::default`]).
    pub fn config(mut self, config: ReceiverConfig) -> Self {
        self.config = config;
        self
    }

    /// The time source for the accepted time window (default: system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Authenticates each request before its body is read; without one,
    /// every request is accepted for the default tenant.
    pub fn authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Validates the configuration and builds the receiver.
    pub fn build(self) -> Result<OtlpReceiver> {
        self.config.validate()?;
        let permits = Arc::new(Semaphore::new(self.config.max_concurrent_requests));
        Ok(OtlpReceiver {
            shared: Arc::new(Shared {
                target: self.target,
                config: self.config,
                clock: self.clock,
                auth: self.auth,
                permits,
                decode_slots: Semaphore::new(
                    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
                ),
                stats: Default::default(),
            }),
        })
    }
}

/// An OTLP receiver: cheap to clone, all clones share counters and limits.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    shared: Arc<Shared>,
}

impl OtlpReceiver {
    /// Starts building a receiver that writes to `sink`.
    pub fn builder(sink: Arc<dyn TelemetrySink>) -> ReceiverBuilder {
        Self::with_target(Target::Store(sink))
    }

    /// Starts building a receiver that hands each request on to `sink` as
    /// protobuf, unconverted (see [`forward`]).
    pub fn forwarder(sink: Arc<dyn RequestSink>) -> ReceiverBuilder {
        Self::with_target(Target::Forward(sink))
    }

    fn with_target(target: Target) -> ReceiverBuilder {
        ReceiverBuilder {
            target,
            config: ReceiverConfig::default(),
            clock: Arc::new(SystemClock),
            auth: None,
        }
    }

    /// The OTLP/HTTP routes (`POST /v1/traces`, `/v1/metrics`, `/v1/logs`)
    /// to mount in an axum application.
    pub fn http_router(&self) -> axum::Router {
        http::router(Arc::clone(&self.shared))
    }

    /// The OTLP/gRPC services, to add to a tonic server with
    /// `Server::builder().add_routes(...)`.
    pub fn grpc_routes(&self) -> tonic::service::Routes {
        grpc::routes(Arc::clone(&self.shared))
    }

    /// Counters of what was received and refused.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReceiverConfig {
        &self.shared.config
    }

    /// Binds the configured gRPC and HTTP addresses (port 0 picks a free port).
    pub async fn bind(self) -> Result<BoundReceiver> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })
        };
        let grpc = bind(self.shared.config.grpc_addr).await?;
        let http = bind(self.shared.config.http_addr).await?;
        Ok(BoundReceiver {
            receiver: self,
            grpc,
            http,
            tls: None,
        })
    }
}

/// A receiver whose ports are bound, ready to serve.
#[derive(Debug)]
pub struct BoundReceiver {
    receiver: OtlpReceiver,
    grpc: TcpListener,
    http: TcpListener,
    tls: Option<tls::Tls>,
}

impl BoundReceiver {
    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .unwrap_or(self.receiver.shared.config.grpc_addr)
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or(self.receiver.shared.config.http_addr)
    }

    /// The receiver, for its counters.
    pub fn receiver(&self) -> &OtlpReceiver {
        &self.receiver
    }

    /// Serves both ports over TLS with `tls` (plain when `None`).
    pub fn with_tls(mut self, tls: Option<tls::Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// Serves both transports until `shutdown` completes, then stops
    /// accepting connections and lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut builder = tonic::transport::Server::builder();
        if let Some(t) = &self.tls {
            builder = builder.tls_config(t.grpc()).map_err(|e| Error::Serve {
                transport: "grpc",
                message: e.to_string(),
            })?;
        }
        let grpc = builder
            .add_routes(self.receiver.grpc_routes())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(self.grpc).with_nodelay(Some(true)),
                wait(rx.clone()),
            );
        let router = self.receiver.http_router();
        let http = async move {
            match self.tls {
                Some(t) => tls::serve_https(self.http, router, t.acceptor(), wait(rx)).await,
                None => {
                    axum::serve(
                        self.http,
                        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .with_graceful_shutdown(wait(rx))
                    .await
                }
            }
        };
        let (g, h) = tokio::join!(grpc, http);
        g.map_err(|e| Error::Serve {
            transport: "grpc",
            message: e.to_string(),
        })?;
        h.map_err(|e| Error::Serve {
            transport: "http",
            message: e.to_string(),
        })?;
        Ok(())
    }
}
