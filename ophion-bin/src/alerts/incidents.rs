//! `GET /api/v1/incidents`: incidents with their members ranked.

use ophion_core::TenantId;
use serde_json::Value;

use super::{Alerts, model::Labels};

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
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<i64>>(6)?,
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
        Ok(out
            .into_iter()
            .map(|(id, opened, resolved, members)| {
                let alerts: Vec<_> = members.iter().map(|m| m.0.clone()).collect();
                let order = ophion_ai::incidents::rank(&graph, &alerts, &[]);
                let p = ophion_ai::incidents::priority(&alerts, graph.len(), true);
                let services: std::collections::BTreeSet<&str> = alerts.iter().filter_map(|a| a.service.as_deref()).collect();
                serde_json::json!({
                    "id": id,
                    "status": if resolved.is_some() { "resolved" } else { "open" },
                    "opened_at": crate::read::ts_text(opened),
                    "resolved_at": resolved.map(crate::read::ts_text),
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
