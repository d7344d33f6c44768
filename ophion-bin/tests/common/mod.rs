#![allow(dead_code, unreachable_pub)]
//! Runs the real `ophion-server` binary on OS-chosen ports with a temporary
//! data directory, and talks to it over HTTP.

pub mod inbox;

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A running `ophion-server`.
pub struct Server {
    child: Option<Child>,
    /// API base URL, e.g. `http://127.0.0.1:41234`.
    pub api: String,
    /// OTLP/gRPC address (`0.0.0.0:0` on nodes without receivers).
    pub grpc: SocketAddr,
    /// OTLP/HTTP base URL (empty on nodes without receivers).
    pub otlp_http: String,
    /// Where the node serves its unflushed rows to a cluster, if it does.
    pub flight: Option<String>,
    /// Where the server's log goes.
    pub log: PathBuf,
    /// An access token of the first admin (`admin`, [`ADMIN_PASSWORD`]).
    pub token: String,
}

/// The first admin's password in every test server.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// Signs in over a plain HTTP/1.1 connection (no runtime needed) and
/// returns the access token.
pub fn login_blocking(api: &str, username: &str, password: &str) -> String {
    use std::io::{Read as _, Write as _};
    let addr = api.trim_start_matches("http://");
    let body = serde_json::json!({"username": username, "password": password}).to_string();
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the API");
    write!(
        conn,
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send login");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read login answer");
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(json).unwrap_or_else(|_| panic!("login answered {answer}"));
    v["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login answered {answer}"))
        .to_owned()
}

const PG_URL: &str = "OPHION__STORE__CATALOG__POSTGRES_URL";
const PG_SCHEMA: &str = "OPHION__STORE__CATALOG__POSTGRES_SCHEMA";

/// With `OPHION_TEST_METADATA=postgres` (`scripts/test`'s second pass over
/// the suites of users, tenants, alerts, dashboards, healing and the
/// copilot), every server keeps its catalog and metadata in PostgreSQL:
/// one throwaway server per test process, stopped when the process exits,
/// and a schema per data directory, so a restarted server finds its own.
/// Any other value is refused rather than ignored.
#[allow(unsafe_code)]
fn metadata_in_postgres(data_dir: &Path) -> Option<(String, String)> {
    use std::sync::Mutex;
    static PG: Mutex<Option<ophion_core::testing::postgres::Postgres>> = Mutex::new(None);
    extern "C" fn stop() {
        if let Ok(mut pg) = PG.lock() {
            pg.take();
        }
    }
    match std::env::var("OPHION_TEST_METADATA").as_deref() {
        Err(_) | Ok("sqlite") => return None,
        Ok("postgres") => {}
        Ok(other) => panic!("OPHION_TEST_METADATA={other}: use sqlite or postgres"),
    }
    let mut pg = PG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if pg.is_none() {
        *pg = Some(ophion_core::testing::postgres::start(&["ophion"]));
        // SAFETY: `stop` is a plain function taking the server out of its
        // lock; the test harness ends with `exit`, which calls it.
        unsafe { libc::atexit(stop) };
    }
    let url = pg.as_ref().map(|p| p.url("ophion"))?;
    Some((url, ophion_core::testing::postgres::schema_for(data_dir)))
}

/// Runs `sqlite` or `postgres` (statements for that database) on the
/// metadata database of the server on `data_dir`, behind the server's
/// back: the tests of tamper detection.
pub fn tamper_metadata(data_dir: &Path, sqlite: &str, postgres: &str) {
    match metadata_in_postgres(data_dir) {
        None => {
            let db = rusqlite::Connection::open(data_dir.join("metadata.db")).expect("db");
            db.execute_batch(sqlite).expect("sqlite statements");
        }
        Some((url, schema)) => ophion_core::testing::postgres::psql(
            &url,
            &format!("SET search_path TO {schema}; {postgres}"),
        ),
    }
}

