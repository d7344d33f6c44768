//! The message of one notification group, which every channel kind
//! formats ([`super::notify`]): its alerts ranked root cause first, and the
//! incident's title, priority and services (or, for a channel's digest,
//! how many low-priority incidents it tells).

use ophion_ai::incidents::{self, Alert, ServiceGraph};
use serde_json::{Value, json};

use super::model::Labels;

/// The group key of a channel's digest of low-priority incidents.
pub(super) const DIGEST: &str = "digest";

/// One alert as the dispatcher routes it.
#[derive(Debug, Clone)]
pub(super) struct Routed {
    pub(super) alert: Alert,
    pub(super) rule: i64,
    pub(super) annotations: Labels,
    pub(super) firing: bool,
    pub(super) fired_ns: i64,
    pub(super) resolved_ns: Option<i64>,
    pub(super) value: f64,
    pub(super) incident: i64,
}

fn rfc3339(ns: i64) -> String {
    crate::read::ts_text(ns)
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The message of a group: what every channel kind formats.
pub(super) fn message(
    status: &str,
    key: &str,
    group_labels: &Labels,
    alerts: &[&Routed],
    graph: &ServiceGraph,
    external: &str,
    fired_before: &dyn Fn(&str, i64) -> bool,
) -> Value {
    let members: Vec<Alert> = alerts.iter().map(|r| r.alert.clone()).collect();
    let order = incidents::rank(graph, &members, &[]);
    let root = order.first().map(|&i| alerts[i]);
    let novel = root.is_none_or(|r| !fired_before(&r.alert.key, r.fired_ns));
    let p = incidents::priority(&members, graph.len(), novel);
    let services: std::collections::BTreeSet<&str> = members
        .iter()
        .filter_map(|a| a.service.as_deref())
        .collect();
    let incidents_in: std::collections::BTreeSet<i64> = alerts.iter().map(|r| r.incident).collect();
    let title = if key == DIGEST {
        format!(
            "Digest: {} low-priority incident(s), {} alert(s)",
            incidents_in.len(),
            alerts.len()
        )
    } else {
        root.map_or_else(String::new, |r| {
            let name = r
                .alert
                .labels
                .get("alertname")
                .map_or("alert", String::as_str);
            let on = r
                .alert
                .service
                .as_deref()
                .map(|s| format!(" on {s}"))
                .unwrap_or_default();
            let more = if alerts.len() > 1 {
                format!(" (+{} related)", alerts.len() - 1)
            } else {
                String::new()
            };
            format!("{name}{on}{more}")
        })
    };
    let items: Vec<Value> = order
        .iter()
        .map(|&i| {
            let r = alerts[i];
            json!({
                "status": if r.firing { "firing" } else { "resolved" },
                "labels": r.alert.labels,
                "annotations": r.annotations,
                "startsAt": rfc3339(r.fired_ns),
                "endsAt": r.resolved_ns.filter(|_| !r.firing).map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
                "generatorURL": format!("{external}/alerts/rules/{}", r.rule),
                "fingerprint": r.alert.key,
                "value": r.value,
            })
        })
        .collect();
    json!({
        "status": status,
        "groupKey": key,
        "groupLabels": group_labels,
        "alerts": items,
        "incident": {
            "id": if key == DIGEST { None } else { alerts.first().map(|r| r.incident) },
            "incidents": incidents_in,
            "title": title,
            "priority": p.score,
            "root_cause": root.map(|r| r.alert.key.clone()),
            "services": services,
            "link": if key == DIGEST { format!("{external}/incidents") } else { format!("{external}/incidents/{}", alerts.first().map_or(0, |r| r.incident)) },
        },
    })
}
