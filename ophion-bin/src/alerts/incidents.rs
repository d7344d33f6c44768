//! `GET /api/v1/incidents`: incidents with their members ranked, and the
//! impact of an incident read from traces: requests and errors of the
//! affected services and their endpoints, and the distinct users behind
//! them where spans carry a user attribute.

use ophion_core::{QueryError, TenantId, query::Param};
use serde_json::{Value, json};

use super::{Alerts, model::Labels};
use crate::read::{ENTRY_SPANS, Params, json as rows, ts};

/// Span attributes that name the end user, in the order tried (the
/// OpenTelemetry semantic conventions' `enduser.id`, then `user.id` and
/// the common `user_id`).
const USER_ATTRIBUTES: [&str; 3] = ["enduser.id", "user.id", "user_id"];

/// How far before an incident opened its impact is read (the rules'
/// usual range).
const LOOKBACK_NS: i64 = 5 * 60 * 1_000_000_000;

impl Alerts {
    /// `tenant`'s incidents, newest first (at most 200): members ranked
    /// with the probable root cause first, priority, services.
    pub async fn incidents(&self, tenant: &TenantId) -> Result<Vec<Value>, ophion_store::Error> {
        let graph = self.graph(tenant).await;
        let t = tenant.as_str().to_owned();
        let rows = self
            .store
            .metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT i.id, i.opened_ns, i.resolved_ns, a.fingerprint, a.labels, a.state, a.fired_ns FROM
                     (SELECT * FROM incidents WHERE tenant_id = ?1 ORDER BY id DESC LIMIT 200) i
                     LEFT JOIN alerts a ON a.tenant_id = ?1 AND a.incident_id = i.id ORDER BY i.id DESC",
                )?;
                st.query_map([&t], |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<i64>(1)?,
                        r.get::<Option<i64>>(2)?,
                        r.get::<Option<String>>(3)?,
                        r.get::<Option<String>>(4)?,
                        r.get::<Option<String>>(5)?,
                        r.get::<Option<i64>>(6)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        type Members = Vec<(ophion_ai::incidents::Alert, String)>;
        let mut out: Vec<(i64, i64, Option<i64>, Members)> = Vec::new();
        for (id, opened, resolved, fp, labels, state, fired) in rows {
            if out.last().is_none_or(|l| l.0 != id) {
                out.push((id, opened, resolved, Vec::new()));
            }
            if let (Some(fp), Some(labels), Some(last)) = (fp, labels, out.last_mut()) {
                let labels: Labels = serde_json::from_str(&labels).unwrap_or_default();
                last.3.push((
                    ophion_ai::incidents::Alert {
                        key: fp,
                        service: ophion_ai::incidents::service_of(&labels),
                        severity: ophion_ai::incidents::Severity::parse(
                            labels.get("severity").map_or("", String::as_str),
                        ),
                        labels,
                        starts_ns: fired.unwrap_or(opened),
                    },
                    state.unwrap_or_default(),
                ));
            }
        }
        // Each incident's root cause, and whether it fired before.
        let ranked: Vec<Vec<usize>> = out
            .iter()
            .map(|(_, _, _, members)| {
                let alerts: Vec<_> = members.iter().map(|m| m.0.clone()).collect();
                ophion_ai::incidents::rank(&graph, &alerts, &[])
            })
            .collect();
        let roots: Vec<Option<(String, i64)>> = out
            .iter()
            .zip(&ranked)
            .map(|(i, order)| {
                order
                    .first()
                    .map(|&r| (i.3[r].0.key.clone(), i.3[r].0.starts_ns))
            })
            .collect();
        let t = tenant.as_str().to_owned();
        let novel: Vec<bool> = self
            .store
            .metadata
            .call(move |c| {
                roots
                    .iter()
                    .map(|r| match r {
                        Some((fp, at)) => super::store::fired_before(c, &t, fp, *at).map(|b| !b),
                        None => Ok(true),
                    })
                    .collect()
            })
            .await?;
        Ok(out
            .into_iter()
            .zip(ranked)
            .zip(novel)
            .map(|(((id, opened, resolved, members), order), novel)| {
                let alerts: Vec<_> = members.iter().map(|m| m.0.clone()).collect();
                let p = ophion_ai::incidents::priority(&alerts, graph.len(), novel);
                let services: std::collections::BTreeSet<&str> = alerts.iter().filter_map(|a| a.service.as_deref()).collect();
                serde_json::json!({
                    "id": id,
                    "status": if resolved.is_some() { "resolved" } else { "open" },
                    "opened_at": crate::read::ts_text(opened),
                    "resolved_at": resolved.map(crate::read::ts_text),
                    "opened_ns": opened,
                    "resolved_ns": resolved,
                    "priority": p,
                    "root_cause": order.first().map(|&i| &alerts[i].key),
                    "services": services,
                    "alerts": order.iter().map(|&i| serde_json::json!({
                        "fingerprint": alerts[i].key, "labels": alerts[i].labels, "state": members[i].1,
                        "started_at": crate::read::ts_text(alerts[i].starts_ns),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect())
    }
}

impl Alerts {
    /// What `services` served between `from` and `to` (ns): requests and
    /// errors in total and per endpoint (the ten with the most errors),
    /// and distinct users (all, and those who met an error) where entry
    /// spans carry one of the `USER_ATTRIBUTES`.
    pub async fn impact(
        &self,
        tenant: &TenantId,
        services: &[String],
        from: i64,
        to: i64,
    ) -> Result<Value, QueryError> {
        if services.is_empty() {
            return Ok(
                json!({"services": [], "requests": 0, "errors": 0, "endpoints": [], "users": null, "users_with_errors": null}),
            );
        }
        let mut p = Params::default();
        p.bind("from", ts(from)).bind("to", ts(to));
        let mut names = Vec::new();
        for (i, s) in services.iter().enumerate() {
            p.bind(&format!("s{i}"), Param::Text(s.clone()));
            names.push(format!("$s{i}"));
        }
        let within = names.join(", ");
        let per_endpoint = format!(
            "SELECT service_name, coalesce(http_route, name) AS endpoint, CAST(sum(spans) AS BIGINT) AS requests, CAST(sum(errors) AS BIGINT) AS errors
             FROM span_minutes WHERE entry AND service_name IN ({within}) AND minute >= $from AND minute < $to
             GROUP BY 1, 2 ORDER BY errors DESC, requests DESC, 1, 2"
        );
        // Without the rollups (turned off, or in a cluster, where each
        // node's would see only its own writes), the spans.
        let from_spans = format!(
            "SELECT service_name, coalesce(http_route, name) AS endpoint, count(*) AS requests,
               CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS BIGINT) AS errors
             FROM spans WHERE {ENTRY_SPANS} AND service_name IN ({within}) AND start_time >= $from AND start_time < $to
             GROUP BY 1, 2 ORDER BY errors DESC, requests DESC, 1, 2"
        );
        let out = match self.reader.sql(tenant, &per_endpoint, &p).await {
            Err(QueryError::NotCovered(_)) => self.reader.sql(tenant, &from_spans, &p).await?,
            answer => answer?,
        };
        let (mut requests, mut errors) = (0i64, 0i64);
        let mut endpoints = Vec::new();
        for r in rows::rows(&out.batches) {
            let (n, e) = (r[2].as_i64().unwrap_or(0), r[3].as_i64().unwrap_or(0));
            requests += n;
            errors += e;
            if endpoints.len() < 10 {
                endpoints
                    .push(json!({"service": r[0], "endpoint": r[1], "requests": n, "errors": e}));
            }
        }
        let user = format!(
            "coalesce({})",
            USER_ATTRIBUTES
                .iter()
                .map(|k| format!("attributes['{k}']"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let users_sql = format!(
            "SELECT count(DISTINCT {user}) AS users, count(DISTINCT CASE WHEN status_code = 'error' THEN {user} END) AS failed
             FROM spans WHERE {ENTRY_SPANS} AND service_name IN ({within}) AND start_time >= $from AND start_time < $to"
        );
        let (users, failed) = match self.reader.sql(tenant, &users_sql, &p).await {
            Ok(out) => {
                let r = rows::rows(&out.batches);
                let n = r.first().and_then(|r| r[0].as_i64()).unwrap_or(0);
                let f = r.first().and_then(|r| r[1].as_i64()).unwrap_or(0);
                // No user attribute at all: unknown, not zero.
                if n == 0 {
                    (Value::Null, Value::Null)
                } else {
                    (json!(n), json!(f))
                }
            }
            Err(_) => (Value::Null, Value::Null),
        };
        Ok(json!({
            "services": services, "from": crate::read::ts_text(from), "to": crate::read::ts_text(to),
            "requests": requests, "errors": errors, "endpoints": endpoints,
            "users": users, "users_with_errors": failed,
        }))
    }

    /// One incident with its impact, or `None`.
    pub async fn incident(&self, tenant: &TenantId, id: i64) -> Result<Option<Value>, QueryError> {
        let all = self
            .incidents(tenant)
            .await
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let Some(mut inc) = all.into_iter().find(|i| i["id"] == id) else {
            return Ok(None);
        };
        let services: Vec<String> = inc["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        let opened = inc["opened_ns"].as_i64().unwrap_or(0);
        let to = inc["resolved_ns"]
            .as_i64()
            .unwrap_or_else(crate::read::now_ns);
        inc["impact"] = self
            .impact(tenant, &services, opened - LOOKBACK_NS, to)
            .await?;
        Ok(Some(inc))
    }
}
