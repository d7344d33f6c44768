//! Side by side with Parseable: the same OTLP records sent to Ophion's
//! server and to a Parseable server (local-store mode), both on this
//! machine, then the same questions asked through each one's HTTP query
//! API, interleaved (Ophion, Parseable, Ophion, ...) so that background
//! noise falls on both, median of 7. Also measured: each server's CPU per
//! record from the first request until its rows are in Parquet, and its
//! Parquet bytes at rest.
//!
//! Records: `--lines` log lines from the log search bench's generator
//! ([`ophion_benches::lines::LineGen`]: eight formats, mostly unique
//! bodies, the planted order id) and `--spans` shop spans from
//! [`ophion_core::testing::Generator`], as OTLP/HTTP JSON (Parseable's
//! open-source server refuses protobuf). Each
//! server's answers are compared (row counts, and the counts themselves)
//! before any time is reported, so a query that means something else on
//! one side is caught.
//!
//! Run: `cargo build --release -p ophion-bin -p ophion-benches --bins --bench peers`,
//! then `target/release/deps/peers-<hash> --parseable PATH [--lines 1000000]
//! [--spans 500000]`. Parseable is built from its source (`cargo build
//! --release` in a checkout of `parseablehq/parseable`, with
//! `LOCAL_ASSETS_PATH` naming any directory holding an `index.html`, so the
//! build fetches no web console). It is not part of CI: that build takes
//! longer than CI's budget on this machine.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ophion_benches::{
    Started, files_under,
    lines::{LineGen, ORDER, request},
    median, parse_next,
};
use ophion_core::testing::{Generator, now_ns, process, span_count};

#[derive(Debug)]
struct Args {
    parseable: Option<PathBuf>,
    server: PathBuf,
    lines: usize,
    spans: usize,
    runs: usize,
}

