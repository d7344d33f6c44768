//! The store test suite on the local filesystem backend (the default).
//! `tests/s3.rs` runs the same suite against an S3-compatible server.

mod common;

use std::collections::HashMap;

use common::local;

macro_rules! scenario {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            common::$name(&local).await;
        }
    )*};
}

scenario!(
    rows_are_queryable_before_and_after_persisting_and_restart,
    sql_is_read_only_and_sees_one_tenant,
    ids_compare_with_hex_and_attributes_are_reachable,
    aggregates_match_an_independent_computation,
    damaged_log_tails_are_skipped_and_counted,
    compaction_merges_small_files_without_changing_results,
    compaction_keeps_large_snapshot_files,
    compaction_copies_row_groups_of_large_snapshots,
    retention_drops_old_files_by_age_and_size,
    derived_end_time_reads_back,
    promoted_keys_are_reachable_through_the_map,
    time_ranges_match_an_independent_computation,
);

/// A query parses each file's footer and page index once; later queries,
/// in other sessions, reuse them and answer the same. With the cache
/// turned off nothing is kept and answers are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_footers_are_parsed_once_for_all_queries() {
    let t = ophion_core::TenantId::default();
    for cache_mb in [64, 0] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut config = local(dir.path());
        config.query.metadata_cache_mb = cache_mb;
        let store = ophion_store::Store::open(config).await.expect("open");
        let mut rows = 0;
        for seed in [3, 4] {
            let (batch, _) = common::spans(seed, 300);
            rows += batch.num_rows() as i64;
            store.write(&t, batch).await.expect("write");
            store.flush().await.expect("flush");
        }
        let files = store.files().len();
        assert_eq!(files, 2);
        assert_eq!(store.cached_footers(), 0, "nothing is read at open");
        let sql = "SELECT count(*) FROM spans WHERE duration_ns > 1000";
        let first = common::count(&store, &t, sql).await;
        assert_eq!(store.cached_footers(), if cache_mb > 0 { files } else { 0 });
        assert_eq!(common::count(&store, &t, sql).await, first);
        assert_eq!(
            common::count(&store, &t, "SELECT count(*) FROM spans").await,
            rows
        );
    }
}

/// A pruning metric of a plan's scan from `EXPLAIN ANALYZE` text:
/// `<name>=<total> total → <matched> matched` (numbers such as "60.00 K").
fn pruning_metric(text: &str, name: &str) -> (f64, f64) {
    let metric = text
        .split(&format!("{name}="))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} metric in {text}"));
    let metric = metric.split(" matched").next().expect("metric");
    let value = |s: &str| -> f64 {
        let mut words = s.split_whitespace();
        let n: f64 = words.next().and_then(|n| n.parse().ok()).expect(metric);
        n * match words.next() {
            Some("K") => 1e3,
            Some("M") => 1e6,
            _ => 1.0,
        }
    };
    let (total, matched) = metric.split_once(" total →").expect(metric);
    (value(total), value(matched))
}

/// The rows a query's scan kept after page-index pruning, and the rows it
/// looked at.
async fn page_pruning(store: &ophion_store::Store, sql: &str) -> (f64, f64) {
    let text = common::explain(store, &format!("EXPLAIN ANALYZE {sql}")).await;
    pruning_metric(&text, "page_index_rows_pruned")
}

