//! The web dashboard end to end: a real `ophion-server` with the dashboard
//! embedded, filled over OTLP (the seeded shop's traces, a hand-built
//! trace of 1,200 spans, logs that carry its id, 4,500 more logs, a gauge
//! with an injected jump, an incident with an injected root cause), driven
//! by Debian's Chromium through `playwright-core`
//! (`ophion-bin/ui/e2e/run.mjs`): sign in, services and the service map,
//! trace search and the big trace's waterfall, the keyboard on the
//! waterfall and the log list, logs and the jump to their trace, 4,500
//! results read page by page, the live tail, a metric charted and saved to
//! a dashboard, a panel built without SQL, SQL, the anomaly marked on its
//! chart, a forecast, the injected fault's root-cause candidates with their
//! evidence, a healing run approved and its steps, settings, alerts, the
//! copilot, sign out. The browser run fails on any console error or failed
//! request, and leaves screenshots of every page at 1280 and 390 px in both
//! themes (`OPHION_SCREENSHOTS`, default `target/ui-screenshots`).

mod common;

use std::process::Command;

use common::{ADMIN_PASSWORD, Server, client, post_otlp};
use ophion_core::testing::{Generator, now_ns};
use prost::Message as _;
use serde_json::{Value, json};

const MIN: u64 = 60_000_000_000;

