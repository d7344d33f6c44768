//! The `ophion` command-line client of the API.
//!
//! Exit codes scripts can rely on: `0` success, `1` the server refused the
//! request (bad query, not found; the message says why), `2` bad usage,
//! `3` the server cannot be reached or answered something unreadable.

use std::{fmt::Write as _, io::IsTerminal as _, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt as _;
use serde_json::Value;

/// Ophion's command-line client.
#[derive(Debug, Parser)]
#[command(name = "ophion", version, about)]
pub struct Cli {
    /// Server API URL.
    #[arg(
        long,
        env = "OPHION_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Access token; default: the one `ophion login` saved.
    #[arg(long, env = "OPHION_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM certificate to trust besides the system's roots (a server
    /// with a private CA or a self-signed certificate).
    #[arg(long, env = "OPHION_CA_CERT", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one read-only SQL query.
    Query {
        /// The SQL, e.g. "SELECT service_name, count(*) FROM spans GROUP BY 1".
        sql: String,
        /// Output format (default: table on a terminal, csv otherwise).
        #[arg(long, short)]
        format: Option<Format>,
    },
    /// Traces.
    #[command(subcommand)]
    Traces(TracesCommand),
    /// Logs.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Services with request rate, error ratio and latency.
    Services {
        #[command(flatten)]
        range: Range,
    },
    /// Server status: version, uptime, memory, what is stored.
    Status,
    /// Sign in and save the token for later commands (in
    /// `$XDG_CONFIG_HOME/ophion/token`, readable only by you).
    Login {
        /// User name.
        #[arg(long, short, default_value = "admin")]
        username: String,
        /// Read the password from standard input (else `OPHION_PASSWORD`).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sign out: revoke the saved token and forget it.
    Logout,
    /// Change your password: the current one, then the new one, each on a
    /// line of standard input. Signs you out everywhere.
    Passwd,
    /// Users of your tenant (admins).
    #[command(subcommand)]
    Users(UsersCommand),
    /// The audit log (admins).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// AI tools that work offline, on files (no server needed).
    #[command(subcommand)]
    Ai(AiCommand),
}

/// Offline AI commands.
#[derive(Debug, Subcommand)]
pub enum AiCommand {
    /// Log templates: one message per input line; one `template_id,template`
    /// row per line out, in the same order.
    Patterns {
        /// Messages, one per line.
        #[arg(long)]
        input: std::path::PathBuf,
        /// CSV to write (header `template_id,template`).
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Forecast: a CSV with a `value` column (and optionally `timestamp`)
    /// in, oldest first; `step,forecast,lower,upper` rows out (95%
    /// prediction interval).
    Forecast {
        /// CSV with a header row naming `value`.
        #[arg(long)]
        input: std::path::PathBuf,
        /// Steps to forecast.
        #[arg(long)]
        horizon: usize,
        /// CSV to write.
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Anomaly scores: a CSV with `timestamp` and `value` columns in; the
    /// same rows out, in order, with an `anomaly_score` column (0 to 1)
    /// added.
    Detect {
        /// CSV with a header row naming `timestamp` and `value`. Timestamps
        /// are Unix seconds (or milliseconds) or ISO 8601 dates in UTC.
        #[arg(long)]
        input: std::path::PathBuf,
        /// CSV to write.
        #[arg(long)]
        output: std::path::PathBuf,
    },
}

/// `text` as one CSV field (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The rows of a CSV with a `value` column and, when `need_time`, a
/// `timestamp` column (found by name in the header), as (line, seconds or
/// 0, value); an unreadable row is an error naming its line.
fn read_series(text: &str, need_time: bool) -> Result<Vec<(&str, i64, f64)>, String> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or("the input is empty")?
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(format!("the header has no `{name}` column"))
    };
    let t = if need_time {
        Some(col("timestamp")?)
    } else {
        None
    };
    let v = col("value")?;
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line
                .split(',')
                .map(|f| f.trim().trim_matches('"'))
                .collect();
            let at = |c: usize| fields.get(c).copied().unwrap_or("");
            let ts = match t {
                Some(t) => ophion_ai::series::parse_timestamp(at(t)).ok_or(format!(
                    "line {}: bad timestamp {:?}",
                    i + 2,
                    at(t)
                ))?,
                None => 0,
            };
            // An empty value is a gap: it scores 0 and forecasts skip it.
            let value = match at(v) {
                "" => f64::NAN,
                x => x
                    .parse()
                    .map_err(|_| format!("line {}: bad value {x:?}", i + 2))?,
            };
            Ok((line, ts, value))
        })
        .collect()
}

