//! Overload: ingestion driven above what the server can absorb for a
//! bounded time. Resident memory stays under the configured limit, every
//! refusal is retryable as OTLP specifies (HTTP 503 or 429 with
//! `Retry-After`), queries keep working, nothing acknowledged is lost, and
//! writes succeed again soon after the load stops.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use common::*;
use ophion_core::testing::{Generator, span_count};
use prost::Message as _;

/// The server's configured memory limit. Its debug build keeps up to about
/// 160 MiB of code resident, and its resident memory runs at three to four
/// times the heap in use under this load (allocator pages, zstd and SQLite
/// buffers); the buffer budget below is what refuses first.
const LIMIT_BYTES: u64 = 768 << 20;

fn rss_bytes(pid: u32) -> u64 {
    ophion_core::testing::process::rss_bytes(Some(pid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_refused_retryably_within_the_memory_limit_and_recovers() {
    let dir = tempfile::tempdir().expect("tmp");
    let limit = LIMIT_BYTES.to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            ("OPHION__MEMORY__LIMIT_BYTES", limit.as_str()),
            // A small write buffer, so that storage falls behind quickly.
            ("OPHION__STORE__BUFFER__MAX_BYTES", "67108864"),
            ("OPHION__STORE__BUFFER__FLUSH_BYTES", "16777216"),
        ],
    );
    let pid = server.pid();
    let http = client();
    // Pre-encoded requests of 2,000 spans each, with distinct trace ids.
    let t0 = now_ns() - 600_000_000_000;
    let bodies: Vec<(Vec<u8>, u64)> = (0..16)
        .map(|i| {
            let req = Generator::new(100 + i, t0).traces(2000);
            (req.encode_to_vec(), span_count(&req) as u64)
        })
        .collect();
    let bodies = Arc::new(bodies);

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, max_rss) = (Arc::clone(&stop), Arc::clone(&max_rss));
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                max_rss.fetch_max(rss_bytes(pid), Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut senders = Vec::new();
    for w in 0..24 {
        let (http, otlp, bodies) = (http.clone(), server.otlp_http.clone(), Arc::clone(&bodies));
        let (stop, accepted, refused) = (
            Arc::clone(&stop),
            Arc::clone(&accepted),
            Arc::clone(&refused),
        );
        senders.push(tokio::spawn(async move {
            let mut i = w;
            let mut bad = Vec::new();
            while !stop.load(Relaxed) {
                let (body, n) = &bodies[i % bodies.len()];
                i += 1;
                let r = post_otlp(&http, &otlp, "/v1/traces", body.clone()).await;
                match r.status().as_u16() {
                    200 => {
                        accepted.fetch_add(*n, Relaxed);
                    }
                    503 | 429 => {
                        let retry = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        if retry.is_none() {
                            bad.push(format!("{} without Retry-After", r.status()));
                        }
                        refused.fetch_add(1, Relaxed);
                        // A client that honours Retry-After comes back later;
                        // this one retries sooner, to keep the pressure on.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => bad.push(format!("status {other}: {:?}", r.text().await)),
                }
            }
            bad
        }));
    }
    // Queries keep working while ingestion is refused.
    let load_for = Duration::from_secs(25);
    let started = Instant::now();
    let mut queries = 0;
    while started.elapsed() < load_for {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Progress, for --nocapture.
        let m = http
            .get(format!("{}/metrics", server.api))
            .send()
            .await
            .expect("metrics answer under load")
            .text()
            .await
            .expect("text");
        let gauge = |n: &str| {
            m.lines()
                .find(|l| l.starts_with(n))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("?")
                .to_owned()
        };
        eprintln!(
            "t={:>2.0}s rss={} MiB heap={} buffer={} accepted={} refused={}",
            started.elapsed().as_secs_f64(),
            rss_bytes(pid) >> 20,
            gauge("ophion_heap_in_use_bytes"),
            gauge("ophion_buffer_bytes"),
            accepted.load(Relaxed),
            refused.load(Relaxed)
        );
        let rows = sql(&http, &server, "SELECT count(*) FROM spans").await;
        assert!(rows[0][0].as_u64().is_some());
        queries += 1;
    }
    stop.store(true, Relaxed);
    let mut problems = Vec::new();
    for s in senders {
        problems.extend(s.await.expect("sender"));
    }
    sampler.join().expect("sampler");
    assert!(problems.is_empty(), "non-retryable answers: {problems:?}");
    let refused = refused.load(Relaxed);
    assert!(
        refused > 0,
        "the load did not exceed capacity; nothing was refused"
    );
    let peak = max_rss.load(Relaxed);
    assert!(
        peak < LIMIT_BYTES,
        "peak RSS {} MiB over the {} MiB limit",
        peak >> 20,
        LIMIT_BYTES >> 20
    );
    assert!(queries >= 5);

    // Writes are accepted again within 60 s, without intervention.
    let recovered = Instant::now();
    let (body, n) = &bodies[0];
    loop {
        let r = post_otlp(&http, &server.otlp_http, "/v1/traces", body.clone()).await;
        if r.status() == 200 {
            accepted.fetch_add(*n, Relaxed);
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(60),
            "still refusing 60 s after the load stopped"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Everything acknowledged is there: no silent drop.
    let rows = sql(&http, &server, "SELECT count(*) FROM spans").await;
    assert_eq!(rows[0][0].as_u64(), Some(accepted.load(Relaxed)));
    println!(
        "overload: {} spans accepted, {refused} requests refused, peak RSS {} MiB (limit {} MiB), recovered in {:.1} s",
        accepted.load(Relaxed),
        peak >> 20,
        LIMIT_BYTES >> 20,
        recovered.elapsed().as_secs_f64()
    );
}