/// One trace of `n` spans: a root and a tree four levels deep over four
/// services, the last span failing.
fn big_trace(trace_id: &str, n: usize, start: u64) -> Value {
    let services = ["edge", "orders", "inventory", "billing"];
    let mut by_service: Vec<Vec<Value>> = vec![Vec::new(); services.len()];
    for i in 0..n {
        // Parent: the root for the first 10, then a span 10 places up.
        let parent = if i == 0 {
            String::new()
        } else {
            format!("{:016x}", 1 + i.saturating_sub(10))
        };
        let depth = if i == 0 { 0 } else { 1 + (i - 1) / 300 };
        let s = (i / 7) % services.len();
        let t0 = start + (i as u64) * 200_000;
        let len = if i == 0 {
            n as u64 * 200_000 + 5_000_000
        } else {
            150_000 + (i as u64 % 13) * 10_000
        };
        by_service[s].push(json!({
            "traceId": trace_id, "spanId": format!("{:016x}", i + 1), "parentSpanId": parent,
            "name": format!("step-{depth}-{}", i % 17), "kind": if i == 0 { 2 } else { 3 },
            "startTimeUnixNano": t0.to_string(), "endTimeUnixNano": (t0 + len).to_string(),
            "attributes": [{"key": "step.index", "value": {"intValue": i.to_string()}}],
            "status": {"code": if i == n - 1 { 2 } else { 1 }},
        }));
    }
    json!({"resourceSpans": services.iter().zip(by_service).map(|(svc, spans)| json!({
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
        "scopeSpans": [{"scope": {"name": "e2e"}, "spans": spans}],
    })).collect::<Vec<_>>()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("OPHION__AI__INTERVAL_SECS", "1"),
            ("OPHION__AI__WATCH_METRICS", r#"["queue.depth"]"#),
        ],
    );
    let http = client();
    let now = now_ns();
    let post = |path: &str, body: Value| {
        let http = http.clone();
        let url = format!("{}{path}", s.otlp_http);
        async move {
            let r = http.post(url).json(&body).send().await.expect("otlp");
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    // A gauge that holds about 50 for 100 minutes, then jumps to 400: sent
    // first, because the watch scores the minutes it finds at its first
    // pass over a tenant and later only the minutes closed since (data that
    // arrives late for minutes already scored is not scored).
    let first = now / MIN - 100;
    let points: Vec<Value> = (first..now / MIN - 1)
        .map(|m| {
            let v = if m == now / MIN - 8 {
                400.0
            } else {
                50.0 + (m * 7 % 5) as f64
            };
            json!({"timeUnixNano": (m * MIN + 30_000_000_000).to_string(), "asDouble": v})
        })
        .collect();
    post("/v1/metrics", json!({"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "worker"}}]},
        "scopeMetrics": [{"metrics": [{"name": "queue.depth", "unit": "1", "gauge": {"dataPoints": points}}]}]}]})).await;

    // The shop: five services calling each other.
    for k in 0..6u64 {
        let req = Generator::new(k, now - (30 - k * 4) * MIN).traces(400);
        let r = post_otlp(&http, &s.otlp_http, "/v1/traces", req.encode_to_vec()).await;
        assert!(r.status().is_success());
    }
    let logs = Generator::new(9, now - 20 * MIN).logs(300);
    let r = post_otlp(&http, &s.otlp_http, "/v1/logs", logs.encode_to_vec()).await;
    assert!(r.status().is_success());
    // An incident with an injected root cause, three hours ago (its own
    // services, so the recent views stay the shop's).
    let case = ophion_ai::rca_sim::generate(20_100);
    let offset = (now - 3 * 60 * MIN) as i64 - case.incident.1;
    for req in ophion_ai::rca_sim::to_otlp(&case.spans, offset) {
        let r = post_otlp(&http, &s.otlp_http, "/v1/traces", req.encode_to_vec()).await;
        assert!(r.status().is_success());
    }
    let incident_ms = move |ns: i64| ((ns + offset) / 1_000_000).to_string();
    // The big trace, and logs that carry its id.
    let big = "00112233445566778899aabbccddeeff";
    post("/v1/traces", big_trace(big, 1200, now - 10 * MIN)).await;
    let records: Vec<Value> = (0..20u64)
        .map(|i| json!({
            "timeUnixNano": (now - 10 * MIN + i * 1_000_000).to_string(), "severityNumber": 17, "severityText": "ERROR",
            "body": {"stringValue": format!("payment declined for order {i}")},
            "traceId": big, "spanId": format!("{:016x}", 1200 - i as usize),
        }))
        .collect();
    post("/v1/logs", json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]},
        "scopeLogs": [{"logRecords": records}]}]})).await;
    // 4,500 records to read page by page (the explorer asks 2,000 a page).
    let bulk: Vec<Value> = (0..4_500u64)
        .map(|i| {
            json!({
                "timeUnixNano": (now - 15 * MIN + i * 100_000_000).to_string(), "severityNumber": 9,
                "body": {"stringValue": format!("bulk record {i}")},
            })
        })
        .collect();
    post("/v1/logs", json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "batch"}}]},
        "scopeLogs": [{"logRecords": bulk}]}]})).await;
    let ui = concat!(env!("CARGO_MANIFEST_DIR"), "/ui");
    let shots = std::env::var("OPHION_SCREENSHOTS").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
        format!("{target}/ui-screenshots")
    });
    let out = tokio::task::spawn_blocking({
        let api = s.api.clone();
        let otlp = s.otlp_http.clone();
        let shots = shots.clone();
        move || {
            Command::new("node")
                .arg("e2e/run.mjs")
                .current_dir(ui)
                .env("OPHION_URL", api)
                .env("OPHION_USER", "admin")
                .env("OPHION_PASSWORD", ADMIN_PASSWORD)
                .env("BIG_TRACE", big)
                .env("OPHION_OTLP_HTTP", otlp)
                .env("INCIDENT_FROM_MS", incident_ms(case.incident.0))
                .env("INCIDENT_TO_MS", incident_ms(case.incident.1))
                .env("ROOT_SERVICE", case.root_service)
                .env("OPHION_SCREENSHOTS", shots)
                .output()
                .expect("node (Node.js 20) runs the browser test")
        }
    })
    .await
    .expect("browser run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nserver log: {}",
        s.log()
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    println!("screenshots in {shots}");
}

/// The JavaScript the first page loads (the entry and what it preloads),
/// gzipped as served: at most 300 KB.
#[test]
fn the_initial_javascript_is_small() {
    use std::io::Read as _;
    let assets = ophion_bin::api::ui::ASSETS;
    let index = assets
        .iter()
        .find(|a| a.path == "/index.html")
        .expect("the dashboard is embedded (built without OPHION_UI=off)");
    let mut html = String::new();
    flate2::read::GzDecoder::new(index.gzip)
        .read_to_string(&mut html)
        .expect("gunzip index.html");
    let loaded: Vec<&str> = html
        .split(['"', '\''])
        .filter(|p| p.starts_with("/assets/") && p.ends_with(".js"))
        .collect();
    assert!(!loaded.is_empty(), "{html}");
    let bytes: usize = loaded
        .iter()
        .map(|p| {
            assets
                .iter()
                .find(|a| a.path == *p)
                .unwrap_or_else(|| panic!("{p} is embedded"))
                .gzip
                .len()
        })
        .sum();
    println!(
        "initial JavaScript: {} files, {bytes} bytes gzipped",
        loaded.len()
    );
    assert!(bytes <= 300 * 1024, "{bytes} bytes gzipped");
}
