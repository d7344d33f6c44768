//! Helpers for Ophion's end-to-end tests: start real receivers on loopback
//! ports and read values back out of the Arrow batches they produced.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use arrow_array::{
    Array, RecordBatch,
    cast::AsArray,
    types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type},
};
use ophion_core::{MemorySink, Signal};
use ophion_receiver::{OtlpReceiver, ReceiverConfig};

/// A receiver serving on OS-chosen loopback ports, writing to memory.
#[derive(Debug)]
pub struct Harness {
    /// gRPC address.
    pub grpc: SocketAddr,
    /// HTTP address.
    pub http: SocketAddr,
    /// Where the rows land.
    pub sink: Arc<MemorySink>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Harness {
    /// Starts a receiver with default limits but no time window (fixtures
    /// carry fixed timestamps).
    pub async fn start() -> Self {
        let sink = Arc::new(MemorySink::new());
        let config = ReceiverConfig {
            grpc_addr: "127.0.0.1:0".parse().expect("addr"),
            http_addr: "127.0.0.1:0".parse().expect("addr"),
            limits: ophion_receiver::Limits::default().without_time_window(),
            ..ReceiverConfig::default()
        };
        let bound = OtlpReceiver::builder(sink.clone())
            .config(config)
            .build()
            .expect("build")
            .bind()
            .await
            .expect("bind");
        let (grpc, http) = (bound.grpc_addr(), bound.http_addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(bound.serve(async {
            let _ = rx.await;
        }));
        Self {
            grpc,
            http,
            sink,
            stop: Some(tx),
        }
    }

    /// `http://host:port`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// `http://host:port` of the gRPC server.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// All rows of a signal, concatenated.
    pub fn rows(&self, signal: Signal) -> Option<RecordBatch> {
        let batches = self.sink.of(signal);
        let first = batches.first()?;
        arrow_select::concat::concat_batches(&first.schema(), &batches).ok()
    }

    /// Waits until `n` rows of `signal` arrived, failing after `timeout`.
    pub async fn wait_rows(&self, signal: Signal, n: usize, timeout: Duration) -> RecordBatch {
        let deadline = Instant::now() + timeout;
        loop {
            let have = self.sink.rows(signal);
            if have >= n {
                return self.rows(signal).expect("rows");
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} {signal} rows, have {have}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Index of the first row whose string column `col` equals `value`.
pub fn row_where(b: &RecordBatch, col: &str, value: &str) -> Option<usize> {
    let c = b.column_by_name(col)?.as_string::<i32>();
    (0..c.len()).find(|&i| c.is_valid(i) && c.value(i) == value)
}

/// All rows whose string column `col` equals `value`.
pub fn rows_where(b: &RecordBatch, col: &str, value: &str) -> Vec<usize> {
    let Some(c) = b.column_by_name(col) else {
        return vec![];
    };
    let c = c.as_string::<i32>();
    (0..c.len())
        .filter(|&i| c.is_valid(i) && c.value(i) == value)
        .collect()
}

/// A string cell; `None` when null.
pub fn str_at(b: &RecordBatch, col: &str, row: usize) -> Option<String> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_string::<i32>();
    c.is_valid(row).then(|| c.value(row).to_owned())
}

/// An integer cell of any integer or timestamp type, widened to i128.
pub fn int_at(b: &RecordBatch, col: &str, row: usize) -> Option<i128> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"));
    if !c.is_valid(row) {
        return None;
    }
    Some(match c.data_type() {
        arrow_schema::DataType::Int64 => i128::from(c.as_primitive::<Int64Type>().value(row)),
        arrow_schema::DataType::Int32 => i128::from(c.as_primitive::<Int32Type>().value(row)),
        arrow_schema::DataType::UInt32 => i128::from(c.as_primitive::<UInt32Type>().value(row)),
        arrow_schema::DataType::UInt64 => i128::from(c.as_primitive::<UInt64Type>().value(row)),
        arrow_schema::DataType::Timestamp(..) => {
            i128::from(c.as_primitive::<TimestampNanosecondType>().value(row))
        }
        other => panic!("{col} is {other}, not an integer"),
    })
}

/// A float cell; `None` when null.
pub fn f64_at(b: &RecordBatch, col: &str, row: usize) -> Option<f64> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_primitive::<Float64Type>();
    c.is_valid(row).then(|| c.value(row))
}

/// A boolean cell.
pub fn bool_at(b: &RecordBatch, col: &str, row: usize) -> Option<bool> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_boolean();
    c.is_valid(row).then(|| c.value(row))
}

/// A fixed-size binary cell as lowercase hex.
pub fn hex_at(b: &RecordBatch, col: &str, row: usize) -> Option<String> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_fixed_size_binary();
    c.is_valid(row)
        .then(|| c.value(row).iter().map(|x| format!("{x:02x}")).collect())
}

/// The entries of a map cell (an attributes column).
pub fn map_at(b: &RecordBatch, col: &str, row: usize) -> Vec<(String, Option<String>)> {
    map_entries(
        b.column_by_name(col)
            .unwrap_or_else(|| panic!("no column {col}"))
            .as_map(),
        row,
    )
}

/// The entries of row `row` of a map array.
pub fn map_entries(m: &arrow_array::MapArray, row: usize) -> Vec<(String, Option<String>)> {
    let entries = m.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    (0..entries.len())
        .map(|i| {
            (
                keys.value(i).to_owned(),
                values.is_valid(i).then(|| values.value(i).to_owned()),
            )
        })
        .collect()
}

