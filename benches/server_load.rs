//! Load generator against a running `ophion-server`: replays pre-built OTLP
//! batches over gRPC, HTTP/protobuf and HTTP/JSON and reports spans/s and
//! the server's CPU microseconds per span (from `/proc/PID/stat`, counted
//! until the server is idle again, so snapshots and compaction the load
//! caused are included), its idle
//! resident memory, and the time from an acknowledged export to the span
//! being returned by a query, and the API's own cost per query (`SELECT 1`
//! round trips). The server runs on core 0 and the generator on
//! core 1 (`taskset`), with the WAL fsync on (the default).
//!
//! Run (full): `cargo build --release -p ophion-bin && cargo bench -p ophion-benches --bench server_load -- --spans 2000000`
//! Options: `--server PATH` (default: `ophion-server` next to this
//! binary's directory), `--spans N` per transport, `--concurrency C`,
//! `--transports grpc,http-proto,http-json` (which ones, in that order;
//! default all three).
//!
//! Then the cost of the text index at ingest (issue 20): `--log-lines N`
//! log lines from the log search bench's generator, as OTLP/HTTP JSON, to
//! a fresh server with `[store.buffer] text_index` on and one with it off,
//! alternately for `--log-rounds R` rounds: the server's CPU per line from
//! the first request until every line is in Parquet (snapshots and
//! compaction included) and the server is idle. Full, at the production
//! flush interval (the default, 2 s, keeps CI's smoke pass short):
//! `--spans 2000000 --log-lines 1000000 --log-rounds 3 --log-flush-secs 60`.
//! CI runs a smoke pass with the debug server (`cargo test --all-targets`).
//! Results: docs/benchmarks.md.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use ophion_benches::{files_under, lines, lines::LineGen, median, parse_next};
use ophion_core::testing::{Generator, now_ns, process, span_count};
use prost::Message as _;

struct Args {
    server: PathBuf,
    spans: usize,
    concurrency: usize,
    transports: Vec<Transport>,
    log_lines: usize,
    log_rounds: usize,
    log_flush_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        server: ophion_benches::default_server(),
        spans: 20_000,
        concurrency: 8,
        transports: vec![Transport::Grpc, Transport::HttpProto, Transport::HttpJson],
        log_lines: 20_000,
        log_rounds: 1,
        log_flush_secs: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--server" => a.server = it.next().map(PathBuf::from).unwrap_or(a.server),
            "--spans" => a.spans = parse_next(&mut it, a.spans),
            "--log-lines" => a.log_lines = parse_next(&mut it, a.log_lines),
            "--log-flush-secs" => a.log_flush_secs = parse_next(&mut it, a.log_flush_secs),
            "--log-rounds" => a.log_rounds = parse_next(&mut it, a.log_rounds),
            "--concurrency" => a.concurrency = parse_next(&mut it, a.concurrency),
            "--transports" => {
                let list = it.next().unwrap_or_default();
                a.transports = list
                    .split(',')
                    .map(|t| match t.trim() {
                        "grpc" => Transport::Grpc,
                        "http-proto" => Transport::HttpProto,
                        "http-json" => Transport::HttpJson,
                        other => panic!(
                            "--transports: unknown {other:?}; use grpc, http-proto, http-json"
                        ),
                    })
                    .collect();
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

fn cpu_secs(pid: u32) -> f64 {
    process::cpu_secs(Some(pid))
}

fn rss_mib(pid: u32) -> f64 {
    process::rss_bytes(Some(pid)) as f64 / (1024.0 * 1024.0)
}

/// The single number a `SELECT count(*) ...` answers through the API
/// (0 when the answer holds none).
async fn count(web: &reqwest::Client, api: &str, token: &str, sql: &str) -> u64 {
    let v: serde_json::Value = web
        .post(format!("{api}/api/v1/query"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    v["rows"][0][0].as_u64().unwrap_or(0)
}

/// A pre-built batch: the request, its protobuf and OTLP/JSON encodings,
/// and its span count.
type Batch = (ExportTraceServiceRequest, Vec<u8>, Vec<u8>, usize);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    Grpc,
    HttpProto,
    HttpJson,
}

struct Result_ {
    transport: Transport,
    spans: usize,
    wall: Duration,
    /// Server CPU while the generator was sending.
    sending_cpu: f64,
    /// The same plus the background work left behind, until idle.
    server_cpu: f64,
}

async fn drive(
    transport: Transport,
    batches: Arc<Vec<Batch>>,
    total_spans: usize,
    concurrency: usize,
    grpc: String,
    http: String,
    pid: u32,
) -> Result_ {
    let per_batch = batches[0].3;
    let requests = total_spans.div_ceil(per_batch);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu0 = cpu_secs(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (batches, next, grpc, http) = (
            Arc::clone(&batches),
            Arc::clone(&next),
            grpc.clone(),
            http.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(grpc)
                .await
                .expect("grpc connect");
            let web = reqwest::Client::new();
            let mut sent = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return sent;
                }
                let (req, proto, json, n) = &batches[i % batches.len()];
                loop {
                    let ok = match transport {
                        Transport::Grpc => client.export(req.clone()).await.is_ok(),
                        Transport::HttpProto | Transport::HttpJson => {
                            let (ct, body) = if transport == Transport::HttpProto {
                                ("application/x-protobuf", proto.clone())
                            } else {
                                ("application/json", json.clone())
                            };
                            web.post(format!("{http}/v1/traces"))
                                .header("content-type", ct)
                                .body(body)
                                .send()
                                .await
                                .is_ok_and(|r| r.status().is_success())
                        }
                    };
                    if ok {
                        break;
                    }
                    // Refused (overload): honour a short back-off and retry.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent += n;
            }
        }));
    }
    let mut spans = 0;
    for t in tasks {
        spans += t.await.expect("sender");
    }
    let wall = started.elapsed();
    let sending = cpu_secs(pid) - cpu0;
    // Work the load left behind (snapshots, compaction) is counted too:
    // wait until the server has been idle (under 4% of a core) for 0.5 s.
    let mut last = cpu_secs(pid);
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = cpu_secs(pid);
        if now - last < 0.02 {
            break;
        }
        last = now;
    }
    Result_ {
        transport,
        spans,
        wall,
        sending_cpu: sending,
        server_cpu: last - cpu0,
    }
}