fn ai(cmd: AiCommand, out: &mut String) -> Result<(), CliError> {
    let fail = |p: &std::path::Path, e: &dyn std::fmt::Display| {
        CliError::Refused(format!("{}: {e}", p.display()))
    };
    match cmd {
        AiCommand::Forecast {
            input,
            horizon,
            output,
        } => {
            let text = std::fs::read_to_string(&input).map_err(|e| fail(&input, &e))?;
            let rows = read_series(&text, false).map_err(|e| fail(&input, &e))?;
            let values: Vec<f64> = rows.iter().map(|r| r.2).collect();
            let f = ophion_ai::forecast::forecast(
                &values,
                horizon,
                &ophion_ai::forecast::ForecastConfig::default(),
            );
            let mut csv = String::from("step,forecast,lower,upper\n");
            for h in 0..horizon {
                let _ = writeln!(
                    csv,
                    "{},{:.6},{:.6},{:.6}",
                    h + 1,
                    f.point[h],
                    f.lower[h],
                    f.upper[h]
                );
            }
            std::fs::write(&output, csv).map_err(|e| fail(&output, &e))?;
            let period = f.period.map_or("none".to_owned(), |p| p.to_string());
            let _ = writeln!(
                out,
                "{} points, period {period}, {horizon} steps -> {}",
                values.len(),
                output.display()
            );
            Ok(())
        }
        AiCommand::Detect { input, output } => {
            let text = std::fs::read_to_string(&input).map_err(|e| fail(&input, &e))?;
            let rows = read_series(&text, true).map_err(|e| fail(&input, &e))?;
            let mut detector =
                ophion_ai::anomaly::Detector::new(ophion_ai::anomaly::DetectorConfig::default());
            let header = text.lines().next().unwrap_or_default();
            let mut csv = format!("{header},anomaly_score\n");
            let mut flagged = 0;
            for (line, ts, value) in &rows {
                let p = detector.update(*ts, *value);
                flagged += usize::from(p.anomalous);
                let _ = writeln!(csv, "{line},{:.6}", p.score);
            }
            std::fs::write(&output, csv).map_err(|e| fail(&output, &e))?;
            let _ = writeln!(
                out,
                "{} points, {flagged} anomalies -> {}",
                rows.len(),
                output.display()
            );
            Ok(())
        }
        AiCommand::Patterns { input, output } => {
            let text = std::fs::read_to_string(&input).map_err(|e| fail(&input, &e))?;
            let mut miner = ophion_ai::patterns::TemplateMiner::default();
            let ids: Vec<_> = text.lines().map(|l| miner.add(l)).collect();
            // Templates as they stand after every line was seen.
            let mut csv = String::from("template_id,template\n");
            for id in &ids {
                let _ = writeln!(csv, "{id},{}", csv_field(&miner.template(*id)));
            }
            std::fs::write(&output, csv).map_err(|e| fail(&output, &e))?;
            let _ = writeln!(
                out,
                "{} lines, {} templates -> {}",
                ids.len(),
                miner.len(),
                output.display()
            );
            Ok(())
        }
    }
}

/// User commands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users.
    List,
    /// Add a user; the password is read from standard input.
    Add {
        /// User name.
        username: String,
        /// viewer, editor or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Change a user's role, or disable or enable them.
    Set {
        /// User id (see `ophion users list`).
        id: i64,
        /// viewer, editor or admin.
        #[arg(long)]
        role: Option<String>,
        /// Refuse sign-in and revoke their tokens.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Allow sign-in again.
        #[arg(long)]
        enable: bool,
    },
}

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recent records, newest first.
    List {
        /// Only this action (login, logout, permission_denied, ...).
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Recompute the hash chain; exit code 1 and the first broken record
    /// if any record was changed, removed or reordered.
    Verify,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// Comma-separated values with a header.
    Csv,
    /// The API's JSON.
    Json,
}

