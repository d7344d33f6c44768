//! `ophion-server`: OTLP receivers, the store and the API in one process.
//! Everything after flag parsing is `ophion_bin::server`.

#[global_allocator]
static ALLOC: ophion_bin::alloc::Counting = ophion_bin::alloc::Counting::new();

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

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
    /// Data directory (write-ahead log, metadata, local Parquet files).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (default 127.0.0.1:4317).
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    /// OTLP/HTTP listen address (default 127.0.0.1:4318).
    #[arg(long)]
    otlp_http_addr: Option<SocketAddr>,
    /// API listen address (default 127.0.0.1:8080).
    #[arg(long)]
    api_addr: Option<SocketAddr>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let overrides = Overrides {
        data_dir: flags.data_dir,
        grpc_addr: flags.grpc_addr,
        otlp_http_addr: flags.otlp_http_addr,
        api_addr: flags.api_addr,
    };
    let config = match ServerConfig::load(flags.config.as_deref(), std::env::vars(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ophion-server: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.print_config {
        match toml::to_string_pretty(&config) {
            Ok(t) => print!("{t}"),
            Err(e) => {
                eprintln!("ophion-server: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    ophion_bin::init_logging(config.log.format, &config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ophion-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let server = server::Server::bind(config).await?;
        let a = server.addresses();
        // One line on standard output for scripts and tests: where we listen.
        println!(
            "{}",
            serde_json::json!({"event": "listening", "grpc": a.grpc, "otlp_http": a.otlp_http, "api": a.api})
        );
        server.serve(ophion_bin::shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ophion-server stopped");
            eprintln!("ophion-server: {e}");
            ExitCode::FAILURE
        }
    }
}
