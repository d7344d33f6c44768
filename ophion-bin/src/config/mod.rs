//! The server's configuration, in layers: defaults < TOML file (`--config`)
//! < `OPHION_*` environment < command-line flags.
//!
//! Every option lives in [`ServerConfig`]; `docs/config.example.toml`
//! documents each one and a test parses it. In the environment, the common
//! options have short names (`OPHION_DATA_DIR`, `OPHION_GRPC_ADDR`,
//! `OPHION_OTLP_HTTP_ADDR`, `OPHION_API_ADDR`) and any option can be set by
//! its path with `__` between levels, e.g.
//! `OPHION__STORE__RETENTION__TRACES_DAYS=7`.

use std::{net::SocketAddr, path::PathBuf};

use ophion_receiver::ReceiverConfig;
use ophion_store::StoreConfig;
use serde::{Deserialize, Serialize};

pub mod agent;
pub mod layers;

pub use layers::{ConfigError, ListenFlags};

/// Everything `ophion-server` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The query API, health and metrics endpoints (default `127.0.0.1:8080`).
    pub api_addr: SocketAddr,
    /// Continuous anomaly detection on the RED series.
    pub ai: AiConfig,
    /// Alert rules, notifications and incidents.
    pub alerts: AlertsConfig,
    /// Auto-healing playbooks: what they may run.
    pub heal: HealConfig,
    /// Sign-in sessions and ingest keys.
    pub auth: crate::auth::AuthConfig,
    /// Rate limits.
    pub limits: crate::auth::limits::LimitsConfig,
    /// TLS on every port (API, OTLP/gRPC, OTLP/HTTP) when a certificate and
    /// key are given.
    pub tls: ophion_receiver::tls::TlsConfig,
    /// Process memory budget.
    pub memory: MemoryConfig,
    /// Log output.
    pub log: LogConfig,
    /// OTLP receivers (gRPC `127.0.0.1:4317`, HTTP `127.0.0.1:4318`) and
    /// their limits.
    pub receiver: ReceiverConfig,
    /// Storage: data directory, write-ahead log, Parquet, retention, query
    /// limits.
    pub store: StoreConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ai: AiConfig::default(),
            alerts: Default::default(),
            heal: Default::default(),
            auth: Default::default(),
            limits: Default::default(),
            tls: Default::default(),
            memory: MemoryConfig::default(),
            log: LogConfig::default(),
            receiver: ReceiverConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

/// The AI service ([`crate::ai`]): its continuous watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Whether the server watches every operation's RED series (default
    /// true).
    pub watch: bool,
    /// Seconds between passes (default 60); each pass scores the minutes
    /// that closed since the last.
    pub interval_secs: u64,
    /// Minutes of history the first pass reads to warm the detectors up
    /// (default 180).
    pub lookback_minutes: u64,
    /// Most series watched per tenant (default 5000); new ones beyond it are
    /// not watched.
    pub max_series: usize,
    /// Metrics the watch scores per service and minute, besides the RED
    /// series: gauges by their average, counters by their rate, histograms
    /// by their p95. The default is the OpenTelemetry semantic-convention
    /// names for CPU, memory and disk use of hosts, containers and
    /// processes.
    pub watch_metrics: Vec<String>,
    /// For the watched metrics named `*.utilization` (a fraction of a
    /// capacity, as the OpenTelemetry conventions define them): the level
    /// whose approach is reported (default 0.9).
    pub capacity_limit: f64,
    /// Hours ahead within which reaching `capacity_limit` is reported,
    /// judged from the trend of the last six hours (default 24).
    pub capacity_horizon_hours: f64,
    /// The copilot's language model (`[ai.llm]`); none by default, when
    /// the built-in engine answers.
    pub llm: ophion_ai::llm::ProviderConfig,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            watch: true,
            interval_secs: 60,
            lookback_minutes: 180,
            max_series: 5000,
            watch_metrics: [
                "system.cpu.utilization",
                "system.memory.utilization",
                "system.filesystem.utilization",
                "container.cpu.utilization",
                "container.memory.usage",
                "process.cpu.utilization",
                "process.memory.usage",
            ]
            .map(String::from)
            .to_vec(),
            capacity_limit: 0.9,
            capacity_horizon_hours: 24.0,
            llm: ophion_ai::llm::ProviderConfig::default(),
        }
    }
}

