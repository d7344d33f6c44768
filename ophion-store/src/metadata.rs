//! The metadata database: users, API keys, alert rules, notification
//! channels, playbooks, dashboards, the audit log, and the store's own
//! catalog of Parquet files. SQLite in WAL mode with foreign keys on, owned
//! by one dedicated thread so async callers never block a runtime worker.

use std::path::Path;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Schema versions, applied in order; `PRAGMA user_version` records how many
/// ran. Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the tables later features fill, and the store's catalog.
    r#"
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
        disabled INTEGER NOT NULL DEFAULT 0,
        token_version INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL DEFAULT 'ingest',
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE notification_channels (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE alert_rules (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        severity TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        channel_id INTEGER REFERENCES notification_channels(id) ON DELETE SET NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE playbooks (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE dashboards (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        definition TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT,
        at INTEGER NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        target TEXT,
        source TEXT,
        outcome TEXT NOT NULL,
        detail TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
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
    // 2: sessions: server secrets, refresh tokens, revoked access tokens.
    r#"
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_version INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE revoked_tokens (
        jti TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
    "#,
];

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
        migrate(&mut conn)?;
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

    /// The schema version in force.
    pub async fn version(&self) -> Result<u32> {
        self.call(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
            .await
    }
}

/// Applies the migrations not yet applied, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let done = usize::try_from(done).unwrap_or(0);
    if done > MIGRATIONS.len() {
        return Err(Error::Config(format!(
            "metadata schema version {done} is newer than this build ({}); upgrade Ophion",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_once_and_enforces_its_rules() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("meta.db");
        let m = Metadata::open(&path).expect("open");
        assert_eq!(m.version().await.expect("version"), MIGRATIONS.len() as u32);
        // Reopening runs nothing twice.
        drop(m);
        let m = Metadata::open(&path).expect("reopen");
        let (mode, fk): (String, i64) = m
            .call(|c| {
                let mode = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                let fk = c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
                Ok((mode, fk))
            })
            .await
            .expect("pragmas");
        assert_eq!((mode.as_str(), fk), ("wal", 1));
        // Foreign keys hold.
        let orphan = m
            .call(|c| {
                c.execute(
                    "INSERT INTO users (tenant_id, username, password_hash, role, created_at) VALUES ('nope', 'u', 'h', 'viewer', 0)",
                    [],
                )
            })
            .await;
        assert!(orphan.is_err(), "a user of an unknown tenant is refused");
        // The audit log is append-only.
        let appended = m
            .call(|c| {
                c.execute(
                    "INSERT INTO audit_log (at, action, outcome, prev_hash, hash) VALUES (1, 'login', 'ok', '', 'h1')",
                    [],
                )
            })
            .await
            .expect("insert");
        assert_eq!(appended, 1);
        assert!(
            m.call(|c| c.execute("UPDATE audit_log SET outcome = 'x'", []))
                .await
                .is_err()
        );
        assert!(
            m.call(|c| c.execute("DELETE FROM audit_log", []))
                .await
                .is_err()
        );
    }
}
