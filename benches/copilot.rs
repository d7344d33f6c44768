//! The copilot's built-in engine over a large store: the latency of each
//! kind of question through `POST /api/v1/ai/chat`, p50 and p95.
//!
//! The bench is a client: it starts `ophion-server` (default: the one built
//! with the bench's profile; `--server PATH` for another), sends `--spans`
//! spans of the generator's shop over OTLP/HTTP spread over the last 100
//! minutes, and asks every question `--rounds` times.
//!
//! Run (full): `cargo build --release -p ophion-bin && cargo test -q -p
//! ophion-benches --bench copilot -- --server target/release/ophion-server
//! --spans 10000000 --check` (`--check` fails when the p95 of all answers
//! is over 1 s; `--hold SECS` keeps the server up after ingest, printing
//! its address and a token, to probe it by hand). CI runs a smoke pass with the debug server and 20,000
//! spans (`cargo test --all-targets`), which checks that every question is
//! answered. Results: docs/benchmarks.md.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use ophion_benches::{Started, default_server, parse_next};
use ophion_core::testing::{Generator, now_ns, span_count};
use prost::Message as _;
use serde_json::{Value, json};

struct Args {
    server: PathBuf,
    spans: usize,
    rounds: usize,
    check: bool,
    /// Seconds to keep the server up after ingest (to probe it by hand).
    hold: u64,
}

fn args() -> Args {
    let mut a = Args {
        server: default_server(),
        spans: 20_000,
        rounds: 3,
        check: false,
        hold: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--server" => a.server = it.next().map(PathBuf::from).unwrap_or(a.server),
            "--spans" => a.spans = parse_next(&mut it, a.spans),
            "--rounds" => a.rounds = parse_next(&mut it, a.rounds),
            "--check" => a.check = true,
            "--hold" => a.hold = parse_next(&mut it, 0),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// The questions, by kind: one per kind of the built-in engine.
const QUESTIONS: &[(&str, &str)] = &[
    (
        "error rate",
        "What is the error rate of checkout in the last hour?",
    ),
    (
        "latency",
        "p95 latency of frontend over the last 30 minutes",
    ),
    (
        "throughput",
        "requests per second of cart in the last 2 hours",
    ),
    (
        "latency, one operation",
        "latência do checkout na última hora",
    ),
    (
        "slowest endpoints",
        "What are the slowest endpoints in the last hour?",
    ),
    ("top errors", "top errors in the last hour"),
    ("logs", "logs containing \"timeout\" in the last hour"),
    ("callers", "Which services call checkout?"),
    ("callees", "What does frontend call in the last hour?"),
    ("services", "which services are there?"),
    ("what changed", "what changed in the last 30 minutes?"),
    ("dashboard", "dashboard for checkout"),
    (
        "root cause",
        "what is the root cause of the problem in the last 15 minutes?",
    ),
    ("troubleshoot", "what's wrong with checkout?"),
];

fn pct(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tmp");
    println!(
        "# copilot benchmark: {} spans, {} rounds, server {}",
        a.spans,
        a.rounds,
        a.server.display()
    );
    // The continuous watch is measured apart (docs/benchmarks.md).
    let s = Started::start(
        &a.server,
        &dir.path().join("data"),
        &[("OPHION__AI__WATCH", "false")],
        None,
    )
    .await;
    let web = reqwest::Client::new();
    // Pre-built batches of about 1,000 spans; each round sends them again
    // with new trace ids, later in time, over the last 100 minutes.
    let t0 = now_ns() - 110 * 60 * 1_000_000_000;
    let pool: Vec<_> = (0..32)
        .map(|i| Generator::new(500 + i, t0).traces(1000))
        .collect();
    let per_round: usize = pool.iter().map(span_count).sum();
    let rounds = a.spans.div_ceil(per_round).max(1);
    let step = 100 * 60 * 1_000_000_000 / rounds as u64;
    let started = Instant::now();
    let mut sent = 0usize;
    let (tx, rx) = async_channel::bounded::<Vec<u8>>(16);
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (rx, web, url) = (rx.clone(), web.clone(), format!("{}/v1/traces", s.http));
            tokio::spawn(async move {
                while let Ok(body) = rx.recv().await {
                    loop {
                        let r = web
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(body.clone())
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().is_success() => break,
                            // Overload answers are retryable: wait, resend.
                            _ => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                }
            })
        })
        .collect();
    for round in 0..rounds {
        for req in &pool {
            let mut r = req.clone();
            for rs in &mut r.resource_spans {
                for ss in &mut rs.scope_spans {
                    for sp in &mut ss.spans {
                        sp.start_time_unix_nano += round as u64 * step;
                        sp.end_time_unix_nano += round as u64 * step;
                        for (i, b) in (round as u64).to_le_bytes().iter().enumerate() {
                            sp.trace_id[8 + i] ^= b;
                        }
                    }
                }
            }
            sent += span_count(&r);
            tx.send(r.encode_to_vec()).await.expect("send");
        }
    }
    drop(tx);
    for h in senders {
        h.await.expect("sender");
    }
    let logs = Generator::new(9, now_ns() - 30 * 60 * 1_000_000_000).logs(20_000);
    let r = web
        .post(format!("{}/v1/logs", s.http))
        .header("content-type", "application/x-protobuf")
        .body(logs.encode_to_vec())
        .send()
        .await
        .expect("logs");
    assert!(r.status().is_success());
    println!(
        "ingest: {sent} spans in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every acknowledged span readable before the questions start.
    let count = |sql: &'static str| {
        let (web, api, token) = (&web, &s.api, &s.token);
        async move {
            let v: Value = web
                .post(format!("{api}/api/v1/query"))
                .bearer_auth(token)
                .json(&json!({"sql": sql}))
                .send()
                .await
                .expect("query")
                .json()
                .await
                .expect("json");
            v["rows"][0][0].as_u64().unwrap_or(0)
        }
    };
    while count("SELECT count(*) FROM spans").await < sent as u64 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if a.hold > 0 {
        println!("holding {} s: {} token {}", a.hold, s.api, s.token);
        tokio::time::sleep(Duration::from_secs(a.hold)).await;
    }
    let mut all = Vec::new();
    println!("| question | p50 ms | p95 ms |");
    println!("|---|---|---|");
    for (kind, q) in QUESTIONS {
        let mut times = Vec::new();
        for _ in 0..a.rounds {
            let t = Instant::now();
            let r = web
                .post(format!("{}/api/v1/ai/chat", s.api))
                .bearer_auth(&s.token)
                .json(&json!({"message": q}))
                .send()
                .await
                .expect("chat");
            let status = r.status();
            let v: Value = r.json().await.expect("answer");
            times.push(t.elapsed());
            assert!(status.is_success(), "{q}: {v}");
            assert_eq!(v["declined"], false, "{q}: declined: {}", v["answer"]);
        }
        times.sort();
        println!(
            "| {kind} | {:.0} | {:.0} |",
            pct(&times, 0.5).as_secs_f64() * 1e3,
            pct(&times, 0.95).as_secs_f64() * 1e3
        );
        all.extend(times);
    }
    all.sort();
    let p95 = pct(&all, 0.95);
    println!(
        "all {} answers: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        all.len(),
        pct(&all, 0.5).as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if a.check {
        assert!(
            p95 <= Duration::from_secs(1),
            "p95 {p95:?} is over the 1 s goal"
        );
    }
}
