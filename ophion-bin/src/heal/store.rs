//! The healing tables in the metadata database: playbooks (with every
//! version kept), runs, their steps, and the cursor over alert firings.

use ophion_core::TenantId;
use ophion_store::metadata::{Metadata, Migrations};
use ophion_store::{metadata::OptionalExtension as _, params};
use serde_json::{Value, json};

use crate::read::{now_ns, ts_text};

/// The tables, in order. Never edit a released migration.
const MIGRATIONS: Migrations = Migrations {
    sqlite: SQLITE,
    postgres: None,
};

const SQLITE: &[&str] = &[
    "CREATE TABLE playbooks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name)
    );
    CREATE TABLE playbook_versions (
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, name, version)
    );
    CREATE TABLE heal_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        playbook TEXT NOT NULL,
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        trigger TEXT NOT NULL,
        target TEXT NOT NULL,
        mode TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        decided_by TEXT
    );
    CREATE INDEX heal_runs_by_tenant ON heal_runs (tenant_id, id);
    CREATE INDEX heal_runs_by_state ON heal_runs (state);
    CREATE TABLE heal_steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL,
        phase TEXT NOT NULL,
        position INTEGER NOT NULL,
        kind TEXT NOT NULL,
        input TEXT NOT NULL,
        state TEXT NOT NULL,
        started_ns INTEGER NOT NULL,
        ended_ns INTEGER,
        output TEXT NOT NULL DEFAULT '',
        error TEXT
    );
    CREATE INDEX heal_steps_by_run ON heal_steps (run_id, id);
    CREATE TABLE heal_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), history_id INTEGER NOT NULL);",
];

/// Run states that are over.
pub const FINAL: [&str; 7] = [
    "succeeded",
    "failed",
    "rolled_back",
    "rejected",
    "dry_run",
    "refused",
    "interrupted",
];
/// Run states of a run being executed: after a restart these become
/// `interrupted`, never run again blindly.
pub const IN_FLIGHT: [&str; 3] = ["running", "verifying", "rolling_back"];

/// A new run, as the engine decided it.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The playbook's name and version.
    pub playbook: String,
    /// See `playbook`.
    pub version: i64,
    /// The spec as it was when the run began.
    pub spec: Value,
    /// What triggered it: `{source, labels, value, fingerprint?, by?}`.
    pub trigger: Value,
    /// The target label's value.
    pub target: String,
    /// `dry-run`, `approval` or `auto`.
    pub mode: String,
    /// The first state.
    pub state: &'static str,
    /// Why (refusals).
    pub reason: String,
}

/// A stored playbook.
#[derive(Debug, Clone)]
pub struct StoredPlaybook {
    /// Its tenant.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// Its latest version.
    pub version: i64,
    /// The spec as written.
    pub spec: Value,
    /// Who saved the latest version.
    pub updated_by: String,
    /// When, seconds since the epoch.
    pub updated_at: i64,
}

impl StoredPlaybook {
    /// The spec with its version, author and time, as the API shows it.
    pub fn to_json(&self) -> Value {
        let mut v = self.spec.clone();
        v["version"] = json!(self.version);
        v["updated_by"] = json!(self.updated_by);
        v["updated_at"] = json!(self.updated_at);
        v
    }
}

/// The healing tables.
#[derive(Debug, Clone)]
pub struct HealStore {
    metadata: Metadata,
}

fn run_json(r: &ophion_store::metadata::sql::Row) -> ophion_store::metadata::sql::Result<Value> {
    let j = |s: String| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null);
    Ok(json!({
        "id": r.get::<i64>(0)?,
        "playbook": r.get::<String>(1)?,
        "version": r.get::<i64>(2)?,
        "trigger": j(r.get(3)?),
        "target": r.get::<String>(4)?,
        "mode": r.get::<String>(5)?,
        "state": r.get::<String>(6)?,
        "reason": r.get::<String>(7)?,
        "created_at": ts_text(r.get(8)?),
        "updated_at": ts_text(r.get(9)?),
        "decided_by": r.get::<Option<String>>(10)?,
    }))
}

