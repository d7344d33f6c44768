//! Auto-Healing: playbooks that answer alerts by acting, verifying the fix
//! and rolling back when it did not work, safely.
//!
//! ```text
//!  alert_history (firing) ──cursor──► trigger ──guards──► heal_runs
//!                      by hand (API) ─┘    │ dry-run: steps recorded as would_run
//!                                          │ approval: awaiting_approval ──approve──┐
//!                                          │ auto: queued ◄─────────────────────────┘
//!                                          ▼
//!              execute: steps ─► verify (query holds for `hold`) ─► succeeded
//!                          └─ a step or the verification fails ─► rollback ─► escalate
//! ```
//!
//! - [`model`]: playbooks and actions as users write them, checked against
//!   the server's allowlist (`[heal] commands`, `[heal] kubectl`).
//! - [`action`]: templates rendered into exactly what runs (a value from an
//!   alert that could change what runs is refused), and running it.
//! - [`store`]: playbooks with every version, runs and their steps.
//! - [`insights`]: the watch's insights as triggers, matched like alerts.
//!
//! Safety: dry-run is the default mode; programs run without a shell from
//! an allowlist; a run is refused (recorded and audited) past its cooldown,
//! its hourly limit, its blast radius (distinct targets an hour, alerts
//! firing in the tenant) or when a template would inject text. Every run,
//! step, decision and refusal is in the audit log. A run in flight when the
//! server stops is marked `interrupted` at the next start, never resumed.

pub mod action;
#[cfg(test)]
mod action_tests;
mod execute;
pub mod insights;
pub mod model;
pub mod store;
mod verify;

use std::{collections::HashMap, sync::Arc, time::Duration};

use ophion_core::TenantId;
use serde_json::json;

use crate::{
    alerts::{Alerts, model::Labels},
    auth::{Auth, audit},
    config::HealConfig,
    read::{Reader, now_ns},
};
use action::{Context, Executor, prepare};
use model::{Mode, PlaybookSpec};
use store::{HealStore, NewRun, StoredPlaybook};

/// What started a run.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `alert`, `insight` or `manual`.
    pub source: &'static str,
    /// The alert's labels (or those given by hand).
    pub labels: Labels,
    /// The alert's value.
    pub value: f64,
    /// The alert's fingerprint.
    pub fingerprint: Option<String>,
    /// Who started it by hand.
    pub by: Option<String>,
    /// Only show what would run, whatever the playbook's mode.
    pub dry_run: bool,
}

/// The healing service.
#[derive(Debug)]
pub struct Heal {
    store: HealStore,
    alerts: Arc<Alerts>,
    reader: Reader,
    auth: Arc<Auth>,
    config: HealConfig,
    data_dir: String,
    external: String,
    http: reqwest::Client,
    wake: tokio::sync::Notify,
    insight_source: insights::SourceCell,
    seen: insights::Seen,
}

/// Why a request about a run was not done.
#[derive(Debug, thiserror::Error)]
pub enum HealError {
    /// Bad input, with the reason.
    #[error("{0}")]
    Invalid(String),
    /// No such playbook or run.
    #[error("{0}")]
    NotFound(String),
    /// The run is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// The metadata database failed.
    #[error(transparent)]
    Store(#[from] ophion_store::Error),
}

impl Heal {
    /// The service; migrates its tables.
    pub async fn open(
        metadata: ophion_store::metadata::Metadata,
        alerts: Arc<Alerts>,
        reader: Reader,
        auth: Arc<Auth>,
        config: HealConfig,
        data_dir: String,
    ) -> Result<Arc<Self>, ophion_store::Error> {
        let http = alerts.http().clone();
        let external = alerts
            .config()
            .external_url
            .trim_end_matches('/')
            .to_owned();
        Ok(Arc::new(Self {
            store: HealStore::open(metadata).await?,
            alerts,
            reader,
            auth,
            config,
            data_dir,
            external,
            http,
            wake: tokio::sync::Notify::new(),
            insight_source: insights::SourceCell::default(),
            seen: insights::Seen::default(),
        }))
    }

    /// The tables.
    pub fn store(&self) -> &HealStore {
        &self.store
    }

    /// The configuration it runs.
    pub fn config(&self) -> &HealConfig {
        &self.config
    }