/// A time range.
#[derive(Debug, Clone, Args)]
pub struct Range {
    /// Start: RFC 3339, unix nanoseconds, now-15m (default: an hour ago).
    #[arg(long)]
    pub from: Option<String>,
    /// End (default: now).
    #[arg(long)]
    pub to: Option<String>,
}

/// Trace commands.
#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// One trace as an indented span tree.
    Get {
        /// Trace id (32 hex characters).
        id: String,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Find traces.
    Search {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        operation: Option<String>,
        /// key=value
        #[arg(long)]
        attribute: Option<String>,
        /// e.g. 250ms
        #[arg(long)]
        min_duration: Option<String>,
        #[arg(long)]
        max_duration: Option<String>,
        /// error, ok or unset
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        range: Range,
    },
}

/// Log commands.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Search logs, newest first.
    Search {
        /// Text the body contains (case-insensitive).
        text: Option<String>,
        #[arg(long)]
        service: Option<String>,
        /// Minimum severity: trace, debug, info, warn, error, fatal.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        trace_id: Option<String>,
        /// key=value
        #[arg(long)]
        attribute: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        range: Range,
    },
    /// Follow new logs as they arrive.
    Tail {
        /// Text the body contains (case-insensitive).
        text: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        severity: Option<String>,
    },
}

/// A failure, with the exit code it means.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The server cannot be reached or answered something unreadable.
    #[error("{0}")]
    Unreachable(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 1,
            CliError::Unreachable(_) => 3,
        }
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

/// Where `ophion login` keeps the token: `$XDG_CONFIG_HOME/ophion/token`,
/// else `$HOME/.config/ophion/token`.
pub fn token_path() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config")))?;
    Some(base.join("ophion").join("token"))
}

fn saved_token() -> Option<String> {
    let t = std::fs::read_to_string(token_path()?).ok()?;
    Some(t.trim().to_owned()).filter(|t| !t.is_empty())
}

fn save_token(token: &str) -> Result<std::path::PathBuf, CliError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path =
        token_path().ok_or_else(|| CliError::Refused("no HOME to save the token in".into()))?;
    let fail =
        |e: std::io::Error| CliError::Refused(format!("cannot save {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    f.write_all(token.as_bytes()).map_err(fail)?;
    Ok(path)
}

fn read_secret(from_stdin: bool, env: &str, what: &str) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::Refused(format!("cannot read the {what}: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    std::env::var(env).map_err(|_| {
        CliError::Refused(format!(
            "give the {what} on standard input (--password-stdin) or in {env}"
        ))
    })
}

