//! The catalog in PostgreSQL, shared by the nodes of a cluster that write
//! one bucket (`[store.catalog] postgres_url`).
//!
//! Tables live in their own schema (`postgres_schema`, default `ophion`):
//! - `parquet_files`: every file, with the catalog version that published
//!   it and, once retired, the version that retired it (kept for an hour so
//!   other nodes learn of the retirement, then purged) and when its object
//!   was deleted (by the node holding the maintenance lease, after a
//!   grace for queries still reading it);
//! - `catalog_state`: the catalog version, bumped by every commit in its
//!   transaction. Its row lock orders commits, so a reader whose snapshot
//!   shows version `v` sees every commit up to `v` and none after;
//! - `wal_state`: each node's WAL watermark;
//! - `leases`: who runs compaction or retention, until when (the
//!   database's clock decides);
//! - `nodes`: each node's role, where it serves its unflushed rows, and
//!   its last heartbeat (the database's clock);
//! - `migrations`: which of this module's migrations ran.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{IsolationLevel, NoTls};

use super::{CatalogDb, Changes, Committed, Loaded, NewFile, Node, file_row};
use crate::{
    error::{Error, Result},
    metadata::postgres_config,
};

/// How long retired files stay listed so that other nodes learn of the
/// retirement with their next refresh; a node further behind loads the
/// whole catalog again.
const KEEP_RETIRED_NS: i64 = 3_600_000_000_000;

/// The catalog's migrations, in order; `{s}` is the schema. Never edit a
/// released one.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE {s}.parquet_files (
        id BIGSERIAL PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        signal TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        min_time BIGINT NOT NULL,
        max_time BIGINT NOT NULL,
        rows BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        level INTEGER NOT NULL,
        created_at BIGINT NOT NULL,
        node TEXT NOT NULL,
        added_version BIGINT NOT NULL,
        retired_version BIGINT,
        retired_at BIGINT
    );
    CREATE INDEX parquet_files_added ON {s}.parquet_files (added_version);
    CREATE INDEX parquet_files_retired ON {s}.parquet_files (retired_version)
        WHERE retired_version IS NOT NULL;
    CREATE TABLE {s}.catalog_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL,
        purged_version BIGINT NOT NULL
    );
    INSERT INTO {s}.catalog_state (id, version, purged_version) VALUES (1, 0, 0);
    CREATE TABLE {s}.wal_state (
        node TEXT PRIMARY KEY,
        persisted_before_segment BIGINT NOT NULL
    );
    CREATE TABLE {s}.leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
"#,
    r#"
    CREATE TABLE {s}.nodes (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        flight TEXT NOT NULL,
        seen_at BIGINT NOT NULL
    );
"#,
    r#"
    ALTER TABLE {s}.parquet_files ADD COLUMN deleted_at BIGINT;
    CREATE INDEX parquet_files_undeleted ON {s}.parquet_files (retired_at)
        WHERE retired_at IS NOT NULL AND deleted_at IS NULL;
"#,
];

/// Now on the database's clock, in nanoseconds since the epoch (SQL).
const DB_NOW_NS: &str = "(extract(epoch FROM clock_timestamp()) * 1e9)::BIGINT";

/// The catalog in a PostgreSQL database.
#[derive(Clone)]
pub struct PgCatalog {
    pool: Pool,
    schema: String,
}

impl std::fmt::Debug for PgCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: not shown.
        f.debug_struct("PgCatalog")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn pg(e: impl std::fmt::Display) -> Error {
    Error::Postgres(e.to_string())
}

const FILE_COLUMNS: &str = "id, tenant_id, signal, path, min_time, max_time, rows, bytes, level";

fn file_of(r: &tokio_postgres::Row) -> Result<super::FileMeta> {
    let get = |e: tokio_postgres::Error| pg(e);
    file_row(
        r.try_get(0).map_err(get)?,
        r.try_get::<_, &str>(1).map_err(get)?,
        r.try_get::<_, &str>(2).map_err(get)?,
        r.try_get(3).map_err(get)?,
        r.try_get(4).map_err(get)?,
        r.try_get(5).map_err(get)?,
        r.try_get(6).map_err(get)?,
        r.try_get(7).map_err(get)?,
        i64::from(r.try_get::<_, i32>(8).map_err(get)?),
    )
}

/// A read-only transaction on one snapshot of the catalog.
async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)
}

