//! Crash safety: a child process ingests numbered batches and reports each
//! acknowledged one; the parent kills it with SIGKILL at random moments,
//! restarts it, and finally checks that every acknowledged batch is
//! queryable. Duplicates (a batch stored twice) are allowed, counted and
//! reported.
//!
//! Rounds: `OPHION_CRASH_ROUNDS` (default 20). The long run:
//! `OPHION_CRASH_ROUNDS=500 cargo test -p ophion-store --test crash -- --nocapture`.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use arrow_array::{cast::AsArray, types::Int64Type};
use ophion_core::{Signal, TelemetryBatch, TenantId, testing::Generator};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{Store, StoreConfig};

const ROWS_PER_BATCH: usize = 20;

fn config(dir: &str) -> StoreConfig {
    let mut c = StoreConfig::in_dir(dir);
    // The generated data is from 2023: keep it.
    c.retention.logs_days = 0;
    // Snapshot often so kills also land during persisting.
    c.buffer.flush_bytes = 256 * 1024;
    c.buffer.flush_interval_secs = 1;
    c.wal.segment_bytes = 128 * 1024;
    c
}

/// The child: ingest batches `start..` forever, printing `ACK n` after each
/// acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let (Ok(dir), Ok(start)) = (
        std::env::var("OPHION_CRASH_DIR"),
        std::env::var("OPHION_CRASH_START"),
    ) else {
        return; // not the child
    };
    let start: u64 = start.parse().expect("start");
    let store = Store::open(config(&dir)).await.expect("open");
    let t = TenantId::default();
    for n in start.. {
        let mut req =
            Generator::new(n, 1_700_000_000_000_000_000 + n * 1_000_000).logs(ROWS_PER_BATCH);
        for l in req
            .resource_logs
            .iter_mut()
            .flat_map(|r| &mut r.scope_logs)
            .flat_map(|s| &mut s.log_records)
        {
            l.event_name = format!("batch-{n}");
        }
        let c = convert::logs(&req, &Limits::default(), TimeWindow::ALL, 1);
        let batch = TelemetryBatch::new(Signal::Logs, c.batch.expect("rows")).expect("schema");
        match store.write(&t, batch).await {
            Ok(()) => println!("ACK {n}"),
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_sigkill() {
    if std::env::var("OPHION_CRASH_DIR").is_ok() {
        return; // we are the child
    }
    let rounds: usize = std::env::var("OPHION_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tmp");
    let dir_s = dir.path().to_str().expect("utf8").to_owned();
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("OPHION_CRASH_DIR", &dir_s)
            .env("OPHION_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("ACK ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    let _ = tx.send(n);
                }
            }
        });
        // Wait for the child to acknowledge something, then kill it at a
        // random moment within the next 0-600 ms.
        let deadline = Instant::now() + Duration::from_secs(60);
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child acknowledged nothing");
        acked.insert(first);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let wait = Duration::from_millis(rng % 600);
        std::thread::sleep(wait);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        reader.join().expect("reader");
        let before = acked.len();
        acked.extend(rx.try_iter());
        assert!(Instant::now() < deadline);
        next = acked.last().map_or(next, |n| n + 1);
        println!(
            "round {round}: killed after {wait:?}, {} new acknowledged batches",
            acked.len() - before
        );
    }
    // Every acknowledged batch must be there.
    let store = Store::open(config(&dir_s)).await.expect("reopen");
    let out = store
        .sql(
            &TenantId::default(),
            "SELECT event_name, count(*) FROM logs GROUP BY event_name",
        )
        .await
        .expect("query");
    let mut found: BTreeMap<u64, i64> = BTreeMap::new();
    for b in &out.batches {
        let names = b.column(0).as_string_view();
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let n: u64 = names
                .value(i)
                .trim_start_matches("batch-")
                .parse()
                .expect("batch number");
            found.insert(n, counts.value(i));
        }
    }
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| !found.contains_key(n))
        .collect();
    let partial: Vec<(u64, i64)> = found
        .iter()
        .filter(|(_, c)| **c % ROWS_PER_BATCH as i64 != 0)
        .map(|(n, c)| (*n, *c))
        .collect();
    let duplicated = found
        .values()
        .filter(|c| **c > ROWS_PER_BATCH as i64)
        .count();
    let stats = store.stats();
    println!(
        "{rounds} kills: {} batches acknowledged, {} stored, {duplicated} duplicated, {} missing; \
         log records replayed {}, corrupt tails {}",
        acked.len(),
        found.len(),
        missing.len(),
        stats
            .wal_replayed_records
            .load(std::sync::atomic::Ordering::Relaxed),
        stats
            .wal_corrupt_tails
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(
        acked.len() >= rounds,
        "each round acknowledged at least one batch"
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged batches lost, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(partial.is_empty(), "batches stored partially: {partial:?}");
}