impl Client {
    fn new(
        server: &str,
        token: Option<&str>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self, CliError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
        {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers);
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            http,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CliError> {
        let resp = req.send().await.map_err(|e| {
            CliError::Unreachable(format!(
                "cannot reach the Ophion server at {}: {e}",
                self.base
            ))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let mut message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the server answered {status}"), str::to_owned);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            message.push_str(" (sign in with `ophion login`)");
        }
        Err(CliError::Refused(message))
    }

    async fn get_json(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
    ) -> Result<Value, CliError> {
        let query: Vec<(&str, String)> = query
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
            .collect();
        let resp = self
            .send(self.http.get(format!("{}{path}", self.base)).query(&query))
            .await?;
        resp.json()
            .await
            .map_err(|e| CliError::Unreachable(format!("unreadable answer: {e}")))
    }
}

/// Runs a command, writing its output to `out`.
pub async fn run(cli: Cli, out: &mut String) -> Result<(), CliError> {
    let token = cli.token.clone().or_else(saved_token);
    let c = Client::new(&cli.server, token.as_deref(), cli.ca_cert.as_deref())?;
    match cli.command {
        Command::Ai(cmd) => ai(cmd, out)?,
        Command::Login {
            username,
            password_stdin,
        } => {
            let password = read_secret(password_stdin, "OPHION_PASSWORD", "password")?;
            let v: Value = c
                .send(
                    c.http
                        .post(format!("{}/api/v1/auth/login", c.base))
                        .json(&serde_json::json!({"username": username, "password": password})),
                )
                .await?
                .json()
                .await
                .map_err(|e| CliError::Unreachable(e.to_string()))?;
            let token = v["token"]
                .as_str()
                .ok_or_else(|| CliError::Unreachable("no token in the answer".into()))?;
            let path = save_token(token)?;
            let _ = writeln!(
                out,
                "signed in as {username}; token saved in {}",
                path.display()
            );
        }
        Command::Passwd => {
            let current = read_secret(true, "OPHION_PASSWORD", "current password")?;
            let new = read_secret(true, "OPHION_NEW_PASSWORD", "new password")?;
            c.send(
                c.http
                    .post(format!("{}/api/v1/auth/password", c.base))
                    .json(&serde_json::json!({"current_password": current, "new_password": new})),
            )
            .await?;
            if let Some(p) = token_path() {
                let _ = std::fs::remove_file(p);
            }
            let _ = writeln!(out, "password changed; sign in again with `ophion login`");
        }
        Command::Logout => {
            c.send(c.http.post(format!("{}/api/v1/auth/logout", c.base)))
                .await?;
            if let Some(p) = token_path() {
                let _ = std::fs::remove_file(p);
            }
            let _ = writeln!(out, "signed out");
        }
        Command::Users(UsersCommand::List) => {
            let v = c.get_json("/api/v1/users", &[]).await?;
            let rows: Vec<Vec<String>> = v["users"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| {
                    vec![
                        cell(&u["id"]),
                        cell(&u["username"]),
                        cell(&u["role"]),
                        if u["disabled"].as_bool() == Some(true) {
                            "disabled"
                        } else {
                            ""
                        }
                        .to_owned(),
                    ]
                })
                .collect();
            table(
                out,
                &["id", "username", "role", "state"].map(String::from),
                &rows,
            );
        }
        Command::Users(UsersCommand::Add { username, role }) => {
            let password = read_secret(true, "OPHION_PASSWORD", "new user's password")?;
            let v: Value = c
                .send(c.http.post(format!("{}/api/v1/users", c.base)).json(
                    &serde_json::json!({"username": username, "password": password, "role": role}),
                ))
                .await?
                .json()
                .await
                .map_err(|e| CliError::Unreachable(e.to_string()))?;
            let _ = writeln!(out, "created user {} (id {})", username, cell(&v["id"]));
        }
        Command::Users(UsersCommand::Set {
            id,
            role,
            disable,
            enable,
        }) => {
            let mut patch = serde_json::Map::new();
            if let Some(r) = role {
                patch.insert("role".into(), Value::String(r));
            }
            if disable || enable {
                patch.insert("disabled".into(), Value::Bool(disable));
            }
            c.send(
                c.http
                    .patch(format!("{}/api/v1/users/{id}", c.base))
                    .json(&Value::Object(patch)),
            )
            .await?;
            let _ = writeln!(out, "updated user {id}");
        }
        Command::Audit(AuditCommand::List { action, limit }) => {
            let v = c
                .get_json(
                    "/api/v1/audit",
                    &[("action", action), ("limit", limit.map(|l| l.to_string()))],
                )
                .await?;
            let rows: Vec<Vec<String>> = v["records"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    [
                        "id", "at_ms", "actor", "action", "target", "source", "outcome", "detail",
                    ]
                    .iter()
                    .map(|k| cell(&r[*k]))
                    .collect()
                })
                .collect();
            table(
                out,
                &[
                    "id", "at_ms", "actor", "action", "target", "source", "outcome", "detail",
                ]
                .map(String::from),
                &rows,
            );
        }
        Command::Audit(AuditCommand::Verify) => {
            let v = c.get_json("/api/v1/audit/verify", &[]).await?;
            let n = v["records"].as_u64().unwrap_or(0);
            if v["ok"].as_bool() == Some(true) {
                let _ = writeln!(out, "audit log intact: {n} records verified");
            } else {
                return Err(CliError::Refused(format!(
                    "audit log broken at record {}: {}",
                    cell(&v["broken_at"]),
                    v["reason"].as_str().unwrap_or("")
                )));
            }
        }
        Command::Query { sql, format } => {
            let format = format.unwrap_or(if std::io::stdout().is_terminal() {
                Format::Table
            } else {
                Format::Csv
            });
            let url = format!("{}/api/v1/query", c.base);
            let body = serde_json::json!({ "sql": sql });
            if format == Format::Csv {
                let resp = c
                    .send(c.http.post(url).header("accept", "text/csv").json(&body))
                    .await?;
                let text = resp
                    .text()
                    .await
                    .map_err(|e| CliError::Unreachable(e.to_string()))?;
                out.push_str(&text);
                return Ok(());
            }
            let v: Value = c
                .send(c.http.post(url).json(&body))
                .await?
                .json()
                .await
                .map_err(|e| CliError::Unreachable(e.to_string()))?;
            if format == Format::Json {
                out.push_str(&pretty(&v));
            } else {
                let names: Vec<String> = v["columns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c["name"].as_str().unwrap_or("").to_owned())
                    .collect();
                let rows: Vec<Vec<String>> = v["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| r.as_array().into_iter().flatten().map(cell).collect())
                    .collect();
                table(out, &names, &rows);
                let n = v["stats"]["rows"].as_u64().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "({n} row{}{}, {:.1} ms)",
                    if n == 1 { "" } else { "s" },
                    if v["stats"]["truncated"].as_bool() == Some(true) {
                        ", truncated at the row cap"
                    } else {
                        ""
                    },
                    v["stats"]["elapsed_ms"].as_f64().unwrap_or(0.0)
                );
            }
        }
        Command::Traces(TracesCommand::Get { id, json }) => {
            let v = c.get_json(&format!("/api/v1/traces/{id}"), &[]).await?;
            if json {
                out.push_str(&pretty(&v));
            } else {
                span_tree(out, &v);
            }
        }
        Command::Traces(TracesCommand::Search {
            service,
            operation,
            attribute,
            min_duration,
            max_duration,
            status,
            limit,
            range,
        }) => {
            let v = c
                .get_json(
                    "/api/v1/traces",
                    &[
                        ("service", service),
                        ("operation", operation),
                        ("attribute", attribute),
                        ("min_duration", min_duration),
                        ("max_duration", max_duration),
                        ("status", status),
                        ("limit", limit.map(|l| l.to_string())),
                        ("from", range.from),
                        ("to", range.to),
                    ],
                )
                .await?;
            let rows: Vec<Vec<String>> = v["traces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        cell(&t["trace_id"]),
                        cell(&t["start_time"]),
                        millis(t["duration_ns"].as_f64()),
                        cell(&t["span_count"]),
                        cell(&t["error_count"]),
                        format!("{} {}", cell(&t["root_service"]), cell(&t["root_name"])),
                    ]
                })
                .collect();
            table(
                out,
                &["trace_id", "start", "duration", "spans", "errors", "root"].map(String::from),
                &rows,
            );
        }
        Command::Logs(LogsCommand::Search {
            text,
            service,
            severity,
            trace_id,
            attribute,
            limit,
            range,
        }) => {
            let v = c
                .get_json(
                    "/api/v1/logs",
                    &[
                        ("q", text),
                        ("service", service),
                        ("severity", severity),
                        ("trace_id", trace_id),
                        ("attribute", attribute),
                        ("limit", limit.map(|l| l.to_string())),
                        ("from", range.from),
                        ("to", range.to),
                    ],
                )
                .await?;
            for l in v["logs"].as_array().into_iter().flatten() {
                log_line(out, l);
            }
            let _ = writeln!(out, "({} matching in the range)", v["total"]);
        }
        Command::Logs(LogsCommand::Tail {
            text,
            service,
            severity,
        }) => {
            let query: Vec<(&str, String)> =
                [("q", text), ("service", service), ("severity", severity)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
            let resp = c
                .send(
                    c.http
                        .get(format!("{}/api/v1/logs/tail", c.base))
                        .query(&query),
                )
                .await?;
            let mut stream = resp.bytes_stream();
            let mut pending = String::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| CliError::Unreachable(e.to_string()))?;
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    let data = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect::<String>();
                    if event
                        .lines()
                        .any(|l| l == "event: lagged" || l == "event:lagged")
                    {
                        println!("(missed some records: the tail could not keep up)");
                    } else if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        let mut line = String::new();
                        log_line(&mut line, &v);
                        print!("{line}");
                    }
                }
            }
        }
        Command::Services { range } => {
            let v = c
                .get_json(
                    "/api/v1/services",
                    &[("from", range.from), ("to", range.to)],
                )
                .await?;
            let rows: Vec<Vec<String>> = v["services"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    vec![
                        cell(&s["name"]),
                        format!("{:.2}", s["rate_per_sec"].as_f64().unwrap_or(0.0)),
                        format!("{:.1}%", 100.0 * s["error_ratio"].as_f64().unwrap_or(0.0)),
                        millis(s["p50_ns"].as_f64()),
                        millis(s["p95_ns"].as_f64()),
                        millis(s["p99_ns"].as_f64()),
                    ]
                })
                .collect();
            table(
                out,
                &["service", "req/s", "errors", "p50", "p95", "p99"].map(String::from),
                &rows,
            );
        }
        Command::Status => {
            let v = c.get_json("/api/v1/status", &[]).await?;
            let _ = writeln!(
                out,
                "ophion {} at {}, up {} s, {} MiB resident{}",
                cell(&v["version"]),
                c.base,
                v["uptime_secs"],
                v["memory"]["resident_bytes"].as_u64().unwrap_or(0) >> 20,
                if v["memory"]["over_soft_limit"].as_bool() == Some(true) {
                    " (over the soft limit: refusing writes)"
                } else {
                    ""
                }
            );
            let rows: Vec<Vec<String>> = ["traces", "logs", "metrics"]
                .iter()
                .map(|s| {
                    let x = &v[*s];
                    vec![
                        (*s).to_owned(),
                        cell(&x["received_items"]),
                        cell(&x["rejected_items"]),
                        cell(&x["stored_rows"]),
                        cell(&x["files"]),
                        format!(
                            "{:.1} MiB",
                            x["stored_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
                        ),
                    ]
                })
                .collect();
            table(
                out,
                &[
                    "signal", "received", "rejected", "in files", "files", "on disk",
                ]
                .map(String::from),
                &rows,
            );
        }
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A value as table text.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn millis(ns: Option<f64>) -> String {
    ns.map_or_else(String::new, |n| format!("{:.2} ms", n / 1e6))
}

fn table(out: &mut String, names: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count()).min(80);
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(*w).collect();
                format!("{c:<w$}")
            })
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(out, names);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule);
    for r in rows {
        line(out, r);
    }
}

