//! Queries a store directly from Rust, without a server: open the data
//! directory `ophion-server` wrote (stop the server first: one process per
//! directory), run SQL, fetch one trace.
//!
//! Run: `cargo run -p ophion-examples --example query_store -- ./ophion-data`
//! With `OPHION_EXAMPLE_ONESHOT=1` it writes a few generated spans into a
//! temporary directory first, so that it has something to read.

use arrow_array::cast::AsArray as _;
use ophion_core::{Signal, TelemetryBatch, TenantId, schema::col, testing::Generator};
use ophion_store::{Store, StoreConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let oneshot = std::env::var_os("OPHION_EXAMPLE_ONESHOT").is_some();
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None if oneshot => {
            std::env::temp_dir().join(format!("ophion-query-{}", std::process::id()))
        }
        None => "ophion-data".into(),
    };
    let mut config = StoreConfig::in_dir(&dir);
    config.retention.traces_days = 0; // read whatever is there, however old
    let store = Store::open(config).await?;
    let tenant = TenantId::default();
    if oneshot {
        let req = Generator::new(1, 1_700_000_000_000_000_000).traces(200);
        let c = ophion_receiver::convert::traces(
            &req,
            &ophion_receiver::Limits::default(),
            ophion_receiver::convert::TimeWindow::ALL,
        );
        if let Some(batch) = c.batch {
            store
                .write(&tenant, TelemetryBatch::new(Signal::Traces, batch)?)
                .await?;
        }
    }

    // Any read-only SQL over spans, logs and metrics.
    let out = store
        .sql(
            &tenant,
            "SELECT service_name, count(*) AS spans, \
                    approx_percentile_cont(duration_ns, 0.95) AS p95_ns \
             FROM spans GROUP BY service_name ORDER BY spans DESC",
        )
        .await?;
    println!(
        "{}",
        arrow_cast::pretty::pretty_format_batches(&out.batches)?
    );

    // The slowest trace, then all of its spans through the fast path.
    let slowest = store
        .sql(
            &tenant,
            "SELECT trace_id FROM spans ORDER BY duration_ns DESC LIMIT 1",
        )
        .await?;
    if let Some(b) = slowest.batches.iter().find(|b| b.num_rows() > 0) {
        let id: [u8; 16] = b.column(0).as_fixed_size_binary().value(0).try_into()?;
        let spans = store.trace(&tenant, id).await?;
        let mut names = Vec::new();
        for b in &spans {
            if let Some(c) = b.column_by_name(col::NAME) {
                names.extend(c.as_string_view().iter().flatten().map(str::to_owned));
            }
        }
        println!(
            "slowest trace {}: {} spans: {names:?}",
            hex_id(&id),
            names.len()
        );
        anyhow::ensure!(!names.is_empty() || !oneshot, "the trace has spans");
    }
    Ok(())
}

fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
