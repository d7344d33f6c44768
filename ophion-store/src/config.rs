//! Store configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where and how the store keeps telemetry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Local directory for the write-ahead log, the metadata database and
    /// (with the local object store) the Parquet files. Default `./ophion-data`.
    pub data_dir: PathBuf,
    /// Where Parquet files go.
    pub object_store: ObjectStoreConfig,
    /// Write-ahead log.
    pub wal: WalConfig,
    /// In-memory buffer between the log and Parquet.
    pub buffer: BufferConfig,
    /// Limits on user queries.
    pub query: QueryConfig,
    /// How long data is kept.
    pub retention: RetentionConfig,
    /// Merging of small files.
    pub compaction: CompactionConfig,
    /// Where the catalog of files is kept.
    pub catalog: CatalogConfig,
    /// This node's part in a cluster sharing the catalog and the bucket.
    pub cluster: ClusterConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ophion-data"),
            object_store: ObjectStoreConfig::default(),
            wal: WalConfig::default(),
            buffer: BufferConfig::default(),
            query: QueryConfig::default(),
            retention: RetentionConfig::default(),
            compaction: CompactionConfig::default(),
            catalog: CatalogConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl StoreConfig {
    /// A configuration keeping everything under `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: dir.into(),
            ..Self::default()
        }
    }

    /// Checks the values make sense together.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::Config(m.to_owned()));
        if self.buffer.max_bytes < 1 << 20 {
            return bad("buffer.max_bytes must be at least 1 MiB");
        }
        if self.buffer.flush_bytes == 0 || self.buffer.flush_bytes > self.buffer.max_bytes {
            return bad("buffer.flush_bytes must be between 1 and buffer.max_bytes");
        }
        if self.wal.queue == 0 {
            return bad("wal.queue must be at least 1");
        }
        if self.query.max_rows == 0 {
            return bad("query.max_rows must be at least 1");
        }
        if self.cluster.role != Role::All && self.catalog.postgres_url.is_empty() {
            return bad(
                "cluster.role other than \"all\" needs a shared catalog (catalog.postgres_url)",
            );
        }
        if self.cluster.role.ingests()
            && self.cluster.role != Role::All
            && self.cluster.flight_addr.is_empty()
        {
            return bad(
                "an ingest node serves its unflushed rows to the query nodes: set cluster.flight_addr",
            );
        }
        if self.cluster.heartbeat_secs == 0 {
            return bad("cluster.heartbeat_secs must be at least 1");
        }
        Ok(())
    }
}

/// Object storage for Parquet files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// Files under `<data_dir>/parquet`.
    #[default]
    Local,
    /// Files under `path`: a directory several nodes may share (a network
    /// file system), with a shared catalog.
    Directory {
        /// The directory.
        path: PathBuf,
    },
    /// An S3 bucket or S3-compatible server (cargo feature `s3`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Region (any value for most S3-compatible servers).
        #[serde(default = "default_region")]
        region: String,
        /// Endpoint URL for S3-compatible servers; AWS when absent.
        #[serde(default)]
        endpoint: Option<String>,
        /// Access key id; the AWS environment and instance roles when absent.
        #[serde(default)]
        access_key_id: Option<String>,
        /// Secret access key.
        #[serde(default)]
        secret_access_key: Option<String>,
        /// Allow plain HTTP endpoints (local test servers).
        #[serde(default)]
        allow_http: bool,
        /// Key prefix for every file.
        #[serde(default)]
        prefix: String,
    },
}

impl ObjectStoreConfig {
    /// Where files go, for messages: `local files` or
    /// `s3://bucket/prefix at endpoint`.
    pub fn describe(&self) -> String {
        match self {
            Self::Local => "local files".into(),
            Self::Directory { path } => format!("files under {}", path.display()),
            Self::S3 {
                bucket,
                endpoint,
                prefix,
                ..
            } => format!(
                "s3://{bucket}/{prefix} at {}",
                endpoint.as_deref().unwrap_or("AWS")
            ),
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

/// Write-ahead log settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// `always` (fsync each group commit before acknowledging; the default,
    /// safe across power loss) or `never` (benchmarks only).
    pub sync: crate::wal::SyncPolicy,
    /// Start a new segment past this size (default 64 MiB).
    pub segment_bytes: u64,
    /// Writes waiting for the log before new ones are refused as overload
    /// (default 4096).
    pub queue: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            sync: crate::wal::SyncPolicy::Always,
            segment_bytes: 64 << 20,
            queue: 4096,
        }
    }
}

