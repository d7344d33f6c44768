//! The alerting tables in the metadata database, by their own migration:
//! rules, channels, silences, inhibition rules, the alerts' states and
//! history, incidents, notification groups and the delivery outbox.
//!
//! Every step that must survive a crash is one SQLite transaction: an
//! evaluation's transitions with their history and incident assignment;
//! a notification's outbox row with its group's schedule. A delivery is
//! marked done only after the receiver accepted it, so a crash before
//! that resends it (at least once; receivers get a stable
//! `X-Ophion-Delivery` id to drop a repeat).

use ophion_store::metadata::{Metadata, Migrations};
use ophion_store::{
    metadata::{OptionalExtension as _, SqlError, sql::Value as Cell},
    params,
};
use serde::Serialize;
use serde_json::Value;

use super::model::Labels;

use ophion_core::TenantId;

/// The tables, in order. Never edit a released migration.
pub(super) const MIGRATIONS: Migrations = Migrations {
    sqlite: SQLITE,
    postgres: None,
};

const SQLITE: &[&str] = &[
    "CREATE TABLE alert_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        health TEXT NOT NULL DEFAULT 'unknown',
        last_error TEXT,
        last_eval_ns INTEGER,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE alert_channels (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE alert_silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_by TEXT NOT NULL,
        ends_ns INTEGER NOT NULL,
        every_ns INTEGER
    );
    CREATE TABLE alert_inhibitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        spec TEXT NOT NULL
    );
    CREATE TABLE alerts (
        tenant_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        rule_id INTEGER NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        value REAL NOT NULL,
        state TEXT NOT NULL,
        active_ns INTEGER NOT NULL,
        fired_ns INTEGER,
        resolved_ns INTEGER,
        incident_id INTEGER,
        PRIMARY KEY (tenant_id, fingerprint)
    );
    CREATE TABLE alert_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        rule_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        labels TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        value REAL NOT NULL,
        at_ns INTEGER NOT NULL
    );
    CREATE INDEX alert_history_by_tenant ON alert_history (tenant_id, at_ns);
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        opened_ns INTEGER NOT NULL,
        quiet_ns INTEGER,
        resolved_ns INTEGER
    );
    CREATE INDEX incidents_open ON incidents (tenant_id, resolved_ns);
    CREATE TABLE notify_groups (
        tenant_id TEXT NOT NULL,
        channel_id INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        schedule TEXT NOT NULL,
        closed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, channel_id, group_key)
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        channel_id INTEGER NOT NULL,
        group_key TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ns INTEGER NOT NULL,
        last_error TEXT,
        done_ns INTEGER
    );
    CREATE INDEX deliveries_pending ON deliveries (state, next_ns);",
    // Novelty (has this alert fired before?) looks alerts up by fingerprint.
    "CREATE INDEX alert_history_by_fingerprint ON alert_history (tenant_id, fingerprint, at_ns);",
];

/// How far back an alert's earlier firings make it not novel.
const NOVELTY_LOOKBACK_NS: i64 = 7 * 24 * 3600 * 1_000_000_000;

/// Whether the alert `fingerprint` of tenant `t` fired in the week before
/// `at_ns` (its firing at `at_ns` itself excluded): an incident whose root
/// cause never fired before is novel, and ranks higher.
pub(super) fn fired_before(
    c: &dyn ophion_store::metadata::Conn,
    t: &str,
    fingerprint: &str,
    at_ns: i64,
) -> ophion_store::metadata::sql::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM alert_history WHERE tenant_id = ?1 AND fingerprint = ?2
           AND to_state = 'firing' AND at_ns < ?3 AND at_ns >= ?3 - ?4)",
        params![t, fingerprint, at_ns, NOVELTY_LOOKBACK_NS],
        |r| r.get(0),
    )
}

/// The alerting tables.
#[derive(Debug, Clone)]
pub struct AlertStore {
    pub(super) metadata: Metadata,
}

