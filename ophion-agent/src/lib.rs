//! # ophion-agent
//!
//! The agent that runs beside applications: it takes their OTLP on 4317
//! (gRPC) and 4318 (HTTP) with the embedded [`ophion_receiver`], keeps
//! every request in a persistent queue on local disk, and sends the queue
//! to an Ophion server (or any OTLP endpoint) with its ingest key, in
//! order, until the server has taken it.
//!
//! ```text
//!  apps ─► OTLP gRPC/HTTP ─► receiver (forwarding) ─► QueueSink ─► DiskQueue (fsync, then 200)
//!                                                                       │
//!  server ◄── OTLP export (gzip, retries, Retry-After) ◄── Sender ◄─────┘ (cursor moves after each delivery)
//! ```
//!
//! What it guarantees:
//! - **Acknowledged means on disk.** A client's request is answered only
//!   once it is in the queue and synced ([`queue`]); `kill -9` of the
//!   agent loses nothing it acknowledged. After a crash at most the batch
//!   in flight is sent again.
//! - **Outages wait on disk, not in memory.** While the server is down,
//!   requests keep going to disk; memory holds at most the requests being
//!   received and one export batch. When the queue reaches its
//!   `[queue] max_bytes`, or the process its `[memory] limit_bytes`,
//!   clients get retryable answers (HTTP 503 with `Retry-After`, gRPC
//!   `UNAVAILABLE`), as the server gives them.
//! - **Nothing is dropped silently.** Only data the server can never take
//!   (a 400) is dropped, and counted in `/metrics`, as is every item the
//!   server refuses in a partial success.
//!
//! Modules: [`config`] (options), [`queue`] (the disk queue), [`export`]
//! (OTLP to the server and what each answer means), [`forward`] (the
//! receivers' sink and the sending loop), [`logs`] (log files, exactly
//! once), [`host`] (host metrics), [`resource`] (what describes this host), [`memory`] (the
//! resident-memory bound), [`admin`] (`/health`, `/metrics`). The `ophion-agent` binary in
//! `ophion-bin` loads the configuration and calls [`Agent::start`].

pub mod admin;
pub mod config;
pub mod export;
pub mod forward;
pub mod host;
pub mod logs;
pub mod memory;
pub mod queue;
pub mod resource;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use ophion_receiver::OtlpReceiver;
use tokio::sync::{Notify, watch};

pub use config::AgentConfig;

use crate::{
    export::Exporter,
    forward::{QueueSink, SendStats, Sender},
    memory::Rss,
    queue::{DiskQueue, QueueLimits},
};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not hold together.
    #[error("configuration: {0}")]
    Config(String),
    /// The queue cannot be opened.
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    /// A port cannot be bound.
    #[error(transparent)]
    Receiver(#[from] ophion_receiver::Error),
    /// The admin port cannot be bound.
    #[error("admin endpoint {addr}: {source}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    /// Where OTLP/gRPC is served.
    pub grpc_addr: SocketAddr,
    /// Where OTLP/HTTP is served.
    pub http_addr: SocketAddr,
    /// Where `/health` and `/metrics` are served.
    pub admin_addr: SocketAddr,
    /// The queue, for its counters.
    pub queue: Arc<DiskQueue>,
    /// The sink the agent's own collectors append to.
    pub sink: Arc<QueueSink>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Agent {
    /// Opens the queue, binds the ports and starts receiving and sending.
    pub async fn start(config: AgentConfig) -> Result<Self, StartError> {
        config.validate().map_err(StartError::Config)?;
        let queue = Arc::new(DiskQueue::open(
            &config.data_dir.join("queue"),
            QueueLimits {
                max_bytes: config.queue.max_bytes,
                segment_bytes: config.queue.segment_bytes,
            },
        )?);
        let pending = queue.pending();
        if pending > 0 {
            tracing::info!(
                pending,
                "queued requests from before the restart will be sent"
            );
        }
        let wake = Arc::new(Notify::new());
        let rss = Rss::watch(config.memory.limit_bytes);
        let sink = Arc::new(QueueSink {
            queue: Arc::clone(&queue),
            wake: Arc::clone(&wake),
            rss: Arc::clone(&rss),
            retry_after: Duration::from_secs(config.receiver.retry_after_secs.max(1)),
            dropped_host_points: Default::default(),
        });
        let receiver = OtlpReceiver::forwarder(Arc::clone(&sink) as _)
            .config(config.receiver.receiver())
            .build()?;
        let bound = receiver.clone().bind().await?;
        let (grpc_addr, http_addr) = (bound.grpc_addr(), bound.http_addr());
        let exporter = Exporter::new(
            &config.server.endpoint,
            config.server.protocol,
            config.server.ingest_key.clone(),
            Duration::from_secs(config.server.timeout_secs),
        )
        .map_err(StartError::Config)?;
        let stats = Arc::new(SendStats::default());
        let (stop, stopped) = watch::channel(false);
        let sender = Sender {
            queue: Arc::clone(&queue),
            exporter,
            wake,
            max_batch_bytes: config.server.max_batch_bytes,
            max_backoff: Duration::from_secs(config.server.max_backoff_secs.max(1)),
            stats: Arc::clone(&stats),
        };
        let admin_listener = tokio::net::TcpListener::bind(config.admin_addr)
            .await
            .map_err(|source| StartError::Admin {
                addr: config.admin_addr,
                source,
            })?;
        let admin_addr = admin_listener.local_addr().unwrap_or(config.admin_addr);
        let state = Arc::new(admin::State {
            receiver,
            queue: Arc::clone(&queue),
            sent: stats,
            rss,
            sink: Arc::clone(&sink),
        });
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(sender.run(stopped.clone())));
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let serve_stop = until(stopped.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = bound.serve(serve_stop).await {
                tracing::error!(error = %e, "the OTLP receivers stopped");
            }
        }));
        let admin_stop = until(stopped);
        tasks.push(tokio::spawn(async move {
            let app = admin::router(state);
            if let Err(e) = axum::serve(admin_listener, app)
                .with_graceful_shutdown(admin_stop)
                .await
            {
                tracing::error!(error = %e, "the admin endpoint stopped");
            }
        }));
        let mut threads = Vec::new();
        let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        let resource = resource::key_values(&resource::detect(&env));
        if config.host_metrics.enabled {
            tasks.push(host::spawn(
                config.host_metrics.clone(),
                Arc::clone(&sink),
                resource.clone(),
                stop.subscribe(),
            ));
        }
        if !config.logs.sources.is_empty() {
            let collector = logs::Collector::new(config.logs.clone(), Arc::clone(&sink), resource);
            threads.push(collector.spawn(stop.subscribe()));
        }
        tracing::info!(%grpc_addr, %http_addr, %admin_addr, server = %config.server.endpoint, "ophion-agent running");
        Ok(Self {
            grpc_addr,
            http_addr,
            admin_addr,
            queue,
            sink,
            stop,
            tasks,
            threads,
        })
    }

    /// Stops receiving and sending; what is queued stays on disk for the
    /// next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        for t in self.threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
