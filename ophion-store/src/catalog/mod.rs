//! The catalog of Parquet files: which file holds which tenant's rows of
//! which signal and time range, and how far each node's write-ahead log is
//! persisted. It is kept in a database (the source of truth, updated in one
//! transaction with the WAL watermark) and mirrored in memory so queries
//! never list the object store.
//!
//! Two databases keep it, behind [`CatalogDb`]:
//! - [`sqlite`]: the embedded default, in the metadata database; one node
//!   owns it, so the mirror is the whole truth;
//! - [`postgres`]: shared by several nodes over one bucket. Every change
//!   bumps one catalog version in the same transaction, so a node catches
//!   up with the others by asking for the changes after the version it has
//!   ([`Catalog::refresh`], run before each query plans). A commit that
//!   retires files retires them only if they are still live, so two nodes
//!   can never both replace the same files (no duplicated rows).

pub mod postgres;
pub mod sqlite;

use std::sync::{Arc, RwLock};

use ophion_core::{Signal, TenantId};

use crate::error::Result;

/// One published Parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Catalog id.
    pub id: i64,
    /// Owner.
    pub tenant: TenantId,
    /// Table.
    pub signal: Signal,
    /// Object path.
    pub path: String,
    /// Earliest row time (ns).
    pub min_time: i64,
    /// Latest row time (ns).
    pub max_time: i64,
    /// Rows.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// 0 for files written by a flush, 1 for files written by compaction.
    pub level: u32,
}

/// A file written but not yet published.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Owner.
    pub tenant: TenantId,
    /// Table.
    pub signal: Signal,
    /// Object path.
    pub path: String,
    /// Earliest row time (ns).
    pub min_time: i64,
    /// Latest row time (ns).
    pub max_time: i64,
    /// Rows.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// Compaction level.
    pub level: u32,
}

impl NewFile {
    /// The published file, with its catalog id.
    pub fn published(self, id: i64) -> FileMeta {
        FileMeta {
            id,
            tenant: self.tenant,
            signal: self.signal,
            path: self.path,
            min_time: self.min_time,
            max_time: self.max_time,
            rows: self.rows,
            bytes: self.bytes,
            level: self.level,
        }
    }
}

/// What a catalog database holds for one node when it starts.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every live file.
    pub files: Vec<FileMeta>,
    /// The node's WAL watermark: segments below it are persisted.
    pub watermark: u64,
    /// The catalog version these files are as of.
    pub version: i64,
}

/// Files published and retired after a version.
#[derive(Debug, Default)]
pub struct Changes {
    /// Files published since, still live.
    pub added: Vec<FileMeta>,
    /// Ids of files retired since.
    pub removed: Vec<i64>,
    /// The version these changes bring the caller to.
    pub version: i64,
}

/// What a commit did.
#[derive(Debug, Default)]
pub struct Committed {
    /// The new files' ids, in order.
    pub ids: Vec<i64>,
    /// The catalog version the commit made (0 in a catalog only its own
    /// node writes).
    pub version: i64,
}

/// A node of a cluster, as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name in the catalog.
    pub name: String,
    /// Its role (`ingest`, `query`, ...).
    pub role: String,
    /// Where it serves its unflushed rows (`host:port`); empty: nowhere.
    pub flight: String,
}

/// A database keeping the catalog.
#[async_trait::async_trait]
pub trait CatalogDb: std::fmt::Debug + Send + Sync {
    /// Every live file, the catalog version, and `node`'s WAL watermark.
    async fn load(&self, node: &str) -> Result<Loaded>;

    /// Publishes `added` and retires `removed` in one transaction, moving
    /// `node`'s WAL watermark when given. Fails with
    /// [`crate::Error::Conflict`], changing nothing, when a file of
    /// `removed` is no longer live.
    async fn commit(
        &self,
        node: &str,
        added: &[NewFile],
        removed: &[i64],
        watermark: Option<u64>,
        now_ns: i64,
    ) -> Result<Committed>;

