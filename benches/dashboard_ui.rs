//! The dashboard's performance in the browser (Debian's Chromium driven by
//! `playwright-core`, `ophion-bin/ui/e2e/perf.mjs`) against a running
//! release `ophion-server`:
//! - the services page of 100 services over N stored spans, from
//!   navigation to every row on screen (goal ≤ 1 s at 10 million spans);
//! - a 10,000-span trace's waterfall, from navigation to its first rows
//!   (goal ≤ 1 s);
//! - a 50,000-span trace's waterfall scrolled top to bottom: the longest
//!   frame (goal: scrollable, no frame over 100 ms);
//! - the logs explorer's 100,000 results scrolled top to bottom, its pages
//!   loading as the list nears its end: the longest frame (goal ≤ 100 ms).
//!
//! - before it loads anything, the server's resident memory, idle after a
//!   sign-in (goal ≤ 30 MB, decimal; `/proc/PID/status` VmRSS).
//!
//! Each figure is the median of three runs. Run (full):
//! `cargo build --release -p ophion-bin && cargo bench -p ophion-benches --bench dashboard_ui -- --full`
//! (10 million spans). `--spans N` sets the store's size. Without
//! arguments (as in `cargo test --all-targets`) it is a smoke pass: the
//! same steps over 20,000 spans, 2,000- and 5,000-span traces and 10,000
//! logs, goals not enforced. Results: docs/benchmarks.md.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest,
        trace::v1::trace_service_client::TraceServiceClient,
    },
    common::v1::{AnyValue, InstrumentationScope, any_value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status},
};
use ophion_benches::{Started, default_server};
use ophion_core::testing::{kv_int, kv_str, now_ns};
use prost::Message as _;

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![kv_str("service.name", service)],
        ..Default::default()
    }
}

