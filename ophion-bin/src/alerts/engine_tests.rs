//! The state machine and the dispatcher on an in-memory database, in
//! virtual time.

use ophion_ai::incidents::{CorrelateConfig, ServiceGraph};
use ophion_store::metadata::Conn;
use rusqlite::Connection;
use serde_json::{Value, json};

use super::{
    engine::{Sample, apply, dispatch},
    model::Labels,
    store::MIGRATIONS,
};

const S: i64 = 1_000_000_000;

fn db() -> Connection {
    db_with(json!({}))
}

/// A database with one rule notifying channel `hook`, whose spec has
/// `extra` besides fast timing.
fn db_with(extra: Value) -> Connection {
    let c = Connection::open_in_memory().expect("sqlite");
    for m in MIGRATIONS.sqlite {
        c.execute_batch(m).expect("migration");
    }
    let mut channel = json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/",
        "group_wait": "0s", "group_interval": "1s", "repeat_interval": "0s"});
    channel
        .as_object_mut()
        .expect("object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    c.execute(
        "INSERT INTO alert_channels (tenant_id, name, spec) VALUES ('t', 'hook', ?1)",
        [channel.to_string()],
    )
    .expect("channel");
    let rule = json!({"name": "Busy", "kind": "sql", "sql": "SELECT 1 AS value",
        "condition": {"op": ">", "threshold": 0}, "channels": ["hook"]});
    c.execute(
        "INSERT INTO alert_rules (tenant_id, name, spec, updated_by, updated_at) VALUES ('t', 'Busy', ?1, 'test', 0)",
        [rule.to_string()],
    )
    .expect("rule");
    c
}

fn busy(service: &str) -> Sample {
    alert("Busy", service, "critical")
}

fn alert(name: &str, service: &str, severity: &str) -> Sample {
    let labels: Labels = [
        ("alertname", name),
        ("service", service),
        ("severity", severity),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Sample {
        labels,
        annotations: Labels::new(),
        value: 1.0,
    }
}

/// One evaluation then one dispatcher pass at `now`.
fn step(c: &mut Connection, samples: &[Sample], now: i64) {
    let cfg = CorrelateConfig {
        quiet_secs: 1,
        ..CorrelateConfig::default()
    };
    let graph = ServiceGraph::default();
    let conn: &dyn Conn = &*c;
    let tx = conn.transaction().expect("tx");
    apply(&tx, "t", 1, 0, samples, &graph, &cfg, now).expect("apply");
    dispatch(&tx, "t", &graph, &cfg, "http://ophion.test", now).expect("dispatch");
    tx.commit().expect("commit");
}

fn outbox(c: &Connection) -> Vec<Value> {
    let mut st = c
        .prepare("SELECT message FROM deliveries ORDER BY id")
        .expect("select");
    st.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|m| serde_json::from_str(&m.expect("row")).expect("json"))
        .collect()
}

#[test]
fn an_alert_that_fired_last_week_makes_a_less_novel_incident() {
    let mut c = db();
    let t0 = 1_800_000_000 * S;
    step(&mut c, &[busy("checkout")], t0);
    step(&mut c, &[busy("checkout")], t0 + 2 * S);
    // The condition clears; the incident quiets down, then resolves.
    for k in 3..8 {
        step(&mut c, &[], t0 + k * S);
    }
    let first = outbox(&c);
    assert_eq!(
        first
            .iter()
            .map(|m| m["status"].clone())
            .collect::<Vec<_>>(),
        [json!("firing"), json!("resolved")],
        "{first:?}"
    );
    // The same alert again, an hour later: a new incident, not novel.
    let t1 = t0 + 3600 * S;
    step(&mut c, &[busy("checkout")], t1);
    step(&mut c, &[busy("checkout")], t1 + 2 * S);
    let all = outbox(&c);
    assert_eq!(all.len(), 3, "{all:?}");
    let (p0, p1) = (
        all[0]["incident"]["priority"].as_f64().expect("priority"),
        all[2]["incident"]["priority"].as_f64().expect("priority"),
    );
    assert_ne!(all[0]["incident"]["id"], all[2]["incident"]["id"]);
    // Critical (40) + one service of one (25) + novel (15) the first time.
    assert_eq!(p0, 80.0);
    assert_eq!(p1, 65.0, "seen last hour: no novelty");
    // A dispatcher pass that finds nothing new queues nothing.
    step(&mut c, &[busy("checkout")], t1 + 2 * S);
    assert_eq!(outbox(&c).len(), 3);
}

#[test]
fn a_digest_tells_low_priority_incidents_together_and_critical_ones_at_once() {
    let mut c = db_with(json!({"digest": "10s"}));
    let t0 = 1_800_000_000 * S;
    let warn_a = alert("DiskSpaceLow", "billing", "warning");
    let warn_b = alert("CertificateExpiring", "search", "info");
    let crit = alert("Busy", "checkout", "critical");
    step(&mut c, &[warn_a.clone(), crit.clone()], t0);
    let now = outbox(&c);
    assert_eq!(now.len(), 1, "the critical incident at once: {now:?}");
    assert_eq!(now[0]["alerts"][0]["labels"]["alertname"], "Busy");
    // Another low-priority alert a few seconds later joins the same digest.
    step(
        &mut c,
        &[warn_a.clone(), warn_b.clone(), crit.clone()],
        t0 + 4 * S,
    );
    assert_eq!(outbox(&c).len(), 1, "the digest waits");
    step(
        &mut c,
        &[warn_a.clone(), warn_b.clone(), crit.clone()],
        t0 + 10 * S,
    );
    let all = outbox(&c);
    assert_eq!(all.len(), 2, "{all:?}");
    let d = &all[1];
    assert_eq!(d["groupKey"], "digest");
    let names: Vec<&str> = d["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{d}");
    assert!(names.contains(&"DiskSpaceLow") && names.contains(&"CertificateExpiring"));
    assert!(
        d["incident"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Digest: 2 low-priority")),
        "{d}"
    );
    // Nothing new: no more digests.
    step(&mut c, &[warn_a, warn_b, crit], t0 + 30 * S);
    assert_eq!(outbox(&c).len(), 2);
}