/// A stored object: id, tenant-unique name, JSON spec.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    /// Id.
    pub id: i64,
    /// The tenant.
    #[serde(skip)]
    pub tenant: String,
    /// The spec as stored (secrets included: never serialise it as is).
    #[serde(skip)]
    pub spec: Value,
    /// Extra columns (rule health, silence creator).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// Which table a stored object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `alert_rules`.
    Rule,
    /// `alert_channels`.
    Channel,
    /// `alert_silences`.
    Silence,
    /// `alert_inhibitions`.
    Inhibition,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Rule => "alert_rules",
            Kind::Channel => "alert_channels",
            Kind::Silence => "alert_silences",
            Kind::Inhibition => "alert_inhibitions",
        }
    }

    /// Columns shown beside the spec.
    fn extra(self) -> &'static [&'static str] {
        match self {
            Kind::Rule => &[
                "health",
                "last_error",
                "last_eval_ns",
                "updated_by",
                "updated_at",
            ],
            Kind::Silence => &["created_by"],
            _ => &[],
        }
    }

    fn extra_columns(self) -> String {
        self.extra().iter().map(|c| format!(", {c}")).collect()
    }
}

pub(super) fn now_ns() -> i64 {
    crate::read::now_ns()
}

fn stored(
    kind: Kind,
    r: &ophion_store::metadata::sql::Row,
) -> ophion_store::metadata::sql::Result<Stored> {
    let spec: String = r.get(2)?;
    let mut extra = serde_json::Map::new();
    for (i, n) in kind.extra().iter().enumerate() {
        let v = match r.get(3 + i)? {
            Cell::Integer(x) => Value::from(x),
            Cell::Text(t) => Value::from(t),
            Cell::Real(x) => Value::from(x),
            _ => Value::Null,
        };
        extra.insert((*n).to_owned(), v);
    }
    Ok(Stored {
        id: r.get(0)?,
        tenant: r.get(1)?,
        spec: serde_json::from_str(&spec).unwrap_or(Value::Null),
        extra,
    })
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The name is taken.
    #[error("`{0}` already exists")]
    Exists(String),
    /// No such object.
    #[error("not found")]
    Missing,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] ophion_store::Error),
}

impl AlertStore {
    /// Migrates the tables.
    pub async fn open(metadata: Metadata) -> Result<Self, ophion_store::Error> {
        metadata.migrate("alerts", &MIGRATIONS).await?;
        Ok(Self { metadata })
    }

