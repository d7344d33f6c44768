//! Alert evaluation cost on a running `ophion-server`: N rules over M
//! stored spans, each evaluated every interval, while spans keep arriving.
//! The server counts every evaluation, those that started a whole interval
//! late (the evaluator fell behind), how long each took and how long after
//! its slot it started (`/metrics`: `ophion_alert_*`); this reads them
//! before and after a measured window and fails if any evaluation was late
//! or missing.
//!
//! The rules are a mix written to cost what real ones do, every query
//! distinct (each rule has its own range and filter): 50% SQL thresholds on
//! raw spans (error ratio, slow requests per route, mean latency, calls per
//! operation, each on one service), 20% SQL on the per-minute rollups, 20%
//! anomaly rules (a service's rate, errors or latency) and 10% absence
//! rules. `--raw` makes all of them SQL on raw spans (the worst case).
//!
//! Run (full): `cargo build --release -p ophion-bin && cargo bench -p ophion-benches --bench alert_eval -- --full`
//! (1,000 rules every 60 s over 10 million spans stored across the last
//! two hours, 5 measured minutes, 1,000 new spans/s meanwhile).
//! Options: `--server PATH`, `--spans N`, `--rules N`, `--interval SECS`,
//! `--minutes M`, `--rate SPANS_PER_S`, `--raw`.
//! CI runs a smoke pass with the debug server (`cargo test --all-targets`):
//! 40 rules every 5 s over 40,000 spans for 3 intervals.
//! Results: docs/benchmarks.md.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use ophion_benches::{Started, default_server, parse_next};
use ophion_core::testing::{Generator, now_ns, process};
use serde_json::{Value, json};

struct Args {
    server: std::path::PathBuf,
    spans: usize,
    rules: usize,
    interval_s: u64,
    minutes: f64,
    rate: usize,
    history_s: u64,
    raw: bool,
}

fn args() -> Args {
    let mut a = Args {
        server: default_server(),
        spans: 40_000,
        rules: 40,
        interval_s: 5,
        minutes: 0.25,
        rate: 200,
        history_s: 600,
        raw: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = |d: f64| parse_next(&mut it, d);
        match k.as_str() {
            "--full" => {
                (
                    a.spans,
                    a.rules,
                    a.interval_s,
                    a.minutes,
                    a.rate,
                    a.history_s,
                ) = (10_000_000, 1_000, 60, 5.0, 1_000, 7_200);
            }
            "--server" => a.server = it.next().map(Into::into).unwrap_or(a.server),
            "--spans" => a.spans = num(a.spans as f64) as usize,
            "--rules" => a.rules = num(a.rules as f64) as usize,
            "--interval" => a.interval_s = num(a.interval_s as f64) as u64,
            "--minutes" => a.minutes = num(a.minutes),
            "--rate" => a.rate = num(a.rate as f64) as usize,
            "--raw" => a.raw = true,
            _ => {} // cargo passes --bench
        }
    }
    a
}

const SERVICES: [&str; 5] = ["frontend", "checkout", "cart", "payment", "product-catalog"];
const SIGNALS: [&str; 3] = ["rate", "errors", "latency"];

/// Rule `i` of the mix (or of raw-span rules only).
fn rule(i: usize, raw_only: bool, interval_s: u64) -> Value {
    let svc = SERVICES[i % SERVICES.len()];
    let range = format!("{}m", 1 + i % 10);
    let every = format!("{interval_s}s");
    let name = format!("rule-{i:04}");
    let window = "start_time >= $from AND start_time < $to";
    let kind = if raw_only { 0 } else { i % 10 };
    match kind {
        // Half: SQL on raw spans, four shapes.
        0..=4 => {
            let (sql, threshold) = match i % 4 {
                0 => (
                    format!(
                        "SELECT service_name AS service, CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS value FROM spans WHERE {window} AND service_name = '{svc}' GROUP BY 1"
                    ),
                    0.05 + (i % 7) as f64 * 0.05,
                ),
                1 => (
                    format!(
                        "SELECT service_name AS service, http_route AS route, CAST(count(*) AS DOUBLE) AS value FROM spans WHERE {window} AND service_name = '{svc}' AND duration_ns > {} GROUP BY 1, 2",
                        (20 + i % 200) * 1_000_000
                    ),
                    50.0 + (i % 13) as f64 * 10.0,
                ),
                2 => (
                    format!(
                        "SELECT service_name AS service, avg(duration_ns) / 1e6 AS value FROM spans WHERE {window} AND service_name = '{svc}' AND kind = 'server' GROUP BY 1"
                    ),
                    20.0 + (i % 50) as f64,
                ),
                _ => (
                    format!(
                        "SELECT service_name AS service, name AS operation, CAST(count(*) AS DOUBLE) AS value FROM spans WHERE {window} AND service_name = '{svc}' GROUP BY 1, 2"
                    ),
                    1_000.0 + (i % 17) as f64 * 500.0,
                ),
            };
            json!({"name": name, "kind": "sql", "sql": sql, "condition": {"op": ">", "threshold": threshold},
                   "for": "2m", "interval": every, "range": range, "severity": "warning"})
        }
        // A fifth: SQL on the per-minute rollups.
        5 | 6 => json!({"name": name, "kind": "sql",
            "sql": format!("SELECT service_name AS service, CAST(sum(errors) AS DOUBLE) / sum(spans) AS value FROM span_minutes WHERE entry AND minute >= $from AND minute < $to AND service_name = '{svc}' GROUP BY 1"),
            "condition": {"op": ">", "threshold": 0.1 + (i % 5) as f64 * 0.1},
            "interval": every, "range": format!("{}m", 5 + i % 30), "severity": "critical"}),
        // A fifth: anomalies of a RED series.
        7 | 8 => json!({"name": name, "kind": "anomaly", "service": svc,
            "signal": SIGNALS[(i / 10) % SIGNALS.len()], "interval": every}),
        // A tenth: absence, some of services that never report.
        _ => json!({"name": name, "kind": "absence",
            "service": if i % 20 == 9 { format!("retired-{i}") } else { svc.to_owned() },
            "interval": every, "range": range}),
    }
}

