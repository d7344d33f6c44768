//! `ophion-agent`: takes OTLP from applications on this host, queues it on
//! disk and sends it to an Ophion server. Everything after flag parsing is
//! `ophion_agent` (see its crate docs).

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use ophion_bin::config::agent::{self, AgentFlags};

/// The Ophion agent: OTLP in, a persistent queue, OTLP out to a server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Flags {
    /// TOML configuration file (see docs/agent.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    #[command(flatten)]
    given: AgentFlags,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let config = agent::load(flags.config.as_deref(), std::env::vars(), &flags.given);
    ophion_bin::print_or_serve("ophion-agent", config, flags.print_config, |config| {
        ophion_bin::init_logging(ophion_bin::config::LogFormat::Text, "info");
        async move {
            let agent = ophion_agent::Agent::start(config).await?;
            // One line on standard output for scripts and tests: where it listens.
            println!(
                "{}",
                serde_json::json!({"event": "listening", "grpc": agent.grpc_addr, "otlp_http": agent.http_addr, "admin": agent.admin_addr})
            );
            ophion_bin::shutdown_signal().await;
            agent.shutdown().await;
            Ok::<(), ophion_agent::StartError>(())
        }
    })
}
