//! The deliverer: sends the outbox's due deliveries (the oldest pending
//! one of each group, in order), each in its own task, within each
//! channel's rate, and records each outcome (retries with backoff, given
//! up after `MAX_ATTEMPTS`).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{Alerts, MAX_ATTEMPTS, model, notify, now_ns};

impl Alerts {
    /// Starts the deliveries that are due, each in its own task: a slow or
    /// failing receiver holds up nothing else.
    pub(super) fn deliver(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let due = me
                .store
                .metadata
                .call(|c| {
                    // The oldest pending delivery of each group, in order.
                    let mut st = c.prepare(
                        "SELECT d.id, d.tenant_id, d.channel_id, d.message, d.attempts, ch.spec FROM deliveries d
                         JOIN alert_channels ch ON ch.id = d.channel_id
                         WHERE d.state = 'pending' AND d.next_ns <= ?1
                           AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.state = 'pending' AND o.channel_id = d.channel_id AND o.group_key = d.group_key AND o.id < d.id)
                         ORDER BY d.id LIMIT 200",
                    )?;
                    st.query_map([now_ns()], |r| {
                        Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?, r.get::<String>(3)?, r.get::<i64>(4)?, r.get::<String>(5)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .await
                .unwrap_or_default();
            for (id, _tenant, channel, message, attempts, spec) in due {
                let Ok(ch) = serde_json::from_str::<model::ChannelSpec>(&spec) else {
                    continue;
                };
                let Ok(msg) = serde_json::from_str::<Value>(&message) else {
                    continue;
                };
                if !me.in_flight.lock().is_ok_and(|mut f| f.insert(id)) {
                    continue;
                }
                // Per-channel rate limit over the last minute.
                let limit = ch.rate_per_minute.unwrap_or(30).max(1) as usize;
                let allowed = me.sent.lock().is_ok_and(|mut s| {
                    let v = s.entry(channel).or_default();
                    v.retain(|t| t.elapsed() < Duration::from_secs(60));
                    if v.len() < limit {
                        v.push(Instant::now());
                        true
                    } else {
                        false
                    }
                });
                if !allowed {
                    if let Ok(mut f) = me.in_flight.lock() {
                        f.remove(&id);
                    }
                    continue;
                }
                let me = Arc::clone(&me);
                tokio::spawn(async move {
                    let ext = me.config.external_url.clone();
                    let r = notify::send(&me.http, &ch, &msg, id, &ext).await;
                    let now = now_ns();
                    let recorded = me
                        .store
                        .metadata
                        .call(move |c| {
                            match r {
                                Ok(()) => c.execute(
                                    "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, done_ns = ?2, last_error = NULL WHERE id = ?1",
                                    ophion_store::params![id, now],
                                ),
                                Err(e) => {
                                    let n = attempts + 1;
                                    let backoff = (1i64 << n.min(8)).min(300) * 1_000_000_000;
                                    let state = if n >= MAX_ATTEMPTS { "failed" } else { "pending" };
                                    c.execute(
                                        "UPDATE deliveries SET state = ?2, attempts = ?3, next_ns = ?4, last_error = ?5, done_ns = CASE WHEN ?2 = 'failed' THEN CAST(?6 AS BIGINT) END WHERE id = ?1",
                                        ophion_store::params![id, state, n, now + backoff, e, now],
                                    )
                                }
                            }
                        })
                        .await;
                    if let Err(e) = recorded {
                        tracing::error!(delivery = id, error = %e, "alerts: cannot record a delivery's outcome");
                    }
                    if let Ok(mut f) = me.in_flight.lock() {
                        f.remove(&id);
                    }
                });
            }
        });
    }
}
