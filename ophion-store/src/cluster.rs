//! A node's part in a cluster: nodes share the catalog (PostgreSQL) and
//! the bucket, announce themselves with heartbeats in the catalog, and
//! query each other for rows not yet in Parquet over Arrow Flight, the way
//! InfluxDB 3's queriers ask its ingesters.
//!
//! ```text
//!  query node                                  ingest node
//!  scan: refresh the catalog to version V
//!        files live at V ───────────────────── (read from the bucket)
//!        DoGet(tenant, signal, V) ───Flight──► rows in memory not in a
//!                                              file published at or
//!                                              before V
//! ```
//!
//! Exactly once: an ingest node hands out its buffered rows plus the rows
//! of its snapshots published *after* `V` (kept [`KEEP_PUBLISHED`] after
//! publication), and answers while no commit of its own is under way, so
//! every row is either in a file the query reads or in the answer, never
//! both. A query node further behind than that is told to refresh and ask
//! again.
//!
//! Staleness: an ingest node that does not answer within
//! `peer_timeout_ms` is left out, with a warning and a count
//! (`peer_failures`); its rows not yet in Parquet are missing from answers
//! until it publishes them (at most `buffer.flush_interval_secs` after
//! they arrived while it runs; after its restart, once it has replayed
//! its write-ahead log and snapshotted).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use arrow_array::RecordBatch;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightClient, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
    encode::FlightDataEncoderBuilder,
    error::FlightError,
    flight_service_server::{FlightService, FlightServiceServer},
};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use ophion_core::{Signal, TenantId};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    catalog::{Catalog, Node},
    config::ClusterConfig,
    error::{Error, Result},
};

/// Where a node's own unflushed rows come from (the store), for the
/// Flight service.
#[async_trait::async_trait]
pub(crate) trait LocalRows: Send + Sync + 'static {
    /// The rows of a table in no file live at catalog version `after`;
    /// `None` when rows published after it are no longer kept.
    async fn unflushed(
        &self,
        tenant: &TenantId,
        signal: Signal,
        after: i64,
    ) -> Option<Vec<RecordBatch>>;
}

/// How long an ingest node keeps the rows of a published snapshot for
/// query nodes whose catalog is a version behind: a query node asks right
/// after refreshing its catalog, so a moment is enough; one slower than
/// that is told to refresh and ask again. (At most `flush_bytes` of them
/// are kept, outside the write budget.)
pub(crate) const KEEP_PUBLISHED: Duration = Duration::from_secs(2);

/// How long a query node reuses the list of live nodes.
const NODES_FRESH: Duration = Duration::from_secs(1);

/// The Flight ticket's format version.
const TICKET_V1: &str = "ophion-unflushed-v1";

/// A ticket: which rows, after which catalog version.
fn ticket(tenant: &TenantId, signal: Signal, after: i64) -> Ticket {
    Ticket::new(format!(
        "{TICKET_V1}\t{}\t{}\t{after}",
        tenant.as_str(),
        signal.as_str()
    ))
}

fn parse_ticket(t: &[u8]) -> Option<(TenantId, Signal, i64)> {
    let s = std::str::from_utf8(t).ok()?;
    let mut parts = s.split('\t');
    (parts.next()? == TICKET_V1).then_some(())?;
    let tenant = TenantId::new(parts.next()?).ok()?;
    let signal = parts.next()?;
    let signal = Signal::ALL.into_iter().find(|x| x.as_str() == signal)?;
    let after = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((tenant, signal, after))
}

/// Why a peer's rows could not be had.
#[derive(Debug)]
pub(crate) enum PeerError {
    /// The peer no longer keeps what the asked version needs: refresh the
    /// catalog and ask again.
    Behind,
    /// Unreachable, too slow, refused, or broken.
    Failed(String),
}

/// The cluster side of a store: its peers and how to reach them.
#[derive(Debug)]
pub(crate) struct Cluster {
    config: ClusterConfig,
    /// Where this node serves its unflushed rows (empty: nowhere).
    advertised: String,
    nodes: tokio::sync::Mutex<Option<(Instant, Vec<Node>)>>,
    /// One connection per peer address, reused by queries.
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
    /// The query nodes that take parts of large scans, refreshed with
    /// each heartbeat.
    pub(crate) workers: crate::distributed::Workers,
}

impl Cluster {
    pub(crate) fn new(config: ClusterConfig, advertised: String) -> Self {
        Self {
            config,
            advertised,
            nodes: tokio::sync::Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
            workers: crate::distributed::Workers::default(),
        }
    }

    /// Where this node serves its unflushed rows (empty: nowhere).
    pub(crate) fn advertised(&self) -> &str {
        &self.advertised
    }

    fn heartbeat_ns(&self) -> i64 {
        i64::try_from(self.config.heartbeat_secs).unwrap_or(60) * 1_000_000_000
    }

