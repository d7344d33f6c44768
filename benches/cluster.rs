//! Scale figures of a cluster on this machine (docs/cluster.md), each
//! beside the single node in the same run:
//!
//! 1. **Ingest**: OTLP/gRPC spans (pre-encoded, 8 senders) into the
//!    embedded single node (SQLite catalog), one ingest node and two
//!    ingest nodes (PostgreSQL catalog, one directory of Parquet files),
//!    each node pinned to one core (`taskset`). Spans/s acknowledged, and
//!    the nodes' CPU µs per span, counted until they are idle again (so
//!    snapshots are included).
//! 2. **Distributed scan**: the two ingest nodes take `--scan-spans`
//!    spans, stop (their rows go to Parquet) and a compact node merges the
//!    files; then the same questions through the HTTP API of one query
//!    node not splitting (the single-node engine over the same files), one
//!    query node on both cores, and two query nodes on one core each
//!    splitting scans (datafusion-distributed). Answers are compared
//!    before anything is timed; median of `--runs`.
//! 3. **Catalog cost per published file** on PostgreSQL: commits of one
//!    file, and of 100 files, each with a WAL watermark; and a node
//!    catching up on 1,000 files published by another.
//!
//! Bucket: a local directory, so the figures are the nodes' own (an S3
//! server on the same two cores would be measured instead).
//!
//! Run (full): `cargo build --release -p ophion-bin && cargo bench -p ophion-benches --bench cluster -- --spans 1000000 --scan-spans 10000000`
//! Options: `--server PATH`, `--runs N` (default 5), `--catalog-files N`
//! (single-file commits timed, default 300), `--ingest-only`. CI runs a smoke pass with the
//! debug server (`cargo test --all-targets`). Results: docs/benchmarks.md.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use ophion_benches::{Started, median};
use ophion_core::{
    Signal, TenantId,
    testing::{Generator, now_ns, postgres, process, span_count},
};
use ophion_store::catalog::{CatalogDb, NewFile, postgres::PgCatalog};

struct Args {
    server: PathBuf,
    spans: usize,
    scan_spans: usize,
    runs: usize,
    catalog_files: usize,
    /// Only the ingest figures (`--ingest-only`).
    ingest_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        server: ophion_benches::default_server(),
        spans: 20_000,
        scan_spans: 20_000,
        runs: 5,
        catalog_files: 300,
        ingest_only: false,
    };
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, d: usize| v.and_then(|v| v.parse().ok()).unwrap_or(d);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--server" => a.server = it.next().map(PathBuf::from).unwrap_or(a.server),
            "--spans" => a.spans = num(it.next(), a.spans),
            "--scan-spans" => a.scan_spans = num(it.next(), a.scan_spans),
            "--runs" => a.runs = num(it.next(), a.runs).max(1),
            "--catalog-files" => a.catalog_files = num(it.next(), a.catalog_files).max(1),
            "--ingest-only" => a.ingest_only = true,
            _ => {} // cargo passes --bench
        }
    }
    a
}

fn main() {
    let a = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(a));
}

/// Pre-encoded export requests of about 500 spans each, two hours back.
fn requests(seed: u64, spans: usize) -> Arc<Vec<(ExportTraceServiceRequest, usize)>> {
    let base = now_ns() - 7_200_000_000_000;
    let mut g = Generator::new(seed, base);
    let mut out = Vec::new();
    let mut made = 0;
    while made < spans {
        let req = g.traces(500);
        let n = span_count(&req);
        made += n;
        out.push((req, n));
    }
    Arc::new(out)
}

