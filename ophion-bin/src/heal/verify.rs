//! The verification: a playbook's query, run every `every` with `$from`,
//! `$to` (the last `window`) and `$target` (the run's target) bound, must
//! meet its condition at every check for `hold`, the hold complete within
//! `within` of the last step. Each check is recorded in the run.

use std::time::{Duration, Instant};

use ophion_core::{TenantId, query::Param};

use super::{Heal, HealError, model::Verify};
use crate::{
    alerts::{model::secs, value_column},
    read::{Params, json, now_ns, ts},
};

fn dur(t: &Option<String>, default: u64) -> u64 {
    t.as_deref()
        .and_then(|t| secs(t, "verify").ok())
        .unwrap_or(default)
}

/// Whether the verification held; records it as a `verify` step.
pub(super) async fn verify(
    heal: &Heal,
    tenant: &TenantId,
    run: i64,
    v: &Verify,
    target: &str,
) -> Result<bool, HealError> {
    let (hold, within, every, window) = (
        Duration::from_secs(dur(&v.hold, 60)),
        Duration::from_secs(dur(&v.within, 300)),
        Duration::from_secs(dur(&v.every, 10).max(1)),
        dur(&v.window, 60) as i64 * 1_000_000_000,
    );
    let step = heal
        .store()
        .step_started(run, "verify", 1, "query", &serde_json::json!(v), "running")
        .await?;
    let start = Instant::now();
    let mut held_since: Option<Instant> = None;
    let mut log = Vec::new();
    let ok = loop {
        let now = now_ns();
        let mut p = Params::default();
        p.bind("from", ts(now - window))
            .bind("to", ts(now))
            .bind("target", Param::Text(target.to_owned()));
        let value = match heal.reader().sql(tenant, &v.sql, &p).await {
            Ok(out) => match value_column(&out.schema) {
                Some(c) => json::rows(&out.batches)
                    .first()
                    .and_then(|r| r.get(c)?.as_f64())
                    .ok_or_else(|| "no row".to_owned()),
                None => Err("no numeric value column".to_owned()),
            },
            Err(e) => Err(e.to_string()),
        };
        let t = start.elapsed().as_secs_f64();
        let holds = matches!(value, Ok(x) if v.condition.holds(x));
        log.push(match &value {
            Ok(x) => format!(
                "{t:.1}s: {x} {} {}: {}",
                v.condition.op,
                v.condition.threshold,
                if holds { "holds" } else { "does not hold" }
            ),
            Err(e) => format!("{t:.1}s: {e}"),
        });
        held_since = if holds {
            held_since.or(Some(Instant::now()))
        } else {
            None
        };
        if held_since.is_some_and(|h| h.elapsed() >= hold) {
            break true;
        }
        // The hold must be complete by `within`: give up when it cannot be.
        let left = within.saturating_sub(start.elapsed());
        if left.is_zero() || (!holds && left < hold) {
            break false;
        }
        tokio::time::sleep(every).await;
    };
    heal.store()
        .step_ended(
            step,
            if ok { "succeeded" } else { "failed" },
            log.join("\n"),
            (!ok).then(|| {
                format!(
                    "did not hold for {} s within {} s",
                    hold.as_secs(),
                    within.as_secs()
                )
            }),
        )
        .await?;
    Ok(ok)
}