/// The memory budget of the whole process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// The server's memory budget, in bytes (default 1 GiB). 0 turns the
    /// guard off.
    pub limit_bytes: u64,
    /// Percentage of `limit_bytes` the heap in use (see [`crate::guard`])
    /// may reach before ingestion is refused with retryable errors while
    /// queries keep working (default 80).
    pub soft_limit_percent: u8,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            limit_bytes: 1 << 30,
            soft_limit_percent: 80,
        }
    }
}

impl MemoryConfig {
    /// Resident bytes above which ingestion is refused; `None` when off.
    pub fn soft_limit_bytes(&self) -> Option<u64> {
        (self.limit_bytes > 0)
            .then(|| self.limit_bytes / 100 * u64::from(self.soft_limit_percent.min(100)))
    }
}

/// Log format and level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people or `json` for log pipelines (default `text`).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `ophion_store=debug,info`
    /// (default `info`; `RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's flags, which override everything else.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Data directory (write-ahead log, metadata, local Parquet files).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where it takes OTLP.
    #[command(flatten)]
    pub listen: ListenFlags,
    /// API listen address (default 127.0.0.1:8080).
    #[arg(long)]
    pub api_addr: Option<SocketAddr>,
    /// This node's role in a cluster: all (default), ingest, query or
    /// compact (`[store.cluster] role`).
    #[arg(long)]
    pub role: Option<ophion_store::config::Role>,
}

/// Short environment names for the options people set most.
const SHORT_ENV: &[(&str, &[&str])] = &[
    ("OPHION_DATA_DIR", &["store", "data_dir"]),
    ("OPHION_GRPC_ADDR", &["receiver", "grpc_addr"]),
    ("OPHION_OTLP_HTTP_ADDR", &["receiver", "http_addr"]),
    ("OPHION_API_ADDR", &["api_addr"]),
];

impl ServerConfig {
    /// Loads the layers: defaults, then `file` (if any), then the
    /// variables in `env` (pass `std::env::vars()`), then `flags`.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut given = layers::Given::default();
        given
            .set(
                "--data-dir",
                &["store", "data_dir"],
                flags.data_dir.as_ref().map(|d| d.display()),
            )
            .listen(&flags.listen)
            .set("--api-addr", &["api_addr"], flags.api_addr)
            .set(
                "--role",
                &["store", "cluster", "role"],
                flags.role.map(|r| r.as_str()),
            );
        let mut shape = Self::default();
        shape.tls.cert_path = Some(PathBuf::new());
        shape.tls.key_path = Some(PathBuf::new());
        let config: Self = layers::load(
            &layers::Env {
                paths: "OPHION__",
                short: SHORT_ENV,
            },
            &shape,
            file,
            env,
            given.flags(),
        )?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the parts make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |origin: &str, e: &dyn std::fmt::Display| ConfigError::Invalid {
            origin: origin.to_owned(),
            message: e.to_string(),
        };
        self.receiver
            .validate()
            .map_err(|e| invalid("receiver", &e))?;
        self.store.validate().map_err(|e| invalid("store", &e))?;
        if self.memory.soft_limit_percent == 0 || self.memory.soft_limit_percent > 100 {
            return Err(invalid(
                "memory.soft_limit_percent",
                &"must be between 1 and 100",
            ));
        }
        Ok(())
    }
}

/// `[alerts]`: alert rules, notifications and incidents ([`crate::alerts`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Evaluate rules and send notifications.
    pub enabled: bool,
    /// The base URL of this server as people reach it, for links in
    /// notifications (`generatorURL`, incident and trace links).
    pub external_url: String,
    /// Rule evaluations run at once.
    pub concurrency: usize,
    /// How often the evaluator, dispatcher and deliverer look for work, ms.
    pub tick_ms: u64,
    /// How alerts are grouped into incidents.
    pub correlate: ophion_ai::incidents::CorrelateConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            external_url: "http://localhost:8080".into(),
            concurrency: 2,
            tick_ms: 1000,
            correlate: Default::default(),
        }
    }
}

