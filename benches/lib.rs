//! Benchmarks of Ophion's subsystems; see `receiver.rs` and docs/benchmarks.md.
//! This library holds what several benches share: starting the server
//! binary and signing in ([`Started`]), reading loghub-2k
//! ([`loghub_contents`]), generating log lines ([`lines`]) and printing a
//! query's plan with its metrics ([`print_explained`]).

pub mod lines;

use std::{
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// Prints the plan of `explain` (an `EXPLAIN ANALYZE ...` statement) as
/// it ran the last of `runs` times: the earlier runs warm the footer and
/// text-index caches, as the timed runs are.
pub async fn print_explained(store: &ophion_store::Store, explain: &str, runs: usize) {
    use arrow_array::cast::AsArray as _;
    let mut out = None;
    for _ in 0..runs.max(1) {
        let tenant = ophion_core::TenantId::default();
        out = Some(store.sql(&tenant, explain).await.expect("explain"));
    }
    for b in &out.expect("at least one run").batches {
        let text = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            println!("{}", text.value(i));
        }
    }
}

/// The directory a bench writes to: `--dir` when given (kept afterwards,
/// for inspection), else a fresh temporary one, removed when the returned
/// guard drops.
pub fn work_dir(dir: Option<&Path>) -> (PathBuf, Option<tempfile::TempDir>) {
    match dir {
        Some(d) => (d.to_path_buf(), None),
        None => {
            let tmp = tempfile::tempdir().expect("a temporary directory");
            (tmp.path().to_path_buf(), Some(tmp))
        }
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The next command-line value parsed as a `T`, or `default` when it is
/// missing or does not parse.
pub fn parse_next<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, default: T) -> T {
    args.next().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The first admin's password of the servers benches start.
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// `ophion-server` built with the calling bench's profile:
/// `target/<profile>/deps/bench-*` -> `target/<profile>/ophion-server` (release
/// under `cargo bench`, debug in the smoke pass of `cargo test`), never a
/// stale build of the other one.
pub fn default_server() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let profile_dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    profile_dir.join("ophion-server")
}

/// A server a bench started, signed in as the first admin.
#[derive(Debug)]
pub struct Started {
    /// The process (killed on drop).
    pub child: Child,
    /// OTLP/gRPC URL.
    pub grpc: String,
    /// OTLP/HTTP base URL.
    pub http: String,
    /// API base URL.
    pub api: String,
    /// The admin's access token.
    pub token: String,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Started {
    /// Starts `server` on `data_dir` (on loopback, OS-chosen ports) with
    /// extra `env`, pinned to `cores` with `taskset` when given, and signs
    /// in.
    pub async fn start(
        server: &Path,
        data_dir: &Path,
        env: &[(&str, &str)],
        cores: Option<&str>,
    ) -> Self {
        Self::start_at(server, data_dir, env, cores, "127.0.0.1:0").await
    }

    /// [`Started::start`] with OTLP/gRPC on `grpc` (to restart a server
    /// where its clients expect it).
    pub async fn start_at(
        server: &Path,
        data_dir: &Path,
        env: &[(&str, &str)],
        cores: Option<&str>,
        grpc: &str,
    ) -> Self {
        Self::start_with(server, data_dir, env, cores, grpc, &[]).await
    }

    /// [`Started::start_at`] with more command-line `args` (`--role
    /// query`); the addresses of receivers a role does not run are empty.
    pub async fn start_with(
        server: &Path,
        data_dir: &Path,
        env: &[(&str, &str)],
        cores: Option<&str>,
        grpc: &str,
        args: &[&str],
    ) -> Self {
        let mut cmd = match cores {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.args(["-c", c]).arg(server);
                cmd
            }
            None => Command::new(server),
        };
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args([
                "--grpc-addr",
                grpc,
                "--otlp-http-addr",
                "127.0.0.1:0",
                "--api-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            .env("OPHION_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .expect("start the server (build it first: cargo build --release -p ophion-bin)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        let url = |k: &str| {
            v[k].as_str()
                .map(|a| format!("http://{a}"))
                .unwrap_or_default()
        };
        let (grpc, http, api) = (url("grpc"), url("otlp_http"), url("api"));
        let token = login(&api).await;
        Self {
            child,
            grpc,
            http,
            api,
            token,
        }
    }

    /// A fresh access token of the first admin (the one from `start`
    /// expires after 15 minutes).
    pub async fn login(&self) -> String {
        login(&self.api).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A server's Prometheus `/metrics` text.
pub async fn prometheus(web: &reqwest::Client, api: &str) -> String {
    web.get(format!("{api}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Signs in as the first admin at `api`; the access token.
async fn login(api: &str) -> String {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login answer");
    v["token"].as_str().expect("token").to_owned()
}

/// The named columns of a loghub structured CSV (RFC 4180 quoting), read
/// once, in the order of `names`; `None` for a column the system's CSV
/// does not have.
pub fn loghub_columns(path: &std::path::Path, names: &[&str]) -> Vec<Option<Vec<String>>> {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut rows = Vec::new();
    let (mut field, mut record, mut quoted) = (String::new(), Vec::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\n', false) => {
                record.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut record));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        rows.push(record);
    }
    let header: &[String] = rows.first().map_or(&[], Vec::as_slice);
    names
        .iter()
        .map(|name| {
            let col = header.iter().position(|h| h == name)?;
            Some(
                rows.iter()
                    .skip(1)
                    .map(|r| r.get(col).cloned().unwrap_or_default())
                    .collect(),
            )
        })
        .collect()
}

/// The `Content` column of a loghub structured CSV.
pub fn loghub_contents(path: &std::path::Path) -> Vec<String> {
    loghub_columns(path, &["Content"])
        .pop()
        .flatten()
        .expect("Content column")
}

/// The OpenTelemetry severity number of a loghub `Level` value: Android
/// logcat's one-letter levels here, level words (syslog's, Log4j's,
/// java.util.logging's, Windows') as the agent reads them
/// ([`ophion_agent::logs::parse::severity`]); 0 (unspecified) for a value
/// that is no level (Linux's `combo`).
pub fn severity_number(level: &str) -> i32 {
    match level.trim() {
        "V" => 1,
        "D" => 5,
        "I" => 9,
        "W" => 13,
        "E" => 17,
        "F" => 21,
        word => ophion_agent::logs::parse::severity(word).map_or(0, |(n, _)| n),
    }
}

/// The sixteen systems of loghub-2k.
pub const LOGHUB_SYSTEMS: [&str; 16] = [
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "HPC",
    "Hadoop",
    "HealthApp",
    "Linux",
    "Mac",
    "OpenSSH",
    "OpenStack",
    "Proxifier",
    "Spark",
    "Thunderbird",
    "Windows",
    "Zookeeper",
];
