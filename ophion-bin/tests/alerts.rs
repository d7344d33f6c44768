//! Alerting end to end on the real `ophion-server`: telemetry over OTLP
//! makes a threshold rule fire after its `for`; a local receiver gets
//! exactly one signed Alertmanager-format webhook, one Slack and one
//! PagerDuty message, across a `kill -9` between firing and delivery; and
//! exactly one resolution each when the condition clears. Also: bad rules
//! and channels are refused, viewers change nothing.

mod common;

use std::time::{Duration, Instant};

use common::inbox::{AmWebhook, receiver, until};
use common::{Server, client, login_blocking, post_otlp};
use ophion_core::testing::{Generator, now_ns};
use prost::Message as _;
use serde_json::{Value, json};

async fn call(
    http: &reqwest::Client,
    s: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = http
        .request(method.parse().expect("method"), format!("{}{path}", s.api))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("api");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

const ENV: &[(&str, &str)] = &[
    ("OPHION__ALERTS__TICK_MS", "200"),
    ("OPHION__ALERTS__EXTERNAL_URL", "http://ophion.test"),
    ("OPHION__ALERTS__CORRELATE__QUIET_SECS", "1"),
    ("OPHION__AI__WATCH", "false"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_fires_once_per_channel_across_a_crash_and_resolves_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (url, inbox) = receiver().await;
    let http = client();
    let mut s = Server::start(&data, ENV);
    let token = s.token.clone();
    let timing = json!({"group_wait": "1s", "group_interval": "2s", "repeat_interval": "0s"});
    for (name, kind, path, secret) in [
        ("am", "webhook", "/webhook", "s3cret"),
        ("chat", "slack", "/slack", ""),
        ("pager", "pagerduty", "/pd", "routing-key-1"),
    ] {
        let mut ch = json!({"name": name, "kind": kind, "url": format!("{url}{path}")});
        ch.as_object_mut()
            .expect("obj")
            .extend(timing.as_object().expect("obj").clone());
        if !secret.is_empty() {
            ch["secret"] = json!(secret);
        }
        let (st, v) = call(&http, &s, &token, "POST", "/api/v1/channels", Some(ch)).await;
        assert_eq!(st, 201, "{v}");
        assert!(v.get("secret").is_none(), "secrets are never returned: {v}");
    }
    let (_, chans) = call(&http, &s, &token, "GET", "/api/v1/channels", None).await;
    assert!(
        !chans.to_string().contains("s3cret") && !chans.to_string().contains("routing-key-1"),
        "{chans}"
    );
    let (st, v) = call(
        &http,
        &s,
        &token,
        "POST",
        "/api/v1/channels",
        Some(json!({"name": "x", "kind": "webhook", "url": "file:///etc/passwd"})),
    )
    .await;
    assert_eq!(st, 400, "{v}");

    // Bad rules are refused at creation, each with a clear reason.
    let rule = |sql: &str| json!({"name": "r", "kind": "sql", "sql": sql, "condition": {"op": ">", "threshold": 0}});
    for (sql, says) in [
        ("SELEC nope", "not valid SQL"),
        ("DROP TABLE spans", "read-only"),
        ("SELECT 1 AS value; SELECT 2 AS value", "one statement"),
        ("SELECT service_name FROM spans", "numeric value column"),
        (
            "SELECT count(*) AS value FROM no_such_table",
            "no_such_table",
        ),
    ] {
        let (st, v) = call(
            &http,
            &s,
            &token,
            "POST",
            "/api/v1/alerts/rules",
            Some(rule(sql)),
        )
        .await;
        assert_eq!(st, 400, "{sql}: {v}");
        assert!(v.to_string().contains(says), "{sql}: {v}");
    }
    // A viewer reads but cannot create, change or test-send.
    let (st, v) = call(
        &http,
        &s,
        &token,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "vera", "password": "viewer-password-1", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let viewer = login_blocking(&s.api, "vera", "viewer-password-1");
    for (m, p) in [
        ("POST", "/api/v1/alerts/rules"),
        ("POST", "/api/v1/channels"),
        ("POST", "/api/v1/channels/1/test"),
        ("POST", "/api/v1/silences"),
        ("DELETE", "/api/v1/alerts/rules/1"),
    ] {
        let (st, _) = call(&http, &s, &viewer, m, p, Some(json!({}))).await;
        assert_eq!(st, 403, "viewer {m} {p}");
    }
    let (st, _) = call(&http, &s, &viewer, "GET", "/api/v1/alerts", None).await;
    assert_eq!(st, 200);

    let spec = json!({
        "name": "BusyService",
        "kind": "sql",
        "sql": "SELECT service_name AS service, CAST(count(*) AS DOUBLE) AS value FROM spans WHERE start_time >= $from AND start_time < $to AND service_name = 'checkout' GROUP BY service_name",
        "condition": {"op": ">", "threshold": 0},
        "for": "2s", "interval": "1s", "range": "20s", "severity": "critical",
        "labels": {"team": "payments"},
        "annotations": {"summary": "{{ $labels.service }} handled {{ $value }} spans", "runbook": "{{ $labels.nope }}"},
        "channels": ["am", "chat", "pager"],
    });
    let (st, v) = call(
        &http,
        &s,
        &token,
        "POST",
        "/api/v1/alerts/rules",
        Some(spec),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let rule_id = v["id"].as_i64().expect("id");

    inbox.lock().expect("inbox").refuse = true;
    let traces = Generator::new(3, now_ns()).traces(300);
    let r = post_otlp(&http, &s.otlp_http, "/v1/traces", traces.encode_to_vec()).await;
    assert!(r.status().is_success());
    // Pending first, then firing after `for`.
    let started = Instant::now();
    let mut saw_pending = false;
    loop {
        let (_, a) = call(&http, &s, &token, "GET", "/api/v1/alerts", None).await;
        let state = a["alerts"][0]["state"].as_str().unwrap_or("").to_owned();
        saw_pending |= state == "pending";
        if state == "firing" {
            assert!(
                a["alerts"][0]["annotations"]["summary"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("checkout handled ")),
                "{a}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never fired: {a}; log {}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_pending, "the alert waits `for` before it fires");
    let (_, r) = call(
        &http,
        &s,
        &token,
        "GET",
        &format!("/api/v1/alerts/rules/{rule_id}"),
        None,
    )
    .await;
    assert_eq!(
        r["health"], "template_error",
        "a template that fails is reported on the rule: {r}"
    );
    assert!(
        r["last_error"].as_str().is_some_and(|e| e.contains("nope")),
        "{r}"
    );
    // The receiver refuses: deliveries are tried and retried, then the
    // server dies before any got through.
    until("a refused delivery", Duration::from_secs(20), || {
        inbox.lock().expect("inbox").refused >= 3
    })
    .await;
    drop(s); // SIGKILL
    inbox.lock().expect("inbox").refuse = false;
    s = Server::start(&data, ENV);
    let token = s.token.clone();
    until("one message per channel", Duration::from_secs(60), || {
        let i = inbox.lock().expect("inbox");
        ["/webhook", "/slack", "/pd"]
            .iter()
            .all(|p| !i.on(p).is_empty())
    })
    .await;
    {
        let i = inbox.lock().expect("inbox");
        let hook = i.on("/webhook")[0];
        let (h, am, raw) = (&hook.headers, &hook.json, &hook.raw);
        let parsed = AmWebhook::parse(raw).expect("an Alertmanager receiver reads it");
        assert_eq!(parsed.alerts.len(), 1);
        // A receiver written for Alertmanager's webhook reads it.
        assert_eq!(am["version"], "4");
        assert_eq!(am["status"], "firing");
        assert_eq!(am["receiver"], "am");
        for k in [
            "groupKey",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "truncatedAlerts",
        ] {
            assert!(am.get(k).is_some(), "{k} in {am}");
        }
        let a = &am["alerts"][0];
        assert_eq!(a["labels"]["alertname"], "BusyService");
        assert_eq!(a["labels"]["service"], "checkout");
        assert_eq!(a["labels"]["team"], "payments");
        assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
        assert!(
            a["generatorURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://ophion.test/"))
        );
        assert_eq!(a["fingerprint"].as_str().map(str::len), Some(16));
        assert_eq!(
            a["annotations"]["runbook"], "{{ $labels.nope }}",
            "raw text when a template fails"
        );
        let sig = h
            .get("x-ophion-signature")
            .and_then(|v| v.to_str().ok())
            .expect("signed");
        assert_eq!(sig, ophion_bin::alerts::notify::sign("s3cret", raw));
        let slack = &i.on("/slack")[0].json;
        assert!(
            slack["text"]
                .as_str()
                .is_some_and(|t| t.contains("BusyService") && t.contains("FIRING")),
            "{slack}"
        );
        assert_eq!(slack["blocks"][0]["type"], "header");
        let pd = &i.on("/pd")[0].json;
        assert_eq!(pd["routing_key"], "routing-key-1");
        assert_eq!(pd["event_action"], "trigger");
        assert_eq!(pd["payload"]["severity"], "critical");
        assert_eq!(pd["payload"]["source"], "checkout");
        assert!(pd["dedup_key"].as_str().is_some_and(|k| !k.is_empty()));
    }
    // The spans age out of the rule's range: one resolution each.
    until(
        "one resolution per channel",
        Duration::from_secs(90),
        || {
            let i = inbox.lock().expect("inbox");
            ["/webhook", "/slack", "/pd"]
                .iter()
                .all(|p| i.on(p).len() >= 2)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    {
        let i = inbox.lock().expect("inbox");
        for p in ["/webhook", "/slack", "/pd"] {
            let got = i.on(p);
            assert_eq!(
                got.len(),
                2,
                "{p}: exactly one firing and one resolution: {:?}",
                got.iter().map(|g| &g.json).collect::<Vec<_>>()
            );
        }
        assert_eq!(i.on("/webhook")[1].json["status"], "resolved");
        assert!(i.on("/webhook")[1].json["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z");
        assert!(
            i.on("/slack")[1].json["text"]
                .as_str()
                .is_some_and(|t| t.contains("RESOLVED"))
        );
        let pd: Vec<&Value> = i.on("/pd").iter().map(|g| &g.json).collect();
        assert_eq!(pd[1]["event_action"], "resolve");
        assert_eq!(pd[0]["dedup_key"], pd[1]["dedup_key"]);
    }
    let (_, h) = call(&http, &s, &token, "GET", "/api/v1/alerts/history", None).await;
    let steps: Vec<String> = h["history"]
        .as_array()
        .expect("history")
        .iter()
        .rev()
        .map(|e| {
            format!(
                "{}->{}",
                e["from"].as_str().unwrap_or(""),
                e["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        steps,
        ["inactive->pending", "pending->firing", "firing->resolved"],
        "{h}"
    );
    let (_, inc) = call(&http, &s, &token, "GET", "/api/v1/incidents", None).await;
    assert_eq!(inc["incidents"][0]["status"], "resolved", "{inc}");
}