/// Sends every request, round robin over `targets`, with 8 senders; the
/// spans acknowledged and the wall time.
async fn send(
    reqs: &Arc<Vec<(ExportTraceServiceRequest, usize)>>,
    targets: &[String],
) -> (usize, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (reqs, next) = (Arc::clone(reqs), Arc::clone(&next));
        let target = targets[i % targets.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(target)
                .await
                .expect("grpc connect");
            let mut sent = 0;
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some((req, n)) = reqs.get(i) else {
                    return sent;
                };
                // Refused (overload): back off a moment and retry.
                while client.export(req.clone()).await.is_err() {
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
    (spans, started.elapsed())
}

/// CPU seconds of `pids` until they have been idle (under 2% of a core
/// together) for half a second, from `cpu0`.
async fn cpu_until_idle(pids: &[u32], cpu0: f64) -> f64 {
    let total = || {
        pids.iter()
            .map(|p| process::cpu_secs(Some(*p)))
            .sum::<f64>()
    };
    let mut last = total();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = total();
        if now - last < 0.01 {
            break;
        }
        last = now;
    }
    last - cpu0
}

/// Cluster settings over the catalog `schema` and the directory `shared`.
fn cluster_env(pg: &str, schema: &str, shared: &Path) -> Vec<(String, String)> {
    [
        ("OPHION__AI__WATCH", "false".to_owned()),
        ("OPHION__STORE__CATALOG__POSTGRES_URL", pg.to_owned()),
        ("OPHION__STORE__CATALOG__POSTGRES_SCHEMA", schema.to_owned()),
        ("OPHION__STORE__OBJECT_STORE__KIND", "directory".to_owned()),
        (
            "OPHION__STORE__OBJECT_STORE__PATH",
            shared.display().to_string(),
        ),
        ("OPHION__STORE__CLUSTER__SECRET", "bench-secret".to_owned()),
        // The nodes share users, so they sign tokens with one key.
        ("OPHION_SIGNING_KEY", "b".repeat(64)),
        ("OPHION__STORE__CLUSTER__HEARTBEAT_SECS", "1".to_owned()),
        (
            "OPHION__STORE__CLUSTER__FLIGHT_ADDR",
            "127.0.0.1:0".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn node(
    a: &Args,
    dir: &Path,
    env: &[(String, String)],
    extra: &[(&str, &str)],
    role: &str,
    cores: Option<&str>,
) -> Started {
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    Started::start_with(
        &a.server,
        dir,
        &env,
        cores,
        "127.0.0.1:0",
        &["--role", role],
    )
    .await
}

/// One ingest configuration's figures.
struct Ingest {
    name: &'static str,
    spans: usize,
    wall: Duration,
    cpu: f64,
}

impl Ingest {
    fn print(&self, reference: f64) {
        let rate = self.spans as f64 / self.wall.as_secs_f64();
        println!(
            "| {} | {} | {:.0} | {:.2}x | {:.1} |",
            self.name,
            self.spans,
            rate,
            rate / reference,
            self.cpu * 1e6 / self.spans as f64
        );
    }
}

async fn measure_ingest(
    name: &'static str,
    nodes: &[&Started],
    reqs: &Arc<Vec<(ExportTraceServiceRequest, usize)>>,
) -> Ingest {
    let pids: Vec<u32> = nodes.iter().map(|n| n.pid()).collect();
    let cpu0: f64 = pids.iter().map(|p| process::cpu_secs(Some(*p))).sum();
    let targets: Vec<String> = nodes.iter().map(|n| n.grpc.clone()).collect();
    let (spans, wall) = send(reqs, &targets).await;
    let cpu = cpu_until_idle(&pids, cpu0).await;
    Ingest {
        name,
        spans,
        wall,
        cpu,
    }
}

/// The scan questions (over every span).
const SCANS: &[&str] = &[
    "SELECT service_name, count(*), sum(duration_ns) FROM spans GROUP BY 1 ORDER BY 1",
    "SELECT service_name, approx_percentile_cont(duration_ns, 0.99) FROM spans GROUP BY 1 ORDER BY 1",
    "SELECT service_name, count(*) FROM spans WHERE status_code = 'error' GROUP BY 1 ORDER BY 1",
    "SELECT count(*) FROM spans WHERE name LIKE '%checkout%'",
];

async fn query(web: &reqwest::Client, s: &Started, sql: &str) -> serde_json::Value {
    let r = web
        .post(format!("{}/api/v1/query", s.api))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("query");
    let status = r.status();
    let v: serde_json::Value = r.json().await.expect("json");
    assert!(status.is_success(), "{sql}: {v}");
    v["rows"].clone()
}

async fn run(a: Args) {
    println!(
        "# cluster benchmark: {} spans per ingest run, {} scanned, server {}",
        a.spans,
        a.scan_spans,
        a.server.display()
    );
    let pg = postgres::start(&["ophion"]);
    let url = pg.url("ophion");
    let root = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| root.path().join(n);
    let reqs = requests(1, a.spans);

    // 1. Ingest.
    let single = Started::start(
        &a.server,
        &dir("single"),
        &[("OPHION__AI__WATCH", "false")],
        Some("0"),
    )
    .await;
    let one = measure_ingest("single node (embedded default), 1 core", &[&single], &reqs).await;
    drop(single);
    let env1 = cluster_env(&url, "one", &dir("shared1"));
    let i = node(&a, &dir("i"), &env1, &[], "ingest", Some("0")).await;
    let ingest1 = measure_ingest("1 ingest node, 1 core", &[&i], &reqs).await;
    drop(i);
    let env2 = cluster_env(&url, "two", &dir("shared2"));
    let i1 = node(&a, &dir("i1"), &env2, &[], "ingest", Some("0")).await;
    let i2 = node(&a, &dir("i2"), &env2, &[], "ingest", Some("1")).await;
    let ingest2 = measure_ingest("2 ingest nodes, 1 core each", &[&i1, &i2], &reqs).await;
    println!("\n## ingest (OTLP/gRPC, 8 senders, the generator unpinned)\n");
    println!("| nodes | spans | spans/s | vs single | node CPU µs/span |");
    println!("|---|---|---|---|---|");
    let reference = one.spans as f64 / one.wall.as_secs_f64();
    for r in [&one, &ingest1, &ingest2] {
        r.print(reference);
    }
    if a.ingest_only {
        return;
    }

    // 2. Distributed scan: the rest of the scanned spans into the two
    // ingest nodes, then everything to Parquet, merged.
    let rest = a.scan_spans.saturating_sub(ingest2.spans);
    let mut seed = 2;
    let mut sent = ingest2.spans;
    let mut left = rest;
    while left > 0 {
        let chunk = left.min(500_000);
        let more = requests(seed, chunk);
        let (n, _) = send(&more, &[i1.grpc.clone(), i2.grpc.clone()]).await;
        sent += n;
        left = left.saturating_sub(n);
        seed += 1;
    }
    for s in [i1, i2] {
        stop(s);
    }
    let compact = node(&a, &dir("c"), &env2, &[], "compact", None).await;
    let c_cpu0 = process::cpu_secs(Some(compact.pid()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cpu_until_idle(&[compact.pid()], c_cpu0).await;
    drop(compact);
    let files = count_files(&dir("shared2"));
    let bytes = dir_bytes(&dir("shared2"));
    println!(
        "\n## distributed scan: {sent} spans in {files} Parquet files, {:.1} MB ({:.1} bytes/span)\n",
        bytes as f64 / 1e6,
        bytes as f64 / sent as f64
    );

    let web = reqwest::Client::new();
    let local = [(
        "OPHION__STORE__CLUSTER__DISTRIBUTE_BYTES_PER_PARTITION",
        "0",
    )];
    let q_one = node(&a, &dir("q0"), &env2, &local, "query", Some("0")).await;
    let mut expected = Vec::new();
    for sql in SCANS {
        expected.push(query(&web, &q_one, sql).await);
    }
    assert_eq!(
        expected[0]
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r[1].as_u64()).sum::<u64>()),
        Some(sent as u64),
        "every span is counted"
    );
    let single_core = time_scans(&web, &q_one, &expected, a.runs).await;
    drop(q_one);
    let q_both = node(&a, &dir("q0"), &env2, &local, "query", None).await;
    let both_cores = time_scans(&web, &q_both, &expected, a.runs).await;
    drop(q_both);
    let q1 = node(&a, &dir("q1"), &env2, &[], "query", Some("0")).await;
    let q2 = node(&a, &dir("q2"), &env2, &[], "query", Some("1")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let split = time_scans(&web, &q1, &expected, a.runs).await;
    let text = ophion_benches::prometheus(&web, &q1.api).await;
    let distributed =
        ophion_core::testing::prometheus_sample(&text, "ophion_distributed_queries_total");
    println!(
        "| question | 1 query node, 1 core, not split (ms) | 1 query node, 2 cores (ms) | 2 query nodes, 1 core each, split (ms) | split vs 1 core |"
    );
    println!("|---|---|---|---|---|");
    for (i, sql) in SCANS.iter().enumerate() {
        println!(
            "| `{sql}` | {:.1} | {:.1} | {:.1} | {:.2}x |",
            single_core[i],
            both_cores[i],
            split[i],
            split[i] / single_core[i]
        );
    }
    let asked = SCANS.len() * (a.runs + 1);
    println!("\n{distributed} of q1's {asked} queries were split across the query nodes");
    // Scans over more than one partition's bytes (16 MiB by default; q1
    // has one core) are split, as the product runs them.
    if bytes > 16 << 20 {
        assert_eq!(distributed as usize, asked, "every large scan is split");
    }
    drop((q1, q2));

    // 3. The catalog's cost per published file.
    catalog_cost(&url, a.catalog_files).await;
}

/// Milliseconds per question (median of `runs`), each answer checked.
async fn time_scans(
    web: &reqwest::Client,
    s: &Started,
    expected: &[serde_json::Value],
    runs: usize,
) -> Vec<f64> {
    for (sql, want) in SCANS.iter().zip(expected) {
        assert_eq!(&query(web, s, sql).await, want, "{sql}");
    }
    let mut times = vec![Vec::new(); SCANS.len()];
    for _ in 0..runs {
        for (i, sql) in SCANS.iter().enumerate() {
            let t = Instant::now();
            query(web, s, sql).await;
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.into_iter().map(median).collect()
}

/// SIGTERM, and the wait for a clean stop (rows written to Parquet).
fn stop(mut s: Started) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = s.child.try_wait() {
            assert!(status.success(), "a node stopped with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("a node did not stop within 10 minutes");
}

fn count_files(dir: &Path) -> usize {
    walk(dir)
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count()
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn walk(dir: &Path) -> impl Iterator<Item = PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    let mut out = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.into_iter()
}

fn new_file(i: usize) -> NewFile {
    NewFile {
        tenant: TenantId::default(),
        signal: Signal::Traces,
        path: format!("bench/{i:08}.parquet"),
        min_time: i as i64,
        max_time: i as i64 + 1,
        rows: 10_000,
        bytes: 400_000,
        level: 0,
    }
}

/// Commits of one file and of 100 files (each moving a WAL watermark),
/// and a second node catching up on what the first published.
async fn catalog_cost(url: &str, files: usize) {
    let writer = PgCatalog::connect(url, "catalog_bench")
        .await
        .expect("connect");
    let reader = PgCatalog::connect(url, "catalog_bench")
        .await
        .expect("connect");
    let start = reader.load("reader").await.expect("load").version;
    let mut one = Vec::new();
    for i in 0..files {
        let t = Instant::now();
        writer
            .commit("writer", &[new_file(i)], &[], Some(i as u64), i as i64)
            .await
            .expect("commit");
        one.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut hundred = Vec::new();
    for round in 0..10 {
        let batch: Vec<NewFile> = (0..100)
            .map(|j| new_file(1_000_000 + round * 100 + j))
            .collect();
        let t = Instant::now();
        writer
            .commit("writer", &batch, &[], Some(1_000_000 + round as u64), 0)
            .await
            .expect("commit");
        hundred.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    let changes = reader
        .changes_since(start)
        .await
        .expect("changes")
        .expect("known");
    let catch_up = t.elapsed().as_secs_f64() * 1e3;
    let caught = changes.added.len();
    println!("\n## catalog on PostgreSQL\n");
    println!("| operation | median ms | ms per file |");
    println!("|---|---|---|");
    let m1 = median(one);
    let m100 = median(hundred);
    println!("| commit of 1 file + watermark ({files} commits) | {m1:.2} | {m1:.2} |");
    println!(
        "| commit of 100 files + watermark (10 commits) | {m100:.2} | {:.3} |",
        m100 / 100.0
    );
    println!(
        "| a node catching up on {caught} files | {catch_up:.1} | {:.4} |",
        catch_up / caught.max(1) as f64
    );
}
