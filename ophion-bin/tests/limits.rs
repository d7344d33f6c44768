//! Rate limits against the real server: API bursts per client address,
//! `X-Forwarded-For` believed only from trusted proxies, ingest limits per
//! key on both transports, and a flood of wrong sign-ins that costs little
//! CPU and locks the user name only for the documented window.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Server, client, login_blocking, now_ns};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use ophion_core::testing::{Generator, process};
use prost::Message as _;
use serde_json::json;

async fn status_of(r: reqwest::RequestBuilder) -> (u16, Option<u64>) {
    let r = r.send().await.expect("request");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_bursts_get_429_and_spoofed_forwarding_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[("OPHION__LIMITS__API_PER_IP", "5")],
    );
    let http = client();
    let version = || http.get(format!("{}/api/v1/version", s.api));
    // A burst of 10 is allowed, then 429 with Retry-After.
    let mut refused = Vec::new();
    for _ in 0..30 {
        let (status, retry) = status_of(version()).await;
        assert!(status == 200 || status == 429, "{status}");
        if status == 429 {
            refused.push(retry);
        }
    }
    assert!(refused.len() >= 15, "{} of 30 refused", refused.len());
    assert!(
        refused.iter().all(|r| r.is_some_and(|s| s >= 1)),
        "Retry-After on every 429"
    );
    // The same client claiming to be someone else is the same bucket: a
    // burst of ten spoofed requests gets at most the tokens refilled
    // meanwhile (a bucket of its own would let all ten through). Counted,
    // not one request each, so a slow machine's refill cannot flake it.
    for spoof in ["203.0.113.1", "198.51.100.2, 203.0.113.3"] {
        let mut passed = 0;
        for _ in 0..10 {
            let (status, _) = status_of(version().header("x-forwarded-for", spoof)).await;
            passed += usize::from(status == 200);
        }
        assert!(
            passed <= 3,
            "X-Forwarded-For from an untrusted peer is ignored: {passed} of 10 spoofed requests passed"
        );
    }
    // Health and metrics are never limited.
    let (status, _) = status_of(http.get(format!("{}/healthz", s.api))).await;
    assert_eq!(status, 200);
    // After the advertised wait, requests go through again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status_of(version()).await.0, 200);

    // Behind a trusted proxy (this test, on 127.0.0.1), the forwarded
    // address is the bucket: another client is not limited by the first.
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("OPHION__LIMITS__API_PER_IP", "5"),
            ("OPHION__LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ],
    );
    let version = |from: &str| {
        http.get(format!("{}/api/v1/version", s.api))
            .header("x-forwarded-for", from.to_owned())
    };
    let mut a_refused = 0;
    for _ in 0..30 {
        if status_of(version("203.0.113.1")).await.0 == 429 {
            a_refused += 1;
        }
    }
    assert!(a_refused >= 15);
    assert_eq!(
        status_of(version("203.0.113.2")).await.0,
        200,
        "a different client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_a_keys_limit_is_refused_retryably_on_both_transports() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[("OPHION__LIMITS__INGEST_PER_KEY", "2")],
    );
    let http = client();
    let v: serde_json::Value = http
        .post(format!("{}/api/v1/keys", s.api))
        .bearer_auth(&s.token)
        .json(&json!({"name": "limited"}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let key = v["key"].as_str().expect("key").to_owned();
    let req = Generator::new(5, now_ns() - 60_000_000_000).traces(10);
    let mut refused = 0;
    for _ in 0..20 {
        let (status, retry) = status_of(
            http.post(format!("{}/v1/traces", s.otlp_http))
                .header("content-type", "application/x-protobuf")
                .header("x-ophion-api-key", &key)
                .body(req.encode_to_vec()),
        )
        .await;
        assert!(status == 200 || status == 429, "{status}");
        if status == 429 {
            assert!(retry.is_some_and(|r| r >= 1), "Retry-After");
            refused += 1;
        }
    }
    assert!(refused >= 10, "{refused} of 20 refused");
    let mut grpc = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .expect("connect");
    let mut r = tonic::Request::new(req.clone());
    r.metadata_mut()
        .insert("x-ophion-api-key", key.parse().expect("metadata"));
    let e = grpc.export(r).await.expect_err("still limited");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    let details = tonic_types::StatusExt::get_details_retry_info(&e);
    assert!(
        details.is_some_and(|d| d.retry_delay.is_some()),
        "RetryInfo"
    );
    // Without a key (not required here), the default tenant's traffic is
    // not limited by that key's bucket.
    let (status, _) = status_of(
        http.post(format!("{}/v1/traces", s.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec()),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_sign_ins_costs_little_and_locks_only_for_the_window() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[("OPHION__LIMITS__LOGIN_WINDOW_SECS", "4")],
    );
    let http = client();
    let cpu0 = process::cpu_secs(Some(s.pid()));
    let started = Instant::now();
    let attempts = (0..100).map(|i| {
        let http = http.clone();
        let url = format!("{}/api/v1/auth/login", s.api);
        async move {
            let r = http
                .post(url)
                .json(&json!({"username": "admin", "password": format!("guess-{i}")}))
                .send()
                .await
                .expect("login");
            r.status().as_u16()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let took = started.elapsed();
    let cpu = process::cpu_secs(Some(s.pid())) - cpu0;
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + limited, 100, "{statuses:?}");
    // At most login_per_user (10) passwords were hashed.
    assert!(wrong <= 10, "{wrong} hashed");
    assert!(limited >= 90);
    // Ten argon2id hashes, not a hundred: well under a few CPU-seconds.
    assert!(
        cpu < 5.0,
        "server CPU {cpu:.2} s for the flood (took {took:?})"
    );
    // The real user is locked out for the documented window only.
    let (status, _) = status_of(
        http.post(format!("{}/api/v1/auth/login", s.api))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD})),
    )
    .await;
    assert_eq!(status, 429, "inside the window");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let token = login_blocking(&s.api, "admin", ADMIN_PASSWORD);
    assert!(!token.is_empty(), "after the window the real user signs in");
}
