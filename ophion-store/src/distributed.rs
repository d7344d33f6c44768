//! Scans too large for one query node, split across the cluster's query
//! nodes with [datafusion-distributed](https://github.com/datafusion-contrib/datafusion-distributed)
//! (DataFusion's own plans and Arrow Flight; no protocol of Ophion's).
//!
//! ```text
//!  query node asked (coordinator)             other query nodes (workers)
//!  SQL -> logical plan -> physical plan
//!  scan: files live at catalog version V,
//!        + every node's unflushed rows
//!  the planner cuts the plan at the scan:
//!    files / partition bytes > its cores?  ── no ──► runs here, as before
//!        │ yes
//!        ▼
//!  file groups split into one task per ──gRPC──► decode the fragment,
//!  query node (this one included);               read its files from the
//!  partial aggregates, filters, sorts            bucket, stream Arrow
//!  run there; the head stage here  ◄─Flight──    batches back
//! ```
//!
//! The coordinator plans against its own catalog version and buffers, so
//! which files and rows a query reads is decided in one place, once: the
//! workers read exactly the files they are handed (by path, immutable),
//! and the unflushed rows travel inside the plan. A worker needs no
//! catalog, no tenant of its own and no WAL; it is a DataFusion runtime
//! with the bucket registered and Ophion's functions.
//!
//! What crosses the wire is a plan that can read any file of the bucket,
//! so workers accept plans only with the cluster's secret
//! (`authorization: Bearer`, as the unflushed-rows service), and forward it
//! when they hand a stage to another worker.
//!
//! Not carried over the wire (the plan stays correct, a worker only reads
//! more): the text index's row selections (the search's filter still runs
//! on every row the worker reads) and the footer reader that reuses the
//! coordinator's footer cache (a worker caches footers in its own).

use std::sync::{Arc, RwLock};

use datafusion::{
    error::DataFusionError,
    execution::{SessionState, SessionStateBuilder},
    physical_plan::ExecutionPlan,
};
use datafusion_distributed::{
    DistributedExec, DistributedExt as _, SessionStateBuilderExt as _, Worker, WorkerQueryContext,
    WorkerResolver, WorkerSessionBuilder,
};
use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use url::Url;

/// The query nodes that run parts of large scans (their `flight_addr`),
/// as the catalog's heartbeats last listed them, this node included.
#[derive(Clone, Debug, Default)]
pub(crate) struct Workers(Arc<RwLock<Vec<Url>>>);

impl Workers {
    /// Replaces the list with `addrs` (`host:port`); unparsable ones are
    /// left out with a warning.
    pub(crate) fn set<'a>(&self, addrs: impl IntoIterator<Item = &'a str>) {
        let mut urls: Vec<Url> = addrs
            .into_iter()
            .filter_map(|a| match Url::parse(&format!("http://{a}")) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!(address = a, error = %e, "a query node's address is not usable; leaving it out of distributed queries");
                    None
                }
            })
            .collect();
        urls.sort();
        urls.dedup();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = urls;
    }

    /// How many query nodes can take a part of a scan.
    pub(crate) fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// The `authorization` header that carries `secret` (none when empty).
fn credentials(secret: &str) -> Result<HeaderMap, DataFusionError> {
    let mut headers = HeaderMap::new();
    if !secret.is_empty() {
        let value = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|e| DataFusionError::Configuration(format!("cluster.secret: {e}")))?;
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// `builder` (whose config is set) planning scans of more than
/// `bytes_per_partition` times its partitions across `workers`, with the
/// cluster's `secret` on every request to them.
pub(crate) fn coordinate(
    builder: SessionStateBuilder,
    workers: &Workers,
    bytes_per_partition: u64,
    secret: &str,
) -> Result<SessionStateBuilder, DataFusionError> {
    builder
        .with_distributed_planner()
        .with_distributed_worker_resolver(workers.clone())
        .with_distributed_file_scan_config_bytes_per_partition(
            usize::try_from(bytes_per_partition).unwrap_or(usize::MAX),
        )?
        .with_distributed_passthrough_headers(credentials(secret)?)
}

/// Whether `plan` runs on several nodes.
pub(crate) fn is_distributed(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<DistributedExec>().is_some()
        || plan.children().into_iter().any(is_distributed)
}

/// How a query node makes the session a plan fragment runs in: its
/// runtime (memory limit, the bucket, the footer cache) and Ophion's
/// functions on `builder`; it counts the fragments.
pub(crate) trait FragmentSessions: Send + Sync + 'static {
    /// `None` once the store is closing.
    fn session(&self, builder: SessionStateBuilder) -> Option<SessionState>;
}

/// The worker side: sessions for the plan fragments other query nodes
/// send.
struct Fragments(Box<dyn FragmentSessions>);

#[async_trait::async_trait]
impl WorkerSessionBuilder for Fragments {
    async fn build_session_state(
        &self,
        ctx: WorkerQueryContext,
    ) -> Result<SessionState, DataFusionError> {
        // A stage this fragment hands on to another worker carries the
        // credentials it came with.
        let mut forward = HeaderMap::new();
        if let Some(v) = ctx.headers.get(AUTHORIZATION) {
            forward.insert(AUTHORIZATION, v.clone());
        }
        let builder = ctx.builder.with_distributed_passthrough_headers(forward)?;
        self.0
            .session(builder)
            .ok_or_else(|| DataFusionError::Execution("this query node is closing".into()))
    }
}

/// The worker service this query node runs other nodes' plan fragments
/// with; requests are checked for the secret by the server it is mounted
/// on (see `cluster::serve`).
pub(crate) fn worker(sessions: Box<dyn FragmentSessions>) -> Worker {
    Worker::from_session_builder(Fragments(sessions))
}