    /// Checks a playbook: its shape, the allowlist, and that its
    /// verification is one read-only query.
    pub fn check(&self, spec: &PlaybookSpec) -> Result<(), String> {
        spec.validate(&self.config)?;
        if let Some(v) = &spec.verify {
            crate::copilot::guard::check(&v.sql, 10).map_err(|e| format!("verify.sql: {e}"))?;
        }
        Ok(())
    }

    /// Records an audit event of `tenant`.
    pub(crate) async fn audit(
        &self,
        tenant: &TenantId,
        actor: &str,
        action: &'static str,
        target: String,
        outcome: &'static str,
        detail: String,
    ) {
        self.auth
            .audit(audit::Event {
                tenant: tenant.as_str().to_owned(),
                actor: actor.to_owned(),
                action,
                target,
                source: "heal".into(),
                outcome,
                detail,
            })
            .await;
    }

    /// Starts a run of `name` for `trigger`: applies the guards and the
    /// mode, records the run (refusals too) and audits it. The run's id.
    pub async fn trigger(
        &self,
        tenant: &TenantId,
        name: &str,
        trigger: Trigger,
    ) -> Result<i64, HealError> {
        let StoredPlaybook {
            version, spec: raw, ..
        } = self
            .store
            .playbook(tenant, name)
            .await?
            .ok_or_else(|| HealError::NotFound(format!("no playbook `{name}`")))?;
        let spec: PlaybookSpec = serde_json::from_value(raw.clone())
            .map_err(|e| HealError::Invalid(format!("playbook `{name}` no longer reads: {e}")))?;
        let target = trigger
            .labels
            .get(spec.target_label())
            .cloned()
            .unwrap_or_default();
        let mode = if trigger.dry_run {
            Mode::DryRun
        } else {
            spec.mode
        };
        let refusal = self.guard(tenant, &spec, &target, &trigger).await.err();
        let state = match (&refusal, mode) {
            (Some(_), _) => "refused",
            (None, Mode::DryRun) => "dry_run",
            (None, Mode::Approval) => "awaiting_approval",
            (None, Mode::Auto) => "queued",
        };
        let mode_text = serde_json::to_value(mode).unwrap_or_default();
        let id = self
            .store
            .insert_run(
                tenant,
                NewRun {
                    playbook: name.to_owned(),
                    version,
                    spec: raw,
                    trigger: json!({
                        "source": trigger.source, "labels": trigger.labels, "value": trigger.value,
                        "fingerprint": trigger.fingerprint, "by": trigger.by,
                    }),
                    target: target.clone(),
                    mode: mode_text.as_str().unwrap_or("dry-run").to_owned(),
                    state,
                    reason: refusal.clone().unwrap_or_default(),
                },
            )
            .await?;
        let actor = trigger.by.clone().unwrap_or_else(|| "heal".into());
        self.audit(
            tenant,
            &actor,
            "heal_run",
            format!("playbook {name} run {id}"),
            if refusal.is_none() { "ok" } else { "denied" },
            match &refusal {
                Some(r) => format!("refused: {r}"),
                None => format!(
                    "{state} for {} `{target}` ({})",
                    spec.target_label(),
                    trigger.source
                ),
            },
        )
        .await;
        let ctx = self.context(id, &trigger.labels, trigger.value);
        match state {
            "dry_run" => self.record_dry_run(id, &spec, &ctx).await?,
            "awaiting_approval" => {
                let ex = self.executor(tenant, &ctx);
                let text = format!(
                    "Playbook {name} wants to run on {target} (run {id}): approve with `ophion heal approve {id}` or POST {}/api/v1/heal/runs/{id}/approve",
                    self.external
                );
                let failed = ex.notify(&spec.notify, "HealApproval", &text).await;
                self.record_notice(id, "approval", &spec.notify, &text, &failed)
                    .await?;
            }
            "queued" => self.wake.notify_one(),
            _ => {}
        }
        Ok(id)
    }