fn log_line(out: &mut String, l: &Value) {
    let _ = writeln!(
        out,
        "{} {:<5} {}: {}",
        cell(&l["timestamp"]),
        cell(&l["severity_text"]),
        cell(&l["service_name"]),
        cell(&l["body"])
    );
}

/// The spans of a trace as an indented tree, children in start order.
fn span_tree(out: &mut String, v: &Value) {
    let spans: Vec<&Value> = v["spans"].as_array().into_iter().flatten().collect();
    let _ = writeln!(
        out,
        "trace {}: {} spans, {} services, {}",
        cell(&v["trace_id"]),
        spans.len(),
        v["services"].as_array().map_or(0, Vec::len),
        millis(v["duration_ns"].as_f64())
    );
    let id = |s: &Value| cell(&s["span_id"]);
    fn walk(
        out: &mut String,
        spans: &[&Value],
        id: &dyn Fn(&Value) -> String,
        node: &Value,
        depth: usize,
        seen: &mut Vec<String>,
    ) {
        if seen.contains(&id(node)) {
            return; // a cycle in broken data
        }
        seen.push(id(node));
        let status = match node["status_code"].as_str() {
            Some("error") => " [error]",
            _ => "",
        };
        let _ = writeln!(
            out,
            "{}{} {} {}{status}",
            "  ".repeat(depth),
            cell(&node["service_name"]),
            cell(&node["name"]),
            millis(node["duration_ns"].as_f64())
        );
        for child in spans
            .iter()
            .filter(|s| cell(&s["parent_span_id"]) == id(node))
        {
            walk(out, spans, id, child, depth + 1, seen);
        }
    }
    let mut seen = Vec::new();
    let roots: Vec<String> = v["root_span_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    for s in spans.iter().filter(|s| roots.contains(&id(s))) {
        walk(out, &spans, &id, s, 0, &mut seen);
    }
}
