//! The command line: every command, subcommand and flag (clap derive).

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Ask the copilot a question (English or Portuguese); prints the
    /// answer, then each query it ran with its rows.
    Ask {
        /// The question, e.g. "error rate of checkout in the last hour".
        question: String,
        /// Go on with a conversation (its id is printed with each answer).
        #[arg(long, short)]
        conversation: Option<String>,
        /// Print the whole JSON answer instead.
        #[arg(long)]
        json: bool,
    },
    /// Serve the copilot's read-only tools to an MCP client over stdio
    /// (each call goes to the server with your token).
    Mcp,
    /// Server status: version, uptime, memory, what is stored.
    Status,
    /// Instrument an application with OpenTelemetry: detect its
    /// languages and frameworks, print the steps (every file change as a
    /// diff), perform them with --apply, and with --verify wait until its
    /// telemetry reaches the server.
    Instrument {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
        /// Perform the steps shown (without it nothing is changed).
        #[arg(long)]
        apply: bool,
        /// The service name (default: the directory's name).
        #[arg(long)]
        service: Option<String>,
        /// Where the application sends OTLP/HTTP: the agent or the server.
        #[arg(long, default_value = "http://127.0.0.1:4318")]
        endpoint: String,
        /// Resource attributes, `key=value,...`.
        #[arg(long)]
        resource_attributes: Option<String>,
        /// Wait until the server has the service's telemetry, and report it.
        #[arg(long)]
        verify: bool,
        /// How long --verify waits, seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Sign in and save the token for later commands (in
    /// `$XDG_CONFIG_HOME/ophion/token`, readable only by you).
    Login {
        /// User name.
        #[arg(long, short, default_value = "admin")]
        username: String,
        /// The user's tenant (needed when the name exists in several
        /// tenants and the default tenant is not yours).
        #[arg(long, short)]
        tenant: Option<String>,
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
    /// Server administration (admins of the default tenant).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// AI tools that work offline, on files (no server needed).
    #[command(subcommand)]
    Ai(AiCommand),
    /// Alert rules, current alerts, silences; rules from a file (GitOps).
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Auto-healing: playbooks and their runs.
    #[command(subcommand)]
    Heal(HealCommand),
    /// Incidents: related alerts grouped, the probable root cause first.
    Incidents {
        /// Only open incidents.
        #[arg(long)]
        open: bool,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// Alerting commands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The rules, with their health.
    Rules {
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Current alerts (pending, firing, recently resolved).
    List {
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// State changes, newest first.
    History,
    /// Silence alerts whose labels match every matcher, from now on (or
    /// list the silences when no matcher is given).
    Silence {
        /// `name=value`, `name!=value`, `name=~regex` or `name!~regex`.
        matchers: Vec<String>,
        /// How long, e.g. 2h.
        #[arg(long, default_value = "2h")]
        duration: String,
        /// Why (shown with the silence).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Create or update the rules of a TOML file (`[[rules]]` tables with
    /// the fields of `POST /api/v1/alerts/rules`), matched by name.
    Apply {
        /// The TOML file.
        file: std::path::PathBuf,
        /// Also delete the rules the file does not name.
        #[arg(long)]
        prune: bool,
    },
}

/// Auto-healing commands.
#[derive(Debug, Subcommand)]
pub enum HealCommand {
    /// The playbooks (or, with a file, create or replace the playbooks of a
    /// TOML file: `[[playbooks]]` tables with the fields of
    /// `POST /api/v1/playbooks`).
    Playbooks {
        /// A TOML file to apply.
        #[arg(long)]
        apply: Option<std::path::PathBuf>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Run a playbook by hand.
    Run {
        /// The playbook.
        playbook: String,
        /// `name=value` labels its templates and target see.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Only show what would run.
        #[arg(long)]
        dry_run: bool,
    },
    /// Runs, newest first.
    Runs {
        /// Only runs in this state.
        #[arg(long)]
        state: Option<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// One run: every step with its input, timing and output.
    Show {
        /// The run.
        id: i64,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Approve a run awaiting approval.
    Approve {
        /// The run.
        id: i64,
    },
    /// Reject a run awaiting approval.
    Reject {
        /// The run.
        id: i64,
    },
}

/// Server administration.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Replace the token signing key: every session of every tenant ends
    /// (yours too), everyone signs in again.
    RotateSigningKey,
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
