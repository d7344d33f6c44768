//! Store benchmark: ingest with the WAL on, bytes on disk per span against a
//! plain pyarrow Parquet reference, peak memory, and three queries at scale
//! side by side with DuckDB on the very same Parquet files.
//!
//! Run (full size, about 10 minutes on 2 cores):
//! `cargo bench -p ophion-benches --bench store -- --spans 10000000 --python ~/.cache/ophion-venv/bin/python`
//! CI runs a small smoke pass (`--spans 200000`) so the benchmark cannot rot.
//! Results and machine: docs/benchmarks.md.

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use arrow_array::{
    ArrayRef, FixedSizeBinaryArray, RecordBatch, TimestampNanosecondArray, cast::AsArray,
    types::TimestampNanosecondType,
};
use ophion_benches::parse_next;
use ophion_core::{
    Signal, TelemetryBatch, TenantId,
    schema::col,
    testing::{Generator, splitmix64},
};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{Store, StoreConfig};
use prost::Message as _;

const T0: u64 = 1_700_000_000_000_000_000;
const POOL_BATCHES: usize = 20;
const BATCH_SPANS: usize = 10_000;

struct Args {
    spans: usize,
    dir: Option<PathBuf>,
    python: Option<String>,
    writers: usize,
    /// `--queries-only`: run the queries on the store a previous run left
    /// in `--dir`, as many times as given (for profiling them).
    queries_only: Option<usize>,
    /// Only the timed queries whose label contains this, or this query
    /// when it starts with `SELECT` (profiling).
    only: Option<String>,
    /// `--queries-only` with `--stitch`: first stitch every snapshot file,
    /// however large, into files of up to 64 MiB (fewer files, the same
    /// row groups), to measure what the files' count costs the scans.
    stitch: bool,
}

