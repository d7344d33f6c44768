//! The catalog of Parquet files: which file holds which tenant's rows of
//! which signal and time range. Kept in the metadata database (the source
//! of truth, updated in one transaction with the WAL watermark) and
//! mirrored in memory so queries never list the object store.

use std::sync::{Arc, RwLock};

use ophion_core::{Signal, TenantId};
use rusqlite::params;

use crate::{
    error::{Error, Result},
    metadata::Metadata,
};

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

/// In-memory mirror of the `parquet_files` table.
#[derive(Debug, Default)]
pub struct Catalog {
    files: RwLock<Vec<Arc<FileMeta>>>,
}

fn signal_of(s: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|x| x.as_str() == s)
}

/// The catalog's tables, in order. Never edit a released migration.
const MIGRATIONS: &[&str] = &[
    // 1: published Parquet files, and how far the write-ahead log is
    // persisted.
    r#"
    CREATE TABLE parquet_files (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        signal TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        min_time INTEGER NOT NULL,
        max_time INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        level INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX parquet_files_by_time ON parquet_files (tenant_id, signal, max_time);
    CREATE TABLE wal_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        persisted_before_segment INTEGER NOT NULL
    );
    INSERT INTO wal_state (id, persisted_before_segment) VALUES (1, 0);
    "#,
];

impl Catalog {
    /// Loads the catalog and the WAL watermark (segments below it are
    /// persisted) from the metadata database.
    pub async fn load(meta: &Metadata) -> Result<(Self, u64)> {
        meta.migrate("catalog", MIGRATIONS).await?;
        let (rows, watermark) = meta
            .call(|c| {
                let mut stmt = c.prepare(
                    "SELECT id, tenant_id, signal, path, min_time, max_time, rows, bytes, level FROM parquet_files ORDER BY id",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, i64>(7)?,
                            r.get::<_, i64>(8)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let watermark: i64 =
                    c.query_row("SELECT persisted_before_segment FROM wal_state WHERE id = 1", [], |r| r.get(0))?;
                Ok((rows, watermark))
            })
            .await?;
        let mut files = Vec::with_capacity(rows.len());
        for (id, tenant, signal, path, min_time, max_time, rows, bytes, level) in rows {
            let bad = || Error::Corrupt(format!("catalog row {id}"));
            files.push(Arc::new(FileMeta {
                id,
                tenant: TenantId::new(&tenant).map_err(|_| bad())?,
                signal: signal_of(&signal).ok_or_else(bad)?,
                path,
                min_time,
                max_time,
                rows: rows as u64,
                bytes: bytes as u64,
                level: level as u32,
            }));
        }
        Ok((
            Self {
                files: RwLock::new(files),
            },
            watermark.max(0) as u64,
        ))
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
            .iter()
            .filter(|f| {
                f.signal == signal && &f.tenant == tenant && f.max_time >= from && f.min_time <= to
            })
            .cloned()
            .collect()
    }

    /// Every file.
    pub fn all(&self) -> Vec<Arc<FileMeta>> {
        self.read().clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<FileMeta>>> {
        self.files.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `added` and retires `removed` in one transaction, moving
    /// the WAL watermark when given; then updates the mirror through
    /// `publish`, which runs while the mirror is locked so a reader sees the
    /// old set or the new one, never a mix.
    pub async fn commit(
        &self,
        meta: &Metadata,
        added: Vec<NewFile>,
        removed: Vec<i64>,
        watermark: Option<u64>,
        now_ns: i64,
        publish: impl FnOnce(),
    ) -> Result<Vec<Arc<FileMeta>>> {
        let to_insert = added.clone();
        let ids = meta
            .call(move |c| {
                let tx = c.transaction()?;
                let mut ids = Vec::with_capacity(to_insert.len());
                {
                    let mut ins = tx.prepare(
                        "INSERT INTO parquet_files (tenant_id, signal, path, min_time, max_time, rows, bytes, level, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?;
                    for f in &to_insert {
                        ins.execute(params![
                            f.tenant.as_str(),
                            f.signal.as_str(),
                            f.path,
                            f.min_time,
                            f.max_time,
                            f.rows as i64,
                            f.bytes as i64,
                            f.level,
                            now_ns
                        ])?;
                        ids.push(tx.last_insert_rowid());
                    }
                    let mut del = tx.prepare("DELETE FROM parquet_files WHERE id = ?1")?;
                    for id in &removed {
                        del.execute([id])?;
                    }
                }
                if let Some(w) = watermark {
                    tx.execute("UPDATE wal_state SET persisted_before_segment = ?1 WHERE id = 1", [w as i64])?;
                }
                tx.commit()?;
                Ok((ids, removed))
            })
            .await?;
        let (ids, removed) = ids;
        let new: Vec<Arc<FileMeta>> = added
            .into_iter()
            .zip(ids)
            .map(|(f, id)| {
                Arc::new(FileMeta {
                    id,
                    tenant: f.tenant,
                    signal: f.signal,
                    path: f.path,
                    min_time: f.min_time,
                    max_time: f.max_time,
                    rows: f.rows,
                    bytes: f.bytes,
                    level: f.level,
                })
            })
            .collect();
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        files.retain(|f| !removed.contains(&f.id));
        files.extend(new.iter().cloned());
        publish();
        Ok(new)
    }
}
