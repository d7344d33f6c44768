//! The metadata in PostgreSQL, next to the catalog, for a cluster's nodes.
//!
//! One connection, driven by a runtime of its own on the metadata thread
//! (a blocking thread has no runtime to lend it). Statements are prepared
//! once and kept; a parameter's value is converted to the type PostgreSQL
//! inferred for it, a column's to the [`Value`] SQLite would have stored.
//! A connection that broke is made again before the next statement,
//! unless a transaction was open on it: that transaction's remaining
//! statements fail, and it rolls back.

use std::{cell::RefCell, collections::HashMap};

use tokio_postgres::{
    NoTls, Statement,
    types::{ToSql as PgToSql, Type},
};

use super::sql::{
    Conn, Dialect, Params, Result as SqlResult, Row, SqlError, Value, numbered_parameters,
};
use crate::error::{Error, Result};

struct Live {
    client: tokio_postgres::Client,
    statements: HashMap<String, Statement>,
}

/// A PostgreSQL connection for the metadata thread.
pub(super) struct Pg {
    rt: tokio::runtime::Runtime,
    config: tokio_postgres::Config,
    schema: String,
    live: RefCell<Option<Live>>,
    in_transaction: RefCell<bool>,
}

fn pg(e: tokio_postgres::Error) -> SqlError {
    match e.as_db_error() {
        // Class 23: integrity constraint violation.
        Some(db) if db.code().code().starts_with("23") => {
            SqlError::Constraint(db.message().to_owned())
        }
        // Classes 08 (connection), 53 (out of resources: connections,
        // memory, disk) and 57P (the server shutting down or restarting):
        // try again later.
        Some(db)
            if ["08", "53", "57P"]
                .iter()
                .any(|c| db.code().code().starts_with(c)) =>
        {
            SqlError::Unavailable(format!("{}: {}", db.code().code(), db.message()))
        }
        Some(db) => SqlError::Database(format!("{}: {}", db.code().code(), db.message())),
        // No answer from the server: it is down or the connection broke.
        None => SqlError::Unavailable(e.to_string()),
    }
}

impl Pg {
    /// Connects, creates `schema` and the migration ledger in it.
    pub(super) fn connect(url: &str, schema: &str) -> Result<Self> {
        let config = super::postgres_config(url, schema, "ophion-metadata")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        let conn = Self {
            rt,
            config,
            schema: schema.to_owned(),
            live: RefCell::new(None),
            in_transaction: RefCell::new(false),
        };
        conn.live().map_err(Error::Metadata)?;
        let lock = super::sql::lock_key("ophion metadata migrations");
        conn.execute_batch("BEGIN")
            .and_then(|()| conn.lock(lock))
            .and_then(|()| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                        component TEXT PRIMARY KEY,
                        version BIGINT NOT NULL
                    )",
                )
            })
            .and_then(|()| conn.execute_batch("COMMIT"))
            .map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                Error::Metadata(e)
            })?;
        Ok(conn)
    }

    /// The connection, made again if it broke outside a transaction.
    fn live(&self) -> SqlResult<std::cell::RefMut<'_, Live>> {
        let mut live = self.live.borrow_mut();
        let broken = live.as_ref().is_none_or(|l| l.client.is_closed());
        if broken {
            if *self.in_transaction.borrow() {
                return Err(SqlError::Unavailable(
                    "the connection to PostgreSQL broke during a transaction".into(),
                ));
            }
            let (client, connection) = self.rt.block_on(self.config.connect(NoTls)).map_err(pg)?;
            self.rt.spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "metadata: the PostgreSQL connection ended");
                }
            });
            // The tables are found in the schema (and only there).
            let schema = &self.schema;
            self.rt
                .block_on(client.batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"
                )))
                .or_else(|e| {
                    // Nodes starting together may race to create it.
                    if e.as_db_error().is_some_and(|d| d.code().code() == "23505") {
                        self.rt
                            .block_on(client.batch_execute(&format!("SET search_path TO {schema}")))
                    } else {
                        Err(e)
                    }
                })
                .map_err(pg)?;
            *live = Some(Live {
                client,
                statements: HashMap::new(),
            });
        }
        Ok(std::cell::RefMut::map(live, |l| {
            l.as_mut().expect("connected above")
        }))
    }

    fn prepared(&self, live: &mut Live, sql: &str) -> SqlResult<Statement> {
        if let Some(s) = live.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self
            .rt
            .block_on(live.client.prepare(&numbered_parameters(sql)))
            .map_err(|e| match pg(e) {
                SqlError::Database(m) => SqlError::Database(format!("{m}, in: {sql}")),
                e => e,
            })?;
        live.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    fn run(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> SqlResult<(Statement, Vec<tokio_postgres::Row>, u64)> {
        let mut live = self.live()?;
        let stmt = self.prepared(&mut live, sql)?;
        if stmt.params().len() != params.len() {
            return Err(SqlError::Conversion(format!(
                "{} parameters given, {} expected",
                params.len(),
                stmt.params().len()
            )));
        }
        let bound = stmt
            .params()
            .iter()
            .zip(params)
            .enumerate()
            .map(|(i, (ty, p))| {
                to_pg(p.to_sql(), ty)
                    .map_err(|m| SqlError::Conversion(format!("parameter {}: {m}", i + 1)))
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let refs: Vec<&(dyn PgToSql + Sync)> = bound.iter().map(|b| &**b as _).collect();
        if stmt.columns().is_empty() {
            let n = self
                .rt
                .block_on(live.client.execute(&stmt, &refs))
                .map_err(pg)?;
            Ok((stmt, Vec::new(), n))
        } else {
            let rows = self
                .rt
                .block_on(live.client.query(&stmt, &refs))
                .map_err(pg)?;
            let n = rows.len() as u64;
            Ok((stmt, rows, n))
        }
    }
}

type Bound = Box<dyn PgToSql + Sync + Send>;

/// `v` as the Rust type that PostgreSQL's `ty` takes.
fn to_pg(v: Value, ty: &Type) -> std::result::Result<Bound, String> {
    fn int(v: &Value) -> std::result::Result<Option<i64>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(*i)),
            Value::Real(x) if x.fract() == 0.0 => Ok(Some(*x as i64)),
            other => Err(format!("{other:?} is not an integer")),
        }
    }
    let range = |_| format!("{v:?} out of range for {ty}");
    Ok(match *ty {
        Type::INT8 => Box::new(int(&v)?),
        Type::INT4 => Box::new(int(&v)?.map(i32::try_from).transpose().map_err(range)?),
        Type::INT2 => Box::new(int(&v)?.map(i16::try_from).transpose().map_err(range)?),
        Type::BOOL => Box::new(int(&v)?.map(|i| i != 0)),
        Type::FLOAT8 | Type::FLOAT4 => {
            let x = match v {
                Value::Null => None,
                Value::Integer(i) => Some(i as f64),
                Value::Real(x) => Some(x),
                other => return Err(format!("{other:?} is not a number")),
            };
            if *ty == Type::FLOAT4 {
                Box::new(x.map(|x| x as f32))
            } else {
                Box::new(x)
            }
        }
        Type::BYTEA => Box::new(match v {
            Value::Null => None,
            Value::Blob(b) => Some(b),
            Value::Text(t) => Some(t.into_bytes()),
            other => return Err(format!("{other:?} is not bytes")),
        }),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Box::new(match v {
                Value::Null => None,
                Value::Text(t) => Some(t),
                Value::Integer(i) => Some(i.to_string()),
                Value::Real(x) => Some(x.to_string()),
                Value::Blob(_) => return Err("bytes given for text".into()),
            })
        }
        _ => return Err(format!("parameters of type {ty} are not supported")),
    })
}