fn args() -> Args {
    let mut a = Args {
        spans: 200_000,
        dir: None,
        python: std::env::var("OPHION_PYTHON").ok(),
        writers: 4,
        queries_only: None,
        only: None,
        stitch: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--spans" => a.spans = parse_next(&mut it, a.spans),
            "--dir" => a.dir = it.next().map(PathBuf::from),
            "--python" => a.python = it.next(),
            "--writers" => a.writers = parse_next(&mut it, a.writers),
            "--queries-only" => a.queries_only = it.next().and_then(|v| v.parse().ok()),
            "--only" => a.only = it.next(),
            "--stitch" => a.stitch = true,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// A copy of `batch` with trace ids scrambled by `round` and times shifted,
/// so every round adds new traces later in time.
fn variant(batch: &RecordBatch, round: u64, shift_ns: i64) -> RecordBatch {
    let schema = batch.schema();
    let key = [
        splitmix64(round).to_le_bytes(),
        splitmix64(round ^ 0xabcdef).to_le_bytes(),
    ]
    .concat();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    let tid = schema.index_of(col::TRACE_ID).expect("trace_id");
    let ids = batch.column(tid).as_fixed_size_binary();
    let scrambled: Vec<[u8; 16]> = (0..ids.len())
        .map(|i| {
            let mut v = [0u8; 16];
            for (j, b) in ids.value(i).iter().enumerate() {
                v[j] = b ^ key[j];
            }
            v
        })
        .collect();
    cols[tid] = Arc::new(FixedSizeBinaryArray::try_from_iter(scrambled.iter()).expect("ids"));
    for name in [col::START_TIME, col::END_TIME] {
        let i = schema.index_of(name).expect("time");
        let t = batch.column(i).as_primitive::<TimestampNanosecondType>();
        let shifted: TimestampNanosecondArray = t
            .values()
            .iter()
            .map(|v| v + shift_ns)
            .collect::<Vec<_>>()
            .into();
        cols[i] = Arc::new(shifted.with_timezone("UTC"));
    }
    RecordBatch::try_new(schema, cols).expect("variant")
}

fn status_kib(field: &str) -> u64 {
    ophion_core::testing::process::status_kib(None, field)
}

fn cpu_seconds() -> f64 {
    ophion_core::testing::process::cpu_secs(None)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_query(store: &Store, sql: &str, runs: usize) -> (Duration, usize) {
    let t = TenantId::default();
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let out = store
            .sql(&t, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        times.push(start.elapsed());
        rows = out.rows;
    }
    (median(times), rows)
}

fn dir_bytes(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            total += if path.is_dir() {
                dir_bytes(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            };
        }
    }
    total
}

/// A plain reference table of the same spans, in arrival order, written as
/// an Arrow IPC file for pyarrow: ids as fixed-size binary, every span and
/// resource attribute (promoted ones included) in string maps.
fn reference_ipc(batches: &[RecordBatch], signal: Signal, path: &Path) {
    use arrow_array::builder::{MapBuilder, StringBuilder};
    let first = &batches[0];
    let schema = first.schema();
    let keep: &[&str] = match signal {
        Signal::Traces => &[
            col::TRACE_ID,
            col::SPAN_ID,
            col::PARENT_SPAN_ID,
            col::NAME,
            col::KIND,
            col::START_TIME,
            col::END_TIME,
            col::STATUS_CODE,
            col::STATUS_MESSAGE,
            col::SERVICE_NAME,
            col::SCOPE_NAME,
            col::SCOPE_VERSION,
        ],
        _ => &[
            col::TIMESTAMP,
            col::OBSERVED_TIMESTAMP,
            col::SEVERITY_NUMBER,
            col::SEVERITY_TEXT,
            col::BODY,
            col::TRACE_ID,
            col::SPAN_ID,
            col::FLAGS,
            col::SERVICE_NAME,
            col::SCOPE_NAME,
        ],
    };
    let mut out_fields: Vec<arrow_schema::Field> = keep
        .iter()
        .map(|c| schema.field_with_name(c).expect("field").clone())
        .collect();
    out_fields.push(arrow_schema::Field::new(
        "attributes",
        ophion_core::schema::attributes_type(),
        false,
    ));
    out_fields.push(arrow_schema::Field::new(
        "resource_attributes",
        ophion_core::schema::attributes_type(),
        false,
    ));
    let out_schema = Arc::new(arrow_schema::Schema::new(out_fields));
    let file = std::fs::File::create(path).expect("ipc file");
    let mut w = arrow_ipc::writer::FileWriter::try_new(file, &out_schema).expect("ipc writer");
    for b in batches {
        let mut cols: Vec<ArrayRef> = keep
            .iter()
            .map(|c| Arc::clone(b.column_by_name(c).expect("col")))
            .collect();
        for (map_col, level) in [
            (col::ATTRIBUTES, ophion_core::semconv::Level::Span),
            (
                col::RESOURCE_ATTRIBUTES,
                ophion_core::semconv::Level::Resource,
            ),
        ] {
            // Logs have promoted columns for resource attributes only.
            let has_columns =
                signal == Signal::Traces || level == ophion_core::semconv::Level::Resource;
            let mut mb = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
            let maps = b.column_by_name(map_col).expect("map").as_map();
            for row in 0..b.num_rows() {
                // Promoted attributes go back into the map, as a plain layout keeps them.
                for p in ophion_core::semconv::promoted(level).filter(|_| has_columns) {
                    let Some(c) = b.column_by_name(p.column) else {
                        continue;
                    };
                    let v = arrow_cast::display::array_value_to_string(c, row).unwrap_or_default();
                    if c.is_valid(row) {
                        mb.keys().append_value(p.keys[0]);
                        mb.values().append_value(v);
                    }
                }
                let entries = maps.value(row);
                let k = entries.column(0).as_string::<i32>();
                let v = entries.column(1).as_string::<i32>();
                for i in 0..entries.len() {
                    mb.keys().append_value(k.value(i));
                    mb.values().append_option(v.is_valid(i).then(|| v.value(i)));
                }
                mb.append(true).expect("map row");
            }
            cols.push(Arc::new(mb.finish()));
        }
        w.write(&RecordBatch::try_new(Arc::clone(&out_schema), cols).expect("ref batch"))
            .expect("write");
    }
    w.finish().expect("finish");
}

use arrow_array::Array as _;

/// Bytes per log record: Ophion against a plain pyarrow file of the same
/// web-server log lines.
async fn logs_reference(python: &str, dir: &Path) {
    let mut g = Generator::new(7, T0);
    let batches: Vec<RecordBatch> = (0..20)
        .map(|_| {
            convert::logs(
                &g.logs(10_000),
                &Limits::default(),
                TimeWindow::ALL,
                T0 as i64,
            )
            .batch
            .expect("rows")
        })
        .collect();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let ipc = dir.join("reference-logs.arrow");
    reference_ipc(&batches, Signal::Logs, &ipc);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reference_parquet.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&ipc)
        .arg(dir.join("reference-logs.parquet"))
        .output()
        .expect("python");
    let Ok(reference) = String::from_utf8_lossy(&out.stdout).trim().parse::<f64>() else {
        // A benchmark without its reference measures nothing: fail.
        panic!(
            "logs reference: pyarrow failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let mut c = StoreConfig::in_dir(tmp.path());
    c.buffer.flush_interval_secs = 3600;
    c.retention.logs_days = 0;
    let s = Store::open(c).await.expect("open");
    for b in &batches {
        s.write(
            &TenantId::default(),
            TelemetryBatch::new(Signal::Logs, b.clone()).expect("schema"),
        )
        .await
        .expect("write");
    }
    s.flush().await.expect("flush");
    s.compact().await.expect("compact");
    let ophion = s.files().iter().map(|f| f.bytes).sum::<u64>() as f64;
    println!(
        "same {rows} log records: pyarrow reference {:.1} bytes/record, Ophion {:.1} bytes/record, ratio {:.2}",
        reference / rows as f64,
        ophion / rows as f64,
        ophion / reference
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let (dir, _tmp) = ophion_benches::work_dir(a.dir.as_deref());
    if let Some(rounds) = a.queries_only {
        assert!(
            a.dir.is_some(),
            "--queries-only needs the --dir of an earlier run"
        );
        return reopen(
            &dir,
            a.python.as_deref(),
            rounds,
            a.only.as_deref(),
            a.stitch,
        )
        .await;
    }
    let data = dir.join("store");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!(
        "# store benchmark: {} spans, {} writers, dir {}",
        a.spans,
        a.writers,
        dir.display()
    );

    // A pool of converted spans; rounds reuse it with new trace ids and times.
    let mut g = Generator::new(42, T0);
    let mut pool = Vec::new();
    let mut otlp_bytes = 0usize;
    let mut otlp_zstd = 0usize;
    let mut pool_spans = 0usize;
    for _ in 0..POOL_BATCHES {
        let req = g.traces(BATCH_SPANS);
        let encoded = req.encode_to_vec();
        otlp_bytes += encoded.len();
        otlp_zstd += zstd::bulk::compress(&encoded, 3).expect("zstd").len();
        let c = convert::traces(&req, &Limits::default(), TimeWindow::ALL);
        let b = c.batch.expect("rows");
        pool_spans += b.num_rows();
        pool.push(b);
    }
    let times = pool.iter().flat_map(|b| {
        b.column_by_name(col::START_TIME)
            .expect("t")
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec()
    });
    let pool_span_ns = times.clone().max().unwrap_or(0) - times.min().unwrap_or(0) + 1_000_000_000;

    let store = Store::open(bench_config(&data)).await.expect("open");
    let t = TenantId::default();
    let rounds = a.spans.div_ceil(pool_spans);
    let total_spans = rounds * pool_spans;
    let (tx, rx) = async_channel::bounded::<TelemetryBatch>(a.writers * 2);
    let mut writers = Vec::new();
    for _ in 0..a.writers {
        let (store, rx, t) = (store.clone(), rx.clone(), t.clone());
        writers.push(tokio::spawn(async move {
            while let Ok(b) = rx.recv().await {
                loop {
                    match store.write(&t, b.clone()).await {
                        Ok(()) => break,
                        Err(e) if e.is_retryable() => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Err(e) => panic!("write: {e}"),
                    }
                }
            }
        }));
    }
    // Sample resident memory while ingesting.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut max = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(status_kib("VmRSS:"));
                std::thread::sleep(Duration::from_millis(100));
            }
            max
        })
    };
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let mut trace_ids: Vec<String> = Vec::new();
    for r in 0..rounds as u64 {
        for b in &pool {
            let v = tokio::task::block_in_place(|| variant(b, r, r as i64 * pool_span_ns));
            if trace_ids.len() < 20 && r % (rounds as u64 / 20).max(1) == 0 {
                let ids = v
                    .column_by_name(col::TRACE_ID)
                    .expect("ids")
                    .as_fixed_size_binary();
                trace_ids.push(hex::encode(ids.value(ids.len() / 2)));
            }
            tx.send(TelemetryBatch::new(Signal::Traces, v).expect("schema"))
                .await
                .expect("send");
        }
    }
    drop(tx);
    for w in writers {
        w.await.expect("writer");
    }
    let ingest = started.elapsed();
    let cpu = cpu_seconds() - cpu0;
    store.flush().await.expect("flush");
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_rss_mib = sampler.join().unwrap_or(0) / 1024;
    let (cpu1, t1) = (cpu_seconds(), Instant::now());
    store.compact().await.expect("compact");
    println!(
        "compaction: {:.1} s wall, {:.1} CPU-s ({:.0} spans per CPU-second); peak RSS so far {} MiB",
        t1.elapsed().as_secs_f64(),
        cpu_seconds() - cpu1,
        total_spans as f64 / (cpu_seconds() - cpu1).max(0.001),
        status_kib("VmHWM:") / 1024
    );
    store.compact().await.expect("delete retired");
    let files = store.files();
    println!(
        "files: {} level 0, {} level 1",
        files.iter().filter(|f| f.level == 0).count(),
        files.iter().filter(|f| f.level == 1).count()
    );
    let stored = store
        .sql(&t, "SELECT count(*) FROM spans")
        .await
        .expect("count")
        .batches[0]
        .column(0)
        .as_primitive::<arrow_array::types::Int64Type>()
        .value(0) as usize;
    assert_eq!(stored, total_spans, "every written span is stored");
    let parquet_bytes: u64 = files.iter().map(|f| f.bytes).sum();
    println!(
        "ingest: {total_spans} spans in {:.1} s wall = {:.0} spans/s; {:.1} CPU-s = {:.0} spans per CPU-second (includes making variants)",
        ingest.as_secs_f64(),
        total_spans as f64 / ingest.as_secs_f64(),
        cpu,
        total_spans as f64 / cpu
    );
    println!(
        "peak RSS during ingest (sampled every 100 ms): {peak_rss_mib} MiB (buffer budget {} MiB; the bench's own span pool is {} MiB)",
        StoreConfig::default().buffer.max_bytes >> 20,
        pool.iter()
            .map(|b| b.get_array_memory_size())
            .sum::<usize>()
            >> 20
    );
    println!(
        "on disk after compaction: {} files, {:.1} bytes/span (Parquet only; {:.1} incl. metadata and WAL dir)",
        files.len(),
        parquet_bytes as f64 / total_spans as f64,
        dir_bytes(&data) as f64 / total_spans as f64
    );
    println!(
        "OTLP protobuf: {:.1} bytes/span; zstd-3 of it: {:.1} bytes/span",
        otlp_bytes as f64 / pool_spans as f64,
        otlp_zstd as f64 / pool_spans as f64
    );

    // Reference: the same pool, in arrival order, written by pyarrow.
    let ipc = dir.join("reference.arrow");
    reference_ipc(&pool, Signal::Traces, &ipc);
    let python = a.python.clone();
    // In CI the references are part of the evidence: no Python, no pass.
    assert!(
        python.is_some() || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: the pyarrow and DuckDB references need --python or OPHION_PYTHON"
    );
    if let Some(py) = &python {
        logs_reference(py, &dir).await;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/reference_parquet.py");
        let out = Command::new(py)
            .arg(script)
            .arg(&ipc)
            .arg(dir.join("reference.parquet"))
            .output()
            .expect("python");
        let text = String::from_utf8_lossy(&out.stdout);
        if let Ok(bytes) = text.trim().parse::<f64>() {
            // The same pool written to a fresh store, flushed and compacted.
            let ophion_pool = {
                let dir = tempfile::tempdir().expect("tmp");
                let mut c = StoreConfig::in_dir(dir.path());
                c.buffer.flush_interval_secs = 3600;
                c.retention.traces_days = 0;
                let s = Store::open(c).await.expect("open");
                for b in &pool {
                    s.write(
                        &t,
                        TelemetryBatch::new(Signal::Traces, b.clone()).expect("schema"),
                    )
                    .await
                    .expect("write");
                }
                s.flush().await.expect("flush");
                s.compact().await.expect("compact");
                s.files().iter().map(|f| f.bytes).sum::<u64>() as f64
            };
            println!(
                "same {pool_spans} spans: pyarrow reference {:.1} bytes/span, Ophion {:.1} bytes/span, ratio {:.2}",
                bytes / pool_spans as f64,
                ophion_pool / pool_spans as f64,
                ophion_pool / bytes
            );
        } else {
            panic!(
                "reference: pyarrow failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    queries(&store, &dir, &data, &trace_ids, python.as_deref(), 3, None).await;
}

/// The config the bench's store runs with.
fn bench_config(data: &Path) -> StoreConfig {
    let mut config = StoreConfig::in_dir(data);
    config.buffer.flush_interval_secs = 30;
    // The generated spans are from 2023: keep them.
    config.retention.traces_days = 0;
    // Compaction is measured on its own, after ingest.
    config.compaction.enabled = false;
    config
}

/// `--queries-only`: the store a previous run left, with 20 of its trace
/// ids spread over the data.
async fn reopen(dir: &Path, python: Option<&str>, rounds: usize, only: Option<&str>, stitch: bool) {
    let data = dir.join("store");
    let mut config = bench_config(&data);
    if stitch {
        config.compaction.keep_file_bytes = u64::MAX;
        config.compaction.min_files = 2;
    }
    let store = Store::open(config).await.expect("open");
    if stitch {
        let before = store.files().len();
        let merged = store.compact().await.expect("compact");
        println!(
            "stitched: {before} files -> {} ({merged} merged away)",
            store.files().len()
        );
    }
    let out = store
        .sql(
            &TenantId::default(),
            "SELECT trace_id FROM spans WHERE duration_ns % 100003 = 7 LIMIT 20",
        )
        .await
        .expect("trace ids");
    let trace_ids: Vec<String> = out
        .batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_fixed_size_binary();
            (0..ids.len())
                .map(|i| hex::encode(ids.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!trace_ids.is_empty(), "no spans in {}", data.display());
    queries(&store, dir, &data, &trace_ids, python, rounds, only).await;
}

/// The time bounds of the timed scans: the data's first hour and day,
/// `(from, hour_to, day_to)` in nanoseconds.
fn time_bounds() -> (i64, i64, i64) {
    let from = T0 as i64;
    (from, from + 3_600_000_000_000, from + 86_400_000_000_000)
}

/// The timed scans, with their labels: the store's two, then issue 20's
/// two over all the data (`duckdb_queries.py` runs them in this order).
fn timed_queries() -> [(&'static str, String); 4] {
    let (hour_from, hour_to, day_to) = time_bounds();
    [
        (
            "p50/p95/p99 by service+operation over 1 h",
            format!(
                "SELECT service_name, name, approx_percentile_cont(duration_ns, 0.5) AS p50, approx_percentile_cont(duration_ns, 0.95) AS p95, \
                 approx_percentile_cont(duration_ns, 0.99) AS p99, count(*) AS n FROM spans \
                 WHERE start_time >= to_timestamp_nanos({hour_from}) AND start_time < to_timestamp_nanos({hour_to}) GROUP BY service_name, name"
            ),
        ),
        (
            "error rate by service over a day",
            format!(
                "SELECT service_name, avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate, count(*) AS n FROM spans \
                 WHERE start_time >= to_timestamp_nanos({hour_from}) AND start_time < to_timestamp_nanos({day_to}) GROUP BY service_name"
            ),
        ),
        (
            "median and max duration by service+operation",
            "SELECT service_name, name, approx_percentile_cont(duration_ns, 0.5) AS median, max(duration_ns) AS longest \
             FROM spans GROUP BY service_name, name"
                .to_owned(),
        ),
        (
            "error spans by service",
            "SELECT service_name, count(*) AS errors FROM spans WHERE status_code = 'error' GROUP BY service_name"
                .to_owned(),
        ),
    ]
}

/// Times the queries `rounds` times over, each round followed by DuckDB's
/// on the same files, and prints each round's figures and ratios, then
/// each engine's medians over the rounds and their ratios; with `only`,
/// just the timed queries whose label contains it, and no DuckDB.
async fn queries(
    store: &Store,
    dir: &Path,
    data: &Path,
    trace_ids: &[String],
    python: Option<&str>,
    rounds: usize,
    only: Option<&str>,
) {
    if let Some(plan) = only.filter(|o| o.starts_with("EXPLAIN")) {
        ophion_benches::print_explained(store, plan, rounds).await;
        return;
    }
    if let Some(only) = only {
        for _ in 0..rounds {
            let mut chosen: Vec<(&str, String)> = timed_queries().into_iter().collect();
            if only.starts_with("SELECT") {
                chosen = vec![(only, only.to_owned())];
            }
            for (label, q) in chosen {
                if label.contains(only) {
                    let (d, _) = time_query(store, &q, 7).await;
                    println!("ophion: {label}: {:.1} ms", d.as_secs_f64() * 1e3);
                }
            }
        }
        return;
    }
    let q_trace = |id: &str| format!("SELECT * FROM spans WHERE trace_id = '{id}'");
    // DuckDB reads exactly the published files (retired ones may linger on
    // disk until running queries are done with them).
    let reference = python.map(|py| DuckDb::new(py, store, dir, data, trace_ids));
    // Per round: our figures, then DuckDB's, in the order of `names`.
    let (mut ours, mut theirs): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for q in [
            "SELECT 1".to_owned(),
            "SELECT count(*) FROM spans".to_owned(),
            "SELECT service_name, count(*) FROM spans GROUP BY service_name".to_owned(),
            "SELECT status_code, count(*) FROM spans GROUP BY status_code".to_owned(),
        ] {
            let (d, _) = time_query(store, &q, 5).await;
            println!("  {:>7.1} ms  {q}", d.as_secs_f64() * 1e3);
        }
        let mut trace_times = Vec::new();
        for id in trace_ids {
            let (d, rows) = time_query(store, &q_trace(id), 3).await;
            assert!(rows > 0, "trace {id} not found");
            trace_times.push(d);
        }
        let trace_ms = median(trace_times).as_secs_f64() * 1e3;
        let mut mine = vec![trace_ms];
        for (label, q) in timed_queries() {
            let (d, rows) = time_query(store, &q, 7).await;
            println!(
                "ophion: {label}: {:.1} ms ({rows} groups, median of 7)",
                d.as_secs_f64() * 1e3
            );
            mine.push(d.as_secs_f64() * 1e3);
        }
        println!(
            "ophion: trace by id {trace_ms:.1} ms (median of {} traces)",
            trace_ids.len()
        );
        if let Some(duck) = &reference {
            let vals = duck.round();
            println!("round {round}: {}", ratios(&mine, &vals).join(", "));
            theirs.push(vals);
        }
        ours.push(mine);
    }
    if reference.is_some() {
        // Medians over the rounds, each engine's own: noise that hits one
        // round hits both engines, which take turns.
        let med = |runs: &[Vec<f64>]| -> Vec<f64> {
            (0..runs[0].len())
                .map(|i| {
                    let mut v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                })
                .collect()
        };
        let (o, d) = (med(&ours), med(&theirs));
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "median of {rounds} rounds, ms: ophion {} | duckdb {}",
            fmt(&o),
            fmt(&d)
        );
        println!("ratio ophion/duckdb: {}", ratios(&o, &d).join(", "));
    }
}

/// `ours / theirs` for each query, labelled.
fn ratios(ours: &[f64], theirs: &[f64]) -> Vec<String> {
    let names = std::iter::once("trace by id").chain(timed_queries().map(|(label, _)| label));
    names
        .zip(ours.iter().zip(theirs))
        .map(|(n, (o, d))| format!("{n} {:.2}", o / d))
        .collect()
}

/// DuckDB on the store's published files (`duckdb_queries.py`).
struct DuckDb {
    python: String,
    args: Vec<String>,
}

impl DuckDb {
    fn new(python: &str, store: &Store, dir: &Path, data: &Path, trace_ids: &[String]) -> Self {
        let (hour_from, hour_to, day_to) = time_bounds();
        let list = dir.join("files.txt");
        let root = data.join("parquet");
        let paths: Vec<String> = store
            .files()
            .iter()
            .map(|f| root.join(&f.path).display().to_string())
            .collect();
        std::fs::write(&list, paths.join("\n")).expect("file list");
        let ids_file = dir.join("trace_ids.txt");
        std::fs::File::create(&ids_file)
            .and_then(|mut f| f.write_all(trace_ids.join("\n").as_bytes()))
            .expect("ids");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/duckdb_queries.py");
        let args = [
            script.to_owned(),
            list.display().to_string(),
            ids_file.display().to_string(),
        ]
        .into_iter()
        .chain([hour_from, hour_to, day_to].map(|t| t.to_string()))
        .collect();
        Self {
            python: python.to_owned(),
            args,
        }
    }

    /// One run of the script: its medians in milliseconds, trace by id
    /// first, then the timed queries.
    fn round(&self) -> Vec<f64> {
        let out = Command::new(&self.python)
            .args(&self.args)
            .output()
            .expect("duckdb script");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        println!("{}", text.trim());
        assert!(
            out.status.success(),
            "the DuckDB reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vals: Vec<f64> = text
            .lines()
            .find(|l| l.starts_with("duckdb_ms"))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            vals.len(),
            timed_queries().len() + 1,
            "DuckDB printed {text}"
        );
        vals
    }
}