impl PgCatalog {
    /// Connects to `url` (`postgres://user:password@host:port/database`,
    /// or the key=value form), creates `schema` and migrates its tables.
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        let config = postgres_config(url, schema, "ophion")?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(pg)?;
        let catalog = Self {
            pool,
            schema: schema.to_owned(),
        };
        catalog.migrate().await?;
        Ok(catalog)
    }

    /// `sql` with `{s}` naming the schema.
    fn sql(&self, sql: &str) -> String {
        sql.replace("{s}", &self.schema)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::Postgres(format!("cannot reach the PostgreSQL catalog: {e}")))
    }

    /// Runs the migrations not yet run, one node at a time (an advisory
    /// lock held by the transaction).
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('ophion catalog migrations'))",
            &[],
        )
        .await
        .map_err(pg)?;
        tx.batch_execute(&self.sql(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.migrations (
                 component TEXT PRIMARY KEY,
                 version INTEGER NOT NULL
             );",
        ))
        .await
        .map_err(pg)?;
        let done: i32 = tx
            .query_opt(
                &*self.sql("SELECT version FROM {s}.migrations WHERE component = 'catalog'"),
                &[],
            )
            .await
            .map_err(pg)?
            .map(|r| r.get(0))
            .unwrap_or(0);
        let done = usize::try_from(done).unwrap_or(0);
        if done > MIGRATIONS.len() {
            return Err(Error::Config(format!(
                "the PostgreSQL catalog's schema version {done} is newer than this build ({}); upgrade Ophion",
                MIGRATIONS.len()
            )));
        }
        for m in &MIGRATIONS[done..] {
            tx.batch_execute(&self.sql(m)).await.map_err(pg)?;
        }
        let version = MIGRATIONS.len() as i32;
        tx.execute(
            &*self.sql(
                "INSERT INTO {s}.migrations (component, version) VALUES ('catalog', $1)
                 ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            ),
            &[&version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}

#[async_trait::async_trait]
impl CatalogDb for PgCatalog {
    async fn load(&self, node: &str) -> Result<Loaded> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let version: i64 = tx
            .query_one(
                &*self.sql("SELECT version FROM {s}.catalog_state WHERE id = 1"),
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        let rows = tx
            .query(
                &*self.sql(&format!(
                    "SELECT {FILE_COLUMNS} FROM {{s}}.parquet_files WHERE retired_version IS NULL ORDER BY id"
                )),
                &[],
            )
            .await
            .map_err(pg)?;
        let watermark: i64 = tx
            .query_opt(
                &*self.sql("SELECT persisted_before_segment FROM {s}.wal_state WHERE node = $1"),
                &[&node],
            )
            .await
            .map_err(pg)?
            .map_or(0, |r| r.get(0));
        tx.commit().await.map_err(pg)?;
        Ok(Loaded {
            files: rows.iter().map(file_of).collect::<Result<_>>()?,
            watermark: watermark.max(0) as u64,
            version,
        })
    }

    async fn commit(
        &self,
        node: &str,
        added: &[NewFile],
        removed: &[i64],
        watermark: Option<u64>,
        now_ns: i64,
    ) -> Result<Committed> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // The row lock orders commits: versions follow commit order.
        let version: i64 = tx
            .query_one(
                &*self.sql(
                    "UPDATE {s}.catalog_state SET version = version + 1 WHERE id = 1 RETURNING version",
                ),
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        if !removed.is_empty() {
            let retired = tx
                .execute(
                    &*self.sql(
                        "UPDATE {s}.parquet_files SET retired_version = $1, retired_at = $2
                         WHERE id = ANY($3) AND retired_version IS NULL",
                    ),
                    &[&version, &now_ns, &removed],
                )
                .await
                .map_err(pg)?;
            if retired != removed.len() as u64 {
                // Dropping the transaction rolls it back.
                return Err(Error::Conflict(format!(
                    "{} of {} files to retire were retired by another node",
                    removed.len() as u64 - retired,
                    removed.len()
                )));
            }
            // Retirements older than an hour have reached every node
            // that refreshes (nodes further behind reload everything);
            // their rows go once their objects are deleted.
            tx.execute(
                &*self.sql(
                    "WITH gone AS (
                         DELETE FROM {s}.parquet_files WHERE retired_at < $1 AND deleted_at IS NOT NULL RETURNING retired_version
                     )
                     UPDATE {s}.catalog_state
                     SET purged_version = GREATEST(purged_version, (SELECT coalesce(max(retired_version), 0) FROM gone))
                     WHERE id = 1",
                ),
                &[&(now_ns - KEEP_RETIRED_NS)],
            )
            .await
            .map_err(pg)?;
        }
        let insert = self.sql(
            "INSERT INTO {s}.parquet_files
                 (tenant_id, signal, path, min_time, max_time, rows, bytes, level, created_at, node, added_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        );
        let mut ids = Vec::with_capacity(added.len());
        for f in added {
            let level = f.level as i32;
            let row = tx
                .query_one(
                    insert.as_str(),
                    &[
                        &f.tenant.as_str(),
                        &f.signal.as_str(),
                        &f.path,
                        &f.min_time,
                        &f.max_time,
                        &(f.rows as i64),
                        &(f.bytes as i64),
                        &level,
                        &now_ns,
                        &node,
                        &version,
                    ],
                )
                .await
                .map_err(pg)?;
            ids.push(row.get(0));
        }
        if let Some(w) = watermark {
            tx.execute(
                &*self.sql(
                    "INSERT INTO {s}.wal_state (node, persisted_before_segment) VALUES ($1, $2)
                     ON CONFLICT (node) DO UPDATE SET persisted_before_segment = EXCLUDED.persisted_before_segment",
                ),
                &[&node, &(w as i64)],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(Committed { ids, version })
    }

    async fn changes_since(&self, version: i64) -> Result<Option<Changes>> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let state = tx
            .query_one(
                &*self.sql("SELECT version, purged_version FROM {s}.catalog_state WHERE id = 1"),
                &[],
            )
            .await
            .map_err(pg)?;
        let (now, purged): (i64, i64) = (state.get(0), state.get(1));
        if version < purged {
            return Ok(None);
        }
        if now == version {
            return Ok(Some(Changes {
                version,
                ..Changes::default()
            }));
        }
        let added = tx
            .query(
                &*self.sql(&format!(
                    "SELECT {FILE_COLUMNS} FROM {{s}}.parquet_files
                     WHERE added_version > $1 AND retired_version IS NULL ORDER BY id"
                )),
                &[&version],
            )
            .await
            .map_err(pg)?;
        let removed = tx
            .query(
                &*self.sql("SELECT id FROM {s}.parquet_files WHERE retired_version > $1"),
                &[&version],
            )
            .await
            .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(Some(Changes {
            added: added.iter().map(file_of).collect::<Result<_>>()?,
            removed: removed.iter().map(|r| r.get(0)).collect(),
            version: now,
        }))
    }

    fn shared(&self) -> bool {
        true
    }

    async fn lease(&self, name: &str, holder: &str, _now_ns: i64, ttl_ns: i64) -> Result<bool> {
        // The database's clock, so nodes' clocks may disagree.
        let client = self.client().await?;
        let row = client
            .query_opt(
                &*self.sql(
                    &format!("INSERT INTO {{s}}.leases (name, holder, expires_at)
                     VALUES ($1, $2, {DB_NOW_NS} + $3)
                     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                     WHERE {{s}}.leases.holder = EXCLUDED.holder
                        OR {{s}}.leases.expires_at < EXCLUDED.expires_at - $3
                     RETURNING holder"),
                ),
                &[&name, &holder, &ttl_ns],
            )
            .await
            .map_err(pg)?;
        Ok(row.is_some())
    }

    async fn heartbeat(&self, node: &str, role: &str, flight: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &*self.sql(&format!(
                    "INSERT INTO {{s}}.nodes (name, role, flight, seen_at) VALUES ($1, $2, $3, {DB_NOW_NS})
                     ON CONFLICT (name) DO UPDATE
                     SET role = EXCLUDED.role, flight = EXCLUDED.flight, seen_at = EXCLUDED.seen_at"
                )),
                &[&node, &role, &flight],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn nodes(&self, max_age_ns: i64) -> Result<Vec<Node>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &*self.sql(&format!(
                    "SELECT name, role, flight FROM {{s}}.nodes WHERE seen_at >= {DB_NOW_NS} - $1 ORDER BY name"
                )),
                &[&max_age_ns],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| Node {
                name: r.get(0),
                role: r.get(1),
                flight: r.get(2),
            })
            .collect())
    }

    async fn retired_undeleted(&self, before_ns: i64) -> Result<Vec<(i64, String)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &*self.sql(
                    "SELECT id, path FROM {s}.parquet_files
                     WHERE retired_at IS NOT NULL AND retired_at < $1 AND deleted_at IS NULL
                     ORDER BY id LIMIT 10000",
                ),
                &[&before_ns],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn mark_deleted(&self, ids: &[i64], now_ns: i64) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &*self.sql("UPDATE {s}.parquet_files SET deleted_at = $1 WHERE id = ANY($2)"),
                &[&now_ns, &ids],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }
}
