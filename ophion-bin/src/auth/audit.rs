//! The audit log: append-only records of who did what, when (UTC), from
//! where, with what outcome. Each tenant's records form a hash chain:
//! a record's hash covers its own fields and the previous record's hash, so
//! editing, deleting or reordering a stored record breaks the chain at
//! that record, which [`verify`] reports. SQLite triggers refuse `UPDATE`
//! and `DELETE` on the table as a first line; the chain catches what gets
//! past them (someone dropping the triggers, editing the file).

use ophion_core::TenantId;
use ophion_store::{
    metadata::{Conn, OptionalExtension as _, sql::lock_key},
    params,
};

use super::AuthError;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// One event to record.
#[derive(Debug, Clone, Default)]
pub struct Event {
    /// The tenant the event belongs to.
    pub tenant: String,
    /// Who: a user name, `key:<id>`, or empty when unknown.
    pub actor: String,
    /// What: `login`, `logout`, `permission_denied`, `user_create`, ...
    pub action: &'static str,
    /// On what: a user, key, rule or route.
    pub target: String,
    /// From where: the client address.
    pub source: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: &'static str,
    /// More, as text.
    pub detail: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Position in the log.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// Unix milliseconds, UTC.
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// From where.
    pub source: String,
    /// Outcome.
    pub outcome: String,
    /// More.
    pub detail: String,
    /// The previous record's hash in this tenant's chain.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// Escapes control characters (`\n`, `\u{1b}`, ...) so a record cannot
/// forge extra lines or terminal escapes when printed.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn hash_of(r: &Record) -> String {
    let fields = serde_json::json!([
        r.id, r.tenant, r.at_ms, r.actor, r.action, r.target, r.source, r.outcome, r.detail
    ]);
    let mut h = Sha256::new();
    h.update(r.prev_hash.as_bytes());
    h.update(b"\n");
    h.update(fields.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Appends `e` at `at_ms`, chained to the tenant's last record.
pub fn append(
    conn: &dyn Conn,
    e: &Event,
    at_ms: i64,
) -> ophion_store::metadata::sql::Result<Record> {
    let tx = conn.transaction()?;
    // Nodes sharing the database append one at a time: each record links
    // to the one before it.
    tx.lock(lock_key("ophion audit log"))?;
    let prev: Option<String> = tx
        .query_row(
            "SELECT hash FROM audit_log WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 1",
            [&e.tenant],
            |r| r.get(0),
        )
        .optional()?;
    let id: i64 = tx.query_row(
        "SELECT coalesce(max(id), 0) + 1 FROM audit_log",
        params![],
        |r| r.get(0),
    )?;
    let mut r = Record {
        id,
        tenant: e.tenant.clone(),
        at_ms,
        actor: escape(&e.actor),
        action: e.action.to_owned(),
        target: escape(&e.target),
        source: escape(&e.source),
        outcome: e.outcome.to_owned(),
        detail: escape(&e.detail),
        prev_hash: prev.unwrap_or_default(),
        hash: String::new(),
    };
    r.hash = hash_of(&r);
    tx.execute(
        "INSERT INTO audit_log (id, tenant_id, at, actor, action, target, source, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            r.id, r.tenant, r.at_ms, r.actor, r.action, r.target, r.source, r.outcome, r.detail,
            r.prev_hash, r.hash
        ],
    )?;
    tx.commit()?;
    Ok(r)
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this action.
    pub action: Option<String>,
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// From this time (unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Before this time (unix ms).
    pub to_ms: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

fn record(r: &ophion_store::metadata::sql::Row) -> ophion_store::metadata::sql::Result<Record> {
    Ok(Record {
        id: r.get(0)?,
        tenant: r.get::<Option<String>>(1)?.unwrap_or_default(),
        at_ms: r.get(2)?,
        actor: r.get::<Option<String>>(3)?.unwrap_or_default(),
        action: r.get(4)?,
        target: r.get::<Option<String>>(5)?.unwrap_or_default(),
        source: r.get::<Option<String>>(6)?.unwrap_or_default(),
        outcome: r.get(7)?,
        detail: r.get::<Option<String>>(8)?.unwrap_or_default(),
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

const COLUMNS: &str =
    "id, tenant_id, at, actor, action, target, source, outcome, detail, prev_hash, hash";

/// A tenant's records matching `f`, newest first.
pub fn list(
    conn: &dyn Conn,
    tenant: &str,
    f: &Filter,
) -> ophion_store::metadata::sql::Result<Vec<Record>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = ?1
           AND (action = ?2 OR ?2 IS NULL) AND (actor = ?3 OR ?3 IS NULL)
           AND (outcome = ?4 OR ?4 IS NULL)
           AND (at >= ?5 OR ?5 IS NULL) AND (at < ?6 OR ?6 IS NULL)
         ORDER BY id DESC LIMIT ?7"
    );
    let mut st = conn.prepare(&sql)?;
    st.query_map(
        params![
            tenant,
            f.action,
            f.actor,
            f.outcome,
            f.from_ms,
            f.to_ms,
            f.limit as i64
        ],
        record,
    )?
    .collect()
}

/// The result of checking a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// The first record whose stored hash or link does not match, if any.
    pub broken_at: Option<i64>,
    /// What is wrong with it.
    pub reason: Option<String>,
}

/// Recomputes a tenant's chain from the first record.
pub fn verify(conn: &dyn Conn, tenant: &str) -> ophion_store::metadata::sql::Result<Verification> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = ?1 ORDER BY id"
    ))?;
    let mut prev = String::new();
    let mut n = 0;
    for r in st.query_map([tenant], record)? {
        let r = r?;
        n += 1;
        let broken = |reason: &str| Verification {
            records: n,
            broken_at: Some(r.id),
            reason: Some(reason.to_owned()),
        };
        if r.prev_hash != prev {
            return Ok(broken(
                "its link to the previous record does not match (a record before it was removed or reordered)",
            ));
        }
        if hash_of(&r) != r.hash {
            return Ok(broken("its contents do not match its hash (edited)"));
        }
        prev = r.hash;
    }
    Ok(Verification {
        records: n,
        broken_at: None,
        reason: None,
    })
}

impl super::Auth {
    /// A tenant's audit records.
    pub async fn audit_records(
        &self,
        tenant: &TenantId,
        filter: Filter,
    ) -> Result<Vec<Record>, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self.meta.call(move |c| list(c, &t, &filter)).await?)
    }

    /// Checks a tenant's audit chain.
    pub async fn audit_verify(&self, tenant: &TenantId) -> Result<Verification, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self.meta.call(move |c| verify(c, &t)).await?)
    }
}
