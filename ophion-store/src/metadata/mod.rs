//! The metadata database: one SQLite file (WAL mode, foreign keys on)
//! owned by one dedicated thread, so async callers never block a runtime
//! worker. It holds no tables of its own but the migration ledger: each
//! feature owns its tables and migrates them where its code lives, through
//! [`Metadata::migrate`] (the store's file catalog in `catalog.rs`, users,
//! keys, tenants and the audit log in `ophion-bin`'s `auth`, the AI
//! service's saved templates in its `ai`), so no table exists before the
//! feature that uses it.

//! The metadata database: users, keys, tenants, the audit log, rules,
//! dashboards, conversations, playbooks and (embedded) the file catalog.
//!
//! Two homes, chosen with the catalog (`[store.catalog]`): one SQLite file
//! in the data directory (WAL mode, foreign keys on), the embedded
//! default; or, when the catalog is in PostgreSQL, the same PostgreSQL
//! database and schema, so every node of a cluster sees one set of users,
//! keys, tenants, audit records and rules. Either way one connection is
//! owned by one dedicated thread, so async callers never block a runtime
//! worker, and the features speak to it through [`sql::Conn`], whose
//! statements are written once for both databases.
//!
//! The database holds no tables of its own but the migration ledger: each
//! feature owns its tables and migrates them where its code lives, through
//! [`Metadata::migrate`] with one list of migrations per database
//! ([`Migrations`]), so no table exists before the feature that uses it.

mod postgres;
pub mod sql;
mod sqlite;

use std::path::Path;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
pub use sql::{Conn, Dialect, OptionalExtension, SqlError};

type Job = Box<dyn FnOnce(&dyn Conn) + Send>;

/// A feature's migrations, in order, for each database. A migration is
/// never edited once released: append a new one. A database only ever
/// runs its own list.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// For the embedded SQLite file.
    pub sqlite: &'static [&'static str],
    /// For a PostgreSQL database (the tables are created in the catalog's
    /// schema, which is first on the connection's search path). `None`:
    /// the SQLite list with its types translated ([`sql::postgres_ddl`]),
    /// for features whose tables need nothing else.
    pub postgres: Option<&'static [&'static str]>,
}

/// Handle to the metadata database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metadata {
    tx: mpsc::UnboundedSender<Job>,
    dialect: Dialect,
}

impl Metadata {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = sqlite::open(path)?;
        Self::serve(Box::new(conn), Dialect::Sqlite)
    }

    /// Connects to the PostgreSQL database at `url` (the catalog's), with
    /// the tables in `schema` (created if missing).
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        let (tx, rx) = oneshot::channel();
        let (url, schema) = (url.to_owned(), schema.to_owned());
        // The connection drives its own runtime on the metadata thread, so
        // it is made there.
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("ophion-metadata".into())
            .spawn(move || match postgres::Pg::connect(&url, &schema) {
                Ok(conn) => {
                    let _ = tx.send(Ok(()));
                    while let Some(job) = queue.blocking_recv() {
                        job(&conn);
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(Error::Io)?;
        rx.await.map_err(|_| Error::Closed)??;
        Ok(Self {
            tx: jobs,
            dialect: Dialect::Postgres,
        })
    }

    fn serve(conn: Box<dyn Conn + Send>, dialect: Dialect) -> Result<Self> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("ophion-metadata".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&*conn);
                }
            })
            .map_err(Error::Io)?;
        Ok(Self { tx, dialect })
    }

    /// Whether other nodes share this database (PostgreSQL): what they
    /// write can change it at any time.
    pub fn shared(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// Runs `f` on the database thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Conn) -> sql::Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| Error::Closed)?;
        Ok(rx.await.map_err(|_| Error::Closed)??)
    }

    /// Applies the migrations of `component` not yet applied, in order,
    /// each in its own transaction with its ledger entry (on PostgreSQL
    /// under a lock, so nodes starting together migrate once). A database
    /// migrated by a newer build (more migrations than this build knows)
    /// is refused.
    pub async fn migrate(&self, component: &'static str, migrations: &Migrations) -> Result<()> {
        let list: Vec<String> = match (self.dialect, migrations.postgres) {
            (Dialect::Sqlite, _) => migrations.sqlite.iter().map(|m| (*m).to_owned()).collect(),
            (Dialect::Postgres, Some(own)) => own.iter().map(|m| (*m).to_owned()).collect(),
            (Dialect::Postgres, None) => migrations
                .sqlite
                .iter()
                .map(|m| sql::postgres_ddl(m))
                .collect(),
        };
        let done = self.version(component).await? as usize;
        if done > list.len() {
            return Err(Error::Config(format!(
                "metadata: {component} schema version {done} is newer than this build ({}); upgrade Ophion",
                list.len()
            )));
        }
        if done == list.len() {
            return Ok(());
        }
        self.call(move |c| match c.dialect() {
            // Foreign keys are off while migrating (SQLite's procedure for
            // rebuilding a table: `DROP TABLE` would otherwise cascade),
            // and checked before each migration commits.
            Dialect::Sqlite => {
                c.execute_batch("PRAGMA foreign_keys = OFF")?;
                let applied = apply(c, component, &list);
                c.execute_batch("PRAGMA foreign_keys = ON")?;
                applied
            }
            Dialect::Postgres => apply(c, component, &list),
        })
        .await
    }

    /// The schema version of `component` (0 before its first migration).
    pub async fn version(&self, component: &'static str) -> Result<u32> {
        self.call(move |c| version(c, component)).await
    }
}