fn args() -> Args {
    let mut a = Args {
        parseable: None,
        server: ophion_benches::default_server(),
        lines: 1_000_000,
        spans: 500_000,
        runs: 7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--parseable" => a.parseable = it.next().map(PathBuf::from),
            "--server" => a.server = it.next().map(PathBuf::from).unwrap_or(a.server),
            "--lines" => a.lines = parse_next(&mut it, a.lines),
            "--spans" => a.spans = parse_next(&mut it, a.spans),
            "--runs" => a.runs = parse_next(&mut it, a.runs),
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// A Parseable server in local-store mode on loopback, killed on drop.
#[derive(Debug)]
struct Parseable {
    child: Child,
    url: String,
    staging: PathBuf,
    data: PathBuf,
}

impl Drop for Parseable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const P_USER: &str = "admin";
const P_PASSWORD: &str = "admin";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Parseable {
    async fn start(bin: &Path, dir: &Path) -> Self {
        let port = free_port();
        let (staging, data) = (dir.join("staging"), dir.join("data"));
        let child = Command::new(bin)
            .arg("local-store")
            .env("P_ADDR", format!("127.0.0.1:{port}"))
            .env("P_USERNAME", P_USER)
            .env("P_PASSWORD", P_PASSWORD)
            .env("P_STAGING_DIR", &staging)
            .env("P_FS_DIR", &data)
            .env("P_CHECK_UPDATE", "false")
            .env("P_SEND_ANONYMOUS_USAGE_DATA", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Parseable");
        let url = format!("http://127.0.0.1:{port}");
        let web = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = web
                .get(format!("{url}/api/v1/liveness"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "Parseable did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self {
            child,
            url,
            staging,
            data,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Files still in staging (rows not yet in Parquet).
    fn staged(&self) -> usize {
        files_under(&self.staging)
            .iter()
            .filter(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".arrows") || name.ends_with(".part") || name.ends_with(".parquet")
            })
            .count()
    }
}

/// Bytes of the Parquet files under `dir` whose path contains `part`.
fn parquet_bytes(dir: &Path, part: &str) -> u64 {
    files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| p.to_string_lossy().contains(part))
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Who answers a question.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Ophion,
    Parseable,
}

struct Servers<'a> {
    web: reqwest::Client,
    ophion: &'a Started,
    token: String,
    parseable: &'a Parseable,
    /// Parseable's query window (it needs one): the last two hours.
    window: (&'static str, &'static str),
}

impl Servers<'_> {
    /// Runs `sql` on `side`; the answer's rows (as JSON) and the
    /// milliseconds from request to the whole answer.
    async fn ask(&self, side: Side, sql: &str) -> (Vec<serde_json::Value>, f64) {
        let t = Instant::now();
        let r = match side {
            Side::Ophion => self
                .web
                .post(format!("{}/api/v1/query", self.ophion.api))
                .bearer_auth(&self.token)
                .json(&serde_json::json!({ "sql": sql })),
            Side::Parseable => self
                .web
                .post(format!("{}/api/v1/query", self.parseable.url))
                .basic_auth(P_USER, Some(P_PASSWORD))
                .json(&serde_json::json!({
                    "query": sql,
                    "startTime": self.window.0,
                    "endTime": self.window.1,
                })),
        };
        let r = r.send().await.expect("query");
        let status = r.status();
        let body = r.bytes().await.expect("answer");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(
            status.is_success(),
            "{side:?}: {sql}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let rows = match side {
            Side::Ophion => v["rows"].as_array().cloned().unwrap_or_default(),
            Side::Parseable => v.as_array().cloned().unwrap_or_default(),
        };
        (rows, ms)
    }
}

/// The first number in a row (an array or an object).
fn first_number(row: &serde_json::Value) -> Option<f64> {
    match row {
        serde_json::Value::Array(v) => v.iter().find_map(serde_json::Value::as_f64),
        serde_json::Value::Object(m) => m.values().find_map(serde_json::Value::as_f64),
        _ => None,
    }
}

/// A question in each server's SQL, and how their answers must agree.
struct Question {
    label: &'static str,
    ophion: String,
    parseable: String,
    /// Compare the first number of the first row (a count), or only the
    /// number of rows.
    count: bool,
}

/// Sends `body` (OTLP/JSON: Parseable's open-source server takes no
/// protobuf) to both servers, into Parseable's stream named after the
/// signal; retries an answer of overload.
async fn send(
    web: &reqwest::Client,
    ophion: &str,
    parseable: &Parseable,
    signal: &str,
    body: Vec<u8>,
) {
    for side in [Side::Ophion, Side::Parseable] {
        loop {
            let r = match side {
                Side::Ophion => web.post(format!("{ophion}/v1/{signal}")),
                Side::Parseable => web
                    .post(format!("{}/v1/{signal}", parseable.url))
                    .basic_auth(P_USER, Some(P_PASSWORD))
                    .header("X-P-Stream", signal)
                    .header("X-P-Log-Source", format!("otel-{signal}")),
            };
            let r = r
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("export");
            let status = r.status();
            if status.is_success() {
                break;
            }
            let text = r.text().await.unwrap_or_default();
            assert!(
                status.as_u16() == 429 || status.as_u16() == 503,
                "{side:?} refused a {signal} request: {status}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let Some(bin) = a.parseable.clone() else {
        eprintln!(
            "peers: --parseable PATH is required (a Parseable server binary); see the file's docs"
        );
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("tmp");
    let (o_dir, p_dir) = (dir.path().join("ophion"), dir.path().join("parseable"));
    let ophion = Started::start(
        &a.server,
        &o_dir,
        &[
            ("OPHION__AI__WATCH", "false"),
            ("OPHION__STORE__BUFFER__FLUSH_INTERVAL_SECS", "10"),
        ],
        None,
    )
    .await;
    let parseable = Parseable::start(&bin, &p_dir).await;
    let web = reqwest::Client::new();
    let t0 = now_ns() - 3_600_000_000_000;
    println!(
        "# peers: {} log lines, {} spans; Ophion {}, Parseable {}",
        a.lines,
        a.spans,
        a.server.display(),
        bin.display()
    );

    // Ingest: the same requests to both, one after the other.
    let cpu = |pid: u32| process::cpu_secs(Some(pid));
    let (o_cpu0, p_cpu0) = (cpu(ophion.pid()), cpu(parseable.pid()));
    let mut g = LineGen::new(7, a.lines as u64);
    let mut sent = 0usize;
    while sent < a.lines {
        let n = 4096.min(a.lines - sent);
        let body = serde_json::to_vec(&request(&mut g, t0, sent as u64, n)).expect("otlp json");
        send(&web, &ophion.http, &parseable, "logs", body).await;
        sent += n;
    }
    let mut spans = 0usize;
    let mut trace_ids: Vec<String> = Vec::new();
    let mut seed = 0u64;
    while spans < a.spans {
        let req = Generator::new(1000 + seed, t0 + seed * 1_000_000_000).traces(200);
        seed += 1;
        if seed % 50 == 1 {
            let id = &req.resource_spans[0].scope_spans[0].spans[0].trace_id;
            trace_ids.push(id.iter().map(|b| format!("{b:02x}")).collect());
        }
        spans += span_count(&req);
        send(
            &web,
            &ophion.http,
            &parseable,
            "traces",
            serde_json::to_vec(&req).expect("otlp json"),
        )
        .await;
    }
    // Until both have their rows in Parquet: Ophion flushes every 10 s,
    // Parseable converts staged rows each minute.
    let deadline = Instant::now() + Duration::from_secs(300);
    tokio::time::sleep(Duration::from_secs(15)).await;
    while parseable.staged() > 0 {
        assert!(
            Instant::now() < deadline,
            "Parseable still has staged files"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (o_cpu, p_cpu) = (cpu(ophion.pid()) - o_cpu0, cpu(parseable.pid()) - p_cpu0);
    let records = (a.lines + spans) as f64;
    println!(
        "ingest, first request to rows in Parquet, {} records ({} lines, {spans} spans): Ophion {:.1} CPU-s = {:.2} µs/record, Parseable {:.1} CPU-s = {:.2} µs/record, ratio {:.2}",
        a.lines + spans,
        a.lines,
        o_cpu,
        o_cpu * 1e6 / records,
        p_cpu,
        p_cpu * 1e6 / records,
        o_cpu / p_cpu
    );
    for (label, part_o, part_p, n) in [
        ("log line", "/logs/", "logs", a.lines),
        ("span", "/traces/", "traces", spans),
    ] {
        let o = parquet_bytes(&o_dir, part_o) as f64 / n as f64;
        let p = parquet_bytes(&parseable.data, part_p) as f64 / n as f64;
        println!(
            "Parquet bytes per {label}: Ophion {o:.1}, Parseable {p:.1}, ratio {:.2}",
            o / p
        );
    }

    let servers = Servers {
        web,
        token: ophion.login().await,
        ophion: &ophion,
        parseable: &parseable,
        window: ("2h", "now"),
    };
    let trace = &trace_ids[trace_ids.len() / 2];
    let questions = [
        Question {
            label: "count(*) WHERE body LIKE '%timed out%'",
            ophion: "SELECT count(*) FROM logs WHERE body LIKE '%timed out%'".into(),
            parseable: "SELECT count(*) FROM logs WHERE body LIKE '%timed out%'".into(),
            count: true,
        },
        Question {
            label: "count(*) WHERE body ILIKE '%DEADLOCK%'",
            ophion: "SELECT count(*) FROM logs WHERE body ILIKE '%DEADLOCK%'".into(),
            parseable: "SELECT count(*) FROM logs WHERE body ILIKE '%DEADLOCK%'".into(),
            count: true,
        },
        Question {
            label: "count(*) of the order id (3 lines)",
            ophion: format!("SELECT count(*) FROM logs WHERE body LIKE '%{ORDER}%'"),
            parseable: format!("SELECT count(*) FROM logs WHERE body LIKE '%{ORDER}%'"),
            count: true,
        },
        Question {
            label: "count by service, severity",
            ophion: "SELECT service_name, severity_number, count(*) FROM logs GROUP BY 1, 2"
                .into(),
            parseable: "SELECT \"service.name\", severity_number, count(*) FROM logs GROUP BY 1, 2"
                .into(),
            count: false,
        },
        Question {
            label: "newest 100 errors of one service",
            ophion: "SELECT timestamp, body FROM logs WHERE service_name = 'checkout' AND severity_number >= 17 ORDER BY timestamp DESC LIMIT 100".into(),
            parseable: "SELECT time_unix_nano, body FROM logs WHERE \"service.name\" = 'checkout' AND severity_number >= 17 ORDER BY time_unix_nano DESC LIMIT 100".into(),
            count: false,
        },
        Question {
            label: "spans of one trace by id",
            ophion: format!("SELECT * FROM spans WHERE trace_id = '{trace}'"),
            parseable: format!("SELECT * FROM traces WHERE span_trace_id = '{trace}'"),
            count: false,
        },
        Question {
            label: "median and max duration by service and span name",
            ophion: "SELECT service_name, name, median(duration_ns), max(duration_ns) FROM spans GROUP BY 1, 2".into(),
            parseable: "SELECT \"service.name\", span_name, median(span_duration_ns), max(span_duration_ns) FROM traces GROUP BY 1, 2".into(),
            count: false,
        },
        Question {
            label: "error spans by service",
            ophion: "SELECT service_name, count(*) FROM spans WHERE status_code = 'error' GROUP BY 1".into(),
            parseable: "SELECT \"service.name\", count(*) FROM traces WHERE span_status_code = 2 GROUP BY 1".into(),
            count: false,
        },
    ];
    // The answers agree before anything is timed.
    for q in &questions {
        let (o, _) = servers.ask(Side::Ophion, &q.ophion).await;
        let (p, _) = servers.ask(Side::Parseable, &q.parseable).await;
        assert_eq!(o.len(), p.len(), "{}: rows differ: {o:?} / {p:?}", q.label);
        if q.count {
            assert_eq!(
                o.first().and_then(first_number),
                p.first().and_then(first_number),
                "{}: counts differ",
                q.label
            );
        }
        assert!(!o.is_empty(), "{}: the test's premise: rows", q.label);
    }
    println!("| question | Ophion ms | Parseable ms | ratio |");
    println!("|---|---|---|---|");
    for q in &questions {
        let (mut o, mut p) = (Vec::new(), Vec::new());
        for _ in 0..a.runs {
            o.push(servers.ask(Side::Ophion, &q.ophion).await.1);
            p.push(servers.ask(Side::Parseable, &q.parseable).await.1);
            // Under Ophion's per-user rate limit (20 a second).
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let (o, p) = (median(o), median(p));
        println!("| {} | {o:.1} | {p:.1} | {:.2} |", q.label, o / p);
    }
}
