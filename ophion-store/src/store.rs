//! The store: write path, snapshots to Parquet, recovery.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use arrow_array::RecordBatch;
use datafusion::execution::{SendableRecordBatchStream, cache::cache_manager::FileMetadataCache};
use futures::StreamExt as _;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use ophion_core::{
    Clock, Signal, SinkError, SystemClock, TelemetryBatch, TelemetrySink, TenantId, schema::col,
};
use tokio::sync::{Notify, RwLock};

use crate::{
    catalog::{Catalog, CatalogDb, NewFile, postgres::PgCatalog, sqlite::SqliteCatalog},
    config::StoreConfig,
    error::{Error, Result},
    metadata::Metadata,
    objstore, persist,
    rollup::{MINUTE_NS, Rollups},
    wal::{self, Replay, Wal},
};

type Key = (TenantId, Signal);

/// Rows in memory: acknowledged and not yet in a published file.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    /// Rows still being written.
    active: HashMap<Key, Vec<RecordBatch>>,
    active_bytes: usize,
    /// Rows of earlier snapshots whose files are not published yet.
    persisting: HashMap<Key, Vec<RecordBatch>>,
    persisting_bytes: usize,
    /// Rows of writes on their way through the log: reserved against the
    /// budget before the log sees them, so that concurrent writers cannot
    /// all pass the check at once.
    reserved_bytes: usize,
    /// Rows of recent snapshots, with the catalog version that published
    /// them, kept [`crate::cluster::KEEP_PUBLISHED`] for query nodes whose
    /// catalog is a version behind (nodes serving their unflushed rows
    /// only).
    published: std::collections::VecDeque<Published>,
    published_bytes: usize,
    /// Snapshots published at versions up to this one are no longer kept.
    dropped_through: i64,
}

/// A published snapshot's rows, kept a moment for query nodes.
#[derive(Debug)]
struct Published {
    version: i64,
    at: Instant,
    rows: HashMap<Key, Vec<RecordBatch>>,
    bytes: usize,
}

impl Buffer {
    fn push(&mut self, key: Key, batch: RecordBatch) {
        self.active_bytes += batch.get_array_memory_size();
        self.active.entry(key).or_default().push(batch);
    }

    /// Every buffered batch of one table, for queries.
    pub(crate) fn batches(&self, tenant: &TenantId, signal: Signal) -> Vec<RecordBatch> {
        let key = (tenant.clone(), signal);
        let mut out = self.persisting.get(&key).cloned().unwrap_or_default();
        out.extend(self.active.get(&key).into_iter().flatten().cloned());
        out
    }

    /// The bytes writes are admitted against. Published rows kept for
    /// query nodes are not among them: they are capped apart (`prune`),
    /// so a node serving its rows takes writes at the single node's rate.
    fn bytes(&self) -> usize {
        self.active_bytes + self.persisting_bytes + self.reserved_bytes
    }

    /// Drops the published rows kept longer than needed, and the oldest
    /// beyond `cap` bytes (a query node that needed them is told to
    /// refresh its catalog and ask again).
    fn prune(&mut self, now: Instant, cap: usize) {
        while let Some(p) = self.published.front() {
            if now.duration_since(p.at) < crate::cluster::KEEP_PUBLISHED
                && self.published_bytes <= cap
            {
                break;
            }
            self.published_bytes -= p.bytes;
            self.dropped_through = self.dropped_through.max(p.version);
            self.published.pop_front();
        }
    }
}

