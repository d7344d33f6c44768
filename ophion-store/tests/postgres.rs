//! The file catalog in PostgreSQL (Debian's `postgresql`, a throwaway
//! cluster per test): the whole store suite with the catalog there, then
//! what only a shared catalog must do: nodes writing one directory see
//! each other's files at their next query, one node maintains them at a
//! time, and two nodes can never both retire the same files.

mod common;

use std::sync::Arc;

use ophion_core::{Signal, TenantId, testing::postgres};
use ophion_store::{
    Error, Store, StoreConfig,
    catalog::{CatalogDb, NewFile, postgres::PgCatalog},
    config::{ObjectStoreConfig, Role},
};

use common::{count, local, spans};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_passes_with_the_catalog_in_postgres() {
    let pg = postgres::start(&["ophion"]);
    let url = pg.url("ophion");
    let config = move |dir: &std::path::Path| -> StoreConfig {
        let mut c = local(dir);
        c.catalog.postgres_url = url.clone();
        c.catalog.postgres_schema = postgres::schema_for(dir);
        c
    };
    common::all(&config).await;
}

/// Two nodes: their own data directories (WAL, node name), one directory
/// of Parquet files, one catalog.
fn node(pg: &postgres::Postgres, dir: &std::path::Path, shared: &std::path::Path) -> StoreConfig {
    let mut c = local(dir);
    c.object_store = ObjectStoreConfig::Directory {
        path: shared.to_path_buf(),
    };
    c.catalog.postgres_url = pg.url("ophion");
    c.catalog.postgres_schema = "cluster".into();
    c.compaction.enabled = false;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_catalog_see_each_others_files_and_maintain_them_once() {
    let pg = postgres::start(&["ophion"]);
    let (a_dir, b_dir, shared) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let t = TenantId::default();
    let mut cfg_a = node(&pg, a_dir.path(), shared.path());
    cfg_a.compaction.copy_min_rows = 50;
    let a = Store::open(cfg_a.clone()).await.expect("open a");
    let b = Store::open(node(&pg, b_dir.path(), shared.path()))
        .await
        .expect("open b");

    // A node's rows still in its memory are its own; once published, the
    // other node's next query sees them.
    let mut total = 0;
    for seed in 0..3 {
        let (batch, _) = spans(700 + seed, 80);
        total += batch.num_rows() as i64;
        a.write(&t, batch).await.expect("write a");
        a.flush().await.expect("flush a");
    }
    let all = "SELECT count(*) FROM spans";
    let (batch, _) = spans(710, 80);
    let b_rows = batch.num_rows() as i64;
    b.write(&t, batch).await.expect("write b");
    assert_eq!(
        count(&b, &t, all).await,
        total + b_rows,
        "b: a's published files and its own buffer"
    );
    assert_eq!(count(&a, &t, all).await, total, "b's buffer is b's");
    b.flush().await.expect("flush b");
    total += b_rows;
    assert_eq!(count(&a, &t, all).await, total, "a sees b's file");
    assert_eq!(count(&b, &t, all).await, total, "b sees a's files");
    let by_service =
        "SELECT service_name, count(*), sum(duration_ns) FROM spans GROUP BY 1 ORDER BY 1";
    let expected = a.sql(&t, by_service).await.expect("query").batches;

    // One node maintains at a time: a takes the lease and merges every
    // node's snapshots; b, asked too, does nothing.
    let merged = a.compact().await.expect("compact a");
    assert_eq!(merged, 4, "a merges all four snapshots, b's included");
    assert_eq!(b.files().len(), 4, "b has not looked since");
    assert_eq!(count(&b, &t, all).await, total);
    assert_eq!(b.files().len(), 1, "b's query caught up with the merge");
    assert_eq!(
        b.compact().await.expect("compact b"),
        0,
        "a holds the lease"
    );
    assert_eq!(
        b.sql(&t, by_service).await.expect("query").batches,
        expected
    );

    // A node restarted keeps its own WAL watermark: nothing is replayed
    // twice, nothing of b's is lost.
    let (batch, _) = spans(720, 40);
    let unflushed = batch.num_rows() as i64;
    b.write(&t, batch).await.expect("write b");
    drop(b);
    let b = Store::open(node(&pg, b_dir.path(), shared.path()))
        .await
        .expect("reopen b");
    assert_eq!(count(&b, &t, all).await, total + unflushed);
    assert_eq!(
        count(&a, &t, all).await,
        total,
        "b's unflushed rows are b's"
    );
    b.flush().await.expect("flush b");
    assert_eq!(count(&a, &t, all).await, total + unflushed);
    drop((a, b));

    // A node opened fresh on the same catalog sees it all.
    let c_dir = tempfile::tempdir().expect("tmp");
    let c = Store::open(node(&pg, c_dir.path(), shared.path()))
        .await
        .expect("open c");
    assert_eq!(count(&c, &t, all).await, total + unflushed);

    // Without the catalog database, queries still answer from the files
    // the node knows.
    drop(pg);
    assert_eq!(count(&c, &t, all).await, total + unflushed);
}

fn new_file(path: &str) -> NewFile {
    NewFile {
        tenant: TenantId::default(),
        signal: Signal::Traces,
        path: path.into(),
        min_time: 1,
        max_time: 2,
        rows: 10,
        bytes: 100,
        level: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_both_retire_the_same_files() {
    let pg = postgres::start(&["ophion"]);
    let url = pg.url("ophion");
    let one: Arc<dyn CatalogDb> = Arc::new(PgCatalog::connect(&url, "race").await.expect("one"));
    let two: Arc<dyn CatalogDb> = Arc::new(PgCatalog::connect(&url, "race").await.expect("two"));
    let start = one.load("n1").await.expect("load").version;
    let committed = one
        .commit("n1", &[new_file("a"), new_file("b")], &[], Some(7), 10)
        .await
        .expect("publish");
    assert_eq!(committed.version, start + 1, "one version per commit");
    let ids = committed.ids;

    // Both compact the same two files into their own merged file.
    let first = one
        .commit("n1", &[new_file("merged-1")], &ids, None, 20)
        .await;
    let second = two
        .commit("n2", &[new_file("merged-2")], &ids, None, 21)
        .await;
    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(second, Err(Error::Conflict(_))),
        "the second is refused: {second:?}"
    );
    // The refused commit changed nothing: merged-2 was not published.
    let loaded = two.load("n2").await.expect("load");
    let paths: Vec<&str> = loaded.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["merged-1"]);
    assert_eq!(loaded.watermark, 0, "n2 has no watermark");
    assert_eq!(one.load("n1").await.expect("load").watermark, 7);

    // The changes since the start say the same.
    let changes = two
        .changes_since(start)
        .await
        .expect("changes")
        .expect("known");
    let added: Vec<&str> = changes.added.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(added, ["merged-1"]);
    assert_eq!(changes.version, loaded.version);
    let none = two
        .changes_since(changes.version)
        .await
        .expect("changes")
        .expect("known");
    assert!(none.added.is_empty() && none.removed.is_empty());

    // Retirements are kept an hour, then purged; a node that far behind
    // is told to load everything again.
    let hour = 3_600_000_000_000;
    let merged = loaded.files[0].id;
    one.commit("n1", &[new_file("c")], &[merged], None, 30)
        .await
        .expect("retire merged-1");
    let c = one.load("n1").await.expect("load").files[0].id;
    let recent = two
        .changes_since(changes.version)
        .await
        .expect("changes")
        .expect("known");
    assert_eq!(recent.removed, [merged]);
    // Its object is deleted by the maintaining node once the grace is
    // over; then, an hour on, the retirement is purged.
    // (a and b were retired at 20, merged-1 at 30.)
    let path = |(id, p): &(i64, String)| (*id, p.clone());
    let early: Vec<_> = one.retired_undeleted(21).await.expect("retired");
    assert_eq!(
        early.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let due = one.retired_undeleted(31).await.expect("retired");
    assert_eq!(due.last().map(path), Some((merged, "merged-1".to_owned())));
    assert_eq!(due.len(), 3);
    assert!(one.retired_undeleted(20).await.expect("retired").is_empty());
    let ids: Vec<i64> = due.iter().map(|d| d.0).collect();
    one.mark_deleted(&ids, 32).await.expect("deleted");
    assert!(
        one.retired_undeleted(31 + hour)
            .await
            .expect("retired")
            .is_empty()
    );
    one.commit("n1", &[], &[c], None, 31 + hour)
        .await
        .expect("retire c, purging merged-1");
    assert!(
        two.changes_since(changes.version)
            .await
            .expect("changes")
            .is_none(),
        "merged-1's retirement is purged: a full load is needed"
    );

    // Leases: one holder at a time, renewable by it.
    let ttl = 60_000_000_000;
    assert!(one.lease("maintenance", "n1", 0, ttl).await.expect("lease"));
    assert!(!two.lease("maintenance", "n2", 0, ttl).await.expect("lease"));
    assert!(one.lease("maintenance", "n1", 0, ttl).await.expect("renew"));
    // Expired (a lease of 1 ns), it passes to the next asker.
    assert!(one.lease("short", "n1", 0, 1).await.expect("lease"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(two.lease("short", "n2", 0, ttl).await.expect("taken over"));

    // Heartbeats: the nodes heard of lately, with their role and address.
    one.heartbeat("n1", "ingest", "127.0.0.1:1")
        .await
        .expect("beat");
    two.heartbeat("n2", "query", "").await.expect("beat");
    one.heartbeat("n1", "ingest", "127.0.0.1:2")
        .await
        .expect("beat again");
    let nodes = two.nodes(ttl).await.expect("nodes");
    let seen: Vec<(&str, &str, &str)> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role.as_str(), n.flight.as_str()))
        .collect();
    assert_eq!(seen, [("n1", "ingest", "127.0.0.1:2"), ("n2", "query", "")]);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        one.nodes(1_000_000).await.expect("nodes").is_empty(),
        "none heard of within the last millisecond"
    );
}

/// The secret the cluster tests' nodes share.
const SECRET: &str = "cluster-secret";

/// A throwaway PostgreSQL and five directories: the shared one of Parquet
/// files (the first) and four nodes' own.
fn five_members() -> (postgres::Postgres, Vec<tempfile::TempDir>) {
    let pg = postgres::start(&["ophion"]);
    let dirs = (0..5).map(|_| tempfile::tempdir().expect("tmp")).collect();
    (pg, dirs)
}

/// A cluster node: its own data directory, the shared directory of
/// Parquet files, the catalog, a role, and Flight on a loopback port.
fn member(
    pg: &postgres::Postgres,
    dir: &std::path::Path,
    shared: &std::path::Path,
    role: Role,
    secret: &str,
) -> StoreConfig {
    let mut c = node(pg, dir, shared);
    c.catalog.postgres_schema = "members".into();
    c.cluster.role = role;
    c.cluster.secret = secret.into();
    if role.ingests() {
        c.cluster.flight_addr = "127.0.0.1:0".into();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_nodes_read_ingest_nodes_unflushed_rows_exactly_once() {
    let (pg, dirs) = five_members();
    let shared = dirs[0].path();
    let t = TenantId::default();
    let secret = SECRET;
    let i1 = Store::open(member(&pg, dirs[1].path(), shared, Role::Ingest, secret))
        .await
        .expect("open i1");
    let i2 = Store::open(member(&pg, dirs[2].path(), shared, Role::Ingest, secret))
        .await
        .expect("open i2");
    let q = Store::open(member(&pg, dirs[3].path(), shared, Role::Query, secret))
        .await
        .expect("open q");
    assert!(i1.flight_addr().is_some() && q.flight_addr().is_none());
    let all = "SELECT count(*) FROM spans";

    // Rows only in the ingest nodes' memory are found through the query
    // node, and through the other ingest node.
    let (b1, _) = spans(800, 120);
    let (b2, _) = spans(801, 90);
    let mut total = (b1.num_rows() + b2.num_rows()) as i64;
    i1.write(&t, b1).await.expect("write i1");
    i2.write(&t, b2).await.expect("write i2");
    assert_eq!(count(&q, &t, all).await, total, "q: both buffers");
    assert_eq!(count(&i1, &t, all).await, total, "i1: its own and i2's");

    // Published, the rows are read from the file and not again from
    // memory (they are kept a moment for nodes a version behind).
    i1.flush().await.expect("flush i1");
    assert_eq!(count(&q, &t, all).await, total, "no row twice");
    let by_service =
        "SELECT service_name, count(*), sum(duration_ns) FROM spans GROUP BY 1 ORDER BY 1";
    assert_eq!(
        q.sql(&t, by_service).await.expect("q").batches,
        i2.sql(&t, by_service).await.expect("i2").batches,
        "every node answers the same"
    );

    // Writes and snapshots racing queries: each count lies between the
    // rows acknowledged before the query and the rows sent when it ended.
    let acked = Arc::new(std::sync::atomic::AtomicI64::new(total));
    let sent = Arc::new(std::sync::atomic::AtomicI64::new(total));
    let writer = {
        let (i1, acked, sent, t) = (i1.clone(), acked.clone(), sent.clone(), t.clone());
        tokio::spawn(async move {
            for round in 0..30u64 {
                let (batch, _) = spans(900 + round, 40);
                let n = batch.num_rows() as i64;
                sent.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                i1.write(&t, batch).await.expect("write");
                acked.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                if round % 3 == 2 {
                    i1.flush().await.expect("flush");
                }
            }
        })
    };
    let mut queries = 0;
    while !writer.is_finished() {
        let low = acked.load(std::sync::atomic::Ordering::SeqCst);
        let got = count(&q, &t, all).await;
        let high = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            low <= got && got <= high,
            "query {queries}: {got} rows, with {low} acknowledged before and {high} sent after"
        );
        queries += 1;
    }
    writer.await.expect("writer");
    total = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(queries >= 5, "only {queries} queries ran during the writes");
    assert_eq!(count(&q, &t, all).await, total);
    assert_eq!(
        q.stats()
            .peer_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // A node without the cluster's secret is refused: it answers from the
    // files alone, and counts the failures.
    let (b3, _) = spans(802, 30);
    let unflushed = b3.num_rows() as i64;
    i2.write(&t, b3).await.expect("write i2");
    let stranger = Store::open(member(&pg, dirs[4].path(), shared, Role::Query, "wrong"))
        .await
        .expect("open stranger");
    let in_files: i64 = stranger.files().iter().map(|f| f.rows as i64).sum();
    assert_eq!(count(&stranger, &t, all).await, in_files);
    assert!(in_files < total + unflushed, "some rows are only in memory");
    assert!(
        stranger
            .stats()
            .peer_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    drop(stranger);

    // An ingest node gone: queries answer without its unflushed rows;
    // restarted, it replays its log and serves them again (at its new
    // address, known from its heartbeat).
    assert_eq!(count(&q, &t, all).await, total + unflushed);
    drop(i2);
    let without = count(&q, &t, all).await;
    assert!(
        without < total + unflushed,
        "i2's buffer is missing: {without}"
    );
    assert!(
        q.stats()
            .peer_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    let i2 = Store::open(member(&pg, dirs[2].path(), shared, Role::Ingest, secret))
        .await
        .expect("reopen i2");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(count(&q, &t, all).await, total + unflushed);
    i2.flush().await.expect("flush i2");
    i1.flush().await.expect("flush i1");
    assert_eq!(count(&q, &t, all).await, total + unflushed);
    let in_files: i64 = q.files().iter().map(|f| f.rows as i64).sum();
    assert_eq!(in_files, total + unflushed, "all in files, once");
}

/// A query node that also runs parts of the others' large scans
/// (Flight on a loopback port), splitting its own scans above
/// `bytes_per_partition` (0: never).
fn query_member(
    pg: &postgres::Postgres,
    dir: &std::path::Path,
    shared: &std::path::Path,
    secret: &str,
    bytes_per_partition: u64,
) -> StoreConfig {
    let mut c = member(pg, dir, shared, Role::Query, secret);
    c.catalog.postgres_schema = "distributed".into();
    c.cluster.flight_addr = "127.0.0.1:0".into();
    c.cluster.heartbeat_secs = 1;
    c.cluster.distribute_bytes_per_partition = bytes_per_partition;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_scans_run_across_the_query_nodes_and_answer_like_one_node() {
    use std::sync::atomic::Ordering::Relaxed;
    let (pg, dirs) = five_members();
    let shared = dirs[0].path();
    let t = TenantId::default();
    let secret = SECRET;
    // The ingest node answers every query itself: the reference.
    let mut ingest = member(&pg, dirs[1].path(), shared, Role::Ingest, secret);
    ingest.catalog.postgres_schema = "distributed".into();
    ingest.cluster.distribute_bytes_per_partition = 0;
    let i = Store::open(ingest).await.expect("open ingest");
    // Any scan of a file is "large" for q1: it always splits.
    let q1 = Store::open(query_member(&pg, dirs[2].path(), shared, secret, 1))
        .await
        .expect("open q1");
    let q2 = Store::open(query_member(&pg, dirs[3].path(), shared, secret, 0))
        .await
        .expect("open q2");

    // Six files of spans and logs, and rows still in the ingest node's
    // memory.
    for round in 0..6u64 {
        let (s, _) = spans(1000 + round, 150);
        i.write(&t, s).await.expect("write spans");
        i.write(&t, common::logs(2000 + round, 400))
            .await
            .expect("write logs");
        i.flush().await.expect("flush");
    }
    let (s, _) = spans(1100, 70);
    i.write(&t, s).await.expect("write unflushed spans");
    i.write(&t, common::logs(2100, 90))
        .await
        .expect("write unflushed logs");

    // q1 hears of q2 within a heartbeat, then splits its scans.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while q1.stats().distributed_queries.load(Relaxed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "q1 never split a scan across the query nodes"
        );
        count(&q1, &t, "SELECT count(*) FROM spans").await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let questions = [
        "SELECT count(*), count(DISTINCT trace_id), sum(duration_ns) FROM spans",
        "SELECT service_name, name, count(*), sum(duration_ns), max(duration_ns) \
         FROM spans GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT service_name, approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ns) \
         FROM spans GROUP BY 1 ORDER BY 1",
        "SELECT service_name, count(*) FROM spans WHERE status_code = 'STATUS_CODE_ERROR' \
         GROUP BY 1 ORDER BY 1",
        "SELECT trace_id, span_id, name FROM spans ORDER BY duration_ns DESC, span_id LIMIT 25",
        // Searches that match: one that matches nothing has its every
        // file pruned by the text index, and so no scan to split.
        "SELECT count(*) FROM logs WHERE body LIKE '% 500 %'",
        "SELECT count(*), max(body) FROM logs WHERE body ILIKE '%MOZILLA%'",
        "SELECT severity_text, count(*) FROM logs GROUP BY 1 ORDER BY 1",
    ];
    let before_tasks = q2.stats().worker_tasks.load(Relaxed);
    let before = q1.stats().distributed_queries.load(Relaxed);
    for sql in questions {
        let want = i.sql(&t, sql).await.expect("ingest node").batches;
        let got = q1
            .sql(&t, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(
            arrow_cast::pretty::pretty_format_batches(&got.batches)
                .expect("format")
                .to_string(),
            arrow_cast::pretty::pretty_format_batches(&want)
                .expect("format")
                .to_string(),
            "{sql}"
        );
    }
    let split = q1.stats().distributed_queries.load(Relaxed) - before;
    assert!(
        split >= questions.len() as u64 - 1,
        "only {split} of {} questions ran across the nodes",
        questions.len()
    );
    assert!(
        q2.stats().worker_tasks.load(Relaxed) > before_tasks,
        "q2 ran no part of q1's scans"
    );
    // q2 splits nothing (0 bytes per partition): small or large, its
    // queries run where they were asked.
    count(&q2, &t, "SELECT count(*) FROM spans").await;
    assert_eq!(q2.stats().distributed_queries.load(Relaxed), 0);

    // A query node with a wrong secret is refused by the others' workers:
    // its split queries run again on it alone, answer in full, and are
    // counted; the others ran nothing for it.
    let stranger = Store::open(query_member(&pg, dirs[4].path(), shared, "wrong", 1))
        .await
        .expect("open stranger");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let tasks = q2.stats().worker_tasks.load(Relaxed) + q1.stats().worker_tasks.load(Relaxed);
    // (Its Flight requests for the ingest node's memory are refused
    // too: it answers from the files.)
    let all = "SELECT count(*) FROM spans";
    let got = count(&stranger, &t, all).await;
    let in_files: i64 = stranger
        .files()
        .iter()
        .filter(|f| f.signal == Signal::Traces)
        .map(|f| f.rows as i64)
        .sum();
    assert_eq!(got, in_files);
    assert_eq!(stranger.stats().distributed_queries.load(Relaxed), 1);
    assert_eq!(stranger.stats().distributed_fallbacks.load(Relaxed), 1);
    assert_eq!(
        q2.stats().worker_tasks.load(Relaxed) + q1.stats().worker_tasks.load(Relaxed),
        tasks,
        "no worker ran a plan without the cluster's secret"
    );
    drop(stranger);

    // A query node killed: until its heartbeats are missed, splits that
    // give it a part fail and run again where they were asked; the
    // answers stay whole.
    drop(q2);
    for sql in questions {
        let want = i.sql(&t, sql).await.expect("ingest node").batches;
        let got = q1
            .sql(&t, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(got.batches, want, "{sql} without q2");
    }
    assert!(
        q1.stats().distributed_fallbacks.load(Relaxed) > 0,
        "q1 gave no part to the killed node"
    );
}

/// What the metadata's features rely on, run against both databases: the
/// same statements give the same answers, conversions and errors.
mod metadata_sql {
    use ophion_store::{
        metadata::{Metadata, Migrations, OptionalExtension as _, SqlError, sql::Value},
        params,
    };

    const THINGS: Migrations = Migrations {
        sqlite: &["CREATE TABLE things (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            size INTEGER,
            ratio REAL,
            flag INTEGER NOT NULL DEFAULT 0,
            blob BLOB
        );"],
        // Translated: identity key, BIGINT, DOUBLE PRECISION, BYTEA.
        postgres: None,
    };

    async fn exercise(m: Metadata) {
        m.migrate("things", &THINGS).await.expect("migrate");
        m.migrate("things", &THINGS).await.expect("once only");
        assert_eq!(m.version("things").await.expect("version"), 1);
        let answers = m
            .call(|c| {
                // Generated keys, numbered parameters out of order, NULLs.
                let a: i64 = c.query_row(
                    "INSERT INTO things (name, size, ratio, flag, blob) VALUES (?2, ?1, ?3, ?4, ?5) RETURNING id",
                    params![7i64, "a", 0.5f64, true, vec![0u8, 255]],
                    |r| r.get(0),
                )?;
                let b: i64 = c.query_row(
                    "INSERT INTO things (name, size, ratio) VALUES (?1, ?2, ?3) RETURNING id",
                    params!["b", None::<i64>, None::<f64>],
                    |r| r.get(0),
                )?;
                // A unique key refused, as a constraint error.
                let dup = c.execute("INSERT INTO things (name) VALUES (?1)", ["a"]);
                // Upsert, counting on the stored value.
                c.execute(
                    "INSERT INTO things (name, size) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET size = coalesce(things.size, 0) + excluded.size",
                    params!["a", 3i64],
                )?;
                // An optional filter: typed comparison first.
                let sized: Vec<String> = c.query_map(
                    "SELECT name FROM things WHERE (size = ?1 OR ?1 IS NULL) ORDER BY name",
                    params![None::<i64>],
                    |r| r.get(0),
                )?;
                let ten: Vec<String> = c.query_map(
                    "SELECT name FROM things WHERE (size = ?1 OR ?1 IS NULL) ORDER BY name",
                    [10i64],
                    |r| r.get(0),
                )?;
                let row = c.query_row(
                    "SELECT size, ratio, flag, blob, flag != 0, CAST(sum(size) OVER () AS BIGINT), count(*) OVER () FROM things WHERE id = ?1",
                    [a],
                    |r| {
                        Ok((
                            r.get::<i64>(0)?,
                            r.get::<f64>(1)?,
                            r.get::<bool>(2)?,
                            r.get::<Vec<u8>>(3)?,
                            r.get::<bool>(4)?,
                            r.get::<i64>(5)?,
                            r.get::<i64>(6)?,
                        ))
                    },
                )?;
                let nulls: (Option<i64>, Option<f64>, Value) = c.query_row(
                    "SELECT size, ratio, blob FROM things WHERE id = ?1",
                    [b],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let none = c
                    .query_row("SELECT id FROM things WHERE name = ?1", ["zzz"], |r| {
                        r.get::<i64>(0)
                    })
                    .optional()?;
                // A transaction rolled back by dropping it leaves nothing.
                {
                    let tx = c.transaction()?;
                    tx.execute("DELETE FROM things", params![])?;
                    tx.lock(7)?;
                }
                let left: i64 = c.query_row("SELECT count(*) FROM things", params![], |r| r.get(0))?;
                {
                    let tx = c.transaction()?;
                    tx.execute("DELETE FROM things WHERE id = ?1", [b])?;
                    tx.commit()?;
                }
                let after: i64 = c.query_row("SELECT count(*) FROM things", params![], |r| r.get(0))?;
                // A wrong type is a conversion error, not a wrong value.
                let wrong = c.query_row("SELECT name FROM things", params![], |r| r.get::<i64>(0));
                Ok((a, b, dup, sized, ten, row, nulls, none, left, after, wrong))
            })
            .await
            .expect("statements");
        let (a, b, dup, sized, ten, row, nulls, none, left, after, wrong) = answers;
        assert!(b > a, "keys grow: {a} {b}");
        assert!(matches!(dup, Err(SqlError::Constraint(_))), "{dup:?}");
        assert_eq!(sized, ["a", "b"]);
        assert_eq!(ten, ["a"]);
        assert_eq!(row, (10, 0.5, true, vec![0, 255], true, 10, 1));
        assert_eq!(nulls, (None, None, Value::Null));
        assert_eq!(none, None);
        assert_eq!((left, after), (2, 1));
        assert!(matches!(wrong, Err(SqlError::Conversion(_))), "{wrong:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_mean_the_same_in_sqlite_and_postgres() {
        let dir = tempfile::tempdir().expect("tmp");
        exercise(Metadata::open(&dir.path().join("meta.db")).expect("sqlite")).await;
        let pg = super::postgres::start(&["ophion"]);
        exercise(
            Metadata::connect(&pg.url("ophion"), "meta_sql")
                .await
                .expect("postgres"),
        )
        .await;
    }

    /// Nodes starting together migrate once, and appends serialized by a
    /// lock see each other's rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_migrate_once_and_serialize_under_a_lock() {
        let pg = super::postgres::start(&["ophion"]);
        let url = pg.url("ophion");
        let nodes =
            futures::future::join_all((0..4).map(|_| Metadata::connect(&url, "shared_meta"))).await;
        let nodes: Vec<Metadata> = nodes.into_iter().map(|m| m.expect("connect")).collect();
        let migrated =
            futures::future::join_all(nodes.iter().map(|m| m.migrate("things", &THINGS))).await;
        for m in migrated {
            m.expect("migrate");
        }
        // Each append reads the last size and writes the next: without the
        // lock two nodes would read the same one.
        let appends = futures::future::join_all(nodes.iter().enumerate().flat_map(|(n, m)| {
            (0..10).map(move |i| {
                m.call(move |c| {
                    let tx = c.transaction()?;
                    tx.lock(ophion_store::metadata::sql::lock_key("things"))?;
                    let last: i64 = tx.query_row(
                        "SELECT CAST(coalesce(max(size), 0) AS BIGINT) FROM things",
                        params![],
                        |r| r.get(0),
                    )?;
                    tx.execute(
                        "INSERT INTO things (name, size) VALUES (?1, ?2)",
                        params![format!("n{n}-{i}"), last + 1],
                    )?;
                    tx.commit()
                })
            })
        }))
        .await;
        for a in appends {
            a.expect("append");
        }
        let sizes: Vec<i64> = nodes[0]
            .call(|c| {
                c.query_map("SELECT size FROM things ORDER BY size", params![], |r| {
                    r.get(0)
                })
            })
            .await
            .expect("sizes");
        assert_eq!(sizes, (1..=40).collect::<Vec<i64>>());
    }

    /// PostgreSQL gone: a retryable error (the API answers 503), not a
    /// wrong answer or a hang.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_database_is_a_retryable_error() {
        let pg = super::postgres::start(&["ophion"]);
        let m = Metadata::connect(&pg.url("ophion"), "gone")
            .await
            .expect("connect");
        m.migrate("things", &THINGS).await.expect("migrate");
        drop(pg);
        for _ in 0..2 {
            let e = m
                .call(|c| {
                    c.query_row("SELECT count(*) FROM things", params![], |r| {
                        r.get::<i64>(0)
                    })
                })
                .await
                .expect_err("the database is down");
            assert!(
                matches!(e, ophion_store::Error::Metadata(SqlError::Unavailable(_))),
                "{e:?}"
            );
            assert!(e.is_retryable(), "{e}");
        }
    }
}
