//! # ophion-bin
//!
//! The binaries, as library code that tests and embedders can call. Where
//! things live:
//!
//! - [`server`]: `ophion-server` assembled: the OTLP receivers (gRPC 4317,
//!   HTTP 4318) in front of the store, the API on 8080, the AI watch.
//!   `server::run(config, shutdown)` is everything the binary does after
//!   parsing flags; `Server::mount` adds an embedder's own routes.
//! - [`api`]: the HTTP API. [`api::routes::table`] is the one list of
//!   routes: method, path, permission, handler and OpenAPI description;
//!   handlers live in one module per area.
//! - [`read`]: reading telemetry through the read seam
//!   ([`ophion_core::TelemetryQuery`]): bound parameters, time ranges,
//!   Arrow to JSON, metric series. The API and the AI service share it.
//! - [`ai`]: the AI service (analysis, insights, the continuous watch, saved
//!   log templates) over `ophion-ai`.
//! - [`copilot`]: questions answered from telemetry (the built-in engine or
//!   a language model through read-only tools), the SQL guard, MCP.
//! - [`dashboards`]: saved dashboards per tenant.
//! - [`alerts`]: alert rules evaluated through the read seam, incidents
//!   (Smart Alerts from `ophion-ai`), notifications (Alertmanager webhook,
//!   Slack, PagerDuty, Teams, email, an Alertmanager), silences and
//!   inhibition, with their metadata tables.
//! - [`heal`]: auto-healing playbooks triggered by alerts or by hand:
//!   guarded, dry-run by default, verified, rolled back, audited.
//! - [`auth`]: users, sessions, tenants, ingest keys, roles, limits and the
//!   hash-chained audit log, with their metadata tables.
//! - [`config`]: configuration layers (defaults < TOML < `OPHION_*` < flags).
//! - [`guard`]: the process memory guard in front of the store, and
//!   [`alloc`]: the counting allocator it reads.
//! - [`cli`]: the `ophion` command-line client of the API.
//!
//! ```text
//!  receivers ─► TelemetrySink (store) ◄─ Reader (TelemetryQuery) ◄─ api handlers
//!                                                      ▲
//!                                                 ai::AiService ◄─ api/ai.rs
//! ```
//!
//! Dependencies point one way: this crate uses `ophion-core`,
//! `ophion-receiver`, `ophion-store` and `ophion-ai`; nothing uses it.
//! Inside it, no two modules import each other in a circle
//! (`tests/architecture.rs`).
//!
//! ```
//! // Every route has a permission and a description:
//! let routes = ophion_bin::api::routes::table();
//! assert!(routes.iter().any(|r| r.path() == "/api/v1/query"));
//! ```
//!
//! | feature | what it does |
//! |---------|--------------|
//! | `system-alloc` | the system allocator instead of mimalloc (docs/adr/001-allocator.md) |

pub mod ai;
pub mod alerts;
pub mod alloc;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod copilot;
pub mod dashboards;
pub mod guard;
pub mod heal;
pub mod read;
pub mod server;

/// Starts logging to standard error in `format`, filtered by `RUST_LOG` or
/// else `level`.
pub fn init_logging(format: config::LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Text => builder.try_init(),
    };
}

/// A binary's `main` after its flags are parsed: a configuration that did
/// not load exits with 2; `print` shows it as TOML; otherwise `serve`
/// runs on a multi-threaded runtime. Errors are told on standard error as
/// `name: error`.
pub fn print_or_serve<C, E, F>(
    name: &str,
    config: Result<C, config::ConfigError>,
    print: bool,
    serve: impl FnOnce(C) -> F,
) -> std::process::ExitCode
where
    C: serde::Serialize,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<(), E>>,
{
    use std::process::ExitCode;
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if print {
        return match toml::to_string_pretty(&config) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} stopped");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM: when a binary should stop.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
