//! The metadata in one SQLite file, the embedded default.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, types::Value as Lite};

use super::sql::{Conn, Dialect, Params, Result as SqlResult, Row, SqlError, Value};
use crate::error::{Error, Result};

/// Opens (creating if needed) the database at `path`, with its ledger.
pub(super) fn open(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(meta)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(meta)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(meta)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(meta)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(meta)?;
    ledger(&mut conn)?;
    Ok(conn)
}

fn meta(e: rusqlite::Error) -> Error {
    Error::Metadata(lite(e))
}

/// SQLite's error as the metadata's.
pub(super) fn lite(e: rusqlite::Error) -> SqlError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => SqlError::NoRows,
        rusqlite::Error::SqliteFailure(f, m) if f.code == ErrorCode::ConstraintViolation => {
            SqlError::Constraint(m.unwrap_or_else(|| f.to_string()))
        }
        e @ (rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::ToSqlConversionFailure(_)) => SqlError::Conversion(e.to_string()),
        e => SqlError::Database(e.to_string()),
    }
}

fn bind(params: Params<'_>) -> impl Iterator<Item = Lite> + '_ {
    params.iter().map(|p| match p.to_sql() {
        Value::Null => Lite::Null,
        Value::Integer(i) => Lite::Integer(i),
        Value::Real(x) => Lite::Real(x),
        Value::Text(t) => Lite::Text(t),
        Value::Blob(b) => Lite::Blob(b),
    })
}

impl Conn for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn exec(&self, sql: &str, params: Params<'_>) -> SqlResult<usize> {
        let mut stmt = self.prepare_cached(sql).map_err(lite)?;
        stmt.execute(rusqlite::params_from_iter(bind(params)))
            .map_err(lite)
    }

    fn rows(&self, sql: &str, params: Params<'_>) -> SqlResult<Vec<Row>> {
        let mut stmt = self.prepare_cached(sql).map_err(lite)?;
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(bind(params)))
            .map_err(lite)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(lite)? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(match r.get::<_, Lite>(i).map_err(lite)? {
                    Lite::Null => Value::Null,
                    Lite::Integer(i) => Value::Integer(i),
                    Lite::Real(x) => Value::Real(x),
                    Lite::Text(t) => Value::Text(t),
                    Lite::Blob(b) => Value::Blob(b),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        Connection::execute_batch(self, sql).map_err(lite)
    }

    fn lock(&self, _key: i64) -> SqlResult<()> {
        Ok(())
    }
}

/// Creates the migration ledger. A database of a release before the
/// ledger (`PRAGMA user_version` 1 or 2: one global list of migrations)
/// is entered into it: its catalog tables as the catalog's migration 1,
/// its users, keys, tenants and audit tables as auth's migrations 1 and 2;
/// the tables created for features that never came (alert rules, channels,
/// playbooks, dashboards) are dropped.
fn ledger(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction().map_err(meta)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            component TEXT PRIMARY KEY,
            version INTEGER NOT NULL
        );",
    )
    .map_err(meta)?;
    let legacy: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(meta)?;
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
        )
        .map_err(meta)?;
        tx.execute(
            "INSERT OR IGNORE INTO schema_migrations (component, version) VALUES ('auth', ?1)",
            [legacy],
        )
        .map_err(meta)?;
        tx.pragma_update(None, "user_version", 0).map_err(meta)?;
    }
    tx.commit().map_err(meta)?;
    Ok(())
}
