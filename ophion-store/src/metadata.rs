//! The metadata database: one SQLite file (WAL mode, foreign keys on)
//! owned by one dedicated thread, so async callers never block a runtime
//! worker. It holds no tables of its own but the migration ledger: each
//! feature owns its tables and migrates them where its code lives, through
//! [`Metadata::migrate`] (the store's file catalog in `catalog.rs`, users,
//! keys, tenants and the audit log in `ophion-bin`'s `auth`, the AI
//! service's saved templates in its `ai`), so no table exists before the
//! feature that uses it.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the metadata database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metadata {
    tx: mpsc::UnboundedSender<Job>,
}

impl Metadata {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        ledger(&mut conn)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("ophion-metadata".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(Error::Io)?;
        Ok(Self { tx })
    }

    /// Runs `f` on the database thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| Error::Closed)?;
        Ok(rx.await.map_err(|_| Error::Closed)??)
    }

    /// Applies the `migrations` of `component` not yet applied, in order,
    /// each in its own transaction with its ledger entry. A migration is
    /// never edited once released: append a new one. A database migrated
    /// by a newer build (more migrations than `migrations`) is refused.
    pub async fn migrate(
        &self,
        component: &'static str,
        migrations: &'static [&'static str],
    ) -> Result<()> {
        let done = self.version(component).await? as usize;
        if done > migrations.len() {
            return Err(Error::Config(format!(
                "metadata: {component} schema version {done} is newer than this build ({}); upgrade Ophion",
                migrations.len()
            )));
        }
        // Foreign keys are off while migrating (SQLite's procedure for
        // rebuilding a table: `DROP TABLE` would otherwise cascade), and
        // checked before each migration commits.
        self.call(move |c| {
            c.pragma_update(None, "foreign_keys", "OFF")?;
            let applied = (|| {
                for (i, sql) in migrations.iter().enumerate().skip(done) {
                    let tx = c.transaction()?;
                    tx.execute_batch(sql)?;
                    let broken: Option<String> = tx
                        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                        .optional()?;
                    if let Some(table) = broken {
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                            Some(format!(
                                "{component} migration {}: broken foreign key in {table}",
                                i + 1
                            )),
                        ));
                    }
                    tx.execute(
                        "INSERT INTO schema_migrations (component, version) VALUES (?1, ?2) \
                         ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                        (component, (i + 1) as i64),
                    )?;
                    tx.commit()?;
                }
                Ok(())
            })();
            c.pragma_update(None, "foreign_keys", "ON")?;
            applied
        })
        .await
    }

    /// The schema version of `component` (0 before its first migration).
    pub async fn version(&self, component: &'static str) -> Result<u32> {
        self.call(move |c| {
            c.query_row(
                "SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = ?1",
                [component],
                |r| r.get(0),
            )
        })
        .await
    }
}

/// Creates the migration ledger. A database of a release before the
/// ledger (`PRAGMA user_version` 1 or 2: one global list of migrations)
/// is entered into it: its catalog tables as the catalog's migration 1,
/// its users, keys, tenants and audit tables as auth's migrations 1 and 2;
/// the tables created for features that never came (alert rules, channels,
/// playbooks, dashboards) are dropped.
fn ledger(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            component TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        );",
    )?;
    let legacy: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if legacy > 0 {
        if legacy > 2 {
            return Err(Error::Config(format!(
                "metadata schema version {legacy} is newer than this build; upgrade Ophion"
            )));
        }
        tx.execute_batch(
            "DROP TABLE IF EXISTS alert_rules;
             DROP TABLE IF EXISTS playbooks;
             DROP TABLE IF EXISTS dashboards;
             DROP TABLE IF EXISTS notification_channels;
             INSERT OR IGNORE INTO schema_migrations (component, version) VALUES ('catalog', 1);",
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO schema_migrations (component, version) VALUES ('auth', ?1)",
            [legacy],
        )?;
        tx.pragma_update(None, "user_version", 0)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &[&str] = &["CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"];
    const BOTH: &[&str] = &[
        "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        "ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0;",
    ];

    #[tokio::test]
    async fn each_component_migrates_once_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("meta.db");
        let m = Metadata::open(&path).expect("open");
        assert_eq!(m.version("things").await.expect("version"), 0);
        m.migrate("things", FIRST).await.expect("first");
        m.migrate("things", FIRST).await.expect("nothing twice");
        assert_eq!(m.version("things").await.expect("version"), 1);
        drop(m);
        let m = Metadata::open(&path).expect("reopen");
        m.migrate("things", BOTH).await.expect("the next one");
        assert_eq!(m.version("things").await.expect("version"), 2);
        let n: i64 = m
            .call(|c| {
                c.execute("INSERT INTO things (name, size) VALUES ('a', 3)", [])
                    .map(|n| n as i64)
            })
            .await
            .expect("the new column exists");
        assert_eq!(n, 1);
        // An older build refuses a newer schema.
        assert!(m.migrate("things", FIRST).await.is_err());
        let (mode, fk): (String, i64) = m
            .call(|c| {
                let mode = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                let fk = c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
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
            let c = Connection::open(&path).expect("sqlite");
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
                let mut q =
                    c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
                q.query_map([], |r| r.get(0))?.collect()
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