/// Counters of the store, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Rows acknowledged.
    pub rows_written: AtomicU64,
    /// Writes refused as overload.
    pub writes_refused: AtomicU64,
    /// Writes failed by the log (disk full, I/O).
    pub wal_failures: AtomicU64,
    /// Records replayed from the log at start.
    pub wal_replayed_records: AtomicU64,
    /// Log segments whose tail was truncated or corrupt at start.
    pub wal_corrupt_tails: AtomicU64,
    /// Snapshots persisted.
    pub snapshots: AtomicU64,
    /// Snapshots that failed (retried later).
    pub snapshot_failures: AtomicU64,
    /// Parquet files published.
    pub files_written: AtomicU64,
    /// Parquet bytes published.
    pub bytes_written: AtomicU64,
    /// Files removed by retention.
    pub files_expired: AtomicU64,
    /// Files merged away by compaction.
    pub files_compacted: AtomicU64,
    /// Microseconds spent in the last snapshot.
    pub last_snapshot_micros: AtomicU64,
    /// Unpublished files (left by a crash) deleted at start.
    pub orphans_deleted: AtomicU64,
    /// File rows that text searches skipped by the text index.
    pub text_index_rows_skipped: AtomicU64,
    /// Times a query answered without a cluster node's unflushed rows
    /// (the node unreachable, too slow, or the node list unreadable).
    pub peer_failures: AtomicU64,
    /// Queries this node split across the cluster's query nodes.
    pub distributed_queries: AtomicU64,
    /// Split queries that failed (a query node gone, or refusing this
    /// one) and ran again on this node alone.
    pub distributed_fallbacks: AtomicU64,
    /// Parts of other query nodes' scans this node ran.
    pub worker_tasks: AtomicU64,
    /// Time from a write's arrival at the log to its fsync.
    pub wal_append: ophion_core::Histogram,
    /// Time a snapshot to Parquet takes.
    pub snapshot_duration: ophion_core::Histogram,
}

pub(crate) struct Inner {
    pub(crate) config: StoreConfig,
    pub(crate) wal: Wal,
    pub(crate) metadata: Metadata,
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) buffer: Mutex<Buffer>,
    pub(crate) catalog: Catalog,
    pub(crate) stats: StoreStats,
    pub(crate) clock: Arc<dyn Clock>,
    /// Per-minute span rollups (`span_minutes`, `service_minutes`, `service_edges`).
    pub(crate) rollups: Arc<Rollups>,
    /// Parquet footers and page indexes, shared by every query session.
    pub(crate) metadata_cache: Arc<FileMetadataCache>,
    /// Parsed text indexes of recently searched files.
    pub(crate) text_indexes: crate::textindex::IndexCache,
    /// Writers hold it shared from log append to buffer insert; a snapshot
    /// holds it exclusively while it rotates the log and swaps the buffer, so
    /// every row acknowledged from an older segment is in the snapshot.
    gate: RwLock<()>,
    /// One snapshot at a time.
    snapshotting: tokio::sync::Mutex<()>,
    /// Objects retired from the catalog and when, deleted by a later
    /// upkeep pass once running queries cannot need them.
    pub(crate) retired: Mutex<Vec<(String, std::time::Instant)>>,
    /// One compaction or retention pass at a time.
    pub(crate) maintenance: tokio::sync::Mutex<()>,
    /// Wakes the background task; shared so that the task can wait
    /// without keeping the store alive.
    wake: Arc<Notify>,
    /// This node's part in a cluster (a shared catalog only).
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    /// Stops serving unflushed rows when the store is dropped.
    flight_stop: Arc<Notify>,
    /// This node's writer tag, in the names of the files it writes.
    pub(crate) writer: String,
    /// Set by [`Store::close`]: the background task ends after its pass.
    pub(crate) closing: std::sync::atomic::AtomicBool,
    /// The background task, awaited by [`Store::close`].
    background: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Held (locked) for the store's life: one process per data directory.
    _dir_lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flight_stop.notify_one();
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.config.data_dir)
            .finish_non_exhaustive()
    }
}

/// Ophion's telemetry store. Cheap to clone; see the crate docs.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the data directory readable by its owner only (`0700` on
/// Unix); a directory that already exists keeps its mode, with a warning
/// when others may read it.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        b.mode(0o700);
        b.create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is readable by other users: chmod 700 it"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    b.create(dir)
}