/// A sample's value in Prometheus text (0 when absent).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let a = args();
    // Generator threads on core 1; the server goes on core 0.
    let _ = Command::new("taskset")
        .args(["-acp", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(a));
}

async fn run(a: Args) {
    let dir = tempfile::tempdir().expect("tmp");
    println!(
        "# server load benchmark: {} spans per transport, concurrency {}, server {}",
        a.spans,
        a.concurrency,
        a.server.display()
    );
    let server = ophion_benches::Started::start(
        &a.server,
        &dir.path().join("data"),
        // The ingest path alone: the continuous anomaly watch (one
        // aggregate query a minute) is measured apart, in docs/benchmarks.md.
        &[("OPHION__AI__WATCH", "false")],
        Some("0"),
    )
    .await;
    let pid = server.pid();
    let (grpc, http, api, token) = (
        server.grpc.clone(),
        server.http.clone(),
        server.api.clone(),
        server.token.clone(),
    );

    // Idle memory, after start-up settles.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib(pid);

    // Pre-built batches of about 1,000 spans: the request, its protobuf and
    // its OTLP/JSON encodings.
    let t0 = now_ns() - 300_000_000_000;
    let batches: Vec<_> = (0..32)
        .map(|i| {
            let req = Generator::new(1000 + i, t0).traces(1000);
            let proto = req.encode_to_vec();
            let json = serde_json::to_vec(&req).expect("otlp json");
            let n = span_count(&req);
            (req, proto, json, n)
        })
        .collect();
    let proto_bytes: usize = batches.iter().map(|b| b.1.len()).sum();
    let spans_per: usize = batches.iter().map(|b| b.3).sum();
    println!(
        "batches: {} of about {} spans, {:.0} bytes/span as protobuf",
        batches.len(),
        spans_per / batches.len(),
        proto_bytes as f64 / spans_per as f64
    );
    let batches = Arc::new(batches);
    let mut results = Vec::new();
    for &t in &a.transports {
        let r = drive(
            t,
            Arc::clone(&batches),
            a.spans,
            a.concurrency,
            grpc.clone(),
            http.clone(),
            pid,
        )
        .await;
        let metrics = ophion_benches::prometheus(&reqwest::Client::new(), &api).await;
        println!(
            "{:?}: {} spans in {:.2} s = {:.0} spans/s; server CPU {:.2} s while sending, {:.2} s until idle = {:.2} µs/span ({:.0} spans per server CPU-second); Parquet files so far: {} written, {} compacted",
            r.transport,
            r.spans,
            r.wall.as_secs_f64(),
            r.spans as f64 / r.wall.as_secs_f64(),
            r.sending_cpu,
            r.server_cpu,
            r.server_cpu * 1e6 / r.spans as f64,
            r.spans as f64 / r.server_cpu.max(1e-9),
            sample(&metrics, "ophion_parquet_files_written_total"),
            sample(&metrics, "ophion_parquet_files_compacted_total"),
        );
        results.push(r);
    }

    // Acknowledged -> queryable: one new trace at a time.
    let web = reqwest::Client::new();
    let mut delays = Vec::new();
    let mut probe_spans = 0;
    for i in 0..20u64 {
        let mut req = Generator::new(5000 + i, now_ns() - 1_000_000_000).traces(1);
        let id = {
            let s = &mut req.resource_spans[0].scope_spans[0].spans[0];
            s.trace_id = (0..16).map(|b| (b as u8) ^ (i as u8) ^ 0x5a).collect();
            s.trace_id.clone()
        };
        probe_spans += span_count(&req);
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let r = web
            .post(format!("{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .expect("export");
        assert!(r.status().is_success());
        let acked = Instant::now();
        loop {
            let sql = format!("SELECT count(*) FROM spans WHERE trace_id = '{hex}'");
            if count(&web, &api, &token, &sql).await > 0 {
                delays.push(acked.elapsed());
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(10),
                "not queryable after 10 s"
            );
        }
    }
    delays.sort();
    let median = delays[delays.len() / 2];
    println!(
        "idle RSS {idle:.1} MiB; acknowledged -> queryable: median {:.1} ms, max {:.1} ms (20 traces; includes one query round trip)",
        median.as_secs_f64() * 1e3,
        delays.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    // The API's own cost per query: `SELECT 1` reads nothing, so its round
    // trip is the token check, session, planning and JSON, over loopback.
    let mut trips = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = web
            .post(format!("{api}/api/v1/query"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "sql": "SELECT 1 AS one" }))
            .send()
            .await
            .expect("query");
        let status = r.status();
        let v: serde_json::Value = r.json().await.expect("json");
        trips.push(t.elapsed());
        assert!(status.is_success() && v["rows"][0][0] == 1, "{status}: {v}");
        // Under the per-user rate limit (20 a second).
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    trips.sort();
    println!(
        "API per-query overhead (SELECT 1 through POST /api/v1/query, 50 runs): median {:.2} ms, p90 {:.2} ms",
        trips[trips.len() / 2].as_secs_f64() * 1e3,
        trips[trips.len() * 9 / 10].as_secs_f64() * 1e3
    );
    let total: usize = results.iter().map(|r| r.spans).sum();
    assert_eq!(
        count(&web, &api, &token, "SELECT count(*) FROM spans").await,
        (total + probe_spans) as u64,
        "every acknowledged span is stored"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    drop(server);
    text_index_cost(&a, dir.path()).await;
}

/// The server's CPU per log line with the text index written and without,
/// alternately, and the index's share.
async fn text_index_cost(a: &Args, dir: &Path) {
    // Two hours old, so that compaction (which waits for an hour to end)
    // runs within the measurement, as it eventually does in production.
    let t0 = now_ns() - 7_200_000_000_000;
    let mut g = LineGen::new(11, a.log_lines as u64);
    let mut requests = Vec::new();
    let mut made = 0;
    while made < a.log_lines {
        let n = 4096.min(a.log_lines - made);
        let req = lines::request(&mut g, t0, made as u64, n);
        requests.push(serde_json::to_vec(&req).expect("otlp json"));
        made += n;
    }
    let requests = Arc::new(requests);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..a.log_rounds {
        for text_index in [true, false] {
            let data = dir.join(format!("logs-{round}-{text_index}"));
            let us = log_ingest(a, &data, &requests, text_index).await;
            println!(
                "log ingest, round {round}, text index {}: {us:.2} µs of server CPU per line",
                if text_index { "on" } else { "off" }
            );
            if text_index { &mut with } else { &mut without }.push(us);
            let _ = std::fs::remove_dir_all(&data);
        }
    }
    let (w, wo) = (median(with), median(without));
    println!(
        "log ingest over OTLP/HTTP JSON, {} lines, median of {}: {w:.2} µs per line with the text index, {wo:.2} without: the index costs +{:.1} %",
        a.log_lines,
        a.log_rounds,
        100.0 * (w / wo - 1.0)
    );
}

/// Sends every request to a fresh server with `[store.buffer] text_index`
/// set to `text_index`, waits until every line is in Parquet and the server
/// is idle, checks the files carry an index exactly when asked, and
/// returns the server's CPU microseconds per line.
async fn log_ingest(a: &Args, data: &Path, requests: &Arc<Vec<Vec<u8>>>, text_index: bool) -> f64 {
    let (flag, flush) = (text_index.to_string(), a.log_flush_secs.to_string());
    let server = ophion_benches::Started::start(
        &a.server,
        data,
        &[
            ("OPHION__AI__WATCH", "false"),
            ("OPHION__STORE__BUFFER__FLUSH_INTERVAL_SECS", &flush),
            ("OPHION__STORE__BUFFER__TEXT_INDEX", &flag),
        ],
        Some("0"),
    )
    .await;
    let pid = server.pid();
    let cpu0 = cpu_secs(pid);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.min(4) {
        let (requests, next, http) = (Arc::clone(requests), Arc::clone(&next), server.http.clone());
        tasks.push(tokio::spawn(async move {
            let web = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = requests.get(i) else { return };
                // Refused (overload): back off and send again.
                while !web
                    .post(format!("{http}/v1/logs"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let sending = cpu_secs(pid) - cpu0;
    // Every line in Parquet, then no CPU for 3 s: the store compacts right
    // after each snapshot, in the same pass, so the last compaction has
    // ended too.
    let total = a.log_lines;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut samples = std::collections::VecDeque::from([cpu_secs(pid)]);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        samples.push_back(cpu_secs(pid));
        if samples.len() > 7 {
            samples.pop_front();
        }
        let quiet = samples.len() == 7 && samples[6] - samples[0] < 0.03;
        if quiet && log_files(data).iter().map(|f| f.1).sum::<usize>() == total {
            break;
        }
        assert!(Instant::now() < deadline, "the lines did not reach Parquet");
    }
    let cpu = cpu_secs(pid) - cpu0;
    let metrics = ophion_benches::prometheus(&reqwest::Client::new(), &server.api).await;
    println!(
        "  text index {text_index}: {:.2} µs a line while sending, {:.2} after; {} Parquet files written, {} compacted",
        sending * 1e6 / total as f64,
        (cpu - sending) * 1e6 / total as f64,
        sample(&metrics, "ophion_parquet_files_written_total"),
        sample(&metrics, "ophion_parquet_files_compacted_total"),
    );
    let files = log_files(data);
    assert!(
        files.iter().all(|f| f.2 == text_index),
        "text_index = {text_index}, but the log files' indexes are {:?}",
        files.iter().map(|f| f.2).collect::<Vec<_>>()
    );
    drop(server);
    cpu * 1e6 / total as f64
}

/// The log Parquet files under `data`: path, rows, whether it has a text
/// index.
fn log_files(data: &Path) -> Vec<(PathBuf, usize, bool)> {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    files_under(data)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| p.to_string_lossy().contains("/logs/"))
        .filter_map(|p| {
            // A file being written or removed is counted next time.
            let reader = SerializedFileReader::new(std::fs::File::open(&p).ok()?).ok()?;
            let meta = reader.metadata();
            let indexed = ophion_store::persist::text_index_range(meta).is_some();
            Some((p, meta.file_metadata().num_rows() as usize, indexed))
        })
        .collect()
}