/// `[heal]`: auto-healing ([`crate::heal`]): what playbooks may run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealConfig {
    /// Trigger playbooks from alerts and run them.
    pub enabled: bool,
    /// The programs a `command` step may run: absolute paths, exactly as
    /// playbooks name them (empty: no command steps).
    pub commands: Vec<String>,
    /// The `kubectl` that `kubectl` steps run (empty: no kubectl steps).
    pub kubectl: String,
    /// How often new alert firings and queued runs are looked for, ms.
    pub tick_ms: u64,
    /// Output kept per step (stdout and stderr each, or a response body).
    pub output_limit_bytes: usize,
}

impl Default for HealConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            commands: Vec::new(),
            kubectl: String::new(),
            tick_ms: 1000,
            output_limit_bytes: 16 * 1024,
        }
    }
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
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("ophion.toml");
        std::fs::write(
            &file,
            "api_addr = \"127.0.0.1:9000\"\n[store]\ndata_dir = \"/from/file\"\n[store.retention]\ntraces_days = 3\nlogs_days = 4\n",
        )
        .expect("write");
        let c = ServerConfig::load(
            Some(&file),
            env(&[
                ("OPHION_DATA_DIR", "/from/env"),
                ("OPHION__STORE__RETENTION__LOGS_DAYS", "9"),
                ("OPHION__LIMITS__TRUSTED_PROXIES", "[\"10.0.0.2\", \"::1\"]"),
                ("OPHION_SERVER", "http://elsewhere"),
                ("HOME", "/root"),
            ]),
            &Overrides {
                api_addr: Some("127.0.0.1:9100".parse().expect("addr")),
                ..Default::default()
            },
        )
        .expect("load");
        assert_eq!(c.api_addr.port(), 9100, "flag beats file");
        assert_eq!(
            c.store.data_dir,
            PathBuf::from("/from/env"),
            "env beats file"
        );
        assert_eq!(c.store.retention.traces_days, 3, "file beats default");
        assert_eq!(c.store.retention.logs_days, 9, "env beats file");
        assert_eq!(
            c.store.retention.metrics_days,
            ServerConfig::default().store.retention.metrics_days
        );
        assert_eq!(c.receiver.grpc_addr.port(), 4317);
        assert_eq!(
            c.limits.trusted_proxies,
            vec![
                "10.0.0.2".parse::<std::net::IpAddr>().expect("ip"),
                "::1".parse().expect("ip")
            ],
            "arrays in the environment"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[store]\nretention_days = 3\n").expect("write");
        let e = ServerConfig::load(Some(&file), env(&[]), &Overrides::default())
            .expect_err("unknown key");
        let msg = e.to_string();
        assert!(
            msg.contains("bad.toml") && msg.contains("retention_days"),
            "{msg}"
        );

        let e = ServerConfig::load(
            None,
            env(&[("OPHION__STORE__NO_SUCH", "1")]),
            &Overrides::default(),
        )
        .expect_err("unknown env option");
        assert!(e.to_string().contains("OPHION__STORE__NO_SUCH"), "{e}");

        let e = ServerConfig::load(
            None,
            env(&[("OPHION_API_ADDR", "not an address")]),
            &Overrides::default(),
        )
        .expect_err("bad address");
        assert!(
            e.to_string().contains("api_addr") || e.to_string().contains("address"),
            "{e}"
        );
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.example.toml");
        let text = std::fs::read_to_string(path).expect("docs/config.example.toml");
        let parsed: ServerConfig = toml::from_str(&text).expect("the example parses");
        assert_eq!(
            parsed,
            ServerConfig::default(),
            "the example shows the defaults"
        );
        // Every option is documented: the example sets every key the
        // defaults have.
        let defaults = toml::Table::try_from(ServerConfig::default()).expect("defaults");
        let example: toml::Table = text.parse().expect("toml");
        fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let name = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(inner) => keys(inner, &format!("{name}."), out),
                    _ => out.push(name),
                }
            }
        }
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys(&defaults, "", &mut want);
        keys(&example, "", &mut have);
        want.sort();
        have.sort();
        assert_eq!(have, want);
        // And each key has a comment above it.
        for key in &want {
            let leaf = key.rsplit('.').next().expect("leaf");
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with(&format!("{leaf} =")))
                .unwrap_or_else(|| panic!("{key} not in the example"));
            assert!(
                line > 0
                    && text
                        .lines()
                        .nth(line - 1)
                        .is_some_and(|l| l.trim_start().starts_with('#')),
                "{key} has no comment"
            );
        }
    }
}
