//! Per-query limits: row cap, timeout and memory limit each stop a query
//! with a clear, safe error.

use ophion_core::TenantId;
use ophion_store::{Error, QueryError, Store, StoreConfig};

async fn store(f: impl FnOnce(&mut StoreConfig)) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = StoreConfig::in_dir(dir.path());
    f(&mut c);
    let s = Store::open(c).await.expect("open");
    (dir, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_cap_truncates_and_says_so() {
    let (_d, s) = store(|c| c.query.max_rows = 10).await;
    let out = s
        .sql(
            &TenantId::default(),
            "SELECT * FROM generate_series(1, 100)",
        )
        .await
        .expect("query");
    assert_eq!(out.rows, 10);
    assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10);
    assert!(out.truncated);
    let out = s
        .sql(&TenantId::default(), "SELECT * FROM generate_series(1, 5)")
        .await
        .expect("query");
    assert!(!out.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_stops_a_long_query() {
    let (_d, s) = store(|c| c.query.timeout_secs = 1).await;
    let started = std::time::Instant::now();
    let r = s
        .sql(
            &TenantId::default(),
            "SELECT count(*) FROM generate_series(1, 100000000000)",
        )
        .await;
    assert!(
        matches!(r, Err(Error::Query(QueryError::Timeout(_)))),
        "{r:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("timed out"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_stops_a_hungry_query() {
    let (_d, s) = store(|c| c.query.memory_limit_bytes = 1 << 20).await;
    let r = s
        .sql(
            &TenantId::default(),
            "SELECT value, count(*) FROM generate_series(1, 3000000) GROUP BY value",
        )
        .await;
    assert!(
        matches!(r, Err(Error::Query(QueryError::OutOfMemory))),
        "{r:?}"
    );
    // Small queries still run under the same limit.
    s.sql(&TenantId::default(), "SELECT count(*) FROM spans")
        .await
        .expect("small query");
}