/// Buffer settings: the memory budget of ingestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Arrow bytes held in memory (unpersisted and persisting) before writes
    /// are refused as overload (default 256 MiB). A snapshot needs little
    /// more while it sorts and encodes: a copy of the sort keys, and the
    /// rows of 8,192 at a time.
    pub max_bytes: usize,
    /// Persist to Parquet when this many bytes are buffered (default 64 MiB).
    pub flush_bytes: usize,
    /// Persist at least this often, in seconds (default 60).
    pub flush_interval_secs: u64,
    /// Whether log files are written with a text index of their bodies
    /// (default true; `crate::textindex`): about 5.6 bytes and 1.1 µs of
    /// server CPU a line (+13 %, compaction's rebuild included; the
    /// server_load bench's `--log-lines`), for searches that read only the blocks
    /// that may match. Without it, searches scan every body (results are
    /// the same). Compaction follows the setting when it encodes a file
    /// again, and keeps the indexes of the files it copies.
    pub text_index: bool,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            flush_bytes: 64 << 20,
            flush_interval_secs: 60,
            text_index: true,
        }
    }
}

/// Limits on user queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Seconds before a query is cancelled (default 30).
    pub timeout_secs: u64,
    /// Memory one query may use, in bytes (default 512 MiB).
    pub memory_limit_bytes: usize,
    /// Rows a query may return (default 100,000); more are cut off and the
    /// result says so.
    pub max_rows: usize,
    /// Hours of per-minute span rollups kept in memory (`span_minutes`,
    /// `service_minutes`, `service_edges`; default 24; 0 turns them off).
    pub rollup_hours: u32,
    /// MiB of Parquet footers and page indexes kept in memory across
    /// queries (default 64; 0 reads them from the file every time).
    pub metadata_cache_mb: usize,
    /// Whether searches of log text use the files' text index to skip
    /// blocks that cannot match (default true; results are the same
    /// either way).
    pub text_index: bool,
    /// MiB of parsed text indexes kept in memory across queries (default
    /// 256). The index takes about 5.6 bytes per log line, so 256 MiB
    /// holds about 45 million lines' worth; a search over more lines reads
    /// the rest from the files (the cache keeps the part it holds; at 100
    /// million lines, 563 MB of indexes, the first 100 matches of a
    /// search take 97-161 ms with the default; docs/benchmarks.md).
    pub text_index_cache_mb: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 30,
            memory_limit_bytes: 512 << 20,
            max_rows: 100_000,
            rollup_hours: 24,
            metadata_cache_mb: 64,
            text_index: true,
            text_index_cache_mb: 256,
        }
    }
}

/// Retention per signal; 0 keeps data forever.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of spans kept (default 30).
    pub traces_days: u32,
    /// Days of logs kept (default 30).
    pub logs_days: u32,
    /// Days of metric points kept (default 90).
    pub metrics_days: u32,
    /// Cap on Parquet bytes per tenant and signal; the oldest files go
    /// first (default 0 = none).
    pub max_bytes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            traces_days: 30,
            logs_days: 30,
            metrics_days: 90,
            max_bytes: 0,
        }
    }
}

/// Compaction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Whether the background task compacts (default true); `Store::compact`
    /// works either way.
    pub enabled: bool,
    /// Merge a partition's snapshot files once it has at least this many
    /// (default 4) and its hour is over, or they reach `small_file_bytes`.
    pub min_files: usize,
    /// Target size of a merged file (default 64 MiB): merges take runs of
    /// snapshot files up to about this size.
    pub small_file_bytes: u64,
    /// Snapshot files at least this large (default 4 MiB) are not
    /// re-encoded: under sustained load every snapshot is this large, and
    /// re-encoding it would cost about as much CPU as ingesting its rows
    /// again for almost no gain in size. Files merged by copying their row
    /// groups (`copy_min_rows`) are stitched whatever their size, since
    /// that costs a copy of their bytes and leaves queries fewer files to
    /// open.
    pub keep_file_bytes: u64,
    /// Span and metric snapshot files of at least this many rows (default
    /// 8192) are merged by copying their row groups as they are, which
    /// costs almost no CPU; files with fewer rows are decoded, merged in
    /// sort order and encoded again, because many tiny row groups would slow
    /// queries down. Log files are always re-encoded: their text shrinks
    /// about 7% more that way.
    pub copy_min_rows: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_files: 4,
            small_file_bytes: 64 << 20,
            keep_file_bytes: 4 << 20,
            copy_min_rows: 8192,
        }
    }
}

