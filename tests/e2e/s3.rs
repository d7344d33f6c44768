//! The store test suite against a real S3-compatible server (moto in server
//! mode, from the venv `scripts/test` creates), reached through a proxy that
//! fails 30% of PUTs with `503 SlowDown`: the object store's retries must
//! hide the failures, no partial file may become visible, nothing may be
//! lost.

#[path = "../../ophion-store/tests/common/mod.rs"]
mod scenarios;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{body::Body, extract::State, http::Request, response::Response};
use ophion_store::config::ObjectStoreConfig;

const BUCKET: &str = "ophion-test";

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    puts: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

/// Forwards every request to moto, except that every third-or-so PUT is
/// answered `503 SlowDown` without reaching it (30%, deterministic).
async fn forward(State(p): State<Proxy>, req: Request<Body>) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if parts.method == http::Method::PUT {
        let n = p.puts.fetch_add(1, Ordering::SeqCst);
        if n % 10 < 3 {
            p.failed.fetch_add(1, Ordering::SeqCst);
            let xml = "<Error><Code>SlowDown</Code><Message>injected failure</Message></Error>";
            return Response::builder()
                .status(503)
                .body(Body::from(xml))
                .unwrap_or_default();
        }
    }
    let uri = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut up = p
        .client
        .request(parts.method, format!("{}{uri}", p.upstream))
        .body(body);
    for (k, v) in &parts.headers {
        if k != http::header::HOST {
            up = up.header(k, v);
        }
    }
    match up.send().await {
        Ok(r) => {
            let mut b = Response::builder().status(r.status());
            for (k, v) in r.headers() {
                b = b.header(k, v);
            }
            b.body(Body::from(r.bytes().await.unwrap_or_default()))
                .unwrap_or_default()
        }
        Err(e) => Response::builder()
            .status(502)
            .body(Body::from(e.to_string()))
            .unwrap_or_default(),
    }
}

async fn start_proxy(upstream: String) -> (SocketAddr, Proxy) {
    let proxy = Proxy {
        upstream,
        client: reqwest::Client::new(),
        puts: Arc::default(),
        failed: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_suite_on_s3_with_failing_puts() {
    let (_moto, moto_url) = ophion_tests::moto::start(BUCKET).await;
    let (proxy_addr, proxy) = start_proxy(moto_url).await;
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
        proxy.puts.load(Ordering::SeqCst),
        proxy.failed.load(Ordering::SeqCst),
    );
    println!("{puts} PUTs through the proxy, {failed} failed on purpose");
    assert!(
        failed > 0 && failed * 10 >= puts * 3 - 10,
        "the proxy failed {failed} of {puts} PUTs"
    );
}
