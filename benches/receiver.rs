//! Decode + convert throughput of the receiver, against plain `prost`
//! decoding of the same bytes (the floor).
//!
//! Run: `cargo bench -p ophion-benches --bench receiver`
//! The bench uses mimalloc, the allocator Ophion's binaries ship with; add
//! `--features system-alloc` to measure with the system allocator instead.
//! Results and machine: docs/benchmarks.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use ophion_core::{
    Signal,
    testing::{Generator, span_count},
};
use ophion_receiver::{Limits, convert::TimeWindow, convert_decoded, decode};
use prost::Message as _;

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const T0: u64 = 1_700_000_000_000_000_000;

fn bench_signal<M: prost::Message + Default>(
    c: &mut Criterion,
    signal: Signal,
    bytes: Vec<u8>,
    items: u64,
) {
    let limits = Limits::default();
    let mut g = c.benchmark_group(format!("receiver/{signal}"));
    g.throughput(Throughput::Elements(items));
    println!(
        "{signal}: {items} items, {} protobuf bytes ({} bytes/item)",
        bytes.len(),
        bytes.len() as u64 / items
    );
    g.bench_function("prost_decode", |b| {
        b.iter(|| M::decode(bytes.as_slice()).map(|m| m.encoded_len()))
    });
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            let req = decode(signal, true, &bytes).map_err(|e| e.to_string())?;
            let c = convert_decoded(&req, &limits, TimeWindow::ALL, T0 as i64);
            Ok::<usize, String>(c.accepted())
        })
    });
    g.finish();
}

fn receiver(c: &mut Criterion) {
    let mut generator = Generator::new(1, T0);
    let traces = generator.traces(512);
    let n = span_count(&traces);
    bench_signal::<ExportTraceServiceRequest>(c, Signal::Traces, traces.encode_to_vec(), n as u64);
    let logs = generator.logs(512);
    bench_signal::<ExportLogsServiceRequest>(c, Signal::Logs, logs.encode_to_vec(), 512);
    let metrics = generator.metrics(512);
    let points =
        ophion_receiver::convert::metrics(&metrics, &Limits::default(), TimeWindow::ALL).accepted();
    bench_signal::<ExportMetricsServiceRequest>(
        c,
        Signal::Metrics,
        metrics.encode_to_vec(),
        points as u64,
    );
}

criterion_group!(benches, receiver);
criterion_main!(benches);