    /// Announces this node in the catalog and refreshes the list of
    /// query nodes that take parts of large scans (the future holds no
    /// borrow).
    pub(crate) fn heartbeat(
        &self,
        catalog: &Catalog,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let db = Arc::clone(catalog.db());
        let node = catalog.node().to_owned();
        let role = self.config.role.as_str();
        let flight = self.advertised.clone();
        let workers = self.workers.clone();
        let max_age = 3 * self.heartbeat_ns();
        async move {
            db.heartbeat(&node, role, &flight).await?;
            let nodes = db.nodes(max_age).await?;
            workers.set(
                nodes
                    .iter()
                    .filter(|n| {
                        !n.flight.is_empty()
                            && n.role
                                .parse::<crate::config::Role>()
                                .is_ok_and(|r| r.queries())
                    })
                    .map(|n| n.flight.as_str()),
            );
            Ok(())
        }
    }

    /// The other nodes that serve unflushed rows, heard of within three
    /// heartbeats.
    async fn peers(&self, catalog: &Catalog) -> Result<Vec<Node>> {
        let mut cached = self.nodes.lock().await;
        if let Some((at, nodes)) = cached.as_ref()
            && at.elapsed() < NODES_FRESH
        {
            return Ok(nodes.clone());
        }
        let me = catalog.node();
        let nodes: Vec<Node> = catalog
            .db()
            .nodes(3 * self.heartbeat_ns())
            .await?
            .into_iter()
            .filter(|n| n.name != me && !n.flight.is_empty())
            .collect();
        *cached = Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }

    fn client(&self, addr: &str) -> Result<FlightClient> {
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            match channels.get(addr) {
                Some(c) => c.clone(),
                None => {
                    let timeout = Duration::from_millis(self.config.peer_timeout_ms.max(1));
                    let c = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                        .map_err(|e| Error::Config(format!("peer address {addr:?}: {e}")))?
                        .connect_timeout(timeout)
                        .timeout(timeout)
                        .tcp_nodelay(true)
                        .connect_lazy();
                    channels.insert(addr.to_owned(), c.clone());
                    c
                }
            }
        };
        let mut client = FlightClient::new(channel);
        if !self.config.secret.is_empty() {
            client
                .add_header("authorization", &format!("Bearer {}", self.config.secret))
                .map_err(|e| Error::Config(format!("cluster.secret: {e}")))?;
        }
        Ok(client)
    }

    /// Every other node's rows of `tenant`'s `signal` that are in no file
    /// live at catalog version `after`. Nodes that fail are left out
    /// (warned and counted in `failures`); `Err(Behind)` when a node
    /// needs a newer version.
    pub(crate) async fn unflushed(
        &self,
        catalog: &Catalog,
        failures: &AtomicU64,
        tenant: &TenantId,
        signal: Signal,
        after: i64,
    ) -> std::result::Result<Vec<RecordBatch>, PeerError> {
        let peers = match self.peers(catalog).await {
            Ok(p) => p,
            Err(e) => {
                // Without the node list, the query answers from files and
                // this node's rows.
                tracing::warn!(error = %e, "cannot list the cluster's nodes; answering without their unflushed rows");
                failures.fetch_add(1, Relaxed);
                return Ok(Vec::new());
            }
        };
        let asks = peers.iter().map(|n| async move {
            let got = self.ask(&n.flight, tenant, signal, after).await;
            (n, got)
        });
        let mut out = Vec::new();
        for (node, got) in futures::future::join_all(asks).await {
            match got {
                Ok(batches) => out.extend(batches),
                Err(PeerError::Behind) => return Err(PeerError::Behind),
                Err(PeerError::Failed(e)) => {
                    failures.fetch_add(1, Relaxed);
                    tracing::warn!(
                        node = %node.name,
                        address = %node.flight,
                        error = %e,
                        "a node's unflushed rows are missing from this answer"
                    );
                }
            }
        }
        Ok(out)
    }

    async fn ask(
        &self,
        addr: &str,
        tenant: &TenantId,
        signal: Signal,
        after: i64,
    ) -> std::result::Result<Vec<RecordBatch>, PeerError> {
        let mut client = self
            .client(addr)
            .map_err(|e| PeerError::Failed(e.to_string()))?;
        let timeout = Duration::from_millis(self.config.peer_timeout_ms.max(1));
        let fetch = async {
            let stream = client.do_get(ticket(tenant, signal, after)).await?;
            stream.try_collect::<Vec<RecordBatch>>().await
        };
        let batches = match tokio::time::timeout(timeout, fetch).await {
            Err(_) => return Err(PeerError::Failed(format!("no answer within {timeout:?}"))),
            Ok(Err(FlightError::Tonic(s))) if s.code() == tonic::Code::FailedPrecondition => {
                return Err(PeerError::Behind);
            }
            Ok(Err(e)) => return Err(PeerError::Failed(e.to_string())),
            Ok(Ok(b)) => b,
        };
        // The table's own schema (field metadata may not survive the wire).
        let schema = signal.schema();
        batches
            .into_iter()
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| PeerError::Failed(format!("rows of an unexpected shape: {e}")))
    }
}

/// Serves this node's unflushed rows to the other nodes (Arrow Flight
/// `DoGet`; every other call is unimplemented).
pub(crate) struct Unflushed {
    rows: Box<dyn LocalRows>,
    secret: String,
}