/// This node's name in the catalog: the configured one, else the one kept
/// in `<data_dir>/node-id` (made at the first start).
fn node_name(config: &StoreConfig) -> Result<String> {
    if !config.catalog.node.is_empty() {
        return Ok(config.catalog.node.clone());
    }
    let path = config.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
        Ok(_) => Err(Error::Corrupt(format!("{} is empty", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = format!("node-{}", uuid::Uuid::now_v7().simple());
            // Written aside and renamed: never a half-written name.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &name)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(name)
        }
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// Opens the store: migrates the metadata database, loads the catalog,
    /// replays the write-ahead log into memory (skipping and counting a
    /// damaged tail) and starts the background snapshot task.
    pub async fn open(config: StoreConfig) -> Result<Self> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`Store::open`] with an injected clock (retention, tests).
    pub async fn open_with_clock(config: StoreConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        config.validate()?;
        private_dir(&config.data_dir)?;
        let dir_lock = lock_data_dir(&config.data_dir).await?;
        // The metadata lives with the catalog: in the data directory, or
        // in the PostgreSQL database a cluster's nodes share.
        let (metadata, db): (Metadata, Arc<dyn CatalogDb>) =
            if config.catalog.postgres_url.is_empty() {
                let metadata = Metadata::open(&config.data_dir.join("metadata.db"))?;
                let db = Arc::new(SqliteCatalog::open(metadata.clone()).await?);
                (metadata, db)
            } else {
                let (url, schema) = (
                    &config.catalog.postgres_url,
                    &config.catalog.postgres_schema,
                );
                let db = Arc::new(PgCatalog::connect(url, schema).await?);
                (Metadata::connect(url, schema).await?, db)
            };
        let node = node_name(&config)?;
        let (catalog, watermark) = Catalog::open(db, &node).await?;
        let wal_dir = config.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let mut buffer = Buffer::default();
        let replay = wal::replay(&wal_dir, watermark, |_, payload| {
            for e in wal::decode(payload)? {
                buffer.push((e.tenant, e.signal), e.batch);
            }
            Ok(())
        })?;
        let wal = Wal::open(
            &wal_dir,
            config.wal.sync,
            config.wal.segment_bytes,
            config.wal.queue,
        )?;
        // Segments below the watermark are persisted; a crash may have left them.
        wal.truncate_before(watermark)?;
        let objects = objstore::build(&config)?;
        let shared = catalog.db().shared();
        // The rollups see only this node's writes: with a shared catalog,
        // queries read the spans (every node's) instead.
        let rollup_minutes = if shared {
            0
        } else {
            i64::from(config.query.rollup_hours) * 60
        };
        let flight = if config.cluster.flight_addr.is_empty() {
            None
        } else {
            Some(crate::cluster::bind(&config.cluster).await?)
        };
        let cluster = shared.then(|| {
            crate::cluster::Cluster::new(
                config.cluster.clone(),
                flight.as_ref().map(|(_, a)| a.clone()).unwrap_or_default(),
            )
        });
        let metadata_cache: Arc<FileMetadataCache> = Arc::new(crate::footers::FooterCache::new(
            "ophion parquet metadata",
            config.query.metadata_cache_mb << 20,
        ));
        let config_text_cache = config.query.text_index_cache_mb << 20;
        let inner = Arc::new(Inner {
            config,
            wal,
            metadata,
            objects,
            buffer: Mutex::new(buffer),
            catalog,
            stats: StoreStats::default(),
            rollups: Arc::new(Rollups::new(Some(rollup_minutes), false)),
            metadata_cache,
            text_indexes: crate::textindex::IndexCache::new(config_text_cache),
            clock,
            gate: RwLock::new(()),
            snapshotting: tokio::sync::Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            maintenance: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            cluster,
            flight_stop: Arc::new(Notify::new()),
            writer: persist::writer_tag(&node),
            closing: std::sync::atomic::AtomicBool::new(false),
            background: Mutex::new(None),
            _dir_lock: dir_lock,
        });
        if let Some((listener, _)) = flight {
            // Query nodes also run parts of each other's large scans.
            let worker = (inner.cluster.is_some() && inner.config.cluster.role.queries())
                .then(|| crate::distributed::worker(Box::new(Arc::downgrade(&inner))));
            crate::cluster::serve(
                listener,
                Box::new(Arc::downgrade(&inner)),
                worker,
                inner.config.cluster.secret.clone(),
                Arc::clone(&inner.flight_stop),
            );
        }
        if let Some(c) = &inner.cluster {
            c.heartbeat(&inner.catalog).await?;
            tokio::spawn(heartbeats(
                Arc::downgrade(&inner),
                Duration::from_secs(inner.config.cluster.heartbeat_secs),
            ));
        }
        record_replay(&inner.stats, &replay);
        let known = inner.catalog.all().iter().map(|f| f.path.clone()).collect();
        // The first call to the object store: a missing bucket, a wrong
        // endpoint or refused credentials stop the opening here, saying so.
        // With a shared catalog, another node's file may be written and
        // not yet published: only files an hour old are orphans, and this
        // node's own (its name says so), which its crash left.
        let min_age = if inner.catalog.db().shared() {
            Duration::from_secs(3600)
        } else {
            Duration::ZERO
        };
        let orphans = objstore::sweep_orphans(
            inner.objects.as_ref(),
            &known,
            min_age,
            &persist::writer_suffix(&inner.writer),
        )
        .await
            .map_err(|e| {
                Error::Config(format!(
                    "the object store ({}) cannot be read: {e}; check the bucket, endpoint and credentials",
                    inner.config.object_store.describe()
                ))
            })?;
        inner.stats.orphans_deleted.fetch_add(orphans, Relaxed);
        if replay.corrupt_tails > 0 {
            tracing::warn!(
                segments = replay.corrupt_tails,
                bytes = replay.skipped_bytes,
                "skipped a truncated or corrupt write-ahead log tail"
            );
        }
        let store = Self { inner };
        // Planned before the first write or snapshot can happen: the
        // rebuild reads exactly what was stored before the store opened.
        if rollup_minutes > 0 {
            let plan = plan_rebuild(&store).await?;
            tokio::spawn(rebuild(
                Arc::clone(&store.inner.rollups),
                store.inner.clock.clone(),
                plan,
            ));
        }
        let task = tokio::spawn(background(Arc::downgrade(&store.inner)));
        *lock(&store.inner.background) = Some(task);
        Ok(store)
    }

    /// Writes rows; `Ok` once they are in the fsynced log (durable) and
    /// visible to queries.
    pub async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<()> {
        let inner = &self.inner;
        let size = batch.batch().get_array_memory_size();
        {
            let mut b = lock(&inner.buffer);
            if b.bytes() + size > inner.config.buffer.max_bytes {
                return Err(buffer_full(inner, b.bytes()));
            }
            b.reserved_bytes += size;
        }
        // Released however this write ends, cancellation included.
        let _reservation = Reservation { inner, size };
        let payload = wal::encode(tenant, batch.signal(), batch.batch());
        // The gate is held from the append until the rows are in the
        // buffer: a snapshot rotates the log under the gate's write side
        // and takes the buffer's rows as those of the segments before the
        // rotation, whose files it then deletes. Rows appended before a
        // rotation but pushed after it were in neither the snapshot nor
        // the log, and a crash lost them though they were acknowledged
        // (`tests/crash.rs` caught it about once in 20,000 writes).
        let gate = inner.gate.read().await;
        let appended = match payload {
            Ok(payload) => {
                let appending = Instant::now();
                let appended = inner.wal.append(payload).await;
                inner.stats.wal_append.observe(appending.elapsed());
                appended
            }
            Err(e) => Err(e),
        };
        if let Err(e) = appended {
            match &e {
                Error::Backpressure(_) => inner.stats.writes_refused.fetch_add(1, Relaxed),
                _ => inner.stats.wal_failures.fetch_add(1, Relaxed),
            };
            return Err(e);
        }
        let rows = batch.num_rows() as u64;
        let signal = batch.signal();
        let spans = (signal == Signal::Traces).then(|| batch.batch().clone());
        let over = {
            let mut b = lock(&inner.buffer);
            b.push((tenant.clone(), signal), batch.into_batch());
            if !b.published.is_empty() {
                b.prune(Instant::now(), inner.config.buffer.flush_bytes);
            }
            b.active_bytes >= inner.config.buffer.flush_bytes
        };
        drop(gate);
        if let Some(spans) = spans {
            inner
                .rollups
                .observe(tenant, &spans, inner.clock.now_nanos());
        }
        inner.stats.rows_written.fetch_add(rows, Relaxed);
        if over {
            inner.wake.notify_one();
        }
        Ok(())
    }

    /// Persists every buffered row to Parquet now and publishes the files.
    /// On failure the rows stay in memory and in the log, and the next
    /// snapshot retries them.
    pub async fn flush(&self) -> Result<()> {
        snapshot(&self.inner).await
    }

    /// The store's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.inner.stats
    }

    /// Bytes of rows held in memory.
    pub fn buffered_bytes(&self) -> usize {
        lock(&self.inner.buffer).bytes()
    }

    /// The published files.
    pub fn files(&self) -> Vec<Arc<crate::catalog::FileMeta>> {
        self.inner.catalog.all()
    }

    /// How many files' footers and page indexes are held in memory for
    /// the next query (`[store.query] metadata_cache_mb`).
    pub fn cached_footers(&self) -> usize {
        self.inner.metadata_cache.len()
    }

    /// Where this node serves its unflushed rows to the cluster
    /// (`[store.cluster] flight_addr`, as advertised).
    pub fn flight_addr(&self) -> Option<&str> {
        self.inner
            .cluster
            .as_ref()
            .map(|c| c.advertised())
            .filter(|a| !a.is_empty())
    }

    /// This node's role in a cluster.
    pub fn role(&self) -> crate::config::Role {
        self.inner.config.cluster.role
    }

    /// The metadata database (users, keys, rules, audit log).
    pub fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// Takes or renews the lease `name` for this node for `ttl`: whether
    /// this node holds it now. Nodes sharing a catalog use it so that one
    /// of them at a time runs a duty (the database's clock decides when a
    /// lease lapses); a node alone always holds it.
    pub async fn lease(&self, name: &str, ttl: std::time::Duration) -> Result<bool> {
        let ttl_ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        self.inner
            .catalog
            .lease(name, self.inner.clock.now_nanos(), ttl_ns)
            .await
    }

    /// Graceful shutdown: persists every buffered row, then stops the
    /// background task (snapshots, retention, compaction), waiting for a
    /// pass under way to end (a compaction stops after the merge it is
    /// writing), then persists what was written meanwhile. Once the last handle is dropped, the data
    /// directory is free for the next [`Store::open`]. Writes after
    /// `close` still go to the log (replayed at the next open) but are no
    /// longer persisted in the background.
    pub async fn close(&self) -> Result<()> {
        self.inner.closing.store(true, Relaxed);
        self.inner.wake.notify_one();
        // The buffer first: a compaction under way does not delay it (a
        // server's shutdown budget may end while the pass does).
        self.flush().await?;
        let task = lock(&self.inner.background).take();
        if let Some(task) = task
            && let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!(error = %e, "the store's background task panicked");
        }
        self.flush().await
    }
}

