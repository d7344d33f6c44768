//! `ophion-agent`'s configuration in layers ([`super::layers`]): defaults
//! < TOML file (`--config`, see `docs/agent.example.toml`) <
//! `OPHION_AGENT_*` environment < flags. Short variables:
//! `OPHION_AGENT_DATA_DIR`, `OPHION_AGENT_GRPC_ADDR`,
//! `OPHION_AGENT_OTLP_HTTP_ADDR`, `OPHION_AGENT_SERVER` and
//! `OPHION_AGENT_INGEST_KEY`; any option by its path after
//! `OPHION_AGENT__`.

use std::path::PathBuf;

use ophion_agent::AgentConfig;

use super::layers::{self, ConfigError, Given, ListenFlags};

/// The agent's flags, which override everything else.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentFlags {
    /// Data directory (the queue and log checkpoints).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where it listens.
    #[command(flatten)]
    pub listen: ListenFlags,
    /// The server's OTLP endpoint to send to, e.g. http://127.0.0.1:4317
    /// (gRPC) or http://127.0.0.1:4318 (HTTP).
    #[arg(long)]
    pub server: Option<String>,
    /// The ingest key the server gave this agent.
    #[arg(long)]
    pub ingest_key: Option<String>,
}

/// Short environment names.
const SHORT_ENV: &[(&str, &[&str])] = &[
    ("OPHION_AGENT_DATA_DIR", &["data_dir"]),
    ("OPHION_AGENT_GRPC_ADDR", &["receiver", "grpc_addr"]),
    ("OPHION_AGENT_OTLP_HTTP_ADDR", &["receiver", "http_addr"]),
    ("OPHION_AGENT_SERVER", &["server", "endpoint"]),
    ("OPHION_AGENT_INGEST_KEY", &["server", "ingest_key"]),
];

/// Loads the layers: defaults, then `file` (if any), then the variables
/// in `env` (pass `std::env::vars()`), then `flags`.
pub fn load(
    file: Option<&std::path::Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &AgentFlags,
) -> Result<AgentConfig, ConfigError> {
    let mut given = Given::default();
    given
        .set(
            "--data-dir",
            &["data_dir"],
            flags.data_dir.as_ref().map(|d| d.display()),
        )
        .listen(&flags.listen)
        .set("--server", &["server", "endpoint"], flags.server.as_ref())
        .set(
            "--ingest-key",
            &["server", "ingest_key"],
            flags.ingest_key.as_ref(),
        );
    let mut shape = AgentConfig::default();
    shape.server.ingest_key = Some(String::new());
    shape.server.protocol = Some(ophion_agent::export::Protocol::Grpc);
    let config: AgentConfig = layers::load(
        &layers::Env {
            paths: "OPHION_AGENT__",
            short: SHORT_ENV,
        },
        &shape,
        file,
        env,
        given.flags(),
    )?;
    config.validate().map_err(|message| ConfigError::Invalid {
        origin: "configuration".into(),
        message,
    })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_example_file_is_the_defaults_and_layers_override_in_order() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/agent.example.toml");
        let from_file =
            load(Some(example.as_ref()), env(&[]), &AgentFlags::default()).expect("example");
        assert_eq!(
            from_file,
            AgentConfig::default(),
            "docs/agent.example.toml states the defaults"
        );
        let c = load(
            Some(example.as_ref()),
            env(&[
                ("OPHION_AGENT_SERVER", "http://from-env:4318"),
                ("OPHION_AGENT__QUEUE__MAX_BYTES", "999999999"),
                ("OPHION_AGENT_DATA_DIR", "/from/env"),
                // The server's variables are not the agent's.
                ("OPHION_DATA_DIR", "/server"),
                ("OPHION__STORE__NO_SUCH", "1"),
            ]),
            &AgentFlags {
                data_dir: Some("/from/flag".into()),
                ingest_key: Some("oph_flag".into()),
                ..Default::default()
            },
        )
        .expect("layers");
        assert_eq!(c.server.endpoint, "http://from-env:4318");
        assert_eq!(c.server.protocol, None);
        assert_eq!(c.queue.max_bytes, 999_999_999);
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.server.ingest_key.as_deref(), Some("oph_flag"));
    }

    #[test]
    fn typos_and_bad_values_are_errors_that_name_them() {
        let e = load(
            None,
            env(&[("OPHION_AGENT__QUEUE__MAX_BYTE", "1")]),
            &AgentFlags::default(),
        )
        .expect_err("typo");
        assert!(
            e.to_string().contains("OPHION_AGENT__QUEUE__MAX_BYTE"),
            "{e}"
        );
        let e = load(
            None,
            env(&[]),
            &AgentFlags {
                server: Some("127.0.0.1:4317".into()),
                ..Default::default()
            },
        )
        .expect_err("not a URL");
        assert!(e.to_string().contains("server.endpoint"), "{e}");
    }
}