    /// The changes after `version`, or `None` when they are no longer
    /// known (the caller loads everything again). A catalog only its own
    /// node writes has none.
    async fn changes_since(&self, version: i64) -> Result<Option<Changes>>;

    /// Whether other nodes write this catalog too (then the mirror is
    /// refreshed before each query plans).
    fn shared(&self) -> bool;

    /// Takes or renews the lease `name` for `holder` until `now_ns +
    /// ttl_ns`, unless another holder has it unexpired. A catalog only its
    /// own node writes always grants it.
    async fn lease(&self, name: &str, holder: &str, now_ns: i64, ttl_ns: i64) -> Result<bool>;

    /// Records that `node`, in `role`, is alive now and serves its
    /// unflushed rows at `flight` (empty: nowhere). A catalog only its own
    /// node writes keeps nothing.
    async fn heartbeat(&self, node: &str, role: &str, flight: &str) -> Result<()>;

    /// The nodes heard of within the last `max_age_ns` (the database's
    /// clock).
    async fn nodes(&self, max_age_ns: i64) -> Result<Vec<Node>>;

    /// Files retired before `before_ns` whose objects are not deleted yet
    /// (id, path). A catalog only its own node writes forgets retired
    /// files at once (its node deletes them, and sweeps the rest at start).
    async fn retired_undeleted(&self, before_ns: i64) -> Result<Vec<(i64, String)>>;

    /// Records that the objects of the retired files `ids` are deleted.
    async fn mark_deleted(&self, ids: &[i64], now_ns: i64) -> Result<()>;
}

/// In-memory mirror of the live files, over the database that keeps them.
#[derive(Debug)]
pub struct Catalog {
    db: Arc<dyn CatalogDb>,
    node: String,
    mirror: RwLock<Mirror>,
    /// One refresh or commit at a time: concurrent queries wait for the
    /// refresh running, and a refresh never puts back an older set.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Mirror {
    files: Vec<Arc<FileMeta>>,
    version: i64,
}

impl Mirror {
    fn apply(&mut self, added: impl IntoIterator<Item = Arc<FileMeta>>, removed: &[i64]) {
        self.files.retain(|f| !removed.contains(&f.id));
        for f in added {
            // A node's own commits are applied when they are made, and
            // then come back with the changes since an older version.
            if !self.files.iter().any(|g| g.id == f.id) {
                self.files.push(f);
            }
        }
    }
}

impl Catalog {
    /// Loads the catalog from `db` for `node`; returns it with the node's
    /// WAL watermark.
    pub async fn open(db: Arc<dyn CatalogDb>, node: &str) -> Result<(Self, u64)> {
        let loaded = db.load(node).await?;
        let mirror = Mirror {
            files: loaded.files.into_iter().map(Arc::new).collect(),
            version: loaded.version,
        };
        Ok((
            Self {
                db,
                node: node.to_owned(),
                mirror: RwLock::new(mirror),
                refreshing: tokio::sync::Mutex::new(()),
            },
            loaded.watermark,
        ))
    }

    /// This node's name in the catalog.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The database keeping the catalog.
    pub fn db(&self) -> &Arc<dyn CatalogDb> {
        &self.db
    }

    /// Brings the mirror up to the database's latest version, when other
    /// nodes write it too.
    pub async fn refresh(&self) -> Result<()> {
        if !self.db.shared() {
            return Ok(());
        }
        let _one = self.refreshing.lock().await;
        self.catch_up().await
    }

    /// [`Catalog::refresh`]'s work; the caller holds `refreshing`.
    async fn catch_up(&self) -> Result<()> {
        let version = self.read().version;
        match self.db.changes_since(version).await? {
            Some(c) => {
                let mut m = self.write();
                m.apply(c.added.into_iter().map(Arc::new), &c.removed);
                m.version = m.version.max(c.version);
            }
            None => {
                let loaded = self.db.load(&self.node).await?;
                let mut m = self.write();
                m.files = loaded.files.into_iter().map(Arc::new).collect();
                m.version = loaded.version;
            }
        }
        Ok(())
    }