/// Every buffered batch of one table (for query scans).
pub(crate) fn buffered(inner: &Inner, tenant: &TenantId, signal: Signal) -> Vec<RecordBatch> {
    lock(&inner.buffer).batches(tenant, signal)
}

/// Announces the node every `every` until the store is dropped. The
/// store is not held while the database answers: a store dropped is
/// released at once (its data directory's lock with it).
async fn heartbeats(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let beat = {
            let Some(inner) = inner.upgrade() else { return };
            let Some(c) = &inner.cluster else { return };
            c.heartbeat(&inner.catalog)
        };
        if let Err(e) = beat.await {
            tracing::warn!(error = %e, "cannot record this node's heartbeat in the catalog");
        }
    }
}

#[async_trait::async_trait]
impl crate::cluster::LocalRows for Weak<Inner> {
    async fn unflushed(
        &self,
        tenant: &TenantId,
        signal: Signal,
        after: i64,
    ) -> Option<Vec<RecordBatch>> {
        let inner = self.upgrade()?;
        unflushed(&inner, tenant, signal, after).await
    }
}

/// This node's rows of a table in no file live at catalog version
/// `after`: its buffer, and the snapshots it published after `after`.
/// Answered while no commit of this node is under way, so the versions
/// match what it hands out. `None` when a snapshot published after
/// `after` is no longer kept (the asker refreshes and asks again), or the
/// store is closing.
async fn unflushed(
    inner: &Inner,
    tenant: &TenantId,
    signal: Signal,
    after: i64,
) -> Option<Vec<RecordBatch>> {
    let _no_commit = inner.catalog.hold_commits().await;
    let mut b = lock(&inner.buffer);
    b.prune(Instant::now(), inner.config.buffer.flush_bytes);
    if after < b.dropped_through {
        return None;
    }
    let key = (tenant.clone(), signal);
    let mut out: Vec<RecordBatch> = b
        .published
        .iter()
        .filter(|p| p.version > after)
        .flat_map(|p| p.rows.get(&key).into_iter().flatten().cloned())
        .collect();
    out.extend(b.batches(tenant, signal));
    Some(out)
}

