//! The catalog in the embedded metadata database (SQLite): the default,
//! for one node that owns its data directory and its files.

use super::{CatalogDb, Changes, Committed, Loaded, NewFile, Node, file_row};
use crate::{
    error::{Error, Result},
    metadata::{Metadata, Migrations},
    params,
};

/// The catalog's tables, in order. Never edit a released migration.
const MIGRATIONS: Migrations = Migrations {
    sqlite: SQLITE,
    // A shared catalog is `PgCatalog`'s, in tables of its own.
    postgres: Some(&[]),
};

const SQLITE: &[&str] = &[
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

/// The catalog in [`Metadata`]'s database.
#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    meta: Metadata,
}

impl SqliteCatalog {
    /// The catalog in `meta`, its tables migrated.
    pub async fn open(meta: Metadata) -> Result<Self> {
        meta.migrate("catalog", &MIGRATIONS).await?;
        Ok(Self { meta })
    }
}

type Row = (i64, String, String, String, i64, i64, i64, i64, i64);

#[async_trait::async_trait]
impl CatalogDb for SqliteCatalog {
    async fn load(&self, _node: &str) -> Result<Loaded> {
        let (rows, watermark) = self
            .meta
            .call(|c| {
                let rows: Vec<Row> = c.query_map(
                    "SELECT id, tenant_id, signal, path, min_time, max_time, rows, bytes, level FROM parquet_files ORDER BY id",
                    params![],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                            r.get(6)?,
                            r.get(7)?,
                            r.get(8)?,
                        ))
                    },
                )?;
                let watermark: i64 = c.query_row(
                    "SELECT persisted_before_segment FROM wal_state WHERE id = 1",
                    params![],
                    |r| r.get(0),
                )?;
                Ok((rows, watermark))
            })
            .await?;
        let files = rows
            .into_iter()
            .map(|(id, tenant, signal, path, min, max, rows, bytes, level)| {
                file_row(id, &tenant, &signal, path, min, max, rows, bytes, level)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Loaded {
            files,
            watermark: watermark.max(0) as u64,
            version: 0,
        })
    }

    async fn commit(
        &self,
        _node: &str,
        added: &[NewFile],
        removed: &[i64],
        watermark: Option<u64>,
        now_ns: i64,
    ) -> Result<Committed> {
        let added = added.to_vec();
        let removed = removed.to_vec();
        let ids = self
            .meta
            .call(move |c| {
                let tx = c.transaction()?;
                let mut ids = Vec::with_capacity(added.len());
                let mut gone = 0;
                for f in &added {
                    ids.push(tx.query_row(
                        "INSERT INTO parquet_files (tenant_id, signal, path, min_time, max_time, rows, bytes, level, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                        params![
                            f.tenant.as_str(),
                            f.signal.as_str(),
                            f.path,
                            f.min_time,
                            f.max_time,
                            f.rows as i64,
                            f.bytes as i64,
                            f.level,
                            now_ns
                        ],
                        |r| r.get(0),
                    )?);
                }
                for id in &removed {
                    gone += tx.execute("DELETE FROM parquet_files WHERE id = ?1", params![id])?;
                }
                if gone != removed.len() {
                    // Dropping the transaction rolls it back.
                    return Ok(None);
                }
                if let Some(w) = watermark {
                    tx.execute(
                        "UPDATE wal_state SET persisted_before_segment = ?1 WHERE id = 1",
                        params![w as i64],
                    )?;
                }
                tx.commit()?;
                Ok(Some(ids))
            })
            .await?;
        let ids = ids.ok_or_else(|| {
            Error::Conflict("a file to retire is no longer in the catalog".into())
        })?;
        Ok(Committed { ids, version: 0 })
    }

    async fn changes_since(&self, version: i64) -> Result<Option<Changes>> {
        Ok(Some(Changes {
            version,
            ..Changes::default()
        }))
    }

    fn shared(&self) -> bool {
        false
    }

    async fn lease(&self, _name: &str, _holder: &str, _now_ns: i64, _ttl_ns: i64) -> Result<bool> {
        // One process owns the data directory (and so this database).
        Ok(true)
    }

    async fn heartbeat(&self, _node: &str, _role: &str, _flight: &str) -> Result<()> {
        Ok(())
    }

    async fn nodes(&self, _max_age_ns: i64) -> Result<Vec<Node>> {
        Ok(Vec::new())
    }

    async fn retired_undeleted(&self, _before_ns: i64) -> Result<Vec<(i64, String)>> {
        Ok(Vec::new())
    }

    async fn mark_deleted(&self, _ids: &[i64], _now_ns: i64) -> Result<()> {
        Ok(())
    }
}