fn spans_of(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource(service)),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "bench".into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// Request `i`: 50 entry spans of each of 100 services at `at_ns`.
fn hundred_services(i: u64, at_ns: u64) -> ExportTraceServiceRequest {
    let resource_spans = (0..100u64)
        .map(|s| {
            let spans = (0..50u64)
                .map(|k| {
                    let n = i * 5_000 + s * 50 + k;
                    let start = at_ns + k * 1_000_000;
                    Span {
                        trace_id: (u128::from(n) + 1).to_be_bytes().to_vec(),
                        span_id: (n + 1).to_be_bytes().to_vec(),
                        name: format!("GET /api/{}", k % 8),
                        kind: span::SpanKind::Server as i32,
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + 2_000_000 + (n % 97) * 100_000,
                        attributes: vec![kv_str("http.route", format!("/api/{}", k % 8))],
                        status: Some(Status {
                            code: if n.is_multiple_of(50) {
                                status::StatusCode::Error
                            } else {
                                status::StatusCode::Ok
                            } as i32,
                            message: String::new(),
                        }),
                        ..Default::default()
                    }
                })
                .collect();
            spans_of(&format!("svc-{s:03}"), spans)
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// One trace of `n` spans, fan-out 10, over 8 services.
fn big_trace(trace_id: u128, n: u64, at_ns: u64) -> ExportTraceServiceRequest {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); 8];
    for i in 0..n {
        let start = at_ns + i * 20_000;
        by_service[(i % 8) as usize].push(Span {
            trace_id: trace_id.to_be_bytes().to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: if i == 0 {
                Vec::new()
            } else {
                ((i - 1) / 10 + 1).to_be_bytes().to_vec()
            },
            name: format!("op-{}", i % 23),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start
                + if i == 0 {
                    n * 20_000 + 1_000_000
                } else {
                    500_000
                },
            attributes: vec![kv_int("i", i as i64)],
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .enumerate()
            .map(|(s, spans)| spans_of(&format!("tier-{s}"), spans))
            .collect(),
    }
}

/// Records `first..first + n`, a millisecond apart from `at_ns`.
fn logs(first: u64, n: u64, at_ns: u64) -> ExportLogsServiceRequest {
    let records = (first..first + n)
        .map(|i| LogRecord {
            time_unix_nano: at_ns + i * 1_000_000,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "order {i} shipped to warehouse {}",
                    i % 40
                ))),
            }),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("shipping")),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--full");
    let spans: u64 = args
        .iter()
        .position(|a| a == "--spans")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if full { 10_000_000 } else { 20_000 });
    let (mid, large, log_count) = if full {
        (10_000, 50_000, 100_000)
    } else {
        (2_000, 5_000, 10_000)
    };
    let dir = tempfile::tempdir().expect("tmp");
    let s = Started::start(&default_server(), &dir.path().join("data"), &[], None).await;
    let web = reqwest::Client::new();
    // Resident memory with the dashboard embedded once start-up has
    // settled, after one sign-in (its password hash takes 19 MiB while it
    // runs): printed, not a goal of this bench (docs/benchmarks.md).
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let idle_mb = ophion_core::testing::process::rss_bytes(Some(s.pid())) as f64 / 1e6;
    println!(
        "resident memory, idle after a sign-in: {idle_mb:.1} MB ({:.1} MiB)",
        idle_mb * 1e6 / 1048576.0
    );
    let now = now_ns();
    let hour = 3_600_000_000_000u64;
    println!(
        "# dashboard in the browser: 100 services over {spans} spans, traces of {mid} and {large} spans, {log_count} logs"
    );
    // The store: 100 services' entry spans spread over the last hour.
    let t = Instant::now();
    let requests = spans.div_ceil(5_000);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (next, grpc) = (Arc::clone(&next), s.grpc.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = TraceServiceClient::connect(grpc).await.expect("grpc");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= requests {
                    return;
                }
                let at = now - hour + hour / requests * i;
                let req = hundred_services(i, at);
                while c.export(req.clone()).await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    println!("loaded {spans} spans in {:.0} s", t.elapsed().as_secs_f64());
    let post = |path: &str, body: Vec<u8>| {
        let url = format!("{}{path}", s.http);
        let web = web.clone();
        async move {
            // Overload is a retryable answer (429 or 503): retry, as an
            // OTLP exporter does, until the server takes it.
            for _ in 0..600 {
                let r = web
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("otlp");
                match r.status().as_u16() {
                    200..=299 => return,
                    429 | 503 => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                    other => panic!("OTLP answered {other}"),
                }
            }
            panic!("the server stayed overloaded for two minutes");
        }
    };
    let (mid_id, large_id) = (0xaaaa_0000_u128, 0xbbbb_0000_u128);
    post(
        "/v1/traces",
        big_trace(mid_id, mid, now - 20 * 60_000_000_000).encode_to_vec(),
    )
    .await;
    post(
        "/v1/traces",
        big_trace(large_id, large, now - 10 * 60_000_000_000).encode_to_vec(),
    )
    .await;
    for first in (0..log_count).step_by(10_000) {
        post(
            "/v1/logs",
            logs(first, 10_000, now - 30 * 60_000_000_000).encode_to_vec(),
        )
        .await;
    }

    // Measure the store, not the work loading left behind (snapshots,
    // compaction): wait until the server has been idle (under 4% of a
    // core) for half a second.
    let t = Instant::now();
    let cpu = || ophion_core::testing::process::cpu_secs(Some(s.pid()));
    let mut last = cpu();
    for _ in 0..1200 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = cpu();
        if now - last < 0.02 {
            break;
        }
        last = now;
    }
    println!(
        "server idle {:.0} s after loading",
        t.elapsed().as_secs_f64()
    );
    // A fresh token: loading may have outlived the first one.
    let token = s.login().await;
    let ui = concat!(env!("CARGO_MANIFEST_DIR"), "/../ophion-bin/ui");
    let out = Command::new("node")
        .arg("e2e/perf.mjs")
        .current_dir(ui)
        .env("OPHION_URL", &s.api)
        .env("OPHION_TOKEN", &token)
        .env("MID_TRACE", format!("{mid_id:032x}"))
        .env("LARGE_TRACE", format!("{large_id:032x}"))
        .env("SERVICES", "100")
        .output()
        .expect("node runs the browser benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("results as JSON");
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let goals = [
        (
            "services page, 100 services",
            f("services_ms"),
            1000.0,
            "ms",
        ),
        ("waterfall on screen", f("mid_ms"), 1000.0, "ms"),
        (
            "largest frame scrolling the large trace",
            f("large_frame_ms"),
            100.0,
            "ms",
        ),
        (
            "largest frame scrolling every log record",
            f("logs_frame_ms"),
            100.0,
            "ms",
        ),
        ("idle resident memory", idle_mb, 30.0, "MB"),
    ];
    assert_eq!(
        f("logs_rows"),
        log_count as f64,
        "the logs explorer loads every matching record as it is scrolled"
    );
    println!("| measure | median | goal |\n|---|---|---|");
    for (what, got, goal, unit) in goals {
        println!(
            "| {what} | {got:.1} {unit} | ≤ {goal:.0} {unit} {} |",
            if got <= goal {
                "— met"
            } else {
                "— NOT met"
            }
        );
    }
    if full {
        assert!(
            goals.iter().all(|(_, got, goal, _)| got <= goal),
            "a goal is not met"
        );
    }
}
