//! `ophion-agent` against the server it forwards to, in one run
//! (release binaries under `cargo bench`):
//!
//! - idle resident memory of the agent and of the server;
//! - CPU per span: N generated shop spans sent through the agent over
//!   OTLP/gRPC as fast as it takes them, until the server has them all;
//!   the agent's CPU and the server's CPU for the same spans, per span;
//! - a server outage: the server stopped while an application keeps
//!   sending 5,000 spans/s through the agent for the outage's length; the
//!   agent's resident memory sampled every 500 ms (goal: under its
//!   `[memory] limit_bytes`, 256 MiB by default), then the server started
//!   again and the time until the agent has delivered its queue, and
//!   whether every span arrived.
//!
//! Run: `cargo build --release -p ophion-bin && cargo bench -p
//! ophion-benches --bench agent -- --full` (10-minute outage, 300,000
//! spans for CPU). Without `--full` (as in `cargo test --all-targets`): a
//! 10 s outage and 20,000 spans, goal not enforced. `--outage-secs N`,
//! `--rate N`, `--spans N` change the sizes. Results: docs/benchmarks.md.

use std::{
    io::BufRead as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use ophion_benches::{Started, default_server};
use ophion_core::testing::{Generator, free_port, now_ns, process, prometheus_sample, span_count};

/// The agent built with the bench's profile.
fn agent_binary() -> PathBuf {
    default_server().with_file_name("ophion-agent")
}

struct Agent {
    child: Child,
    grpc: String,
    admin: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(data: &std::path::Path, server: &str) -> Self {
        let mut child = Command::new(agent_binary())
            .arg("--data-dir")
            .arg(data)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
                "--server",
                server,
            ])
            .env("OPHION_AGENT__ADMIN_ADDR", "127.0.0.1:0")
            // Ten minutes at 5,000 spans/s fit (about 1.5 GB).
            .env("OPHION_AGENT__QUEUE__MAX_BYTES", "8589934592")
            .env("OPHION_AGENT__HOST_METRICS__ENABLED", "false")
            .env("OPHION_AGENT__SERVER__MAX_BACKOFF_SECS", "1")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the agent (build it first: cargo build --release -p ophion-bin)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        Self {
            child,
            grpc: format!("http://{}", v["grpc"].as_str().expect("grpc")),
            admin: format!("http://{}", v["admin"].as_str().expect("admin")),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        prometheus_sample(&text, name)
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
}

async fn stored_spans(s: &Started) -> u64 {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/query", s.api))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({"sql": "SELECT count(*) FROM spans"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("answer");
    v["rows"][0][0].as_u64().unwrap_or(0)
}

async fn until_idle(pid: u32) {
    let mut last = process::cpu_secs(Some(pid));
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = process::cpu_secs(Some(pid));
        if now - last < 0.02 {
            return;
        }
        last = now;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--full");
    let outage = arg(&args, "--outage-secs").unwrap_or(if full { 600 } else { 10 });
    let rate: u64 = arg(&args, "--rate").unwrap_or(5_000);
    let spans: usize = arg(&args, "--spans").unwrap_or(if full { 300_000 } else { 20_000 });
    let limit_bytes = 256u64 << 20;
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let grpc_at = format!("127.0.0.1:{port}");
    let server_data = dir.path().join("server");
    let s = Started::start_at(&default_server(), &server_data, &[], None, &grpc_at).await;
    let agent = Agent::start(&dir.path().join("agent"), &s.grpc);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (agent_idle, server_idle) = (
        process::rss_bytes(Some(agent.pid())) as f64 / 1048576.0,
        process::rss_bytes(Some(s.pid())) as f64 / 1048576.0,
    );
    println!(
        "# ophion-agent against ophion-server: idle RSS agent {agent_idle:.1} MiB, server {server_idle:.1} MiB"
    );

    // CPU per span, through the agent to the server.
    let mut g = Generator::new(7, now_ns() - 60_000_000_000);
    let requests: Vec<_> = (0..spans.div_ceil(500)).map(|_| g.traces(500)).collect();
    let sent: u64 = requests.iter().map(|r| span_count(r) as u64).sum();
    let (a0, s0) = (
        process::cpu_secs(Some(agent.pid())),
        process::cpu_secs(Some(s.pid())),
    );
    let t = Instant::now();
    let chunks: Vec<Vec<_>> = requests
        .chunks(requests.len().div_ceil(4))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let url = agent.grpc.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = TraceServiceClient::connect(url).await.expect("agent");
            for r in chunk {
                while c.export(r.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    while stored_spans(&s).await < sent {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    until_idle(s.pid()).await;
    let (a1, s1) = (
        process::cpu_secs(Some(agent.pid())),
        process::cpu_secs(Some(s.pid())),
    );
    let (agent_us, server_us) = ((a1 - a0) * 1e6 / sent as f64, (s1 - s0) * 1e6 / sent as f64);
    println!(
        "{sent} spans through the agent into the server in {elapsed:.1} s: agent {agent_us:.2} µs CPU per span, server {server_us:.2} µs per span (agent/server {:.2})",
        agent_us / server_us
    );

    // The outage.
    drop(s);
    let before = agent.metric("ophion_agent_exported_items_total").await;
    let mut c = TraceServiceClient::connect(agent.grpc.clone())
        .await
        .expect("agent");
    let per_tick = (rate / 10).max(1) as usize;
    let t = Instant::now();
    let mut peak = 0u64;
    let mut outage_sent = 0u64;
    let mut next_sample = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while t.elapsed() < Duration::from_secs(outage) {
        tick.tick().await;
        // Spans stamped as they would be by an app sending now (the
        // generator's own clock would run ahead of the server's window).
        g.set_clock(now_ns() - 1_000_000_000);
        let r = g.traces(per_tick);
        let n = span_count(&r) as u64;
        if c.export(r).await.is_ok() {
            outage_sent += n;
        }
        if Instant::now() >= next_sample {
            peak = peak.max(process::rss_bytes(Some(agent.pid())));
            next_sample += Duration::from_millis(500);
        }
    }
    let queued = agent.metric("ophion_agent_queue_bytes").await;
    let s = Started::start_at(&default_server(), &server_data, &[], None, &grpc_at).await;
    let t = Instant::now();
    while agent.metric("ophion_agent_queue_records").await > 0.0 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(process::rss_bytes(Some(agent.pid())));
    }
    let drain = t.elapsed().as_secs_f64();
    let delivered = agent.metric("ophion_agent_exported_items_total").await - before;
    let rejected = agent.metric("ophion_agent_rejected_items_total").await;
    // What the server acknowledged becomes queryable within a second or
    // so; after three million spans in a minute, give it two.
    let want = sent + outage_sent;
    let t = Instant::now();
    let mut stored = stored_spans(&s).await;
    while stored < want && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stored = stored_spans(&s).await;
    }
    println!(
        "the server held {stored} of {want} spans {:.1} s after the agent's queue was empty",
        t.elapsed().as_secs_f64()
    );
    let peak_mib = peak as f64 / 1048576.0;
    println!(
        "outage of {outage} s at {rate} spans/s: {outage_sent} spans acknowledged, queue {:.0} MiB on disk; agent peak RSS {peak_mib:.1} MiB (bound {} MiB); queue delivered in {drain:.1} s after the server returned; {delivered:.0} spans delivered, {rejected:.0} refused by the server, server holds {stored} of {}",
        queued / 1048576.0,
        limit_bytes >> 20,
        sent + outage_sent
    );
    println!("| measure | agent | server | ratio |\n|---|---|---|---|");
    println!(
        "| idle RSS | {agent_idle:.1} MiB | {server_idle:.1} MiB | {:.2} |",
        agent_idle / server_idle
    );
    println!(
        "| CPU per span | {agent_us:.2} µs | {server_us:.2} µs | {:.2} |",
        agent_us / server_us
    );
    println!(
        "| peak RSS during the outage | {peak_mib:.1} MiB | | bound {} MiB |",
        limit_bytes >> 20
    );
    assert!(
        delivered as u64 >= outage_sent,
        "every span acknowledged during the outage was delivered"
    );
    assert_eq!(rejected, 0.0, "the server refused none of the spans");
    assert!(stored >= sent + outage_sent, "the server holds every span");
    if full {
        assert!(peak < limit_bytes, "the agent's RSS stayed under its bound");
    }
}