/// The `ophion_alert_*` samples of `/metrics`.
async fn metrics(web: &reqwest::Client, api: &str) -> BTreeMap<String, f64> {
    let text = web
        .get(format!("{api}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with("ophion_alert_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The smallest bucket bound under which `q` of a histogram's new
/// observations (between `a` and `b`) fall.
fn quantile(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, name: &str, q: f64) -> String {
    let delta = |k: &str| b.get(k).copied().unwrap_or(0.0) - a.get(k).copied().unwrap_or(0.0);
    let total = delta(&format!("{name}_count"));
    let prefix = format!("{name}_bucket{{le=\"");
    let mut bounds: Vec<(f64, f64)> = b
        .keys()
        .filter_map(|k| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, delta(k)))
        })
        .collect();
    bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    bounds
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or("-".into(), |(le, _)| format!("≤ {le} s"))
}

/// Sends `n` spans stamped evenly over `[from_ns, to_ns)`, four requests
/// at a time.
async fn load(grpc: &str, n: usize, from_ns: u64, to_ns: u64) {
    const PER_REQUEST: usize = 2_000;
    let requests = n.div_ceil(PER_REQUEST);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (next, grpc) = (Arc::clone(&next), grpc.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(grpc).await.expect("grpc");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return;
                }
                let at = from_ns + (to_ns - from_ns) / requests as u64 * i as u64;
                let req = Generator::new(1_000 + i as u64, at).traces(PER_REQUEST);
                while client.export(req.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tmp");
    let s = Started::start(&a.server, &dir.path().join("data"), &[], None).await;
    let web = reqwest::Client::new();
    println!(
        "# alert evaluation: {} rules every {} s over {} spans ({} s of history), {} new spans/s, {} mix",
        a.rules,
        a.interval_s,
        a.spans,
        a.history_s,
        a.rate,
        if a.raw { "raw-span" } else { "product" }
    );
    let t = Instant::now();
    let now = now_ns();
    load(&s.grpc, a.spans, now - a.history_s * 1_000_000_000, now).await;
    println!("loaded in {:.1} s", t.elapsed().as_secs_f64());

    // Spans keep arriving while rules are evaluated.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, grpc, rate) = (Arc::clone(&stop), s.grpc.clone(), a.rate);
        tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(grpc).await.expect("grpc");
            let mut seed = 1u64 << 40;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let req = Generator::new(seed, now_ns()).traces(rate.max(1));
                seed += 1;
                let _ = client.export(req).await;
                tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
            }
        })
    };

    let rules: Vec<Value> = (0..a.rules).map(|i| rule(i, a.raw, a.interval_s)).collect();
    let t = Instant::now();
    let r = web
        .post(format!("{}/api/v1/alerts/apply", s.api))
        .bearer_auth(&s.token)
        .json(&json!({"rules": rules}))
        .send()
        .await
        .expect("apply");
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "apply: {status} {answer}");
    println!(
        "{} rules checked and stored in {:.1} s",
        a.rules,
        t.elapsed().as_secs_f64()
    );

    // One interval to settle (every rule gets its first slot), then measure.
    tokio::time::sleep(Duration::from_secs(a.interval_s + 1)).await;
    let before = metrics(&web, &s.api).await;
    let cpu0 = process::cpu_secs(Some(s.pid()));
    let window = Duration::from_secs_f64(a.minutes * 60.0);
    tokio::time::sleep(window).await;
    let after = metrics(&web, &s.api).await;
    let cpu = process::cpu_secs(Some(s.pid())) - cpu0;
    stop.store(true, Ordering::Relaxed);
    let _ = feeder.await;

    let d = |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let evaluations = d("ophion_alert_evaluations_total");
    let late = d("ophion_alert_evaluations_late_total");
    let failures = d("ophion_alert_evaluation_failures_total");
    let expected = a.rules as f64 * window.as_secs_f64() / a.interval_s as f64;
    let mean = d("ophion_alert_evaluation_seconds_sum")
        / d("ophion_alert_evaluation_seconds_count").max(1.0);
    println!(
        "window {:.0} s: evaluations {evaluations:.0} of {expected:.0} due, late {late:.0}, failed {failures:.0}",
        window.as_secs_f64()
    );
    println!(
        "evaluation time: mean {:.1} ms, p50 {}, p99 {}; start delay p99 {}",
        mean * 1e3,
        quantile(&before, &after, "ophion_alert_evaluation_seconds", 0.5),
        quantile(&before, &after, "ophion_alert_evaluation_seconds", 0.99),
        quantile(
            &before,
            &after,
            "ophion_alert_evaluation_delay_seconds",
            0.99
        ),
    );
    println!(
        "server CPU: {:.1} core-seconds per second of {} cores ({:.0}% of the machine), rules and ingest together",
        cpu / window.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        100.0 * cpu
            / window.as_secs_f64()
            / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
    );
    assert_eq!(failures, 0.0, "every rule's query runs");
    assert_eq!(late, 0.0, "the evaluator fell behind");
    assert!(
        evaluations >= expected * 0.95,
        "evaluations missing: {evaluations} of {expected}"
    );
    println!("ok: no evaluation late or missing");
}
