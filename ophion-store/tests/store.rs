//! The store test suite on the local filesystem backend (the default).
//! `tests/s3.rs` runs the same suite against an S3-compatible server.

mod common;

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
    // by trace id, as compaction leaves them.
    for seed in 5..9 {
        let (batch, _) = common::spans(seed, 15_000);
        store.write(&t, batch).await.expect("write");
        store.flush().await.expect("flush");
    }
    assert_eq!(store.compact().await.expect("compact"), 4);
    let sql = "EXPLAIN ANALYZE SELECT count(span_id) FROM spans \
               WHERE trace_id < '08000000000000000000000000000000'";
    // A query that prunes nothing by page reads the footers first.
    common::count(&store, &t, "SELECT count(*) FROM spans").await;
    for run in ["first", "again"] {
        let out = store.sql(&t, sql).await.expect("explain");
        let text: String = out
            .batches
            .iter()
            .flat_map(|b| {
                use arrow_array::cast::AsArray as _;
                let plans = b.column(1).as_string::<i32>();
                plans
                    .iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        let metric = text
            .split("page_index_rows_pruned=")
            .nth(1)
            .unwrap_or_else(|| panic!("{run}: no page pruning metric in {text}"));
        let metric = metric.split(" matched").next().expect("metric");
        // "<total> total → <matched> matched", numbers such as "60.00 K".
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
        let (total, matched) = (value(total), value(matched));
        assert!(total >= 50_000.0, "{run}: {metric}");
        assert!(matched <= total / 2.0, "{run}: pages not pruned: {metric}");
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