/// Where the catalog of Parquet files (and each node's WAL watermark) is
/// kept: the embedded metadata database by default, or PostgreSQL, shared
/// by several nodes writing one bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// PostgreSQL connection string (`postgres://user:password@host:5432/db`
    /// or `host=... user=... dbname=...`); empty keeps the catalog in the
    /// metadata database (SQLite). Connections are not encrypted: use a
    /// private network or a local socket.
    pub postgres_url: String,
    /// The PostgreSQL schema holding Ophion's tables (default `ophion`;
    /// created when missing).
    pub postgres_schema: String,
    /// This node's name in a shared catalog; its WAL watermark is kept
    /// under it, so it must stay the same across restarts and differ
    /// between nodes. Empty: a name made at the first start and kept in
    /// `<data_dir>/node-id`.
    pub node: String,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            postgres_url: String::new(),
            postgres_schema: "ophion".into(),
            node: String::new(),
        }
    }
}

/// What a node does in a cluster (`[store.cluster] role`, or
/// `ophion-server --role`). Every role answers the API (health, metrics,
/// and queries over every node's rows); the role decides what else runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in one process: the single-node default.
    #[default]
    All,
    /// OTLP receivers, the write-ahead log and snapshots to Parquet; serves
    /// its unflushed rows to query nodes (`flight_addr`).
    Ingest,
    /// Queries, and the features built on them (AI watch, alerts,
    /// auto-healing); no receivers. With a `flight_addr`, it also runs
    /// parts of the other query nodes' large scans.
    Query,
    /// Compaction and retention; no receivers.
    Compact,
}

impl Role {
    /// Whether this node runs the OTLP receivers and writes.
    pub fn ingests(self) -> bool {
        matches!(self, Self::All | Self::Ingest)
    }

    /// Whether this node compacts and enforces retention (one such node
    /// at a time holds the maintenance lease).
    pub fn maintains(self) -> bool {
        matches!(self, Self::All | Self::Compact)
    }

    /// Whether this node runs the background features that read
    /// telemetry (AI watch, alert evaluation, auto-healing).
    pub fn watches(self) -> bool {
        matches!(self, Self::All | Self::Query)
    }

    /// Whether this node runs parts of other query nodes' large scans
    /// (when it has a `flight_addr`).
    pub fn queries(self) -> bool {
        matches!(self, Self::All | Self::Query)
    }

    /// The role's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Ingest => "ingest",
            Self::Query => "query",
            Self::Compact => "compact",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Self::All, Self::Ingest, Self::Query, Self::Compact]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: all, ingest, query or compact"))
    }
}

/// A node's part in a cluster: nodes share the catalog (PostgreSQL) and
/// the bucket, find each other through heartbeats in the catalog, and
/// query nodes ask ingest nodes for their rows not yet in Parquet over
/// Arrow Flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `all` (default), `ingest`, `query` or `compact`; see [`Role`].
    pub role: Role,
    /// Where this node serves its unflushed rows to the other nodes
    /// (Arrow Flight, e.g. `0.0.0.0:4319`); empty: nowhere. Needed on
    /// ingest nodes.
    pub flight_addr: String,
    /// The address other nodes reach `flight_addr` at (`host:port`);
    /// empty: the address bound.
    pub advertise_addr: String,
    /// A secret every node of the cluster shares: Flight requests must
    /// carry it. Empty: none, and a warning unless `flight_addr` is a
    /// loopback address.
    pub secret: String,
    /// Seconds between a node's heartbeats in the catalog (default 2). A
    /// node not heard of for three heartbeats is taken as gone.
    pub heartbeat_secs: u64,
    /// How long a query waits for one ingest node's unflushed rows, in
    /// milliseconds (default 2000). A node that does not answer in time
    /// is left out of the answer, with a warning: its rows not yet in
    /// Parquet are missing until it publishes them.
    pub peer_timeout_ms: u64,
    /// Parquet bytes one partition of a query node scans (default 16 MiB).
    /// A scan larger than one node's partitions (this times its cores) is
    /// split across the query nodes with a `flight_addr` (datafusion-
    /// distributed); smaller ones run where they were asked. 0: every
    /// query runs on the node asked.
    pub distribute_bytes_per_partition: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            role: Role::All,
            flight_addr: String::new(),
            advertise_addr: String::new(),
            secret: String::new(),
            heartbeat_secs: 2,
            peer_timeout_ms: 2000,
            distribute_bytes_per_partition: 16 << 20,
        }
    }
}