impl Unflushed {
    pub(crate) fn service(rows: Box<dyn LocalRows>, secret: String) -> FlightServiceServer<Self> {
        FlightServiceServer::new(Self { rows, secret })
    }

    fn check<T>(&self, request: &Request<T>) -> std::result::Result<(), Status> {
        authorize(&self.secret, request.metadata())
    }
}

/// Whether `metadata` carries the cluster's `secret` (`authorization:
/// Bearer`); every request to a node's Flight address must.
fn authorize(
    secret: &str,
    metadata: &tonic::metadata::MetadataMap,
) -> std::result::Result<(), Status> {
    if secret.is_empty() {
        return Ok(());
    }
    let given = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(s) if constant_time_eq(s.as_bytes(), secret.as_bytes()) => Ok(()),
        _ => Err(Status::unauthenticated(
            "this node's services need the cluster's secret",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Boxed<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

fn unimplemented<T>() -> std::result::Result<T, Status> {
    Err(Status::unimplemented(
        "an Ophion node serves only DoGet of its unflushed rows",
    ))
}

#[tonic::async_trait]
impl FlightService for Unflushed {
    type HandshakeStream = Boxed<HandshakeResponse>;
    type ListFlightsStream = Boxed<FlightInfo>;
    type DoGetStream = Boxed<FlightData>;
    type DoPutStream = Boxed<PutResult>;
    type DoActionStream = Boxed<arrow_flight::Result>;
    type ListActionsStream = Boxed<ActionType>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<Self::DoGetStream>, Status> {
        self.check(&request)?;
        let (tenant, signal, after) = parse_ticket(&request.get_ref().ticket)
            .ok_or_else(|| Status::invalid_argument("not an Ophion unflushed-rows ticket"))?;
        let batches = self
            .rows
            .unflushed(&tenant, signal, after)
            .await
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "rows published after catalog version {after} are no longer kept here, or the node is closing: refresh the catalog and ask again"
                ))
            })?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(signal.schema())
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Ok(Response::new(stream.boxed()))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<Response<Self::HandshakeStream>, Status> {
        unimplemented()
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> std::result::Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented()
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        unimplemented()
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<PollInfo>, Status> {
        unimplemented()
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<SchemaResult>, Status> {
        unimplemented()
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoPutStream>, Status> {
        unimplemented()
    }

    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> std::result::Result<Response<Self::DoActionStream>, Status> {
        unimplemented()
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> std::result::Result<Response<Self::ListActionsStream>, Status> {
        unimplemented()
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented()
    }
}

/// Binds `config.flight_addr`; the listener and the address to
/// advertise.
pub(crate) async fn bind(config: &ClusterConfig) -> Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind(&config.flight_addr)
        .await
        .map_err(|e| {
            Error::Config(format!(
                "cluster.flight_addr {}: cannot listen: {e}",
                config.flight_addr
            ))
        })?;
    let bound = listener.local_addr()?;
    if config.secret.is_empty() && !bound.ip().is_loopback() {
        tracing::warn!(address = %bound, "cluster.secret is empty: anyone who reaches this address reads every tenant's unflushed rows");
    }
    tracing::info!(address = %bound, "serving unflushed rows to the cluster (Arrow Flight)");
    let advertised = if config.advertise_addr.is_empty() {
        bound.to_string()
    } else {
        config.advertise_addr.clone()
    };
    Ok((listener, advertised))
}

/// Serves this node's unflushed rows on `listener` until `stop` is
/// notified (the store's end), and, on query nodes, `worker`: the parts of
/// other query nodes' scans (see `distributed`). Both need the secret.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    rows: Box<dyn LocalRows>,
    worker: Option<datafusion_distributed::Worker>,
    secret: String,
    stop: Arc<tokio::sync::Notify>,
) {
    let worker = worker.map(|w| {
        let secret = secret.clone();
        tonic::service::interceptor::InterceptedService::new(
            w.into_worker_server(),
            move |request: Request<()>| {
                authorize(&secret, request.metadata())?;
                Ok(request)
            },
        )
    });
    let service = Unflushed::service(rows, secret);
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .add_optional_service(worker)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move { stop.notified().await },
            )
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "serving unflushed rows to the cluster failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_reject_others() {
        let t = TenantId::new("acme-1").expect("tenant");
        for s in Signal::ALL {
            let got = parse_ticket(&ticket(&t, s, 42).ticket).expect("parsed");
            assert_eq!(got, (t.clone(), s, 42));
        }
        for bad in [
            "",
            "ophion-unflushed-v1\tacme\ttraces",
            "ophion-unflushed-v2\tacme\ttraces\t1",
            "ophion-unflushed-v1\tac me\ttraces\t1",
            "ophion-unflushed-v1\tacme\tnope\t1",
            "ophion-unflushed-v1\tacme\ttraces\tx",
            "ophion-unflushed-v1\tacme\ttraces\t1\textra",
        ] {
            assert!(parse_ticket(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
