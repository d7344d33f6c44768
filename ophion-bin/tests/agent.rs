//! `ophion-agent` between applications and a real `ophion-server`:
//! nothing acknowledged is lost over a server outage or a `kill -9` of
//! the agent, and an outage delivers every span exactly once.

mod common;

use std::{
    collections::HashSet,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{Server, client, free_port, metrics, now_ns, prometheus_sample, sql};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
    trace::v1::Span,
};
use ophion_core::testing::service_request;
use prost::Message as _;
use serde_json::{Value, json};

/// A running `ophion-agent`.
struct Agent {
    child: Option<Child>,
    grpc: SocketAddr,
    http: String,
    admin: String,
    log: PathBuf,
}

impl Agent {
    fn start(data: &Path, server: &str, key: &str) -> Self {
        Self::start_with(data, server, key, None)
    }

    /// With a configuration file.
    fn start_with(data: &Path, server: &str, key: &str, config: Option<&Path>) -> Self {
        let log = data.with_extension("agent.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ophion-agent"));
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(data)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--otlp-http-addr",
                "127.0.0.1:0",
            ])
            .args(["--server", server, "--ingest-key", key])
            .env("OPHION_AGENT__ADMIN_ADDR", "127.0.0.1:0")
            // Come back within a second of the server.
            .env("OPHION_AGENT__SERVER__MAX_BACKOFF_SECS", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start ophion-agent");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("agent said {line:?}; log: {}", read(&log)));
        let addr = |k: &str| -> SocketAddr { v[k].as_str().expect(k).parse().expect(k) };
        Self {
            child: Some(child),
            grpc: addr("grpc"),
            http: format!("http://{}", addr("otlp_http")),
            admin: format!("http://{}", addr("admin")),
            log,
        }
    }

    /// SIGTERM, and wait for the exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let ok = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .expect("kill");
            assert!(ok.success());
            let status = c.wait().expect("wait");
            assert!(
                status.success(),
                "agent exited with {status}; log: {}",
                read(&self.log)
            );
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }

    /// A metric of its own `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        prometheus_sample(&metrics(&self.admin).await, name)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Request `n` of the app: 50 spans with span ids `n * 50 + k + 1`.
fn request(n: u64) -> ExportTraceServiceRequest {
    let now = now_ns();
    let spans = (0..50u64)
        .map(|k| {
            let id = n * 50 + k + 1;
            Span {
                trace_id: (u128::from(n) + 1).to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                name: format!("GET /item/{k}"),
                kind: 2,
                start_time_unix_nano: now,
                end_time_unix_nano: now + 1_000_000 + k * 1000,
                ..Default::default()
            }
        })
        .collect();
    service_request("agent-app", spans)
}

