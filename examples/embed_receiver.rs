//! Embeds Ophion's OTLP receiver in a small service with a custom sink that
//! prints how many spans each service sent.
//!
//! Run: `cargo run -p ophion-examples --example embed_receiver`
//! then point any OTLP exporter at `127.0.0.1:4317` (gRPC) or
//! `http://127.0.0.1:4318` (HTTP). Set `OPHION_EXAMPLE_ONESHOT=1` to send one
//! generated batch to itself and exit (this is what CI runs).

use std::{collections::BTreeMap, sync::Mutex};

use arrow_array::cast::AsArray as _;
use ophion_core::{Signal, SinkError, TelemetryBatch, TelemetrySink, TenantId, schema::col};
use ophion_receiver::{OtlpReceiver, ReceiverConfig};

/// Counts spans per `service_name` and prints the running totals.
#[derive(Debug, Default)]
struct SpanCounter(Mutex<BTreeMap<String, u64>>);

#[async_trait::async_trait]
impl TelemetrySink for SpanCounter {
    async fn write(&self, _tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        if batch.signal() != Signal::Traces {
            return Ok(());
        }
        let services = batch
            .batch()
            .column_by_name(col::SERVICE_NAME)
            .ok_or_else(|| SinkError::Internal("no service_name column".into()))?
            .as_string::<i32>();
        let mut counts = self
            .0
            .lock()
            .map_err(|_| SinkError::Internal("poisoned".into()))?;
        for s in services.iter().flatten() {
            *counts.entry(s.to_owned()).or_default() += 1;
        }
        for (service, n) in counts.iter() {
            println!("{service:>20}: {n} spans");
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let oneshot = std::env::var_os("OPHION_EXAMPLE_ONESHOT").is_some();
    let mut config = ReceiverConfig::default();
    if oneshot {
        config.grpc_addr = "127.0.0.1:0".parse()?;
        config.http_addr = "127.0.0.1:0".parse()?;
    }
    let receiver = OtlpReceiver::builder(std::sync::Arc::new(SpanCounter::default()))
        .config(config)
        .build()?;
    let bound = receiver.bind().await?;
    println!(
        "OTLP gRPC on {}, HTTP on {}",
        bound.grpc_addr(),
        bound.http_addr()
    );
    if !oneshot {
        bound
            .serve(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        return Ok(());
    }
    let http = bound.http_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(async {
        let _ = rx.await;
    }));
    // Send one OTLP/JSON request to ourselves.
    ophion_examples::post_json(
        http,
        "/v1/traces",
        &ophion_examples::one_span_json("checkout", "GET /cart")?,
    )
    .await?;
    let _ = tx.send(());
    server.await??;
    Ok(())
}
