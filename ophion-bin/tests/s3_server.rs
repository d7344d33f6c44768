//! The shipped `ophion-server` binary (default features) on S3: moto's S3
//! server stands in for the bucket. Ingest over OTLP, files land in the
//! bucket, a restart reads them back, `kill -9` loses nothing that was
//! acknowledged, and a missing bucket or refused credentials stop the
//! server at start with an error that says so.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{Server, client, now_ns, refused_start, sql};
use serde_json::json;

const BUCKET: &str = "ophion-server";

/// The server's environment for `bucket` at `endpoint`.
fn s3_env<'a>(endpoint: &'a str, bucket: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OPHION__STORE__OBJECT_STORE__KIND", "s3"),
        ("OPHION__STORE__OBJECT_STORE__BUCKET", bucket),
        ("OPHION__STORE__OBJECT_STORE__ENDPOINT", endpoint),
        ("OPHION__STORE__OBJECT_STORE__REGION", "us-east-1"),
        ("OPHION__STORE__OBJECT_STORE__ACCESS_KEY_ID", key),
        ("OPHION__STORE__OBJECT_STORE__SECRET_ACCESS_KEY", "secret"),
        ("OPHION__STORE__OBJECT_STORE__ALLOW_HTTP", "true"),
        ("OPHION__STORE__OBJECT_STORE__PREFIX", "srv"),
        // Flush to Parquet (to the bucket) every second.
        ("OPHION__STORE__BUFFER__FLUSH_INTERVAL_SECS", "1"),
    ]
}

/// Sends `n` log records (OTLP/HTTP JSON) with bodies `{tag}-{i}`; every
/// request must be acknowledged.
async fn send_logs(http: &reqwest::Client, s: &Server, tag: &str, n: usize) {
    let now = now_ns();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let records: Vec<_> = chunk
            .iter()
            .map(|i| json!({"timeUnixNano": (now + *i as u64).to_string(), "body": {"stringValue": format!("{tag}-{i}")}}))
            .collect();
        let body = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s3-test"}}]},
            "scopeLogs": [{"logRecords": records}]}]});
        let r = http
            .post(format!("{}/v1/logs", s.otlp_http))
            .json(&body)
            .send()
            .await
            .expect("otlp");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
}

async fn count(http: &reqwest::Client, s: &Server, tag: &str) -> u64 {
    let rows = sql(
        http,
        s,
        &format!("SELECT count(*) AS n FROM logs WHERE body LIKE '{tag}-%'"),
    )
    .await;
    rows[0][0].as_u64().expect("a count")
}

/// Parquet objects under the server's prefix.
async fn parquet_objects(http: &reqwest::Client, moto: &str) -> usize {
    common::parquet_objects(http, moto, BUCKET, "srv/").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_server_keeps_its_data_in_s3() {
    let (_moto, moto) = ophion_tests::moto::start(BUCKET).await;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let env = s3_env(&moto, BUCKET, "test");
    let http = client();

    // Ingest; the files go to the bucket.
    let s = Server::start(&data, &env);
    send_logs(&http, &s, "first", 1000).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while parquet_objects(&http, &moto).await == 0 {
        assert!(
            Instant::now() < deadline,
            "no Parquet file reached the bucket"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&http, &s, "first").await, 1000);
    let (status, _) = s.stop(Duration::from_secs(30));
    assert!(status.success());
    assert!(
        !std::fs::read_dir(&data)
            .expect("data dir")
            .flatten()
            .any(|e| e.file_name() == "parquet"),
        "no local Parquet directory: the files are in the bucket"
    );

    // A restart reads them back from the bucket.
    let s = Server::start(&data, &env);
    assert_eq!(count(&http, &s, "first").await, 1000);

    // kill -9 right after the acknowledgements: nothing acknowledged is lost.
    send_logs(&http, &s, "second", 700).await;
    let pid = s.pid();
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    drop(s);
    let s = Server::start(&data, &env);
    assert_eq!(count(&http, &s, "first").await, 1000);
    assert_eq!(count(&http, &s, "second").await, 700);
    s.stop(Duration::from_secs(30));

    // A bucket that does not exist: a clear refusal at start.
    let err = refused_start(
        &dir.path().join("no-bucket"),
        &s3_env(&moto, "no-such-bucket", "test"),
    );
    assert!(
        err.contains("the object store (s3://no-such-bucket/srv at")
            && err.contains("check the bucket, endpoint and credentials"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_server_at_start() {
    // moto checks credentials after its first request (the bucket's
    // creation) and knows no keys: every key is refused.
    let (_moto, moto) =
        ophion_tests::moto::start_with(BUCKET, &[("INITIAL_NO_AUTH_ACTION_COUNT", "1")]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let err = refused_start(
        &dir.path().join("data"),
        &s3_env(&moto, BUCKET, "AKIAWRONGKEY"),
    );
    assert!(
        err.contains("cannot be read")
            && err.contains("check the bucket, endpoint and credentials"),
        "{err}"
    );
    assert!(
        err.contains("403") || err.contains("InvalidAccessKeyId") || err.contains("Forbidden"),
        "the refusal names the cause: {err}"
    );
}