    /// Every object of `kind` (of `tenant`, or of all tenants).
    pub async fn list(
        &self,
        kind: Kind,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Stored>, ophion_store::Error> {
        let t = tenant.map(|t| t.as_str().to_owned());
        self.metadata
            .call(move |c| {
                let sql = format!(
                    "SELECT id, tenant_id, spec{} FROM {} WHERE tenant_id = ?1 OR ?1 IS NULL ORDER BY id",
                    kind.extra_columns(),
                    kind.table()
                );
                let mut st = c.prepare(&sql)?;
                st.query_map([&t], |r| stored(kind, r))?.collect()
            })
            .await
    }

    /// One of `tenant`'s objects.
    pub async fn get(
        &self,
        kind: Kind,
        tenant: &TenantId,
        id: i64,
    ) -> Result<Option<Stored>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let sql = format!(
                    "SELECT id, tenant_id, spec{} FROM {} WHERE tenant_id = ?1 AND id = ?2",
                    kind.extra_columns(),
                    kind.table()
                );
                c.query_row(&sql, params![t, id], |r| stored(kind, r))
                    .optional()
            })
            .await
    }

    /// Creates (`id` None) or replaces an object; `name` for rules and
    /// channels. Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub async fn put(
        &self,
        kind: Kind,
        tenant: &TenantId,
        id: Option<i64>,
        name: Option<String>,
        spec: Value,
        by: &str,
        window: (i64, Option<i64>),
    ) -> Result<i64, WriteError> {
        let (t, by) = (tenant.as_str().to_owned(), by.to_owned());
        let text = spec.to_string();
        let taken = name.clone().unwrap_or_default();
        self
            .metadata
            .call(move |c| {
                let now = now_ns();
                let n = match (kind, id) {
                    (Kind::Rule, None) => c.query_row(
                        "INSERT INTO alert_rules (tenant_id, name, spec, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                        params![t, name, text, by, now],
                        |r| r.get(0),
                    ).map(Some),
                    (Kind::Rule, Some(id)) => c.execute(
                        "UPDATE alert_rules SET name = ?3, spec = ?4, updated_by = ?5, updated_at = ?6 WHERE tenant_id = ?1 AND id = ?2",
                        params![t, id, name, text, by, now],
                    ).map(|n| (n > 0).then_some(id)),
                    (Kind::Channel, None) => c.query_row(
                        "INSERT INTO alert_channels (tenant_id, name, spec) VALUES (?1, ?2, ?3) RETURNING id",
                        params![t, name, text],
                        |r| r.get(0),
                    ).map(Some),
                    (Kind::Channel, Some(id)) => c.execute(
                        "UPDATE alert_channels SET name = ?3, spec = ?4 WHERE tenant_id = ?1 AND id = ?2",
                        params![t, id, name, text],
                    ).map(|n| (n > 0).then_some(id)),
                    (Kind::Silence, _) => c.query_row(
                        "INSERT INTO alert_silences (tenant_id, spec, created_by, ends_ns, every_ns) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                        params![t, text, by, window.0, window.1],
                        |r| r.get(0),
                    ).map(Some),
                    (Kind::Inhibition, _) => c.query_row(
                        "INSERT INTO alert_inhibitions (tenant_id, spec) VALUES (?1, ?2) RETURNING id",
                        params![t, text],
                        |r| r.get(0),
                    ).map(Some),
                };
                match n {
                    Ok(None) => Ok(Err(WriteError::Missing)),
                    Ok(Some(id)) => Ok(Ok(id)),
                    Err(SqlError::Constraint(_)) => Ok(Err(WriteError::Exists(taken))),
                    Err(e) => Err(e),
                }
            })
            .await?
    }

    /// Deletes one of `tenant`'s objects; a rule takes its alerts with it
    /// (their incidents resolve as they would).
    pub async fn delete(
        &self,
        kind: Kind,
        tenant: &TenantId,
        id: i64,
    ) -> Result<bool, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let tx = c.transaction()?;
                let n = tx.execute(
                    &format!("DELETE FROM {} WHERE tenant_id = ?1 AND id = ?2", kind.table()),
                    params![t, id],
                )?;
                if kind == Kind::Rule {
                    let now = now_ns();
                    tx.execute(
                        "UPDATE alerts SET state = 'resolved', resolved_ns = ?3 WHERE tenant_id = ?1 AND rule_id = ?2 AND state = 'firing'",
                        params![t, id, now],
                    )?;
                    tx.execute(
                        "DELETE FROM alerts WHERE tenant_id = ?1 AND rule_id = ?2 AND state = 'pending'",
                        params![t, id],
                    )?;
                }
                tx.commit()?;
                Ok(n > 0)
            })
            .await
    }

    /// Records a rule's health after an evaluation.
    pub async fn set_health(
        &self,
        rule_id: i64,
        health: &'static str,
        error: Option<String>,
        at: i64,
    ) -> Result<(), ophion_store::Error> {
        self.metadata
            .call(move |c| {
                c.execute(
                    "UPDATE alert_rules SET health = ?2, last_error = ?3, last_eval_ns = ?4 WHERE id = ?1",
                    params![rule_id, health, error, at],
                )
                .map(|_| ())
            })
            .await
    }

    /// `tenant`'s alerts (pending, firing, and resolved but still part of
    /// an open incident).
    pub async fn alerts(&self, tenant: &TenantId) -> Result<Vec<Value>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT a.fingerprint, a.rule_id, a.labels, a.annotations, a.value, a.state, a.active_ns, a.fired_ns, a.resolved_ns, a.incident_id
                     FROM alerts a WHERE a.tenant_id = ?1 ORDER BY a.active_ns",
                )?;
                st.query_map([&t], |r| {
                    let j = |s: String| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null);
                    Ok(serde_json::json!({
                        "fingerprint": r.get::<String>(0)?,
                        "rule_id": r.get::<i64>(1)?,
                        "labels": j(r.get(2)?),
                        "annotations": j(r.get(3)?),
                        "value": r.get::<f64>(4)?,
                        "state": r.get::<String>(5)?,
                        "active_since": crate::read::ts_text(r.get(6)?),
                        "fired_at": r.get::<Option<i64>>(7)?.map(crate::read::ts_text),
                        "resolved_at": r.get::<Option<i64>>(8)?.map(crate::read::ts_text),
                        "incident_id": r.get::<Option<i64>>(9)?,
                    }))
                })?
                .collect()
            })
            .await
    }

    /// Alerts that started firing after history record `after` (all
    /// tenants, oldest first, at most `limit`): `(record id, tenant,
    /// fingerprint, labels, value)`. `after` None: none, only the last id
    /// (what a new reader starts from).
    #[allow(clippy::type_complexity)]
    pub async fn firings_after(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<(i64, String, String, Labels, f64)>, i64), ophion_store::Error> {
        self.metadata
            .call(move |c| {
                let last: i64 = c.query_row(
                    "SELECT coalesce(max(id), 0) FROM alert_history",
                    params![],
                    |r| r.get(0),
                )?;
                let Some(after) = after else {
                    return Ok((Vec::new(), last));
                };
                let mut st = c.prepare(
                    "SELECT id, tenant_id, fingerprint, labels, value FROM alert_history
                     WHERE id > ?1 AND to_state = 'firing' ORDER BY id LIMIT ?2",
                )?;
                let rows: Vec<(i64, String, String, Labels, f64)> = st
                    .query_map(params![after, limit as i64], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            serde_json::from_str(&r.get::<String>(3)?).unwrap_or_default(),
                            r.get(4)?,
                        ))
                    })?
                    .collect::<Result<_, _>>()?;
                let upto = if rows.len() == limit {
                    rows.last().map_or(after, |r| r.0)
                } else {
                    last.max(after)
                };
                Ok((rows, upto))
            })
            .await
    }

    /// How many of `tenant`'s alerts fire now.
    pub async fn firing_count(&self, tenant: &TenantId) -> Result<i64, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                c.query_row(
                    "SELECT count(*) FROM alerts WHERE tenant_id = ?1 AND state = 'firing'",
                    [t],
                    |r| r.get(0),
                )
            })
            .await
    }

    /// `tenant`'s state changes, newest first.
    pub async fn history(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<Value>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT rule_id, fingerprint, labels, from_state, to_state, value, at_ns FROM alert_history
                     WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2",
                )?;
                st.query_map(params![t, limit as i64], |r| {
                    Ok(serde_json::json!({
                        "rule_id": r.get::<i64>(0)?,
                        "fingerprint": r.get::<String>(1)?,
                        "labels": serde_json::from_str::<Value>(&r.get::<String>(2)?).unwrap_or(Value::Null),
                        "from": r.get::<String>(3)?,
                        "to": r.get::<String>(4)?,
                        "value": r.get::<f64>(5)?,
                        "at": crate::read::ts_text(r.get(6)?),
                    }))
                })?
                .collect()
            })
            .await
    }

    /// A channel's deliveries, newest first.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        channel: i64,
        limit: usize,
    ) -> Result<Vec<Value>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT id, group_key, status, state, attempts, last_error, created_ns, done_ns FROM deliveries
                     WHERE tenant_id = ?1 AND channel_id = ?2 ORDER BY id DESC LIMIT ?3",
                )?;
                st.query_map(params![t, channel, limit as i64], |r| {
                    Ok(serde_json::json!({
                        "id": r.get::<i64>(0)?,
                        "group_key": r.get::<String>(1)?,
                        "status": r.get::<String>(2)?,
                        "state": r.get::<String>(3)?,
                        "attempts": r.get::<i64>(4)?,
                        "last_error": r.get::<Option<String>>(5)?,
                        "created_at": crate::read::ts_text(r.get(6)?),
                        "done_at": r.get::<Option<i64>>(7)?.map(crate::read::ts_text),
                    }))
                })?
                .collect()
            })
            .await
    }

    /// Queues a message for one channel now (a test send).
    pub async fn enqueue(
        &self,
        tenant: &TenantId,
        channel: i64,
        group_key: String,
        status: &'static str,
        message: Value,
    ) -> Result<i64, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let now = now_ns();
                c.query_row(
                    "INSERT INTO deliveries (tenant_id, channel_id, group_key, status, message, created_ns, next_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
                    params![t, channel, group_key, status, message.to_string(), now],
                    |r| r.get(0),
                )
            })
            .await
    }
}
