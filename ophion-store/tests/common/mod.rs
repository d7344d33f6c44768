#![allow(dead_code, unreachable_pub)]
//! Store scenarios shared by the local and the S3 backend: the store's public behaviour: writes are queryable at once, survive a
//! restart (from Parquet and from the log), SQL is read-only and sees one
//! tenant, ids compare with hex strings, attributes are reachable.

use std::collections::HashMap;

use arrow_array::{RecordBatch, cast::AsArray, types::Int64Type};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest,
};
use ophion_core::{Signal, TelemetryBatch, TenantId, testing::Generator};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{Error, QueryError, Store, StoreConfig};

pub const T0: u64 = 1_700_000_000_000_000_000;

pub fn spans(seed: u64, n: usize) -> (TelemetryBatch, ExportTraceServiceRequest) {
    spans_from(seed, n, T0)
}

/// Every span of `req`, in order.
pub fn each_span(
    req: &ExportTraceServiceRequest,
) -> impl Iterator<Item = &opentelemetry_proto::tonic::trace::v1::Span> {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
}

/// [`spans`] starting at `t0` (Unix nanoseconds).
pub fn spans_from(seed: u64, n: usize, t0: u64) -> (TelemetryBatch, ExportTraceServiceRequest) {
    let req = Generator::new(seed, t0).traces(n);
    let c = convert::traces(&req, &Limits::default(), TimeWindow::ALL);
    (
        TelemetryBatch::new(Signal::Traces, c.batch.expect("rows")).expect("schema"),
        req,
    )
}

pub fn logs(seed: u64, n: usize) -> TelemetryBatch {
    logs_and_request(seed, n).0
}

/// [`logs`] and the request they were converted from.
pub fn logs_and_request(seed: u64, n: usize) -> (TelemetryBatch, ExportLogsServiceRequest) {
    let req = Generator::new(seed, T0).logs(n);
    let c = convert::logs(&req, &Limits::default(), TimeWindow::ALL, T0 as i64);
    (
        TelemetryBatch::new(Signal::Logs, c.batch.expect("rows")).expect("schema"),
        req,
    )
}

fn metrics(seed: u64, n: usize) -> TelemetryBatch {
    let req = Generator::new(seed, T0).metrics(n);
    let c = convert::metrics(&req, &Limits::default(), TimeWindow::ALL);
    TelemetryBatch::new(Signal::Metrics, c.batch.expect("rows")).expect("schema")
}

