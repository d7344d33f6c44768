//! The store test suite on the local filesystem backend (the default).
//! `tests/s3.rs` runs the same suite against an S3-compatible server.

mod common;

use ophion_store::StoreConfig;

fn local(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::in_dir(dir);
    c.buffer.flush_interval_secs = 3600; // snapshots only when a test asks
    // The generated data is from 2023; scenarios that test retention set it.
    c.retention = ophion_store::config::RetentionConfig {
        traces_days: 0,
        logs_days: 0,
        metrics_days: 0,
        max_bytes: 0,
    };
    c
}

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