/// A scan tests each of a query's conditions once, and still reads bloom
/// filters where they can prune (the trace id's). DataFusion pushes the
/// filter it keeps above a scan into it, beside the copy the table gave
/// the scan, so every condition used to be pruned with and evaluated twice
/// (`status_code = error AND status_code = error`); and it tested the row
/// groups' bloom filters for every query, whatever its columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_tests_each_condition_once() {
    let t = ophion_core::TenantId::default();
    let (_dir, store) = common::open_local().await;
    let (mut slow_errors, mut first_trace) = (0, None);
    for seed in [21, 22] {
        let (batch, req) = common::spans(seed, 5_000);
        for s in common::each_span(&req) {
            let error = s.status.as_ref().is_some_and(|st| st.code == 2);
            if error && s.end_time_unix_nano - s.start_time_unix_nano > 1_000_000 {
                slow_errors += 1;
            }
        }
        // A trace of the first file only.
        first_trace.get_or_insert_with(|| common::first_trace(&req));
        store.write(&t, batch).await.expect("write");
        store.flush().await.expect("flush");
    }
    assert!(slow_errors > 0, "the test's premise");
    let sql = "SELECT count(*) FROM spans WHERE status_code = 'error' AND duration_ns > 1000000";
    assert_eq!(common::count(&store, &t, sql).await, slow_errors);
    let plan = common::explain(&store, &format!("EXPLAIN {sql}")).await;
    // `predicate=<the scan's>, pruning_predicate=...`
    let predicate = plan
        .split("predicate=")
        .nth(1)
        .and_then(|p| p.strip_suffix(", pruning_"))
        .unwrap_or_else(|| panic!("no scan predicate in {plan}"));
    for column in ["status_code@", "duration_ns@"] {
        assert_eq!(predicate.matches(column).count(), 1, "{predicate}");
    }
    // A trace id still skips the file whose bloom filter lacks it (that
    // other scans read none is `scanrules`' unit test: DataFusion counts
    // the row groups as matched either way).
    let (trace, spans) = first_trace.expect("a trace");
    let sql = format!("SELECT count(*) FROM spans WHERE trace_id = '{trace}'");
    assert_eq!(common::count(&store, &t, &sql).await, spans);
    let analyzed = common::explain(&store, &format!("EXPLAIN ANALYZE {sql}")).await;
    let (total, matched) = pruning_metric(&analyzed, "row_groups_pruned_bloom_filter");
    assert!(
        total >= 2.0 && matched < total,
        "bloom filters: {matched} of {total} row groups kept"
    );
}

/// `ORDER BY start_time DESC LIMIT n`, the shape of every newest-first
/// view, reads the newest files first, and the dynamic filter of its
/// `TopK` then skips the older files by the time spans the catalog gives
/// them, before their footers are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_first_queries_skip_older_files() {
    use arrow_array::cast::AsArray as _;
    let t = ophion_core::TenantId::default();
    let (_dir, store) = common::open_local().await;
    let mut starts = Vec::new();
    for i in 0..8u64 {
        // A file an hour, oldest first.
        let (batch, req) = common::spans_from(40 + i, 300, common::T0 + i * 3_600_000_000_000);
        starts.extend(common::each_span(&req).map(|s| s.start_time_unix_nano as i64));
        store.write(&t, batch).await.expect("write");
        store.flush().await.expect("flush");
    }
    starts.sort_unstable_by(|a, b| b.cmp(a));
    let sql = "SELECT CAST(start_time AS BIGINT) AS t FROM spans ORDER BY start_time DESC LIMIT 20";
    let out = store.sql(&t, sql).await.expect("query").batches;
    let got: Vec<i64> = out
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(got, starts[..20], "the newest 20");
    let analyzed = common::explain(&store, &format!("EXPLAIN ANALYZE {sql}")).await;
    // Files skipped before their footers are read: the first file of
    // each of the two partitions, and maybe the next one opened while the
    // first is read, are kept. Without the files' time spans none was
    // skipped; without newest first, none either (every file raised the
    // bar).
    let (total, kept) = pruning_metric(&analyzed, "files_ranges_pruned_statistics");
    assert!(
        total >= 8.0 && kept <= 4.0,
        "{kept} of {total} files read: {analyzed}"
    );
}

