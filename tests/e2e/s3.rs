//! The store test suite against a real S3-compatible server (moto in server
//! mode, from the venv `scripts/test` creates), reached through a proxy that
//! fails 30% of PUTs with `503 SlowDown`: the object store's retries must
//! hide the failures, no partial file may become visible, nothing may be
//! lost.

#[path = "../../ophion-store/tests/common/mod.rs"]
mod scenarios;

use std::sync::atomic::Ordering;

use ophion_store::config::ObjectStoreConfig;

const BUCKET: &str = "ophion-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite_on_s3_with_failing_puts() {
    let (_moto, moto_url) = ophion_tests::moto::start(BUCKET).await;
    let (proxy_addr, proxy) = ophion_tests::s3proxy::start(moto_url, &[http::Method::PUT]).await;
    let endpoint = format!("http://{proxy_addr}");
    let s3 = move |dir: &std::path::Path| {
        let mut c = scenarios::local(dir);
        c.object_store = ObjectStoreConfig::S3 {
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            endpoint: Some(endpoint.clone()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: true,
            // One prefix per store directory keeps scenarios apart.
            prefix: dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .to_owned(),
        };
        c
    };
    scenarios::all(&s3).await;
    let (puts, failed) = (
        proxy.seen.load(Ordering::SeqCst),
        proxy.failed.load(Ordering::SeqCst),
    );
    println!("{puts} PUTs through the proxy, {failed} failed on purpose");
    assert!(
        failed > 0 && failed * 10 >= puts * 3 - 10,
        "the proxy failed {failed} of {puts} PUTs"
    );
}
