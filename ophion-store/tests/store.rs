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
    retention_drops_old_files_by_age_and_size,
    derived_end_time_reads_back,
    promoted_keys_are_reachable_through_the_map,
);
