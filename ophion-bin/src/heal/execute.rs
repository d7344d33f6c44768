//! Executing a claimed run: its steps in order, the verification, and on
//! failure the rollback steps and the escalation; every step recorded and
//! audited.

use std::sync::Arc;

use ophion_core::TenantId;
use serde_json::json;

use super::{
    Heal, HealError,
    action::{self, Context, Prepared, prepare},
    model::{Action, PlaybookSpec},
    store, verify,
};
use crate::alerts::model::Labels;

impl Heal {
    /// Executes a queued run: its steps, the verification, and on failure
    /// the rollback and the escalation.
    pub(super) async fn execute(self: Arc<Self>, id: i64) {
        match self
            .store
            .transition(id, &["queued"], "running", None, None)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(run = id, error = %e, "healing: could not start a run");
                return;
            }
        }
        if let Err(e) = self.execute_claimed(id).await {
            tracing::error!(run = id, error = %e, "healing: a run failed to record");
            let _ = self
                .store
                .transition(id, &store::IN_FLIGHT, "failed", Some(e.to_string()), None)
                .await;
        }
    }

    async fn execute_claimed(&self, id: i64) -> Result<(), HealError> {
        let (tenant, raw, trigger) = self
            .store
            .run_input(id)
            .await?
            .ok_or_else(|| HealError::NotFound(format!("no run {id}")))?;
        let tenant = TenantId::new(&tenant).unwrap_or_default();
        let spec: PlaybookSpec =
            serde_json::from_value(raw).map_err(|e| HealError::Invalid(e.to_string()))?;
        let labels: Labels = serde_json::from_value(trigger["labels"].clone()).unwrap_or_default();
        let ctx = self.context(id, &labels, trigger["value"].as_f64().unwrap_or(0.0));
        let label = format!("playbook {} run {id}", spec.name);
        let mut failure = self.steps(&tenant, id, "step", &spec.steps, &ctx).await?;
        if failure.is_none()
            && let Some(v) = &spec.verify
        {
            self.store
                .transition(id, &["running"], "verifying", None, None)
                .await?;
            let target = ctx
                .labels
                .get(spec.target_label())
                .cloned()
                .unwrap_or_default();
            let ok = verify::verify(self, &tenant, id, v, &target).await?;
            self.audit(
                &tenant,
                "heal",
                "heal_verify",
                label.clone(),
                if ok { "ok" } else { "failed" },
                if ok {
                    "the verification held".into()
                } else {
                    "the verification did not hold in time".into()
                },
            )
            .await;
            if !ok {
                failure = Some("the verification did not hold in time".into());
            }
        }
        let Some(why) = failure else {
            self.store
                .transition(id, &store::IN_FLIGHT, "succeeded", None, None)
                .await?;
            return Ok(());
        };
        self.store
            .transition(
                id,
                &store::IN_FLIGHT,
                "rolling_back",
                Some(why.clone()),
                None,
            )
            .await?;
        let rollback_failed = if spec.rollback.is_empty() {
            None
        } else {
            self.steps(&tenant, id, "rollback", &spec.rollback, &ctx)
                .await?
        };
        self.audit(
            &tenant,
            "heal",
            "heal_rollback",
            label.clone(),
            if rollback_failed.is_none() {
                "ok"
            } else {
                "failed"
            },
            match &rollback_failed {
                Some(e) => format!("{why}; the rollback failed: {e}"),
                None => format!("{why}; {} rollback step(s) ran", spec.rollback.len()),
            },
        )
        .await;
        let ex = self.executor(&tenant, &ctx);
        let text = format!(
            "Playbook {} did not fix {} (run {id}): {why}. {}",
            spec.name,
            ctx.labels
                .get(spec.target_label())
                .map_or("its target", String::as_str),
            match (&rollback_failed, spec.rollback.is_empty()) {
                (_, true) => "There is no rollback: a person must act.".to_owned(),
                (None, false) => "It was rolled back; a person must act.".to_owned(),
                (Some(e), false) =>
                    format!("The rollback failed too ({e}): a person must act now."),
            }
        );
        let failed = ex.notify(&spec.notify, "HealEscalation", &text).await;
        self.record_notice(id, "escalate", &spec.notify, &text, &failed)
            .await?;
        let end = if rollback_failed.is_none() && !spec.rollback.is_empty() {
            "rolled_back"
        } else {
            "failed"
        };
        self.store
            .transition(id, &["rolling_back"], end, None, None)
            .await?;
        Ok(())
    }

    /// Runs `list` in order, recording each; the first failure.
    async fn steps(
        &self,
        tenant: &TenantId,
        id: i64,
        phase: &str,
        list: &[Action],
        ctx: &Context,
    ) -> Result<Option<String>, HealError> {
        let ex = self.executor(tenant, ctx);
        for (i, a) in list.iter().enumerate() {
            let prepared: Result<Prepared, String> = prepare(a, ctx, &self.config, &self.data_dir);
            let input = prepared
                .as_ref()
                .map_or_else(|e| json!({"refused": e}), Prepared::input);
            let s = self
                .store
                .step_started(id, phase, i + 1, a.kind(), &input, "running")
                .await?;
            let outcome = match prepared {
                Ok(p) => p.execute(&ex).await,
                Err(e) => action::Outcome {
                    ok: false,
                    output: String::new(),
                    error: Some(e),
                },
            };
            let state = if outcome.ok { "succeeded" } else { "failed" };
            self.store
                .step_ended(s, state, outcome.output.clone(), outcome.error.clone())
                .await?;
            self.audit(
                tenant,
                "heal",
                "heal_step",
                format!("playbook run {id} {phase} {}", i + 1),
                if outcome.ok { "ok" } else { "failed" },
                format!(
                    "{}: {}{}",
                    a.kind(),
                    input,
                    outcome
                        .error
                        .as_ref()
                        .map(|e| format!(" -> {e}"))
                        .unwrap_or_default()
                ),
            )
            .await;
            if !outcome.ok {
                return Ok(Some(format!(
                    "{phase} {} ({}) failed: {}",
                    i + 1,
                    a.kind(),
                    outcome.error.unwrap_or_default()
                )));
            }
        }
        Ok(None)
    }
}