pub async fn count(store: &Store, tenant: &TenantId, sql: &str) -> i64 {
    let out = store
        .sql(tenant, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    out.batches[0]
        .column(0)
        .as_primitive::<Int64Type>()
        .value(0)
}

/// The text of an `EXPLAIN` or `EXPLAIN ANALYZE` statement's plans, for
/// the default tenant.
pub async fn explain(store: &Store, sql: &str) -> String {
    let out = store.sql(&TenantId::default(), sql).await.expect("explain");
    out.batches
        .iter()
        .flat_map(|b| {
            let plans = b.column(1).as_string::<i32>();
            plans
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The local filesystem backend's configuration for a test: snapshots
/// only when the test asks, and no retention (the generated data is from
/// 2023; scenarios that test retention set it).
pub fn local(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::in_dir(dir);
    c.buffer.flush_interval_secs = 3600;
    c.retention = ophion_store::config::RetentionConfig {
        traces_days: 0,
        logs_days: 0,
        metrics_days: 0,
        max_bytes: 0,
    };
    c
}

/// A store on the local filesystem backend in a fresh directory, which
/// lives as long as the returned guard.
pub async fn open_local() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(local(dir.path())).await.expect("open");
    (dir, store)
}

/// Makes a store configuration for a fresh directory.
pub type Config = dyn Fn(&std::path::Path) -> StoreConfig + Send + Sync;

/// Runs every scenario against one backend.
pub async fn all(config: &Config) {
    rows_are_queryable_before_and_after_persisting_and_restart(config).await;
    sql_is_read_only_and_sees_one_tenant(config).await;
    ids_compare_with_hex_and_attributes_are_reachable(config).await;
    aggregates_match_an_independent_computation(config).await;
    damaged_log_tails_are_skipped_and_counted(config).await;
    compaction_merges_small_files_without_changing_results(config).await;
    compaction_keeps_large_snapshot_files(config).await;
    compaction_copies_row_groups_of_large_snapshots(config).await;
    retention_drops_old_files_by_age_and_size(config).await;
    derived_end_time_reads_back(config).await;
    promoted_keys_are_reachable_through_the_map(config).await;
    time_ranges_match_an_independent_computation(config).await;
}

pub async fn rows_are_queryable_before_and_after_persisting_and_restart(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let t = TenantId::default();
    let store = Store::open(config(dir.path())).await.expect("open");
    let (b, _) = spans(1, 300);
    let n_spans = b.num_rows() as i64;
    store.write(&t, b).await.expect("write");
    store.write(&t, logs(2, 200)).await.expect("write");
    let m = metrics(3, 100);
    let n_points = m.num_rows() as i64;
    store.write(&t, m).await.expect("write");
    // Visible at once, from memory.
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM spans").await,
        n_spans
    );
    assert_eq!(count(&store, &t, "SELECT count(*) FROM logs").await, 200);
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM metrics").await,
        n_points
    );
    store.flush().await.expect("flush");
    assert_eq!(store.buffered_bytes(), 0);
    assert!(!store.files().is_empty());
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM spans").await,
        n_spans,
        "now from Parquet"
    );
    // More rows after the snapshot stay in the log only.
    let (b2, _) = spans(4, 50);
    let n2 = b2.num_rows() as i64;
    store.write(&t, b2).await.expect("write");
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM spans").await,
        n_spans + n2,
        "buffer and files together"
    );
    drop(store);

    let store = Store::open(config(dir.path())).await.expect("reopen");
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM spans").await,
        n_spans + n2,
        "files + replayed log"
    );
    assert_eq!(count(&store, &t, "SELECT count(*) FROM logs").await, 200);
    assert!(
        store
            .stats()
            .wal_replayed_records
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    store.flush().await.expect("flush");
    drop(store);
    let store = Store::open(config(dir.path())).await.expect("reopen");
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM spans").await,
        n_spans + n2,
        "no duplicates after the log was persisted"
    );
}

