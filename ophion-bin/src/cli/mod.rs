//! The `ophion` command-line client of the API.
//!
//! - `args`: every command and flag (clap); a new command starts there.
//! - `client`: the HTTP client, the saved token, secrets from stdin.
//! - `commands/`: one file per command group (session, admin, telemetry,
//!   ai, mcp); each command is a function the dispatch below calls.
//! - `render`: tables, log lines and span trees for a terminal.
//! - `instrument`: `ophion instrument` (detect, plan, apply, verify).
//!
//! Exit codes scripts can rely on: `0` success, `1` the server refused the
//! request (bad query, not found; the message says why), `2` bad usage,
//! `3` the server cannot be reached or answered something unreadable.

mod args;
mod client;
mod commands;
mod instrument;
mod render;

pub use args::*;
pub use client::token_path;

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

/// Runs one command, writing what it prints to `out`.
pub async fn run(cli: Cli, out: &mut String) -> Result<(), CliError> {
    let token = cli.token.clone().or_else(client::saved_token);
    let c = client::Client::new(&cli.server, token.as_deref(), cli.ca_cert.as_deref())?;
    use commands::{admin, ai, alerts, heal, mcp, session, telemetry};
    match cli.command {
        Command::Ai(cmd) => ai::ai(cmd, out),
        Command::Login {
            username,
            tenant,
            password_stdin,
        } => session::login(&c, username, tenant, password_stdin, out).await,
        Command::Passwd => session::passwd(&c, out).await,
        Command::Logout => session::logout(&c, out).await,
        Command::Users(cmd) => admin::users(&c, cmd, out).await,
        Command::Audit(cmd) => admin::audit(&c, cmd, out).await,
        Command::Admin(cmd) => admin::admin(&c, cmd, out).await,
        Command::Status => admin::status(&c, out).await,
        Command::Alerts(cmd) => alerts::alerts(&c, cmd, out).await,
        Command::Incidents { open, json } => alerts::incidents(&c, open, json, out).await,
        Command::Heal(cmd) => heal::heal(&c, cmd, out).await,
        Command::Mcp => mcp::serve(c).await,
        Command::Instrument {
            dir,
            apply,
            service,
            endpoint,
            resource_attributes,
            verify,
            timeout,
        } => {
            let r = instrument::Request {
                dir,
                apply,
                service,
                endpoint,
                resource_attributes,
                verify,
                timeout,
            };
            instrument::instrument(&c, r, out).await
        }
        Command::Query { sql, format } => telemetry::query(&c, sql, format, out).await,
        Command::Traces(cmd) => telemetry::traces(&c, cmd, out).await,
        Command::Logs(cmd) => telemetry::logs(&c, cmd, out).await,
        Command::Services { range } => telemetry::services(&c, range, out).await,
        Command::Ask {
            question,
            conversation,
            json,
        } => telemetry::ask(&c, &question, conversation, json, out).await,
    }
}