/// A bound on the sort key (trace id) skips most pages of row groups the
/// size of a snapshot's, stitched by compaction, through the cached
/// footers, whichever query filled the cache. (At the writer's default
/// page size such a row group was one page per column, and a 1 % sample
/// of traces decoded every row.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_footers_keep_page_pruning() {
    let t = ophion_core::TenantId::default();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = local(dir.path());
    config.compaction.copy_min_rows = 50;
    let store = ophion_store::Store::open(config).await.expect("open");
    // Snapshots stitched into one file of several row groups, each sorted
    // by status and trace id, as compaction leaves them.
    for seed in 5..9 {
        let (batch, _) = common::spans(seed, 15_000);
        store.write(&t, batch).await.expect("write");
        store.flush().await.expect("flush");
    }
    assert_eq!(store.compact().await.expect("compact"), 4);
    let sql = "SELECT count(span_id) FROM spans \
               WHERE trace_id < '08000000000000000000000000000000'";
    // A query that prunes nothing by page reads the footers first.
    common::count(&store, &t, "SELECT count(*) FROM spans").await;
    for run in ["first", "again"] {
        let (total, matched) = page_pruning(&store, sql).await;
        assert!(total >= 50_000.0, "{run}: {total} rows");
        assert!(
            matched <= total / 2.0,
            "{run}: pages not pruned: {matched} of {total}"
        );
    }
}

/// Error spans are a run of each file (spans sort by status first), so a
/// search for them decodes few rows besides their own, from snapshots and
/// from stitched files alike, and counts exactly the spans sent with an
/// error status. (Sorted by trace id alone, every page held error spans
/// and the scan decoded every row.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_spans_are_read_without_the_rest() {
    let t = ophion_core::TenantId::default();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = local(dir.path());
    config.compaction.copy_min_rows = 50;
    let store = ophion_store::Store::open(config).await.expect("open");
    let mut errors = 0;
    let mut sent = 0;
    for seed in 11..15 {
        let (batch, req) = common::spans(seed, 40_000);
        let spans: Vec<_> = common::each_span(&req).collect();
        sent += spans.len();
        errors += spans
            .iter()
            .filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
            .count();
        store.write(&t, batch).await.expect("write");
        store.flush().await.expect("flush");
    }
    assert!(
        errors > 0 && errors * 20 < sent,
        "the test's premise: {errors} of {sent}"
    );
    let sql = "SELECT count(*) FROM spans WHERE status_code = 'error'";
    for stage in ["snapshots", "stitched"] {
        if stage == "stitched" {
            assert_eq!(store.compact().await.expect("compact"), 4);
        }
        assert_eq!(
            common::count(&store, &t, sql).await,
            errors as i64,
            "{stage}"
        );
        let (total, matched) = page_pruning(&store, sql).await;
        // The row groups holding error spans, cut to their pages: the run
        // itself and at most a page (4,096 rows) at each of its ends.
        assert!(
            matched <= (errors + 4 * 2 * 4096) as f64,
            "{stage}: {matched} rows decoded of {total} for {errors} error spans of {sent}"
        );
    }
}

/// A service's errors are one run of each log file (logs sort by service,
/// severity, then time), so a search for them decodes the pages of that
/// run, not every page of the service, and counts exactly the records sent.
/// (Sorted by service and time, the service's errors were spread over all
/// of its pages, and the scan decoded each of them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_errors_are_read_without_its_other_lines() {
    let t = ophion_core::TenantId::default();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = local(dir.path());
    config.buffer.max_bytes = 2 << 30;
    config.buffer.flush_bytes = 2 << 30;
    let store = ophion_store::Store::open(config).await.expect("open");
    let service = |r: &opentelemetry_proto::tonic::logs::v1::ResourceLogs| {
        r.resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .expect("service.name")
    };
    // 300,000 lines in one file: six writes, then one snapshot.
    let mut per_service: HashMap<String, (usize, usize)> = HashMap::new();
    let mut sent = 0;
    for seed in 31..37 {
        let (batch, req) = common::logs_and_request(seed, 50_000);
        sent += batch.num_rows();
        store.write(&t, batch).await.expect("write");
        for r in &req.resource_logs {
            let e = per_service.entry(service(r)).or_default();
            for l in r.scope_logs.iter().flat_map(|s| &s.log_records) {
                e.0 += 1;
                e.1 += usize::from(l.severity_number >= 17);
            }
        }
    }
    store.flush().await.expect("flush");
    assert_eq!(store.files().len(), 1, "the test's premise: one file");
    assert!(
        per_service.len() > 2,
        "the test's premise: several services"
    );
    for (name, (lines, errors)) in per_service {
        // The premise: the service's lines span more pages than the bound
        // below lets a search decode, so the old order would fail it.
        assert!(
            errors > 0 && errors + 4 * 8192 < lines,
            "{name}: {errors} errors of {lines} lines"
        );
        let sql = format!(
            "SELECT count(*) FROM logs WHERE service_name = '{name}' AND severity_number >= 17"
        );
        assert_eq!(
            common::count(&store, &t, &sql).await,
            errors as i64,
            "{name}"
        );
        let (total, matched) = page_pruning(&store, &sql).await;
        // The run of errors cut to pages of 8,192 rows: at most a page at
        // each of its ends, in each of the (64k-row) row groups it crosses.
        assert!(
            matched <= (errors + 4 * 8192) as f64,
            "{name}: {matched} rows decoded of {total} for {errors} errors of {lines} lines ({sent} sent)"
        );
    }
}

