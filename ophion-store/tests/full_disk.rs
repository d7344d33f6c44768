//! A full disk: with the data directory on a small tmpfs, writes fail with a
//! retryable error once it is full, nothing acknowledged is lost, and writes
//! succeed again when space is freed. Needs root (to mount the tmpfs), as CI
//! runs.

use std::{path::PathBuf, process::Command};

use arrow_array::{cast::AsArray, types::Int64Type};
use ophion_core::{Signal, TelemetryBatch, TenantId, testing::Generator};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{Store, StoreConfig};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp").keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the store's threads may still be closing their files.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn batch(n: u64) -> TelemetryBatch {
    let mut req = Generator::new(n, 1_700_000_000_000_000_000).logs(50);
    for l in req
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
    {
        l.event_name = format!("batch-{n}");
    }
    let c = convert::logs(&req, &Limits::default(), TimeWindow::ALL, 1);
    TelemetryBatch::new(Signal::Logs, c.batch.expect("rows")).expect("schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_is_retryable_and_loses_nothing() {
    let fs = Tmpfs::mount("6m");
    let mut config = StoreConfig::in_dir(fs.0.join("data"));
    config.buffer.flush_interval_secs = 3600;
    config.retention.logs_days = 0; // the generated data is from 2023
    config.wal.segment_bytes = 256 * 1024;
    let store = Store::open(config).await.expect("open");
    // Most of the space goes to a file we can delete later.
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![7u8; 4 * 1024 * 1024]).expect("filler");
    let t = TenantId::default();
    let mut acked = Vec::new();
    let mut refusals = 0;
    for n in 0..2_000u64 {
        match store.write(&t, batch(n)).await {
            Ok(()) => acked.push(n),
            Err(e) => {
                assert!(e.is_retryable(), "a full disk must be retryable, got {e}");
                refusals += 1;
                if refusals >= 5 {
                    break;
                }
            }
        }
    }
    assert!(
        refusals >= 5,
        "the disk never filled ({} batches acknowledged)",
        acked.len()
    );
    // A snapshot cannot persist either; it fails retryably and keeps the rows.
    let snap = store.flush().await;
    if let Err(e) = &snap {
        assert!(e.is_retryable(), "snapshot on a full disk: {e}");
    }
    // Free the space: writes succeed again.
    std::fs::remove_file(&filler).expect("free space");
    let after = 1_000_000u64;
    store
        .write(&t, batch(after))
        .await
        .expect("writes resume once space is back");
    acked.push(after);
    store.flush().await.expect("flush once space is back");
    let out = store
        .sql(
            &t,
            "SELECT event_name, count(*) FROM logs GROUP BY event_name",
        )
        .await
        .expect("query");
    let mut found = std::collections::HashMap::new();
    for b in &out.batches {
        for i in 0..b.num_rows() {
            found.insert(
                b.column(0).as_string_view().value(i).to_owned(),
                b.column(1).as_primitive::<Int64Type>().value(i),
            );
        }
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|n| !found.contains_key(&format!("batch-{n}")))
        .collect();
    println!(
        "{} batches acknowledged before the disk filled, {refusals} refusals, {} missing",
        acked.len() - 1,
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged batches lost",
        missing.len()
    );
    drop(store);
}
