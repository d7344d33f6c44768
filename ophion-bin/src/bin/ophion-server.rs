//! `ophion-server`: OTLP receivers, the store and the API in one process.
//! Everything after flag parsing is `ophion_bin::server`.

#[global_allocator]
static ALLOC: ophion_bin::alloc::Counting = ophion_bin::alloc::Counting::new();

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use ophion_bin::{
    config::{Overrides, ServerConfig},
    server,
};

/// Ophion: OpenTelemetry traces, logs and metrics in, SQL and an API out.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Flags {
    /// TOML configuration file (see docs/config.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let config = ServerConfig::load(flags.config.as_deref(), std::env::vars(), &flags.overrides);
    ophion_bin::print_or_serve("ophion-server", config, flags.print_config, |config| {
        ophion_bin::init_logging(config.log.format, &config.log.level);
        async move {
            let server = server::Server::bind(config).await?;
            let a = server.addresses();
            // One line on standard output for scripts and tests: where we listen.
            println!(
                "{}",
                serde_json::json!({"event": "listening", "grpc": a.grpc, "otlp_http": a.otlp_http, "api": a.api, "flight": a.flight, "role": a.role})
            );
            server.serve(ophion_bin::shutdown_signal()).await
        }
    })
}
