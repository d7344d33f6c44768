//! Embeds the OTLP receiver and the store in another Rust service: spans,
//! logs and metrics are made durable in `./ophion-example-data` and read
//! back with SQL.
//!
//! Run: `cargo run -p ophion-examples --example embed_store`, point an OTLP
//! exporter at `127.0.0.1:4317` / `http://127.0.0.1:4318`, and watch the
//! span count per service printed every five seconds.
//! `OPHION_EXAMPLE_ONESHOT=1` sends one span to itself, prints it, and exits.

use std::{sync::Arc, time::Duration};

use ophion_core::TenantId;
use ophion_receiver::{OtlpReceiver, ReceiverConfig};
use ophion_store::{Store, StoreConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let oneshot = std::env::var_os("OPHION_EXAMPLE_ONESHOT").is_some();
    let dir = tempfile_dir(oneshot)?;
    let store = Store::open(StoreConfig::in_dir(&dir)).await?;
    let mut config = ReceiverConfig::default();
    if oneshot {
        config.grpc_addr = "127.0.0.1:0".parse()?;
        config.http_addr = "127.0.0.1:0".parse()?;
    }
    // The store is the receiver's sink: an OTLP answer of 200 means durable.
    let receiver = OtlpReceiver::builder(Arc::new(store.clone()))
        .config(config)
        .build()?
        .bind()
        .await?;
    let http = receiver.http_addr();
    println!(
        "OTLP on {} and {http}; data in {}",
        receiver.grpc_addr(),
        dir.display()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(receiver.serve(async {
        let _ = stopped.await;
    }));
    if oneshot {
        let span = ophion_examples::one_span_json("checkout", "GET /cart")?;
        ophion_examples::post_json(http, "/v1/traces", &span).await?;
    }
    let sql = "SELECT service_name, count(*) AS spans, max(duration_ns) AS slowest_ns \
               FROM spans GROUP BY service_name ORDER BY spans DESC";
    loop {
        let out = store.sql(&TenantId::default(), sql).await?;
        println!(
            "{}",
            arrow_cast::pretty::pretty_format_batches(&out.batches)?
        );
        if oneshot {
            anyhow::ensure!(out.rows == 1, "the span sent is queryable at once");
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let _ = stop.send(());
    serving.await??;
    // Buffered rows go to Parquet before the process exits.
    store.close().await?;
    Ok(())
}

/// `./ophion-example-data`, or a fresh temporary directory in self-check mode.
fn tempfile_dir(oneshot: bool) -> anyhow::Result<std::path::PathBuf> {
    if oneshot {
        let d = std::env::temp_dir().join(format!("ophion-example-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Ok(d)
    } else {
        Ok("ophion-example-data".into())
    }
}