/// The value of `key` in a map cell.
pub fn attr(b: &RecordBatch, col: &str, row: usize, key: &str) -> Option<String> {
    map_at(b, col, row)
        .into_iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v)
}

/// A list-of-u64 cell.
pub fn u64_list_at(b: &RecordBatch, col: &str, row: usize) -> Option<Vec<u64>> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_list::<i32>();
    c.is_valid(row)
        .then(|| c.value(row).as_primitive::<UInt64Type>().values().to_vec())
}

/// A list-of-f64 cell.
pub fn f64_list_at(b: &RecordBatch, col: &str, row: usize) -> Option<Vec<f64>> {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_list::<i32>();
    c.is_valid(row)
        .then(|| c.value(row).as_primitive::<Float64Type>().values().to_vec())
}

/// The struct items of a list-of-struct cell (events, links, exemplars).
pub fn struct_list_at(b: &RecordBatch, col: &str, row: usize) -> arrow_array::StructArray {
    let c = b
        .column_by_name(col)
        .unwrap_or_else(|| panic!("no column {col}"))
        .as_list::<i32>();
    c.value(row).as_struct().clone()
}

/// The Python interpreter of the test venv (`OPHION_PYTHON`, set by
/// `scripts/test`).
pub fn python() -> String {
    std::env::var("OPHION_PYTHON").unwrap_or_else(|_| {
        panic!("OPHION_PYTHON is not set: run scripts/test, which creates the venv with the OpenTelemetry SDK")
    })
}

/// Runs `python/send.py`: the Python OpenTelemetry SDK exports traces,
/// metrics and logs over `transport` (`grpc` to `HOST:PORT`, `http` to a
/// base URL) and prints what it sent, returned here.
pub async fn send_with_python_sdk(transport: &str, target: String) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/send.py");
    let out = tokio::process::Command::new(python())
        .arg(script)
        .arg(transport)
        .arg(target)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "python SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from send.py")
}

/// moto's S3 server, for tests of the S3 object store.
pub mod moto {
    pub use ophion_core::testing::{free_port, moto::Moto};

    /// Starts moto's S3 server (from the venv `scripts/test` makes:
    /// `OPHION_PYTHON`) on a free loopback port and creates `bucket`; the
    /// server and its URL.
    pub async fn start(bucket: &str) -> (Moto, String) {
        start_with(bucket, &[]).await
    }

    /// [`start`] with extra environment for moto (e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT`: after that many requests, moto
    /// checks credentials and refuses keys it does not know).
    pub async fn start_with(bucket: &str, env: &[(&str, &str)]) -> (Moto, String) {
        let bucket = bucket.to_owned();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let moto = tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ophion_core::testing::moto::start(&bucket, &env)
        })
        .await
        .expect("moto");
        let url = moto.url.clone();
        (moto, url)
    }
}

/// A proxy in front of an S3 server that answers 30% of the requests of
/// the given methods `503 SlowDown` without forwarding them
/// (deterministically: 3 of every 10), and forwards the rest.
pub mod s3proxy {
    use std::{
        net::SocketAddr,
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
    };

    use axum::{body::Body, extract::State, http::Request, response::Response};

    /// The proxy's counters.
    #[derive(Clone, Debug)]
    pub struct Proxy {
        upstream: String,
        client: reqwest::Client,
        methods: Arc<Vec<http::Method>>,
        /// Requests of the failed methods seen.
        pub seen: Arc<AtomicU64>,
        /// Of those, failed on purpose.
        pub failed: Arc<AtomicU64>,
        hold: Arc<std::sync::Mutex<Option<(http::Method, bool)>>>,
        /// Requests held so far (see [`Proxy::hold`]).
        pub held: Arc<AtomicU64>,
    }

    impl Proxy {
        /// From now on, requests of `method` never get an answer: a crash
        /// can be placed exactly at that step. With `forward`, the request
        /// reaches the server first (a PUT then stores its object), else
        /// it never does. `None` ends the holding for new requests.
        pub fn hold(&self, what: Option<(http::Method, bool)>) {
            *self.hold.lock().unwrap_or_else(|e| e.into_inner()) = what;
        }
    }

    async fn forward(State(p): State<Proxy>, req: Request<Body>) -> Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let held = p
            .hold
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|(m, _)| *m == parts.method);
        if let Some((_, forward)) = held {
            if forward {
                let uri = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let mut up = p
                    .client
                    .request(parts.method.clone(), format!("{}{uri}", p.upstream))
                    .body(body.clone());
                for (k, v) in &parts.headers {
                    if k != http::header::HOST {
                        up = up.header(k, v);
                    }
                }
                let _ = up.send().await;
            }
            p.held.fetch_add(1, Ordering::SeqCst);
            // Never answered: the client waits until it dies.
            std::future::pending::<()>().await;
        }
        if p.methods.contains(&parts.method) {
            let n = p.seen.fetch_add(1, Ordering::SeqCst);
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

    /// Starts the proxy on a loopback port in front of `upstream`.
    pub async fn start(upstream: String, methods: &[http::Method]) -> (SocketAddr, Proxy) {
        let proxy = Proxy {
            upstream,
            client: reqwest::Client::new(),
            methods: Arc::new(methods.to_vec()),
            seen: Arc::default(),
            failed: Arc::default(),
            hold: Arc::default(),
            held: Arc::default(),
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
}