/// The tenants with buffered rows of `signal`.
pub(crate) fn buffered_tenants(inner: &Inner, signal: Signal) -> Vec<TenantId> {
    let b = lock(&inner.buffer);
    b.active
        .keys()
        .chain(b.persisting.keys())
        .filter(|(_, s)| *s == signal)
        .map(|(t, _)| t.clone())
        .collect()
}

/// Counts a write refused because `buffered` bytes fill the budget, wakes
/// the snapshot task, and says so retryably.
fn buffer_full(inner: &Inner, buffered: usize) -> Error {
    inner.stats.writes_refused.fetch_add(1, Relaxed);
    inner.wake.notify_one();
    Error::Backpressure(format!(
        "write buffer full ({buffered} of {} bytes waiting for storage)",
        inner.config.buffer.max_bytes
    ))
}

/// Budget held by a write between its check and its arrival in the buffer.
struct Reservation<'a> {
    inner: &'a Inner,
    size: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut b = lock(&self.inner.buffer);
        b.reserved_bytes = b.reserved_bytes.saturating_sub(self.size);
    }
}

/// How long [`Store::open`] waits for a data directory's lock to be
/// released: a store being dropped (its background pass ending) or a
/// process exiting releases it within this time.
const DIR_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Locks `dir/LOCK` exclusively: a second process opening the same data
/// directory would interleave its log with ours. The kernel releases the
/// lock when the process dies, so a crash never leaves it stuck. A lock
/// held is waited for up to [`DIR_LOCK_WAIT`], then refused.
async fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let deadline = Instant::now() + DIR_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Config(format!(
                    "data directory {} is in use by another Ophion store (lock file {})",
                    dir.display(),
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

fn record_replay(stats: &StoreStats, r: &Replay) {
    stats.wal_replayed_records.fetch_add(r.records, Relaxed);
    stats.wal_corrupt_tails.fetch_add(r.corrupt_tails, Relaxed);
}

#[async_trait::async_trait]
impl TelemetrySink for Store {
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        Store::write(self, tenant, batch)
            .await
            .map_err(Error::into_sink_error)
    }

    fn admit(&self) -> Result<(), SinkError> {
        let inner = &self.inner;
        let buffered = lock(&inner.buffer).bytes();
        if buffered >= inner.config.buffer.max_bytes {
            return Err(buffer_full(inner, buffered).into_sink_error());
        }
        Ok(())
    }
}

/// Snapshots when the buffer passes `flush_bytes`, and at least every
/// `flush_interval_secs`; stops when the store is dropped.
async fn background(weak: Weak<Inner>) {
    loop {
        let interval = match weak.upgrade() {
            Some(inner) => Duration::from_secs(inner.config.buffer.flush_interval_secs.max(1)),
            None => return,
        };
        // Wait holding only the notifier: a dropped store ends the task.
        let Some(wake) = weak.upgrade().map(|inner| Arc::clone(&inner.wake)) else {
            return;
        };
        let woken = tokio::time::timeout(interval, wake.notified())
            .await
            .is_ok();
        let Some(inner) = weak.upgrade() else { return };
        if inner.closing.load(Relaxed) {
            return;
        }
        lock(&inner.buffer).prune(Instant::now(), inner.config.buffer.flush_bytes);
        let due = woken
            || lock(&inner.buffer).active_bytes > 0
            || lock(&inner.buffer).persisting_bytes > 0;
        if due && let Err(e) = snapshot(&inner).await {
            tracing::warn!(error = %e, "snapshot failed; rows stay in memory and in the log, will retry");
            drop(inner);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let store = Store { inner };
        // Files the rollup rebuild reads stay until it is done; in a
        // cluster, compact nodes maintain the files.
        if store.inner.closing.load(Relaxed)
            || !store.inner.rollups.is_ready()
            || !store.inner.config.cluster.role.maintains()
        {
            continue;
        }
        if let Err(e) = store.enforce_retention().await {
            tracing::warn!(error = %e, "retention pass failed; will retry");
        }
        if store.inner.config.compaction.enabled
            && let Err(e) = store.compact().await
        {
            tracing::warn!(error = %e, "compaction failed; will retry");
        }
    }
}

/// Moves the active buffer to `persisting`, writes it as Parquet, publishes
/// the files with the new log watermark, then drops the persisted rows from
/// memory and the persisted segments from disk.
async fn snapshot(inner: &Arc<Inner>) -> Result<()> {
    let _one = inner.snapshotting.lock().await;
    let started = Instant::now();
    let watermark = {
        let _gate = inner.gate.write().await;
        let segment = inner.wal.rotate().await?;
        let mut b = lock(&inner.buffer);
        let active = std::mem::take(&mut b.active);
        for (k, v) in active {
            b.persisting.entry(k).or_default().extend(v);
        }
        b.persisting_bytes += std::mem::take(&mut b.active_bytes);
        segment
    };
    let work: Vec<(Key, Vec<RecordBatch>)> = lock(&inner.buffer)
        .persisting
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if work.is_empty() {
        inner.wal.truncate_before(watermark)?;
        return Ok(());
    }
    let result = persist_all(inner, work).await;
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            inner.stats.snapshot_failures.fetch_add(1, Relaxed);
            return Err(e);
        }
    };
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    let n = files.len() as u64;
    let now = inner.clock.now_nanos();
    inner
        .catalog
        .commit(files, Vec::new(), Some(watermark), now, |version| {
            let mut b = lock(&inner.buffer);
            let rows = std::mem::take(&mut b.persisting);
            let bytes = std::mem::take(&mut b.persisting_bytes);
            // Query nodes a version behind still need these rows a moment.
            if inner
                .cluster
                .as_ref()
                .is_some_and(|c| !c.advertised().is_empty())
            {
                b.published.push_back(Published {
                    version,
                    at: Instant::now(),
                    rows,
                    bytes,
                });
                b.published_bytes += bytes;
            }
            b.prune(Instant::now(), inner.config.buffer.flush_bytes);
        })
        .await?;
    inner.wal.truncate_before(watermark)?;
    inner.stats.snapshots.fetch_add(1, Relaxed);
    inner.stats.files_written.fetch_add(n, Relaxed);
    inner.stats.bytes_written.fetch_add(bytes, Relaxed);
    inner
        .stats
        .last_snapshot_micros
        .store(started.elapsed().as_micros() as u64, Relaxed);
    inner.stats.snapshot_duration.observe(started.elapsed());
    Ok(())
}

