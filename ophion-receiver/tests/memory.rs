//! Resident memory under hostile input. This file is its own test binary
//! with one test, so nothing else allocates while it measures.
//!
//! Peak RSS is reset through `/proc/self/clear_refs` before each attack and
//! read from `VmHWM` after it (Linux only).

mod common;

use std::{io::Write as _, sync::Arc};

use common::*;
use ophion_core::testing::{Generator, kv_str, now_ns};
use prost::Message as _;

const LIMIT: usize = 4 * 1024 * 1024;

fn status_kib(field: &str) -> u64 {
    let kib = ophion_core::testing::process::status_kib(None, field);
    assert!(kib > 0, "{field} in /proc/self/status (needs Linux)");
    kib
}

/// Resets the peak and returns the current RSS in bytes.
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset peak RSS (needs Linux)");
    status_kib("VmRSS:") * 1024
}

fn peak_growth(before: u64) -> u64 {
    (status_kib("VmHWM:") * 1024).saturating_sub(before)
}

/// One gzip member inflating to `inflated` bytes: a protobuf field header
/// announcing a huge `resource_spans` message, then zeros.
fn bomb(inflated: usize) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut header = vec![0x0a];
    prost::encoding::encode_varint(inflated as u64, &mut header);
    e.write_all(&header).expect("gzip");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated >> 20 {
        e.write_all(&zeros).expect("gzip");
    }
    e.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_do_not_grow_memory() {
    let sink = Arc::new(CountingSink::default());
    let mut cfg = loopback_config();
    cfg.max_body_bytes = LIMIT;
    let r = start_with(sink.clone(), cfg, None).await;
    let bomb = bytes::Bytes::from(bomb(1 << 30));
    assert!(
        bomb.len() < 2 << 20,
        "1 GiB of zeros compresses to {} bytes",
        bomb.len()
    );
    let client = reqwest::Client::new();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2 client");
    // Warm up both paths so lazily allocated pools are not counted.
    let warm = Generator::new(1, now_ns()).traces(10);
    let warm_spans: u64 = warm
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum();
    let resp = client
        .post(r.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(warm.encode_to_vec())
        .send()
        .await
        .expect("warm");
    assert_eq!(resp.status(), 200);

    // 1. HTTP gzip bomb: 1 MiB expanding to 1 GiB.
    let before = reset_peak();
    let resp = client
        .post(r.url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 413);
    let growth = peak_growth(before);
    println!(
        "http gzip bomb: peak RSS growth {} KiB (limit {} KiB)",
        growth / 1024,
        LIMIT / 1024
    );
    assert!(
        growth < 2 * LIMIT as u64,
        "HTTP gzip bomb grew RSS by {growth} bytes"
    );

    // 2. gRPC compressed message inflating far past the limit.
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bomb);
    let before = reset_peak();
    let resp = h2
        .post(format!(
            "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            r.grpc_url()
        ))
        .header("content-type", "application/grpc")
        .header("grpc-encoding", "gzip")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .expect("send");
    let status = resp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let _ = resp.bytes().await;
    let growth = peak_growth(before);
    println!(
        "grpc gzip bomb: status {status:?}, peak RSS growth {} KiB",
        growth / 1024
    );
    assert_eq!(status.as_deref(), Some("8"), "RESOURCE_EXHAUSTED");
    assert!(
        growth < 2 * LIMIT as u64,
        "gRPC bomb grew RSS by {growth} bytes"
    );

    // 3. A flood of new attribute keys: the receiver keeps no per-key state.
    let before = reset_peak();
    let mut sent = 0u64;
    for round in 0..100 {
        let mut req = Generator::new(round, now_ns()).traces(50);
        for s in req
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
            .flat_map(|s| &mut s.spans)
        {
            s.attributes
                .extend((0..20).map(|i| kv_str(&format!("k.{round}.{i}.{}", s.name.len()), "v")));
            sent += 1;
        }
        let resp = client
            .post(r.url("/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    let growth = peak_growth(before);
    println!(
        "attribute-key flood: {sent} spans, peak RSS growth {} KiB",
        growth / 1024
    );
    assert!(
        growth < 2 * LIMIT as u64,
        "key flood grew RSS by {growth} bytes"
    );
    assert_eq!(
        sink.0.load(std::sync::atomic::Ordering::SeqCst),
        sent + warm_spans
    );
    r.stop().await;
}