/// A crash between a file's upload and its publication leaves an object no
/// catalog entry refers to; the next start deletes it and counts it, and
/// leaves published files alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_files_are_deleted_at_start() {
    use std::sync::atomic::Ordering::Relaxed;

    let dir = tempfile::tempdir().expect("tmp");
    let t = ophion_core::TenantId::default();
    let rows;
    let published = {
        let store = ophion_store::Store::open(local(dir.path()))
            .await
            .expect("open");
        let (batch, _) = common::spans(7, 200);
        rows = batch.num_rows() as i64;
        store.write(&t, batch).await.expect("write");
        store.flush().await.expect("flush");
        store.files()
    };
    assert_eq!(published.len(), 1);
    // What a crash after the upload, before the catalog commit, leaves.
    let published_path = dir.path().join("parquet").join(&published[0].path);
    let stray = published_path.with_file_name("0000-crashed-upload.parquet");
    std::fs::copy(&published_path, &stray).expect("stray copy");

    let store = ophion_store::Store::open(local(dir.path()))
        .await
        .expect("reopen");
    assert_eq!(store.stats().orphans_deleted.load(Relaxed), 1);
    assert!(!stray.exists(), "the unpublished file is deleted");
    assert!(published_path.exists(), "the published file stays");
    assert_eq!(
        common::count(&store, &t, "SELECT count(*) FROM spans").await,
        rows
    );
}

/// Two stores on one data directory would interleave their logs: the second
/// open fails with a clear error until the first store is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_has_one_store_at_a_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = ophion_store::Store::open(local(dir.path()))
        .await
        .expect("open");
    let err = ophion_store::Store::open(local(dir.path()))
        .await
        .expect_err("second open");
    assert!(err.to_string().contains("in use"), "{err}");
    first.close().await.expect("close");
    drop(first);
    ophion_store::Store::open(local(dir.path()))
        .await
        .expect("open after the first store is gone");
}

/// A store's last handle dropped while another part of the process still
/// holds it for a moment (a background pass, a query): the next open waits
/// for the directory to be released instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_waits_for_a_store_being_dropped() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = ophion_store::Store::open(local(dir.path()))
        .await
        .expect("open");
    let t = ophion_core::TenantId::default();
    let (batch, _) = common::spans(7, 50);
    let rows = batch.num_rows() as i64;
    first.write(&t, batch).await.expect("write");
    let held = first.clone();
    drop(first);
    let released = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        drop(held);
    });
    let started = std::time::Instant::now();
    let second = ophion_store::Store::open(local(dir.path()))
        .await
        .expect("open once the last handle is dropped");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "the second store opened while the first still held the directory"
    );
    released.await.expect("task");
    assert_eq!(
        common::count(&second, &t, "SELECT count(*) FROM spans").await,
        rows,
        "the unflushed rows come back from the log"
    );
    second.close().await.expect("close");
}