pub async fn sql_is_read_only_and_sees_one_tenant(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).await.expect("open");
    let a = TenantId::new("tenant-a").expect("tenant");
    let b = TenantId::new("tenant-b").expect("tenant");
    let (batch, _) = spans(5, 100);
    let n = batch.num_rows() as i64;
    store.write(&a, batch).await.expect("write");
    store.flush().await.expect("flush");
    store.write(&a, logs(6, 10)).await.expect("write");
    assert_eq!(count(&store, &a, "SELECT count(*) FROM spans").await, n);
    assert_eq!(count(&store, &b, "SELECT count(*) FROM spans").await, 0);
    assert_eq!(
        count(
            &store,
            &b,
            "SELECT count(*) FROM (SELECT * FROM spans UNION ALL SELECT * FROM spans)"
        )
        .await,
        0
    );
    assert_eq!(count(&store, &b, "SELECT count(*) FROM logs").await, 0);
    for sql in [
        "CREATE TABLE x AS SELECT 1",
        "DROP TABLE spans",
        "INSERT INTO spans SELECT * FROM spans",
        "DELETE FROM spans",
        "COPY spans TO '/tmp/x.parquet'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
        "SELECT 1; SELECT 2",
    ] {
        match store.sql(&a, sql).await {
            Err(Error::Query(QueryError::NotReadOnly(msg) | QueryError::Invalid(msg))) => {
                assert!(
                    !msg.is_empty() && !msg.contains("backtrace"),
                    "{sql}: {msg}"
                );
            }
            other => panic!("{sql} was not refused: {other:?}"),
        }
    }
    match store.sql(&a, "SELECT nope FROM spans").await {
        Err(Error::Query(QueryError::Invalid(msg))) => assert!(msg.contains("nope"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

/// The first span of `req`'s trace id in hex, and how many spans of `req`
/// that trace has.
pub fn first_trace(req: &ExportTraceServiceRequest) -> (String, i64) {
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    let spans = each_span(req)
        .filter(|s| s.trace_id == span.trace_id)
        .count();
    (hex::encode(&span.trace_id), spans as i64)
}

pub async fn ids_compare_with_hex_and_attributes_are_reachable(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).await.expect("open");
    let t = TenantId::default();
    let (batch, req) = spans(7, 200);
    store.write(&t, batch).await.expect("write");
    let span = &req.resource_spans[0].scope_spans[0].spans[0];
    let (trace_hex, expected) = first_trace(&req);
    for phase in ["buffer", "parquet"] {
        let sql = format!("SELECT count(*) FROM spans WHERE trace_id = '{trace_hex}'");
        assert_eq!(count(&store, &t, &sql).await, expected, "{phase}");
        let upper = format!(
            "SELECT count(*) FROM spans WHERE trace_id = '{}'",
            trace_hex.to_uppercase()
        );
        assert_eq!(
            count(&store, &t, &upper).await,
            expected,
            "{phase}: hex is case-insensitive"
        );
        let span_sql = format!(
            "SELECT count(*) FROM spans WHERE span_id IN ('{}', 'zz')",
            hex::encode(&span.span_id)
        );
        assert_eq!(count(&store, &t, &span_sql).await, 1, "{phase}");
        // Ordering against a hex bound: a sample of whole traces by id.
        let bound = [0x40u8; 16];
        let below = each_span(&req)
            .filter(|s| s.trace_id.as_slice() < bound.as_slice())
            .count() as i64;
        assert!(below > 0, "the sample is not empty");
        let sampled = format!(
            "SELECT count(*) FROM spans WHERE trace_id < '{}'",
            hex::encode(bound)
        );
        assert_eq!(count(&store, &t, &sampled).await, below, "{phase}");
        assert_eq!(
            count(
                &store,
                &t,
                "SELECT count(*) FROM spans WHERE trace_id = 'not-hex'"
            )
            .await,
            0
        );
        let rows = store
            .trace(&t, span.trace_id.clone().try_into().expect("16 bytes"))
            .await
            .expect("trace");
        assert_eq!(
            rows.iter().map(RecordBatch::num_rows).sum::<usize>() as i64,
            expected
        );
        // Attributes: a non-promoted key, through map indexing.
        let out = store
            .sql(
                &t,
                "SELECT count(*) FROM spans WHERE attributes['db.namespace'] = 'shop'",
            )
            .await
            .expect("map access");
        let db_spans = out.batches[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        let expected_db = each_span(&req)
            .filter(|s| s.attributes.iter().any(|a| a.key == "db.namespace"))
            .count() as i64;
        assert_eq!(db_spans, expected_db, "{phase}");
        store.flush().await.expect("flush");
    }
}

pub async fn aggregates_match_an_independent_computation(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).await.expect("open");
    let t = TenantId::default();
    let mut expected: HashMap<String, (i64, i64, i64)> = HashMap::new(); // service -> (count, errors, total duration)
    for seed in 0..4 {
        let (batch, req) = spans(100 + seed, 500);
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .expect("service");
            for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let e = expected.entry(service.clone()).or_default();
                e.0 += 1;
                e.1 += i64::from(s.status.as_ref().is_some_and(|st| st.code == 2));
                e.2 += (s.end_time_unix_nano - s.start_time_unix_nano) as i64;
            }
        }
        store.write(&t, batch).await.expect("write");
        if seed % 2 == 0 {
            store.flush().await.expect("flush");
        }
    }
    let out = store
        .sql(
            &t,
            "SELECT service_name, count(*) AS n, sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
             sum(duration_ns) AS total FROM spans GROUP BY service_name ORDER BY service_name",
        )
        .await
        .expect("query");
    let mut got = HashMap::new();
    for b in &out.batches {
        let names = b.column(0).as_string_view();
        for i in 0..b.num_rows() {
            let n = b.column(1).as_primitive::<Int64Type>().value(i);
            let e = b.column(2).as_primitive::<Int64Type>().value(i);
            let d = b.column(3).as_primitive::<Int64Type>().value(i);
            got.insert(names.value(i).to_owned(), (n, e, d));
        }
    }
    assert_eq!(got, expected);
    assert!(!out.truncated);
    // Those groups were counted by the store's own partial aggregation
    // (`groupby`, ADR 008), not DataFusion's.
    let text = explain(
        &store,
        "EXPLAIN SELECT service_name, count(*) FROM spans GROUP BY service_name",
    )
    .await;
    assert!(text.contains("StringGroupsExec"), "{text}");
}