impl Server {
    /// Starts the binary on `data_dir` with extra environment `env`.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_at(data_dir, env, "127.0.0.1:0")
    }

    /// [`Server::start`] with OTLP/gRPC on `grpc` (to restart a server
    /// where its clients expect it).
    pub fn start_at(data_dir: &Path, env: &[(&str, &str)], grpc: &str) -> Self {
        Self::start_with(data_dir, env, grpc, &[])
    }

    /// [`Server::start_at`] with extra command-line arguments.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)], grpc: &str, args: &[&str]) -> Self {
        // The server creates the data directory itself (mode 0700).
        if let Some(parent) = data_dir.parent() {
            std::fs::create_dir_all(parent).expect("data dir's parent");
        }
        let log = data_dir.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ophion-server"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(["--grpc-addr", grpc])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--api-addr", "127.0.0.1:0"])
            .args(args)
            // Test data may be older than the default retention; keep it.
            .env("OPHION__STORE__RETENTION__TRACES_DAYS", "0")
            .env("OPHION__STORE__RETENTION__LOGS_DAYS", "0")
            .env("OPHION__STORE__RETENTION__METRICS_DAYS", "0")
            .env("RUST_LOG", "info")
            .env("OPHION_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // Tests call the API far faster than people; the rate-limit
            // tests set their own limits.
            .env("OPHION__LIMITS__API_PER_IP", "0")
            .env("OPHION__LIMITS__API_PER_USER", "0")
            .env("OPHION__LIMITS__INGEST_PER_IP", "0")
            .env("OPHION__LIMITS__INGEST_PER_KEY", "0")
            .stdout(Stdio::piped())
            .stderr(log_file);
        if !env.iter().any(|(k, _)| *k == PG_URL)
            && let Some((url, schema)) = metadata_in_postgres(data_dir)
        {
            cmd.env(PG_URL, url).env(PG_SCHEMA, schema);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start ophion-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("server did not start; log: {}", read(&log)));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("bad first line {line:?}; log: {}", read(&log)));
        let addr = |k: &str| -> SocketAddr { v[k].as_str().expect("addr").parse().expect("addr") };
        let api = format!("http://{}", addr("api"));
        let password = env
            .iter()
            .find(|(k, _)| *k == "OPHION_ADMIN_PASSWORD")
            .map_or(ADMIN_PASSWORD, |(_, v)| *v);
        // Over TLS, or with no admin password given, the test signs in
        // itself.
        let tls = env.iter().any(|(k, _)| *k == "OPHION__TLS__CERT_PATH");
        let token = if tls || password.is_empty() {
            String::new()
        } else {
            login_blocking(&api, "admin", password)
        };
        Self {
            child: Some(child),
            api,
            grpc: if v["grpc"].is_null() {
                SocketAddr::from(([0, 0, 0, 0], 0))
            } else {
                addr("grpc")
            },
            otlp_http: if v["otlp_http"].is_null() {
                String::new()
            } else {
                format!("http://{}", addr("otlp_http"))
            },
            flight: v["flight"].as_str().map(str::to_owned),
            log,
            token,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the exit (at most `limit`).
    pub fn stop(mut self, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "server did not exit within {limit:?}; log: {}",
                    read(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// An HTTP client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// POSTs an encoded OTLP protobuf body to `{otlp_http}{path}` and returns
/// the answer, whatever its status (the request itself must go through).
pub async fn post_otlp(
    http: &reqwest::Client,
    otlp_http: &str,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    http.post(format!("{otlp_http}{path}"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .expect("the server answers")
}

/// POSTs an OTLP protobuf message; the server must accept all of it.
pub async fn export(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    msg: &impl prost::Message,
) {
    let r = post_otlp(http, &server.otlp_http, path, msg.encode_to_vec()).await;
    assert_eq!(r.status(), 200, "{path}: {:?}", r.text().await);
}

/// GETs an API path with query parameters; returns status and JSON body.
pub async fn get(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    query: &[(&str, String)],
) -> (u16, Value) {
    let r = http
        .get(format!("{}{path}", server.api))
        .bearer_auth(&server.token)
        .query(query)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GETs and expects 200.
pub async fn get_ok(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    query: &[(&str, String)],
) -> Value {
    let (status, v) = get(http, server, path, query).await;
    assert_eq!(status, 200, "{path} {query:?}: {v}");
    v
}

/// POSTs SQL to the query API; returns the status and the JSON answer.
pub async fn query(http: &reqwest::Client, server: &Server, sql: &str) -> (u16, Value) {
    let r = http
        .post(format!("{}/api/v1/query", server.api))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("query");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

/// Parquet objects in an S3 bucket under `prefix` (moto's
/// ListObjectsV2 at `moto`).
pub async fn parquet_objects(
    http: &reqwest::Client,
    moto: &str,
    bucket: &str,
    prefix: &str,
) -> usize {
    let xml = http
        .get(format!("{moto}/{bucket}?list-type=2&prefix={prefix}"))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("xml");
    xml.matches(".parquet</Key>").count()
}

/// Runs SQL through the API; returns the rows.
pub async fn sql(http: &reqwest::Client, server: &Server, sql: &str) -> Vec<Value> {
    let (status, v) = query(http, server, sql).await;
    assert_eq!(status, 200, "{sql}");
    v["rows"].as_array().cloned().unwrap_or_default()
}

// Not every test binary that shares this module uses each of them.
#[allow(unused_imports)]
pub use ophion_core::testing::{free_port, now_ns, prometheus_sample};

/// Nearest-rank percentile of sorted values.
pub fn nearest_rank(sorted: &[i64], q: f64) -> i64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Whether `got` is a plausible `q` percentile of `sorted`: between the
/// values two ranks either side of the exact rank (t-digest interpolates).
pub fn close_percentile(sorted: &[i64], q: f64, got: f64) -> bool {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    let lo = sorted[rank.saturating_sub(2)] as f64;
    let hi = sorted[(rank + 2).min(n - 1)] as f64;
    got >= lo * 0.99 && got <= hi * 1.01
}

/// A password good enough for test users.
pub const PASSWORD: &str = "a-long-enough-password";

/// Signs in (optionally naming the tenant): status and answer.
pub async fn login(http: &reqwest::Client, s: &Server, user: &str, pw: &str) -> (u16, Value) {
    let r = http
        .post(format!("{}/api/v1/auth/login", s.api))
        .json(&serde_json::json!({"username": user, "password": pw}))
        .send()
        .await
        .expect("login");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Signs in and returns the access token.
pub async fn token(http: &reqwest::Client, s: &Server, user: &str, pw: &str) -> String {
    let (status, v) = login(http, s, user, pw).await;
    assert_eq!(status, 200, "login {user}: {v}");
    v["token"].as_str().expect("token").to_owned()
}

/// Any method on an API path, with an optional token and JSON body:
/// status and JSON answer (`null` for a stream or a body that is not JSON).
pub async fn call(
    http: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", s.api);
    let mut req = http.request(method.parse().expect("method"), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    if path.ends_with("/tail") {
        return (status, Value::Null); // a stream that does not end
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An admin creates a user in their tenant; its id.
pub async fn create_user(
    http: &reqwest::Client,
    s: &Server,
    admin: &str,
    name: &str,
    role: &str,
) -> i64 {
    let (status, v) = call(
        http,
        s,
        "POST",
        "/api/v1/users",
        Some(admin),
        Some(serde_json::json!({"username": name, "password": PASSWORD, "role": role})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_i64().expect("id")
}

/// The Prometheus text of `{base}/metrics`.
pub async fn metrics(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Runs the server binary expecting it to refuse to start: its stderr.
pub fn refused_start(data: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ophion-server"));
    cmd.arg("--data-dir")
        .arg(data)
        .args([
            "--grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
        ])
        .args(["--api-addr", "127.0.0.1:0"])
        .env("OPHION_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "the server must not start");
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .expect("read");
            return err;
        }
        if started.elapsed() > std::time::Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the server neither started nor refused within 90 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
