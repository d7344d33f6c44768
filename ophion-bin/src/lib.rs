//! # ophion-bin
//!
//! The binaries, as library code that tests and embedders can call:
//!
//! - [`server`]: `ophion-server`, the OTLP receivers (gRPC 4317, HTTP 4318)
//!   in front of the store, and the API on 8080. `server::run(config,
//!   shutdown)` is everything the binary does after parsing flags.
//! - [`api`]: the HTTP API (`/api/v1/*`, `/healthz`, `/readyz`, `/metrics`).
//! - [`auth`]: users, sessions (argon2id passwords, HS256 access tokens,
//!   one-time refresh tokens), roles and the permission table, tenants,
//!   and the hash-chained audit log, over the store's metadata database.
//! - [`config`]: configuration layers (defaults < TOML < `OPHION_*` < flags).
//! - [`guard`]: the process memory guard in front of the store, and
//!   [`alloc`]: the counting allocator it reads.
//! - [`cli`]: the `ophion` command-line client of the API.
//!
//! Dependencies point one way: this crate uses `ophion-core`,
//! `ophion-receiver` and `ophion-store`; nothing uses it.

pub mod ai;
pub mod alloc;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod guard;
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