/// One encoded file: hour partition start, time range, rows, bytes.
type Encoded = (i64, (i64, i64), usize, bytes::Bytes);

/// Encodes and uploads one file per tenant, table and hour.
async fn persist_all(
    inner: &Arc<Inner>,
    work: Vec<(Key, Vec<RecordBatch>)>,
) -> Result<Vec<NewFile>> {
    let mut files = Vec::new();
    // One file per hour with the whole snapshot sorted: row groups of full
    // size, each sorted by the signal's key, so a bound on the key (a
    // sample of trace ids) skips most of their pages. Only the key columns
    // are copied to sort; rows are gathered a slice at a time as encoded.
    let text_index = inner.config.buffer.text_index;
    for ((tenant, signal), batches) in work {
        let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<Encoded>> {
            let mut out = Vec::new();
            for (hour, rows) in persist::sorted_rows_by_hour(&batches, signal)? {
                let (range, bytes) = persist::encode_rows(
                    &batches,
                    &rows,
                    signal,
                    persist::Effort::Snapshot,
                    text_index,
                )?;
                out.push((hour, range, rows.len(), bytes));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Wal(format!("encoder task failed: {e}")))??;
        for (hour, (min_time, max_time), rows, bytes) in encoded {
            let path = persist::file_path(&tenant, signal, hour, &inner.writer);
            let size = bytes.len() as u64;
            // A put is atomic: the file is complete or absent. It becomes
            // visible to queries only when the catalog publishes it.
            inner
                .objects
                .put(&ObjectPath::from(path.as_str()), PutPayload::from(bytes))
                .await?;
            files.push(NewFile {
                tenant: tenant.clone(),
                signal,
                path,
                min_time,
                max_time,
                rows: rows as u64,
                bytes: size,
                level: 0,
            });
        }
    }
    Ok(files)
}

/// One tenant's stored spans, streamed for the rebuild.
type Rebuild = Vec<(TenantId, SendableRecordBatchStream)>;

/// Plans the rebuild of the rollups from the spans stored in the window:
/// the scans are planned now (capturing the buffer and the published
/// files) and read by [`rebuild`] in the background.
async fn plan_rebuild(store: &Store) -> Result<Rebuild> {
    let inner = &store.inner;
    let from = inner
        .rollups
        .cutoff(inner.clock.now_nanos())
        .saturating_mul(MINUTE_NS);
    let mut tenants: Vec<TenantId> = inner
        .catalog
        .all()
        .iter()
        .filter(|f| f.signal == Signal::Traces && f.max_time >= from)
        .map(|f| f.tenant.clone())
        .collect();
    tenants.extend(buffered_tenants(inner, Signal::Traces));
    tenants.sort();
    tenants.dedup();
    let mut out = Vec::new();
    for tenant in tenants {
        let ctx = store.session(&tenant, false)?;
        let sql = format!(
            "SELECT {}, {}, {}, {}, {}, {}, http_route, {}, {}, {}, {}, server_address \
             FROM spans WHERE {} >= $from",
            col::TRACE_ID,
            col::SPAN_ID,
            col::PARENT_SPAN_ID,
            col::FLAGS,
            col::SERVICE_NAME,
            col::NAME,
            col::KIND,
            col::START_TIME,
            col::DURATION_NS,
            col::STATUS_CODE,
            col::START_TIME,
        );
        let from_value =
            datafusion::common::ScalarValue::TimestampNanosecond(Some(from), Some("UTC".into()));
        let stream = ctx
            .sql(&sql)
            .await?
            .with_param_values(vec![("from", from_value)])?
            .execute_stream()
            .await?;
        out.push((tenant, stream));
    }
    if out.is_empty() {
        inner.rollups.set_ready();
    }
    Ok(out)
}

/// Reads the planned scans into the rollups, then opens them to queries.
/// A failed read leaves them closed (queries fall back to `spans`).
async fn rebuild(rollups: Arc<Rollups>, clock: Arc<dyn ophion_core::Clock>, plan: Rebuild) {
    if plan.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let mut rows = 0;
    for (tenant, mut stream) in plan {
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(b) => {
                    rows += b.num_rows();
                    rollups.observe(&tenant, &b, clock.now_nanos());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rebuilding the span rollups failed; queries read spans instead");
                    return;
                }
            }
        }
    }
    rollups.set_ready();
    tracing::info!(
        rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "span rollups rebuilt"
    );
}