/// The app: sends a request every 50 ms, alternately over gRPC and HTTP,
/// retrying refusals as an SDK does, until `stop`; returns the span ids
/// the agent acknowledged.
async fn app(
    grpc: SocketAddr,
    http: String,
    stop: Arc<Mutex<bool>>,
    acked: Arc<Mutex<HashSet<u64>>>,
    first: u64,
) {
    let web = client();
    let mut g = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .ok();
    let mut n = first;
    while !*stop.lock().expect("lock") {
        let req = request(n);
        let ok = if n.is_multiple_of(2) {
            match g.as_mut() {
                Some(c) => c.export(req).await.is_ok(),
                None => false,
            }
        } else {
            web.post(format!("{http}/v1/traces"))
                .header("content-type", "application/x-protobuf")
                .body(req.encode_to_vec())
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        };
        if ok {
            acked
                .lock()
                .expect("lock")
                .extend((0..50).map(|k| n * 50 + k + 1));
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ingest_key(s: &Server) -> String {
    let r = client()
        .post(format!("{}/api/v1/keys", s.api))
        .bearer_auth(&s.token)
        .json(&json!({"name": "agent"}))
        .send()
        .await
        .expect("keys");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    v["key"].as_str().expect("key").to_owned()
}

/// Span ids the server holds (each once per row).
async fn stored(s: &Server) -> Vec<u64> {
    sql(
        &client(),
        s,
        "SELECT span_id FROM spans WHERE service_name = 'agent-app'",
    )
    .await
    .iter()
    .filter_map(|r| u64::from_str_radix(r[0].as_str()?, 16).ok())
    .collect()
}

async fn until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outage_of_a_minute_delivers_every_span_exactly_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let grpc = format!("127.0.0.1:{}", free_port());
    let env = [("OPHION__AUTH__REQUIRE_INGEST_KEY", "true")];
    let s = Server::start_at(&dir.path().join("server"), &env, &grpc);
    let key = ingest_key(&s).await;
    let agent = Agent::start(&dir.path().join("agent"), &format!("http://{grpc}"), &key);
    let (stop, acked) = (
        Arc::new(Mutex::new(false)),
        Arc::new(Mutex::new(HashSet::new())),
    );
    let sender = tokio::spawn(app(
        agent.grpc,
        agent.http.clone(),
        Arc::clone(&stop),
        Arc::clone(&acked),
        0,
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, _) = s.stop(Duration::from_secs(30));
    assert!(status.success());
    let before = acked.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let during = acked.lock().expect("lock").len() - before;
    assert!(
        during >= 30_000,
        "the agent kept acknowledging while the server was down ({during} spans)"
    );
    assert!(agent.metric("ophion_agent_queue_records").await > 0.0);
    assert!(agent.metric("ophion_agent_export_retries_total").await > 0.0);
    let s = Server::start_at(&dir.path().join("server"), &env, &grpc);
    tokio::time::sleep(Duration::from_secs(5)).await;
    *stop.lock().expect("lock") = true;
    sender.await.expect("app");
    let want: HashSet<u64> = acked.lock().expect("lock").clone();
    until(
        "the agent to drain its queue",
        Duration::from_secs(120),
        async || agent.metric("ophion_agent_queue_records").await == 0.0,
    )
    .await;
    let mut got = Vec::new();
    until(
        "every span in the server",
        Duration::from_secs(60),
        async || {
            got = stored(&s).await;
            got.len() >= want.len()
        },
    )
    .await;
    let distinct: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(distinct, want, "every acknowledged span arrives");
    assert_eq!(got.len(), want.len(), "and only once");
    assert_eq!(agent.metric("ophion_agent_dropped_items_total").await, 0.0);
    println!(
        "{} spans, {during} of them during the 60 s outage, delivered exactly once; agent log:\n{}",
        want.len(),
        read(&agent.log)
            .lines()
            .filter(|l| l.contains("WARN"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("server"), &[]);
    let server = format!("http://{}", s.grpc);
    let key = ingest_key(&s).await;
    let data = dir.path().join("agent");
    let mut want = HashSet::new();
    let mut first = 0;
    for round in 0..3 {
        let mut agent = Agent::start(&data, &server, &key);
        let (stop, acked) = (
            Arc::new(Mutex::new(false)),
            Arc::new(Mutex::new(HashSet::new())),
        );
        let sender = tokio::spawn(app(
            agent.grpc,
            agent.http.clone(),
            Arc::clone(&stop),
            Arc::clone(&acked),
            first,
        ));
        tokio::time::sleep(Duration::from_millis(1500 + round * 700)).await;
        // Mid-stream: the app is sending while the agent dies.
        agent.kill9();
        *stop.lock().expect("lock") = true;
        sender.await.expect("app");
        let acked = acked.lock().expect("lock").clone();
        assert!(!acked.is_empty(), "round {round}: nothing acknowledged");
        first = acked.iter().max().copied().unwrap_or(0) / 50 + 1;
        want.extend(acked);
    }
    // A last start delivers what the killed agents had queued.
    let agent = Agent::start(&data, &server, &key);
    until(
        "the agent to drain its queue",
        Duration::from_secs(60),
        async || agent.metric("ophion_agent_queue_records").await == 0.0,
    )
    .await;
    let mut got = Vec::new();
    until(
        "every acknowledged span in the server",
        Duration::from_secs(60),
        async || {
            got = stored(&s).await;
            want.iter().all(|id| got.contains(id))
        },
    )
    .await;
    let duplicates = got.len() - got.iter().collect::<HashSet<_>>().len();
    println!(
        "{} acknowledged spans over 3 kill -9s, all delivered; {duplicates} delivered twice (a batch in flight at a kill)",
        want.len()
    );
}

/// The log writer of the file test: record `n` is one line, or every
/// seventh a four-line stack trace.
fn write_records(path: &Path, range: std::ops::Range<u64>) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("log file");
    for n in range {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        let (secs, ms) = (now.as_secs(), now.subsec_millis());
        // A civil UTC time from the epoch seconds (days from 1970-01-01).
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil(days as i64);
        let ts = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
        if n % 7 == 3 {
            writeln!(
                f,
                "{ts} ERROR [worker-{n}] record {n} failed\njava.lang.IllegalStateException: record {n}\n\tat shop.Cart.checkout(Cart.java:{n})\n\tat shop.Main.main(Main.java:9)"
            )
            .expect("write");
        } else {
            writeln!(f, "{ts} INFO [worker-{n}] record {n} ok").expect("write");
        }
    }
    f.sync_all().expect("sync");
}

/// Year, month, day of `days` since 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Record numbers in the server's log bodies, one per row, and the rows
/// that are stack traces.
async fn file_records(s: &Server) -> (Vec<u64>, Vec<String>) {
    let rows = sql(
        &client(),
        s,
        "SELECT body, severity_text FROM logs WHERE service_name = 'app'",
    )
    .await;
    let mut ids = Vec::new();
    let mut traces = Vec::new();
    for r in rows {
        let body = r[0].as_str().unwrap_or_default().to_owned();
        if let Some(n) = body
            .split("record ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse().ok())
        {
            ids.push(n);
        }
        if body.contains("\n\tat ") {
            traces.push(body);
        }
    }
    (ids, traces)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_files_arrive_exactly_once_across_rotation_truncation_and_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("server"), &[]);
    let key = ingest_key(&s).await;
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let app = logs.join("app.log");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[logs]\npoll_ms = 100\nflush_ms = 400\n[[logs.sources]]\ninclude = [\"{}/app.log*\"]\n",
            logs.display()
        ),
    )
    .expect("config");
    let data = dir.path().join("agent");
    let server = format!("http://{}", s.grpc);
    let start = || Agent::start_with(&data, &server, &key, Some(&config));
    let mut agent = start();
    let settle = || tokio::time::sleep(Duration::from_millis(900));
    let mut written = 0;
    let mut write = |n: u64| -> u64 {
        write_records(&app, written..written + n);
        written += n;
        written
    };
    // Appended lines.
    write(100);
    settle().await;
    // Rename rotation, then more lines in the new file.
    std::fs::rename(&app, logs.join("app.log.1")).expect("rename");
    write(100);
    settle().await;
    // kill -9 mid-stream, lines written while the agent is down.
    write(30);
    agent.kill9();
    write(50);
    agent = start();
    settle().await;
    // Copy-truncate (logrotate's copytruncate, the older copy renamed
    // first), then more lines.
    std::fs::rename(logs.join("app.log.1"), logs.join("app.log.2")).expect("rename");
    write(20);
    std::fs::copy(&app, logs.join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&app)
        .expect("truncate");
    let so_far = write(100);
    settle().await;
    // Truncation in place, once what was written has been read.
    until(
        "the lines so far to arrive",
        Duration::from_secs(60),
        async || file_records(&s).await.0.len() as u64 >= so_far,
    )
    .await;
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&app)
        .expect("truncate");
    write(50);
    settle().await;
    // A clean restart with lines written while stopped.
    agent.stop();
    let written = write(50);
    agent = start();
    until("every record", Duration::from_secs(60), async || {
        file_records(&s).await.0.len() as u64 >= written
    })
    .await;
    // Nothing more arrives later (no duplicate on its way).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut ids, traces) = file_records(&s).await;
    ids.sort_unstable();
    let want: Vec<u64> = (0..written).collect();
    let dups = ids.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(dups, 0, "records delivered twice");
    assert_eq!(ids, want, "every record exactly once");
    let stack_traces = (0..written).filter(|n| n % 7 == 3).count();
    assert_eq!(traces.len(), stack_traces, "each stack trace is one record");
    assert!(traces.iter().all(|t| t.lines().count() == 4), "{traces:?}");
    assert_eq!(agent.metric("ophion_agent_dropped_items_total").await, 0.0);
    println!(
        "{written} records ({stack_traces} stack traces) over appends, a rename, a kill -9, a copy-truncate, a truncation and a restart: each once"
    );
}

/// The latest value of `metric` with `attribute = value` (or any).
async fn latest(s: &Server, metric: &str, attr: Option<(&str, &str)>) -> Option<f64> {
    let filter = attr.map_or(String::new(), |(k, v)| {
        format!(" AND attributes['{k}'] = '{v}'")
    });
    sql(
        &client(),
        s,
        &format!("SELECT value FROM metrics WHERE metric_name = '{metric}'{filter} ORDER BY timestamp DESC LIMIT 1"),
    )
    .await
    .first()
    .and_then(|r| r[0].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_metrics_arrive_with_their_semantic_convention_names_and_true_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("server"), &[]);
    let key = ingest_key(&s).await;
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[host_metrics]\ninterval_secs = 1\n").expect("config");
    let lo_before = lo_received();
    let agent = Agent::start_with(
        &dir.path().join("agent"),
        &format!("http://{}", s.grpc),
        &key,
        Some(&config),
    );
    until("host metrics", Duration::from_secs(60), async || {
        latest(&s, "system.cpu.utilization", None).await.is_some()
    })
    .await;
    let names: HashSet<String> = sql(&client(), &s, "SELECT DISTINCT metric_name FROM metrics")
        .await
        .iter()
        .filter_map(|r| r[0].as_str().map(str::to_owned))
        .collect();
    for n in [
        "system.cpu.time",
        "system.cpu.utilization",
        "system.cpu.logical.count",
        "system.cpu.load_average.1m",
        "system.memory.usage",
        "system.memory.utilization",
        "system.filesystem.usage",
        "system.filesystem.utilization",
        "system.disk.io",
        "system.network.io",
        "system.network.packets",
        "system.process.count",
    ] {
        assert!(names.contains(n), "{n} missing; got {names:?}");
    }
    // Against /proc, read now.
    let proc_stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let cpus = proc_stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as f64;
    assert_eq!(
        latest(&s, "system.cpu.logical.count", None).await,
        Some(cpus)
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kb = |key: &str| -> f64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .expect(key)
            * 1024.0
    };
    let states = ["used", "free", "buffers", "cached"];
    let mut total = 0.0;
    for st in states {
        total += latest(&s, "system.memory.usage", Some(("system.memory.state", st)))
            .await
            .expect(st);
    }
    assert!(
        (total - kb("MemTotal")).abs() / kb("MemTotal") < 0.01,
        "memory states sum to {total}, MemTotal {}",
        kb("MemTotal")
    );
    let used = latest(
        &s,
        "system.memory.utilization",
        Some(("system.memory.state", "used")),
    )
    .await
    .expect("used");
    let used_now =
        1.0 - (kb("MemFree") + kb("Buffers") + kb("Cached") + kb("SReclaimable")) / kb("MemTotal");
    assert!(
        (used - used_now).abs() < 0.05,
        "memory used {used} vs /proc {used_now}"
    );
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .expect("loadavg")
        .split_whitespace()
        .next()
        .expect("1m")
        .parse()
        .expect("number");
    let got = latest(&s, "system.cpu.load_average.1m", None)
        .await
        .expect("load");
    assert!((got - load).abs() < 1.5, "load {got} vs /proc {load}");
    let util: Vec<f64> = sql(
        &client(),
        &s,
        "SELECT value FROM metrics WHERE metric_name = 'system.cpu.utilization'",
    )
    .await
    .iter()
    .filter_map(|r| r[0].as_f64())
    .collect();
    assert!(util.iter().all(|u| (0.0..=1.0).contains(u)), "{util:?}");
    let got = sql(
        &client(),
        &s,
        "SELECT value FROM metrics WHERE metric_name = 'system.network.io' \
         AND attributes['network.interface.name'] = 'lo' AND attributes['network.io.direction'] = 'receive' \
         ORDER BY timestamp DESC LIMIT 1",
    )
    .await
    .first()
    .and_then(|r| r[0].as_f64())
    .expect("lo receive");
    let lo_after = lo_received();
    assert!(
        lo_before <= got && got <= lo_after,
        "lo bytes {got} outside /proc's {lo_before}..{lo_after}"
    );
    drop(agent);
}

/// Bytes received on the loopback interface so far (/proc/net/dev).
fn lo_received() -> f64 {
    std::fs::read_to_string("/proc/net/dev")
        .expect("/proc/net/dev")
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix("lo:")
                .and_then(|r| r.split_whitespace().next()?.parse().ok())
        })
        .expect("lo in /proc/net/dev")
}