/// Column `i` of `row` as the value SQLite would have stored.
fn from_pg(row: &tokio_postgres::Row, i: usize) -> SqlResult<Value> {
    let ty = row.columns()[i].type_();
    let conv = |e: tokio_postgres::Error| SqlError::Conversion(format!("column {i}: {e}"));
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    Ok(match *ty {
        Type::INT8 => int(row.try_get::<_, Option<i64>>(i).map_err(conv)?),
        Type::INT4 => int(row
            .try_get::<_, Option<i32>>(i)
            .map_err(conv)?
            .map(i64::from)),
        Type::INT2 => int(row
            .try_get::<_, Option<i16>>(i)
            .map_err(conv)?
            .map(i64::from)),
        Type::BOOL => int(row
            .try_get::<_, Option<bool>>(i)
            .map_err(conv)?
            .map(i64::from)),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(conv)?
            .map_or(Value::Null, Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(conv)?
            .map_or(Value::Null, |x| Value::Real(f64::from(x))),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(conv)?
            .map_or(Value::Null, Value::Blob),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row
            .try_get::<_, Option<String>>(i)
            .map_err(conv)?
            .map_or(Value::Null, Value::Text),
        _ => {
            return Err(SqlError::Conversion(format!(
                "column {i} has type {ty}: cast it to BIGINT, DOUBLE PRECISION or TEXT"
            )));
        }
    })
}

impl Conn for Pg {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn exec(&self, sql: &str, params: Params<'_>) -> SqlResult<usize> {
        Ok(self.run(sql, params)?.2 as usize)
    }

    fn rows(&self, sql: &str, params: Params<'_>) -> SqlResult<Vec<Row>> {
        let (stmt, rows, _) = self.run(sql, params)?;
        let n = stmt.columns().len();
        rows.iter()
            .map(|r| {
                (0..n)
                    .map(|i| from_pg(r, i))
                    .collect::<SqlResult<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    fn execute_batch(&self, sql: &str) -> SqlResult<()> {
        let live = self.live()?;
        let done = self.rt.block_on(live.client.batch_execute(sql)).map_err(pg);
        drop(live);
        match sql {
            "BEGIN" => *self.in_transaction.borrow_mut() = done.is_ok(),
            "COMMIT" | "ROLLBACK" => *self.in_transaction.borrow_mut() = false,
            _ => {}
        }
        done
    }

    fn lock(&self, key: i64) -> SqlResult<()> {
        self.exec("SELECT pg_advisory_xact_lock(?1)", crate::params![key])
            .map(drop)
    }
}