pub async fn damaged_log_tails_are_skipped_and_counted(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let t = TenantId::default();
    {
        let store = Store::open(config(dir.path())).await.expect("open");
        for seed in 0..3 {
            store.write(&t, logs(seed, 10)).await.expect("write");
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let wal_dir = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .expect("wal")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    let seg = segments
        .iter()
        .rev()
        .find(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .expect("segment with records")
        .clone();
    // Truncate the last record of the segment by a few bytes.
    let len = std::fs::metadata(&seg).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 5)
        .expect("truncate");
    let store = Store::open(config(dir.path()))
        .await
        .expect("reopen after a torn tail");
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM logs").await,
        20,
        "the two intact records"
    );
    assert_eq!(
        store
            .stats()
            .wal_corrupt_tails
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    store.write(&t, logs(9, 10)).await.expect("writes go on");
    drop(store);

    // Now garbage in the middle of a record of the newest segment.
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .expect("wal")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    let newest = segments
        .iter()
        .rev()
        .find(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .expect("segment")
        .clone();
    let mut bytes = std::fs::read(&newest).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&newest, &bytes).expect("write");
    let store = Store::open(config(dir.path()))
        .await
        .expect("reopen after corruption");
    // Both damaged segments are still unpersisted, so both are seen again.
    assert_eq!(
        store
            .stats()
            .wal_corrupt_tails
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM logs").await,
        20,
        "the corrupt record is skipped, the rest kept"
    );
    // Once persisted, the damaged segments are gone for good.
    store.flush().await.expect("flush");
    drop(store);
    let store = Store::open(config(dir.path())).await.expect("reopen");
    assert_eq!(
        store
            .stats()
            .wal_corrupt_tails
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(count(&store, &t, "SELECT count(*) FROM logs").await, 20);
}

pub async fn compaction_merges_small_files_without_changing_results(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let t = TenantId::default();
    let store = Store::open(config(dir.path())).await.expect("open");
    let mut total = 0;
    // Two merges' worth: compaction merges at most four files at a time.
    for seed in 0..8 {
        let (b, _) = spans(200 + seed, 100);
        total += b.num_rows() as i64;
        store.write(&t, b).await.expect("write");
        store.flush().await.expect("flush");
    }
    let before = store.files().len();
    assert!(before >= 8, "{before} files");
    let by_service = "SELECT service_name, count(*), sum(duration_ns) FROM spans GROUP BY service_name ORDER BY service_name";
    let expected = store.sql(&t, by_service).await.expect("query").batches;
    let merged = store.compact().await.expect("compact");
    assert_eq!(merged, before);
    assert!(store.files().len() < before);
    assert!(store.files().iter().all(|f| f.level == 1));
    assert_eq!(count(&store, &t, "SELECT count(*) FROM spans").await, total);
    assert_eq!(
        store.sql(&t, by_service).await.expect("query").batches,
        expected
    );
    // The retired files stay until running queries cannot need them; a
    // second pass changes nothing visible.
    store.compact().await.expect("second pass");
    assert_eq!(count(&store, &t, "SELECT count(*) FROM spans").await, total);
    drop(store);
    let store = Store::open(config(dir.path())).await.expect("reopen");
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM spans").await,
        total,
        "catalog survives restart"
    );
}

/// Large snapshot files that a merge would encode again are final as
/// written: compaction merges the small ones around them and leaves the
/// large ones, byte for byte, in place. (Files whose row groups are copied
/// are stitched whatever their size: see the next scenario.)
pub async fn compaction_keeps_large_snapshot_files(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let t = TenantId::default();
    let store = Store::open(config(dir.path())).await.expect("open");
    let mut total = 0;
    for seed in 0..4 {
        let (b, _) = spans(300 + seed, 60);
        total += b.num_rows() as i64;
        store.write(&t, b).await.expect("write");
        store.flush().await.expect("flush");
    }
    let small: Vec<_> = store.files();
    let (b, _) = spans(310, 3000);
    total += b.num_rows() as i64;
    store.write(&t, b).await.expect("write");
    store.flush().await.expect("flush");
    let large: Vec<_> = store
        .files()
        .into_iter()
        .filter(|f| !small.iter().any(|s| s.path == f.path))
        .collect();
    let threshold = large.iter().map(|f| f.bytes).min().expect("a large file");
    assert!(
        small.iter().all(|f| f.bytes < threshold),
        "the test's premise"
    );
    drop(store);

    let mut cfg = config(dir.path());
    cfg.compaction.keep_file_bytes = threshold;
    cfg.compaction.copy_min_rows = u64::MAX;
    let store = Store::open(cfg).await.expect("reopen");
    let merged = store.compact().await.expect("compact");
    assert_eq!(merged, small.len(), "every small file is merged");
    let after = store.files();
    for f in &large {
        let kept = after.iter().find(|a| a.path == f.path);
        assert!(
            kept.is_some_and(|k| k.bytes == f.bytes && k.level == 0),
            "{} is kept as written",
            f.path
        );
    }
    assert!(
        after
            .iter()
            .all(|f| !small.iter().any(|s| s.path == f.path))
    );
    assert_eq!(count(&store, &t, "SELECT count(*) FROM spans").await, total);
}

/// Snapshots with enough rows are stitched, however large: their row
/// groups are copied into the merged file as they are (one per input),
/// with bloom filters and page indexes, and every query answers as before.
pub async fn compaction_copies_row_groups_of_large_snapshots(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let t = TenantId::default();
    let mut cfg = config(dir.path());
    cfg.compaction.copy_min_rows = 50;
    // Every snapshot counts as large: copying still merges them.
    cfg.compaction.keep_file_bytes = 1;
    let store = Store::open(cfg.clone()).await.expect("open");
    let mut total = 0;
    let mut traces = Vec::new();
    for seed in 0..6 {
        let (b, req) = spans(500 + seed, 100);
        total += b.num_rows() as i64;
        let trace = &req.resource_spans[0].scope_spans[0].spans[0].trace_id;
        let in_trace = each_span(&req).filter(|s| &s.trace_id == trace).count() as i64;
        traces.push((hex::encode(trace), in_trace));
        store.write(&t, b).await.expect("write");
        store.flush().await.expect("flush");
    }
    let inputs = store.files();
    assert_eq!(inputs.len(), 6, "one file per snapshot");
    assert!(inputs.iter().all(|f| f.rows >= 50), "the test's premise");
    let by_service = "SELECT service_name, count(*), sum(duration_ns), min(start_time), max(end_time) FROM spans GROUP BY service_name ORDER BY service_name";
    let expected = store.sql(&t, by_service).await.expect("query").batches;

    // Encoded column bytes of the inputs (local backend: files on disk).
    let parquet_dir = cfg.data_dir.join("parquet");
    let chunk_bytes = |bytes: bytes::Bytes| -> i64 {
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .expect("footer");
        meta.row_groups()
            .iter()
            .map(|rg| rg.compressed_size())
            .sum()
    };
    let input_chunks: Option<i64> = inputs
        .iter()
        .map(|f| std::fs::read(parquet_dir.join(&f.path)).ok())
        .map(|b| b.map(|b| chunk_bytes(b.into())))
        .sum();

    let merged = store.compact().await.expect("compact");
    assert_eq!(merged, 6);
    let after = store.files();
    assert_eq!(after.len(), 1);
    let f = &after[0];
    assert_eq!(f.level, 1);
    assert_eq!(f.rows as i64, total);
    assert_eq!(Some(f.min_time), inputs.iter().map(|f| f.min_time).min());
    assert_eq!(Some(f.max_time), inputs.iter().map(|f| f.max_time).max());
    // One footer instead of six; nothing was compressed again.
    let input_bytes: u64 = inputs.iter().map(|f| f.bytes).sum();
    assert!(
        f.bytes < input_bytes,
        "{} bytes from {input_bytes}",
        f.bytes
    );
    assert_eq!(
        store.sql(&t, by_service).await.expect("query").batches,
        expected
    );
    for (id, n) in &traces {
        let sql = format!("SELECT count(*) FROM spans WHERE trace_id = '{id}'");
        assert_eq!(count(&store, &t, &sql).await, *n, "{sql}");
    }
    // With the local backend the file is on disk: one row group per input,
    // each with its bloom filter, statistics and page index.
    if let Ok(bytes) = std::fs::read(parquet_dir.join(&f.path)) {
        use parquet::{
            bloom_filter::Sbbf,
            file::metadata::{PageIndexPolicy, ParquetMetaDataReader},
        };
        let bytes = bytes::Bytes::from(bytes);
        assert_eq!(
            Some(chunk_bytes(bytes.clone())),
            input_chunks,
            "column chunks are copied byte for byte"
        );
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&bytes)
            .expect("page index");
        assert_eq!(meta.num_row_groups(), 6);
        assert!(meta.offset_index().is_some() && meta.column_index().is_some());
        for rg in meta.row_groups() {
            let trace_id = rg.column(0);
            assert_eq!(trace_id.column_descr().name(), "trace_id");
            let bloom = Sbbf::read_from_column_chunk(trace_id, &bytes).expect("read");
            assert!(bloom.is_some(), "every row group keeps its bloom filter");
            assert!(rg.sorting_columns().is_some_and(|c| !c.is_empty()));
        }
    }
    drop(store);
    let store = Store::open(cfg).await.expect("reopen");
    assert_eq!(count(&store, &t, "SELECT count(*) FROM spans").await, total);
}

pub async fn retention_drops_old_files_by_age_and_size(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let t = TenantId::default();
    let clock = std::sync::Arc::new(ophion_core::ManualClock::new(T0 as i64));
    let mut cfg = config(dir.path());
    cfg.retention.logs_days = 1;
    let store = Store::open_with_clock(cfg, clock.clone())
        .await
        .expect("open");
    store.write(&t, logs(1, 30)).await.expect("write"); // data around T0
    store.write(&t, metrics(2, 30)).await.expect("write");
    store.flush().await.expect("flush");
    assert_eq!(
        store.enforce_retention().await.expect("retention"),
        0,
        "nothing is old yet"
    );
    clock.advance(2 * 86_400_000_000_000); // two days later
    let retired = store.enforce_retention().await.expect("retention");
    assert!(retired >= 1);
    assert_eq!(
        count(&store, &t, "SELECT count(*) FROM logs").await,
        0,
        "logs older than a day are gone"
    );
    assert!(
        count(&store, &t, "SELECT count(*) FROM metrics").await > 0,
        "metrics keep 90 days"
    );
    drop(store);

    // Size cap: keep at most ~one file's worth per table.
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    cfg.retention.max_bytes = 1;
    let store = Store::open(cfg).await.expect("open");
    for seed in 0..3 {
        store.write(&t, logs(10 + seed, 30)).await.expect("write");
        store.flush().await.expect("flush");
    }
    let retired = store.enforce_retention().await.expect("retention");
    assert!(retired >= 3, "every file is over a 1-byte cap");
    assert_eq!(count(&store, &t, "SELECT count(*) FROM logs").await, 0);
}

/// `end_time` is not stored for spans but derived; it must read back equal
/// to what was written, from memory and from Parquet, and filter correctly.
pub async fn derived_end_time_reads_back(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).await.expect("open");
    let t = TenantId::default();
    let (b, _) = spans(300, 200);
    let expected: Vec<i64> = {
        let ends = b
            .batch()
            .column_by_name("end_time")
            .expect("end")
            .as_primitive::<arrow_array::types::TimestampNanosecondType>();
        let mut v = ends.values().to_vec();
        v.sort_unstable();
        v
    };
    let n = b.num_rows() as i64;
    store.write(&t, b).await.expect("write");
    for phase in ["buffer", "parquet"] {
        let out = store
            .sql(
                &t,
                "SELECT end_time, start_time FROM spans ORDER BY end_time",
            )
            .await
            .expect("query");
        let mut got = Vec::new();
        for batch in &out.batches {
            assert_eq!(
                batch.schema().field(0).data_type(),
                ophion_core::Signal::Traces
                    .schema()
                    .field_with_name("end_time")
                    .expect("f")
                    .data_type()
            );
            got.extend(
                batch
                    .column(0)
                    .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert_eq!(got, expected, "{phase}");
        let median = expected[expected.len() / 2];
        let sql =
            format!("SELECT count(*) FROM spans WHERE end_time <= to_timestamp_nanos({median})");
        let c = count(&store, &t, &sql).await;
        assert_eq!(
            c,
            expected.iter().filter(|e| **e <= median).count() as i64,
            "{phase}"
        );
        assert_eq!(
            count(
                &store,
                &t,
                "SELECT count(*) FROM spans WHERE end_time - start_time >= INTERVAL '0 seconds'"
            )
            .await,
            n,
            "{phase}"
        );
        let star = store
            .sql(&t, "SELECT * FROM spans LIMIT 3")
            .await
            .expect("select *");
        assert_eq!(
            star.schema.fields().len(),
            ophion_core::Signal::Traces.schema().fields().len(),
            "{phase}"
        );
        store.flush().await.expect("flush");
    }
}

/// `attributes['<key>']` works for every key, promoted to a column or not.
pub async fn promoted_keys_are_reachable_through_the_map(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).await.expect("open");
    let t = TenantId::default();
    let (b, _) = spans(400, 300);
    store.write(&t, b).await.expect("write");
    store.write(&t, logs(401, 100)).await.expect("write");
    for phase in ["buffer", "parquet"] {
        let by_column = count(
            &store,
            &t,
            "SELECT count(*) FROM spans WHERE http_route = '/api/cart'",
        )
        .await;
        assert!(by_column > 0, "{phase}");
        let by_map = count(
            &store,
            &t,
            "SELECT count(*) FROM spans WHERE attributes['http.route'] = '/api/cart'",
        )
        .await;
        assert_eq!(
            by_map, by_column,
            "{phase}: a promoted span key through the map"
        );
        let legacy = count(
            &store,
            &t,
            "SELECT count(*) FROM spans WHERE attributes['http.method'] = 'GET'",
        )
        .await;
        let current = count(
            &store,
            &t,
            "SELECT count(*) FROM spans WHERE http_request_method = 'GET'",
        )
        .await;
        assert_eq!(
            legacy, current,
            "{phase}: a legacy key reads the same column"
        );
        let status = count(
            &store,
            &t,
            "SELECT count(*) FROM spans WHERE attributes['http.response.status_code'] = '200'",
        )
        .await;
        let status_col = count(
            &store,
            &t,
            "SELECT count(*) FROM spans WHERE http_response_status_code = 200",
        )
        .await;
        assert_eq!(
            status, status_col,
            "{phase}: integer columns read as text, like map values"
        );
        let svc = count(
            &store,
            &t,
            "SELECT count(*) FROM spans s WHERE s.resource_attributes['service.name'] = 'cart'",
        )
        .await;
        assert_eq!(
            svc,
            count(
                &store,
                &t,
                "SELECT count(*) FROM spans WHERE service_name = 'cart'"
            )
            .await,
            "{phase}"
        );
        // Logs keep span-level keys in their map: the map itself is read.
        let log_routes = count(
            &store,
            &t,
            "SELECT count(*) FROM logs WHERE attributes['http.route'] IS NOT NULL",
        )
        .await;
        assert_eq!(log_routes, 100, "{phase}");
        // The output column keeps the name the user wrote.
        let out = store
            .sql(&t, "SELECT attributes['http.route'] FROM spans LIMIT 1")
            .await
            .expect("query");
        assert!(
            out.schema.field(0).name().contains("http.route"),
            "{}",
            out.schema.field(0).name()
        );
        store.flush().await.expect("flush");
    }
}

/// Time bounds are applied by the scan (not by DataFusion): files inside the
/// range are read unfiltered, files across its edges and the buffer are
/// filtered. Counts, projections without the time column and limits must
/// match the spans' own start times, at and around every file's edges.
pub async fn time_ranges_match_an_independent_computation(config: &Config) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path())).await.expect("open");
    let t = TenantId::default();
    let mut starts: Vec<i64> = Vec::new();
    let mut edges: Vec<i64> = Vec::new();
    for k in 0..4u64 {
        // Batches 40 minutes apart: files overlap hour boundaries.
        let base = T0 + k * 2_400_000_000_000;
        let req = Generator::new(300 + k, base).traces(300);
        let c = convert::traces(&req, &Limits::default(), TimeWindow::ALL);
        let mine: Vec<i64> = each_span(&req)
            .map(|s| s.start_time_unix_nano as i64)
            .collect();
        edges.extend([
            *mine.iter().min().expect("min"),
            *mine.iter().max().expect("max"),
        ]);
        starts.extend(mine);
        let batch = TelemetryBatch::new(Signal::Traces, c.batch.expect("rows")).expect("schema");
        store.write(&t, batch).await.expect("write");
        // The last batch stays in the buffer.
        if k < 3 {
            store.flush().await.expect("flush");
        }
    }
    let mut points: Vec<i64> = edges.iter().flat_map(|&e| [e - 1, e, e + 1]).collect();
    points.sort_unstable();
    let ts = |ns: i64| format!("to_timestamp_nanos({ns})");
    for (i, &from) in points.iter().enumerate().step_by(2) {
        for &to in points[i..].iter().step_by(3) {
            let expected = starts.iter().filter(|&&s| s >= from && s < to).count() as i64;
            let sql = format!(
                "SELECT count(*) FROM spans WHERE start_time >= {} AND start_time < {}",
                ts(from),
                ts(to)
            );
            assert_eq!(count(&store, &t, &sql).await, expected, "{sql}");
            let expected = starts.iter().filter(|&&s| s > from && s <= to).count() as i64;
            let sql = format!(
                "SELECT count(name) FROM spans WHERE {} < start_time AND start_time <= {} AND duration_ns >= 0",
                ts(from),
                ts(to)
            );
            assert_eq!(count(&store, &t, &sql).await, expected, "{sql}");
            // A limit must not be taken before the rows are filtered.
            let sql = format!(
                "SELECT name FROM spans WHERE start_time >= {} AND start_time < {} LIMIT 7",
                ts(from),
                ts(to)
            );
            let expected = starts
                .iter()
                .filter(|&&s| s >= from && s < to)
                .count()
                .min(7);
            let out = store.sql(&t, &sql).await.expect("limit");
            assert_eq!(out.rows, expected, "{sql}");
        }
    }
    let exact = edges[2];
    let sql = format!(
        "SELECT count(*) FROM spans WHERE start_time = {}",
        ts(exact)
    );
    let expected = starts.iter().filter(|&&s| s == exact).count() as i64;
    assert_eq!(count(&store, &t, &sql).await, expected);
}
