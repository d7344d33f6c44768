//! `ophion-agent`: takes OTLP from applications on this host, queues it on
//! disk and sends it to an Ophion server. Everything after flag parsing is
//! `ophion_agent` (see its crate docs).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use ophion_bin::config::agent::{self, AgentFlags};

/// The Ophion agent: OTLP in, a persistent queue, OTLP out to a server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Flags {
    /// TOML configuration file (see docs/agent.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory (the queue and log checkpoints).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where to listen for OTLP/gRPC (default 127.0.0.1:4317).
    #[arg(long)]
    grpc_addr: Option<SocketAddr>,
    /// Where to listen for OTLP/HTTP (default 127.0.0.1:4318).
    #[arg(long)]
    otlp_http_addr: Option<SocketAddr>,
    /// The server's OTLP endpoint to send to, e.g. http://127.0.0.1:4317
    /// (gRPC) or http://127.0.0.1:4318 (HTTP).
    #[arg(long)]
    server: Option<String>,
    /// The ingest key the server gave this agent.
    #[arg(long)]
    ingest_key: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let given = AgentFlags {
        data_dir: flags.data_dir,
        grpc_addr: flags.grpc_addr,
        otlp_http_addr: flags.otlp_http_addr,
        server: flags.server,
        ingest_key: flags.ingest_key,
    };
    let config = match agent::load(flags.config.as_deref(), std::env::vars(), &given) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ophion-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.print_config {
        return match toml::to_string_pretty(&config) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ophion-agent: {e}");
                ExitCode::FAILURE
            }
        };
    }
    ophion_bin::init_logging(ophion_bin::config::LogFormat::Text, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ophion-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let agent = ophion_agent::Agent::start(config).await?;
        // One line on standard output for scripts and tests: where it listens.
        println!(
            "{}",
            serde_json::json!({"event": "listening", "grpc": agent.grpc_addr, "otlp_http": agent.http_addr, "admin": agent.admin_addr})
        );
        ophion_bin::shutdown_signal().await;
        agent.shutdown().await;
        Ok::<(), ophion_agent::StartError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ophion-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