    /// The guards, in order: every template renders safely, the cooldown,
    /// the hourly limit, the blast radius.
    async fn guard(
        &self,
        tenant: &TenantId,
        spec: &PlaybookSpec,
        target: &str,
        trigger: &Trigger,
    ) -> Result<(), String> {
        let ctx = self.context(0, &trigger.labels, trigger.value);
        for (phase, list) in [("step", &spec.steps), ("rollback step", &spec.rollback)] {
            for (i, a) in list.iter().enumerate() {
                prepare(a, &ctx, &self.config, &self.data_dir)
                    .map_err(|e| format!("{phase} {} ({}): {e}", i + 1, a.kind()))?;
            }
        }
        if trigger.dry_run || spec.mode == Mode::DryRun {
            return Ok(());
        }
        let hour = 3_600_000_000_000i64;
        let now = now_ns();
        let (n, targets, last) = self
            .store
            .recent(tenant, &spec.name, target, now - hour)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(last) = last {
            let cool = spec.cooldown_secs() as i64 * 1_000_000_000;
            if now - last < cool {
                return Err(format!(
                    "cooldown: the last run on `{target}` was {} s ago (cooldown {} s)",
                    (now - last) / 1_000_000_000,
                    spec.cooldown_secs()
                ));
            }
        }
        let max_runs = spec.max_runs_per_hour.unwrap_or(3);
        if n >= i64::from(max_runs) {
            return Err(format!(
                "hourly limit: {n} runs in the last hour (at most {max_runs})"
            ));
        }
        let max_targets = spec.blast_radius.max_targets.unwrap_or(3) as usize;
        let touched = targets.len() + usize::from(!targets.iter().any(|t| t == target));
        if touched > max_targets {
            return Err(format!(
                "blast radius: this would be target {touched} of the last hour ({}), at most {max_targets}",
                targets.join(", ")
            ));
        }
        let max_firing = spec.blast_radius.max_firing.unwrap_or(10);
        let firing = self
            .alerts
            .store()
            .firing_count(tenant)
            .await
            .map_err(|e| e.to_string())?;
        if firing > i64::from(max_firing) {
            return Err(format!(
                "blast radius: {firing} alerts fire in this tenant (more than {max_firing}): a person decides"
            ));
        }
        Ok(())
    }

    fn context(&self, run: i64, labels: &Labels, value: f64) -> Context {
        Context {
            labels: labels.clone(),
            value,
            run,
            external: self.external.clone(),
        }
    }