/// A `playbooks` row read as `tenant_id, name, version, spec, updated_by,
/// updated_at`.
fn stored_playbook(
    r: &ophion_store::metadata::sql::Row,
) -> ophion_store::metadata::sql::Result<StoredPlaybook> {
    Ok(StoredPlaybook {
        tenant: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        spec: serde_json::from_str(&r.get::<String>(3)?).unwrap_or(Value::Null),
        updated_by: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

const RUN_COLUMNS: &str = "id, playbook, version, trigger, target, mode, state, reason, created_ns, updated_ns, decided_by";

impl HealStore {
    /// Migrates the tables.
    pub async fn open(metadata: Metadata) -> Result<Self, ophion_store::Error> {
        metadata.migrate("heal", &MIGRATIONS).await?;
        Ok(Self { metadata })
    }

    /// `tenant`'s playbooks by name; all tenants' with `None`.
    pub async fn playbooks(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<StoredPlaybook>, ophion_store::Error> {
        let t = tenant.map(|t| t.as_str().to_owned());
        self.metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT tenant_id, name, version, spec, updated_by, updated_at FROM playbooks
                     WHERE tenant_id = ?1 OR ?1 IS NULL ORDER BY tenant_id, name",
                )?;
                st.query_map([&t], stored_playbook)?.collect()
            })
            .await
    }

    /// One playbook of `tenant`.
    pub async fn playbook(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<StoredPlaybook>, ophion_store::Error> {
        let (t, n) = (tenant.as_str().to_owned(), name.to_owned());
        self.metadata
            .call(move |c| {
                c.query_row(
                    "SELECT tenant_id, name, version, spec, updated_by, updated_at FROM playbooks
                     WHERE tenant_id = ?1 AND name = ?2",
                    params![t, n],
                    stored_playbook,
                )
                .optional()
            })
            .await
    }

    /// Creates or replaces a playbook; every version is kept. Returns the
    /// new version.
    pub async fn put_playbook(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &Value,
        by: &str,
    ) -> Result<i64, ophion_store::Error> {
        let (t, n, s, by) = (
            tenant.as_str().to_owned(),
            name.to_owned(),
            spec.to_string(),
            by.to_owned(),
        );
        let at = now_ns() / 1_000_000_000;
        self.metadata
            .call(move |c| {
                let tx = c.transaction()?;
                let version: i64 = tx.query_row(
                    "SELECT coalesce(max(version), 0) + 1 FROM playbook_versions WHERE tenant_id = ?1 AND name = ?2",
                    params![t, n],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO playbook_versions (tenant_id, name, version, spec, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![t, n, version, s, by, at],
                )?;
                tx.execute(
                    "INSERT INTO playbooks (tenant_id, name, version, spec, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (tenant_id, name) DO UPDATE SET version = excluded.version, spec = excluded.spec,
                       updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    params![t, n, version, s, by, at],
                )?;
                tx.commit()?;
                Ok(version)
            })
            .await
    }

    /// Deletes a playbook (its versions and runs stay); whether it existed.
    pub async fn delete_playbook(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<bool, ophion_store::Error> {
        let (t, n) = (tenant.as_str().to_owned(), name.to_owned());
        self.metadata
            .call(move |c| {
                Ok(c.execute(
                    "DELETE FROM playbooks WHERE tenant_id = ?1 AND name = ?2",
                    params![t, n],
                )? == 1)
            })
            .await
    }

    /// Records a run; its id.
    pub async fn insert_run(
        &self,
        tenant: &TenantId,
        r: NewRun,
    ) -> Result<i64, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        let now = now_ns();
        self.metadata
            .call(move |c| {
                c.query_row(
                    "INSERT INTO heal_runs (tenant_id, playbook, version, spec, trigger, target, mode, state, reason, created_ns, updated_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id",
                    params![t, r.playbook, r.version, r.spec.to_string(), r.trigger.to_string(), r.target, r.mode, r.state, r.reason, now],
                    |r| r.get(0),
                )
            })
            .await
    }

    /// Moves a run from one of `from` to `to`; whether it was in one of
    /// them (so two callers never both move it).
    pub async fn transition(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        reason: Option<String>,
        by: Option<String>,
    ) -> Result<bool, ophion_store::Error> {
        let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        let to = to.to_owned();
        self.metadata
            .call(move |c| {
                let list = from
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok(c.execute(
                    &format!(
                        "UPDATE heal_runs SET state = ?1, updated_ns = ?2, reason = coalesce(?3, reason),
                           decided_by = coalesce(?4, decided_by) WHERE id = ?5 AND state IN ({list})"
                    ),
                    params![to, now_ns(), reason, by, id],
                )? == 1)
            })
            .await
    }

    /// Runs of `tenant`, newest first (all tenants' with `None`), optionally
    /// only those in `state`.
    pub async fn runs(
        &self,
        tenant: Option<&TenantId>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>, ophion_store::Error> {
        let (t, s) = (
            tenant.map(|t| t.as_str().to_owned()),
            state.map(str::to_owned),
        );
        self.metadata
            .call(move |c| {
                let mut st = c.prepare(&format!(
                    "SELECT {RUN_COLUMNS}, tenant_id FROM heal_runs
                     WHERE (tenant_id = ?1 OR ?1 IS NULL) AND (state = ?2 OR ?2 IS NULL)
                     ORDER BY id DESC LIMIT ?3"
                ))?;
                st.query_map(params![t, s, limit as i64], |r| {
                    Ok((r.get::<String>(11)?, run_json(r)?))
                })?
                .collect()
            })
            .await
    }

    /// One run with its steps and the spec it ran.
    pub async fn run(
        &self,
        tenant: &TenantId,
        id: i64,
    ) -> Result<Option<Value>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let Some((mut run, spec)) = c
                    .query_row(
                        &format!("SELECT {RUN_COLUMNS}, spec FROM heal_runs WHERE tenant_id = ?1 AND id = ?2"),
                        params![t, id],
                        |r| Ok((run_json(r)?, r.get::<String>(11)?)),
                    )
                    .optional()?
                else {
                    return Ok(None);
                };
                let mut st = c.prepare(
                    "SELECT phase, position, kind, input, state, started_ns, ended_ns, output, error
                     FROM heal_steps WHERE run_id = ?1 ORDER BY id",
                )?;
                let steps: Vec<Value> = st
                    .query_map([id], |r| {
                        let started: i64 = r.get(5)?;
                        let ended: Option<i64> = r.get(6)?;
                        Ok(json!({
                            "phase": r.get::<String>(0)?,
                            "position": r.get::<i64>(1)?,
                            "kind": r.get::<String>(2)?,
                            "input": serde_json::from_str::<Value>(&r.get::<String>(3)?).unwrap_or(Value::Null),
                            "state": r.get::<String>(4)?,
                            "started_at": ts_text(started),
                            "ended_at": ended.map(ts_text),
                            "duration_ms": ended.map(|e| (e - started) as f64 / 1e6),
                            "output": r.get::<String>(7)?,
                            "error": r.get::<Option<String>>(8)?,
                        }))
                    })?
                    .collect::<Result<_, _>>()?;
                run["steps"] = Value::Array(steps);
                run["spec"] = serde_json::from_str(&spec).unwrap_or(Value::Null);
                Ok(Some(run))
            })
            .await
    }

    /// The spec, trigger and tenant of a run (what the executor needs).
    pub async fn run_input(
        &self,
        id: i64,
    ) -> Result<Option<(String, Value, Value)>, ophion_store::Error> {
        self.metadata
            .call(move |c| {
                c.query_row(
                    "SELECT tenant_id, spec, trigger FROM heal_runs WHERE id = ?1",
                    [id],
                    |r| {
                        let j =
                            |s: String| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null);
                        Ok((r.get(0)?, j(r.get(1)?), j(r.get(2)?)))
                    },
                )
                .optional()
            })
            .await
    }

    /// Starts a step record; its id.
    pub async fn step_started(
        &self,
        run: i64,
        phase: &str,
        position: usize,
        kind: &str,
        input: &Value,
        state: &str,
    ) -> Result<i64, ophion_store::Error> {
        let (p, k, i, s) = (
            phase.to_owned(),
            kind.to_owned(),
            input.to_string(),
            state.to_owned(),
        );
        self.metadata
            .call(move |c| {
                c.query_row(
                    "INSERT INTO heal_steps (run_id, phase, position, kind, input, state, started_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                    params![run, p, position as i64, k, i, s, now_ns()],
                    |r| r.get(0),
                )
            })
            .await
    }

    /// Ends a step record.
    pub async fn step_ended(
        &self,
        step: i64,
        state: &str,
        output: String,
        error: Option<String>,
    ) -> Result<(), ophion_store::Error> {
        let s = state.to_owned();
        self.metadata
            .call(move |c| {
                c.execute(
                    "UPDATE heal_steps SET state = ?1, ended_ns = ?2, output = ?3, error = ?4 WHERE id = ?5",
                    params![s, now_ns(), output, error, step],
                )?;
                Ok(())
            })
            .await
    }

    /// Runs of `playbook` started (not refused) since `since_ns`, and the
    /// distinct targets they touched; and when `target` last started.
    pub async fn recent(
        &self,
        tenant: &TenantId,
        playbook: &str,
        target: &str,
        since_ns: i64,
    ) -> Result<(i64, Vec<String>, Option<i64>), ophion_store::Error> {
        let (t, p, g) = (
            tenant.as_str().to_owned(),
            playbook.to_owned(),
            target.to_owned(),
        );
        self.metadata
            .call(move |c| {
                let counted = "tenant_id = ?1 AND playbook = ?2 AND state NOT IN ('refused', 'rejected', 'dry_run')";
                let n: i64 = c.query_row(
                    &format!("SELECT count(*) FROM heal_runs WHERE {counted} AND created_ns >= ?3"),
                    params![t, p, since_ns],
                    |r| r.get(0),
                )?;
                let mut st = c.prepare(&format!(
                    "SELECT DISTINCT target FROM heal_runs WHERE {counted} AND created_ns >= ?3"
                ))?;
                let targets = st
                    .query_map(params![t, p, since_ns], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let last: Option<i64> = c.query_row(
                    &format!("SELECT max(created_ns) FROM heal_runs WHERE {counted} AND target = ?3"),
                    params![t, p, g],
                    |r| r.get(0),
                )?;
                Ok((n, targets, last))
            })
            .await
    }

    /// Marks every run left in flight by a stopped process `interrupted`;
    /// their ids and tenants.
    pub async fn interrupt_in_flight(&self) -> Result<Vec<(i64, String)>, ophion_store::Error> {
        self.metadata
            .call(move |c| {
                let tx = c.transaction()?;
                let ids: Vec<(i64, String)> = {
                    let mut st = tx.prepare(
                        "SELECT id, tenant_id FROM heal_runs WHERE state IN ('running', 'verifying', 'rolling_back')",
                    )?;
                    st.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?
                };
                tx.execute(
                    "UPDATE heal_runs SET state = 'interrupted', updated_ns = ?1,
                       reason = 'the server stopped during the run; it was not resumed, so no step runs twice'
                     WHERE state IN ('running', 'verifying', 'rolling_back')",
                    [now_ns()],
                )?;
                tx.execute(
                    "UPDATE heal_steps SET state = 'interrupted', ended_ns = ?1 WHERE ended_ns IS NULL",
                    [now_ns()],
                )?;
                tx.commit()?;
                Ok(ids)
            })
            .await
    }

    /// The alert-history cursor: the last firing looked at.
    pub async fn cursor(&self) -> Result<Option<i64>, ophion_store::Error> {
        self.metadata
            .call(|c| {
                c.query_row(
                    "SELECT history_id FROM heal_cursor WHERE id = 1",
                    params![],
                    |r| r.get(0),
                )
                .optional()
            })
            .await
    }

    /// Moves the cursor.
    pub async fn set_cursor(&self, id: i64) -> Result<(), ophion_store::Error> {
        self.metadata
            .call(move |c| {
                c.execute(
                    "INSERT INTO heal_cursor (id, history_id) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET history_id = excluded.history_id",
                    [id],
                )?;
                Ok(())
            })
            .await
    }
}