/// The connection settings of `url` (`postgres://user:password@host:port/db`
/// or the key=value form) for `application`, 10 s to connect unless it
/// says otherwise, once `schema` is checked to be a plain name (it is put
/// in SQL text).
pub(crate) fn postgres_config(
    url: &str,
    schema: &str,
    application: &str,
) -> Result<tokio_postgres::Config> {
    if !sql::identifier(schema) {
        return Err(Error::Config(format!(
            "store.catalog.postgres_schema {schema:?}: use lower-case letters, digits and _"
        )));
    }
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| Error::Config(format!("store.catalog.postgres_url: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.application_name(application);
    Ok(config)
}

fn version(c: &dyn Conn, component: &str) -> sql::Result<u32> {
    c.query_row(
        "SELECT CAST(coalesce(max(version), 0) AS BIGINT) FROM schema_migrations WHERE component = ?1",
        crate::params![component],
        |r| r.get(0),
    )
}

fn apply(c: &dyn Conn, component: &str, list: &[String]) -> sql::Result<()> {
    for (i, sql) in list.iter().enumerate() {
        let tx = c.transaction()?;
        tx.lock(sql::lock_key("ophion metadata migrations"))?;
        // Read again under the lock: another node may have run it.
        if version(&*tx, component)? as usize > i {
            continue;
        }
        tx.execute_batch(sql)?;
        if tx.dialect() == Dialect::Sqlite {
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", crate::params![], |r| r.get(0))
                .optional()?;
            if let Some(table) = broken {
                return Err(SqlError::Constraint(format!(
                    "{component} migration {}: broken foreign key in {table}",
                    i + 1
                )));
            }
        }
        tx.execute(
            "INSERT INTO schema_migrations (component, version) VALUES (?1, ?2) \
             ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            crate::params![component, (i + 1) as i64],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Migrations = Migrations {
        sqlite: &["CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"],
        postgres: Some(&[]),
    };
    const BOTH: Migrations = Migrations {
        sqlite: &[
            "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
            "ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0;",
        ],
        postgres: Some(&[]),
    };

    #[tokio::test]
    async fn each_component_migrates_once_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("meta.db");
        let m = Metadata::open(&path).expect("open");
        assert_eq!(m.version("things").await.expect("version"), 0);
        m.migrate("things", &FIRST).await.expect("first");
        m.migrate("things", &FIRST).await.expect("nothing twice");
        assert_eq!(m.version("things").await.expect("version"), 1);
        drop(m);
        let m = Metadata::open(&path).expect("reopen");
        m.migrate("things", &BOTH).await.expect("the next one");
        assert_eq!(m.version("things").await.expect("version"), 2);
        let n: i64 = m
            .call(|c| {
                c.execute(
                    "INSERT INTO things (name, size) VALUES ('a', 3)",
                    crate::params![],
                )
                .map(|n| n as i64)
            })
            .await
            .expect("the new column exists");
        assert_eq!(n, 1);
        // An older build refuses a newer schema.
        assert!(m.migrate("things", &FIRST).await.is_err());
        let (mode, fk): (String, i64) = m
            .call(|c| {
                let mode = c.query_row("PRAGMA journal_mode", crate::params![], |r| r.get(0))?;
                let fk = c.query_row("PRAGMA foreign_keys", crate::params![], |r| r.get(0))?;
                Ok((mode, fk))
            })
            .await
            .expect("pragmas");
        assert_eq!((mode.as_str(), fk), ("wal", 1));
    }

    #[tokio::test]
    async fn a_database_of_an_older_release_joins_the_ledger() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("meta.db");
        {
            let c = rusqlite::Connection::open(&path).expect("sqlite");
            c.execute_batch(
                "CREATE TABLE parquet_files (id INTEGER PRIMARY KEY);
                 CREATE TABLE notification_channels (id INTEGER PRIMARY KEY);
                 CREATE TABLE alert_rules (id INTEGER PRIMARY KEY,
                     channel_id INTEGER REFERENCES notification_channels(id));
                 CREATE TABLE playbooks (id INTEGER PRIMARY KEY);
                 CREATE TABLE dashboards (id INTEGER PRIMARY KEY);
                 PRAGMA user_version = 2;",
            )
            .expect("old schema");
        }
        let m = Metadata::open(&path).expect("open");
        assert_eq!(m.version("catalog").await.expect("v"), 1);
        assert_eq!(m.version("auth").await.expect("v"), 2);
        let tables: Vec<String> = m
            .call(|c| {
                c.query_map(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                    crate::params![],
                    |r| r.get(0),
                )
            })
            .await
            .expect("tables");
        assert_eq!(
            tables,
            ["parquet_files", "schema_migrations"],
            "unused tables dropped"
        );
    }
}