    fn executor<'a>(&'a self, tenant: &'a TenantId, ctx: &'a Context) -> Executor<'a> {
        Executor {
            alerts: &self.alerts,
            tenant,
            ctx,
            cfg: &self.config,
            http: &self.http,
        }
    }

    /// A dry run: every step, the verification and the rollback recorded
    /// as they would run; nothing runs.
    async fn record_dry_run(
        &self,
        id: i64,
        spec: &PlaybookSpec,
        ctx: &Context,
    ) -> Result<(), HealError> {
        for (phase, list) in [("step", &spec.steps), ("rollback", &spec.rollback)] {
            for (i, a) in list.iter().enumerate() {
                let p =
                    prepare(a, ctx, &self.config, &self.data_dir).map_err(HealError::Invalid)?;
                let s = self
                    .store
                    .step_started(id, phase, i + 1, a.kind(), &p.input(), "would_run")
                    .await?;
                self.store
                    .step_ended(s, "would_run", String::new(), None)
                    .await?;
            }
        }
        if let Some(v) = &spec.verify {
            let s = self
                .store
                .step_started(id, "verify", 1, "query", &json!(v), "would_run")
                .await?;
            self.store
                .step_ended(s, "would_run", String::new(), None)
                .await?;
        }
        Ok(())
    }

    /// Records a notice sent to channels as a step of `phase`.
    async fn record_notice(
        &self,
        id: i64,
        phase: &str,
        channels: &[String],
        text: &str,
        failed: &[String],
    ) -> Result<(), HealError> {
        if channels.is_empty() {
            return Ok(());
        }
        let s = self
            .store
            .step_started(
                id,
                phase,
                1,
                "notify",
                &json!({"channels": channels, "message": text}),
                "running",
            )
            .await?;
        let (state, err) = if failed.is_empty() {
            ("succeeded", None)
        } else {
            ("failed", Some(failed.join("; ")))
        };
        self.store
            .step_ended(s, state, format!("sent to {}", channels.join(", ")), err)
            .await?;
        Ok(())
    }

    /// Approves (`approve`) or rejects a run awaiting approval.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        id: i64,
        by: &str,
        approve: bool,
    ) -> Result<(), HealError> {
        let run = self
            .store
            .run(tenant, id)
            .await?
            .ok_or_else(|| HealError::NotFound(format!("no run {id}")))?;
        let to = if approve { "queued" } else { "rejected" };
        let reason = (!approve).then(|| format!("rejected by {by}"));
        if !self
            .store
            .transition(id, &["awaiting_approval"], to, reason, Some(by.to_owned()))
            .await?
        {
            return Err(HealError::Conflict(format!(
                "run {id} is {}, not awaiting approval",
                run["state"].as_str().unwrap_or("?")
            )));
        }
        self.audit(
            tenant,
            by,
            if approve {
                "heal_approve"
            } else {
                "heal_reject"
            },
            format!(
                "playbook {} run {id}",
                run["playbook"].as_str().unwrap_or("")
            ),
            "ok",
            String::new(),
        )
        .await;
        if approve {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Runs the service until `stop`: runs left in flight by a stopped
    /// process are marked interrupted; then each tick new alert firings
    /// trigger the playbooks they match, and queued runs are executed.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        match self.store.interrupt_in_flight().await {
            Ok(ids) => {
                for (id, tenant) in ids {
                    let t = TenantId::new(&tenant).unwrap_or_default();
                    self.audit(
                        &t,
                        "heal",
                        "heal_interrupted",
                        format!("run {id}"),
                        "failed",
                        "the server stopped during the run; it was not resumed".into(),
                    )
                    .await;
                }
            }
            Err(e) => tracing::error!(error = %e, "healing: could not mark interrupted runs"),
        }
        let tick = Duration::from_millis(self.config.tick_ms.max(50));
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(tick) => {}
                _ = self.wake.notified() => {}
            }
            if let Err(e) = self.poll_firings().await {
                tracing::warn!(error = %e, "healing: reading alert firings failed");
            }
            if let Err(e) = self.poll_insights().await {
                tracing::warn!(error = %e, "healing: reading insights failed");
            }
            match self.store.runs(None, Some("queued"), 50).await {
                Ok(runs) => {
                    for (_, r) in runs {
                        if let Some(id) = r["id"].as_i64() {
                            tokio::spawn(Arc::clone(&self).execute(id));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "healing: listing queued runs failed"),
            }
        }
    }

    /// New firings since the cursor trigger the playbooks they match.
    async fn poll_firings(&self) -> Result<(), HealError> {
        let cursor = self.store.cursor().await?;
        let (firings, upto) = self.alerts.store().firings_after(cursor, 200).await?;
        // Every tenant's playbooks, read and parsed once per tick (and
        // only when something fired).
        let mut playbooks: HashMap<String, Vec<(String, PlaybookSpec)>> = HashMap::new();
        let stored = if firings.is_empty() {
            Vec::new()
        } else {
            self.store.playbooks(None).await?
        };
        for p in stored {
            match serde_json::from_value::<PlaybookSpec>(p.spec) {
                Ok(spec) => playbooks.entry(p.tenant).or_default().push((p.name, spec)),
                Err(_) => {
                    tracing::warn!(playbook = %p.name, "healing: a stored playbook no longer reads")
                }
            }
        }
        for (_, tenant, fingerprint, labels, value) in firings {
            let t = TenantId::new(&tenant).unwrap_or_default();
            let matching = playbooks.get(&tenant).into_iter().flatten();
            for (name, _) in matching.filter(|(_, spec)| spec.matches(&labels)) {
                let trigger = Trigger {
                    source: "alert",
                    labels: labels.clone(),
                    value,
                    fingerprint: Some(fingerprint.clone()),
                    by: None,
                    dry_run: false,
                };
                if let Err(e) = self.trigger(&t, name, trigger).await {
                    tracing::warn!(playbook = %name, error = %e, "healing: trigger failed");
                }
            }
        }
        if Some(upto) != cursor {
            self.store.set_cursor(upto).await?;
        }
        Ok(())
    }

    /// The reader (verification queries).
    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }
}