    /// Files of a tenant's table that may hold rows in `[from, to]` (ns).
    pub fn files(
        &self,
        tenant: &TenantId,
        signal: Signal,
        from: i64,
        to: i64,
    ) -> Vec<Arc<FileMeta>> {
        self.read()
            .files
            .iter()
            .filter(|f| {
                f.signal == signal && &f.tenant == tenant && f.max_time >= from && f.min_time <= to
            })
            .cloned()
            .collect()
    }

    /// [`Catalog::files`], with the catalog version they are exactly the
    /// live files of (a shared catalog's mirror is a whole version: every
    /// commit up to it and none after), and what `also` reads meanwhile:
    /// commits publish while holding the mirror, so `also` sees the rows
    /// in memory that match these files (none in both, none in neither).
    pub fn files_at<T>(
        &self,
        tenant: &TenantId,
        signal: Signal,
        from: i64,
        to: i64,
        also: impl FnOnce() -> T,
    ) -> (i64, Vec<Arc<FileMeta>>, T) {
        let m = self.read();
        let files = m
            .files
            .iter()
            .filter(|f| {
                f.signal == signal && &f.tenant == tenant && f.max_time >= from && f.min_time <= to
            })
            .cloned()
            .collect();
        (m.version, files, also())
    }

    /// Waits until no commit is under way and holds commits off while the
    /// guard lives: what a node hands out as unflushed then matches the
    /// versions its commits made.
    pub async fn hold_commits(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.refreshing.lock().await
    }

    /// Every file.
    pub fn all(&self) -> Vec<Arc<FileMeta>> {
        self.read().files.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Mirror> {
        self.mirror.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Mirror> {
        self.mirror.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `added` and retires `removed` in one transaction, moving
    /// this node's WAL watermark when given; then updates the mirror
    /// through `publish` (given the commit's catalog version), which runs
    /// while the mirror is locked so a reader sees the old set or the new
    /// one, never a mix. A shared catalog's mirror then catches up with
    /// the other nodes' commits, so it stays a whole version.
    pub async fn commit(
        &self,
        added: Vec<NewFile>,
        removed: Vec<i64>,
        watermark: Option<u64>,
        now_ns: i64,
        publish: impl FnOnce(i64),
    ) -> Result<Vec<Arc<FileMeta>>> {
        // A refresh running meanwhile could put back an older set.
        let _one = self.refreshing.lock().await;
        let committed = self
            .db
            .commit(&self.node, &added, &removed, watermark, now_ns)
            .await?;
        let new: Vec<Arc<FileMeta>> = added
            .into_iter()
            .zip(committed.ids)
            .map(|(f, id)| Arc::new(f.published(id)))
            .collect();
        {
            let mut m = self.write();
            m.apply(new.iter().cloned(), &removed);
            publish(committed.version);
        }
        if self.db.shared()
            && let Err(e) = self.catch_up().await
        {
            tracing::warn!(error = %e, "committed, but cannot read the catalog's other changes; the next query will");
        }
        Ok(new)
    }

    /// Takes or renews the lease `name` for this node for `ttl_ns`.
    pub async fn lease(&self, name: &str, now_ns: i64, ttl_ns: i64) -> Result<bool> {
        self.db.lease(name, &self.node, now_ns, ttl_ns).await
    }
}

/// The signal stored under `s`.
fn signal_of(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|x| x.as_str() == s)
}

/// A catalog row as stored, checked.
#[allow(clippy::too_many_arguments)]
fn file_row(
    id: i64,
    tenant: &str,
    signal: &str,
    path: String,
    min_time: i64,
    max_time: i64,
    rows: i64,
    bytes: i64,
    level: i64,
) -> Result<FileMeta> {
    let bad = || crate::Error::Corrupt(format!("catalog row {id}"));
    Ok(FileMeta {
        id,
        tenant: TenantId::new(tenant).map_err(|_| bad())?,
        signal: signal_of(signal).ok_or_else(bad)?,
        path,
        min_time,
        max_time,
        rows: rows as u64,
        bytes: bytes as u64,
        level: u32::try_from(level).map_err(|_| bad())?,
    })
}
