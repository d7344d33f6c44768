//! A local HTTP receiver for notifications, and a parser written for
//! Alertmanager's webhook payload (the same code reads the real
//! Alertmanager's and Ophion's).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde::Deserialize;
use serde_json::Value;

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Got {
    /// Request path.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON (`null` when it is not JSON).
    pub json: Value,
    /// Raw body.
    pub raw: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// What the receiver got.
#[derive(Default)]
pub struct Inbox {
    /// Accepted requests.
    pub got: Vec<Got>,
    /// Answer 503 to everything while set.
    pub refuse: bool,
    /// Requests answered 503 because of `refuse`.
    pub refused: usize,
    /// Paths that always answer 500; their requests are kept in `failed`.
    pub failing: Vec<String>,
    /// Requests answered 500.
    pub failed: Vec<Got>,
}

impl Inbox {
    /// Accepted requests on `path`.
    pub fn on(&self, path: &str) -> Vec<&Got> {
        self.got.iter().filter(|g| g.path == path).collect()
    }
}

/// The receiver's shared state.
pub type Shared = Arc<Mutex<Inbox>>;

async fn receive(
    State(inbox): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut i = inbox.lock().expect("inbox");
    let got = Got {
        path: uri.path().to_owned(),
        headers,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
        at: Instant::now(),
    };
    if i.refuse {
        i.refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if i.failing.contains(&got.path) {
        i.failed.push(got);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    i.got.push(got);
    StatusCode::OK
}

/// Starts a receiver on a loopback port: its base URL and state.
pub async fn receiver() -> (String, Shared) {
    let inbox: Shared = Arc::default();
    let app = Router::new()
        .fallback(post(receive))
        .with_state(Arc::clone(&inbox));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), inbox)
}

/// A receiver that accepts connections and never answers: its base URL.
pub async fn hanging_receiver() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = l.accept().await {
            held.push(conn);
        }
    });
    format!("http://{addr}")
}

/// Polls `f` every 100 ms until it holds; panics after `limit`.
pub async fn until<F: FnMut() -> bool>(what: &str, limit: Duration, mut f: F) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Alertmanager's webhook payload (version 4), as a receiver written for
/// Alertmanager reads it: every field is required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmWebhook {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u64,
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<AmAlert>,
}

/// One alert of [`AmWebhook`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl AmWebhook {
    /// Parses and checks a payload as an Alertmanager receiver would.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let w: Self = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if w.version != "4" {
            return Err(format!("version {}", w.version));
        }
        if !["firing", "resolved"].contains(&w.status.as_str()) {
            return Err(format!("status {}", w.status));
        }
        for a in &w.alerts {
            for t in [&a.starts_at, &a.ends_at] {
                if !(t.len() >= 20 && t.as_bytes()[4] == b'-' && t.contains('T')) {
                    return Err(format!("time {t}"));
                }
            }
            if a.fingerprint.len() != 16 || !a.fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("fingerprint {}", a.fingerprint));
            }
            if !a.labels.contains_key("alertname") {
                return Err("no alertname".into());
            }
        }
        Ok(w)
    }
}
