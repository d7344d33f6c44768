//! What users write: playbooks (a match, ordered steps, a verification,
//! rollback steps, a mode, and the guards), the actions a step may take,
//! and their checks against the server's allowlist. Nothing here runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    alerts::model::{Condition, Labels, Matcher, secs},
    config::HealConfig,
};

/// How a playbook acts when it matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Record what would run; run nothing (the default).
    #[default]
    DryRun,
    /// Wait for an editor or admin to approve, then run.
    Approval,
    /// Run at once.
    Auto,
}

/// A playbook as sent and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookSpec {
    /// Unique within the tenant.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether alerts trigger it (a disabled playbook still runs by hand).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The alerts it answers: every matcher must match the alert's labels
    /// (`alertname`, `severity`, `service`, ...); insights of the watch
    /// match as `alertname="Insight"` with `kind`, `severity`, `service`,
    /// `operation` and `metric`. Empty: it is run by hand only.
    #[serde(default, rename = "match")]
    pub matchers: Vec<Matcher>,
    /// `dry-run` (default), `approval` or `auto`.
    #[serde(default)]
    pub mode: Mode,
    /// The steps, in order; the run stops at the first that fails.
    pub steps: Vec<Action>,
    /// What must hold afterwards; without it a run that completes its
    /// steps succeeds.
    #[serde(default)]
    pub verify: Option<Verify>,
    /// Steps run when a step or the verification fails.
    #[serde(default)]
    pub rollback: Vec<Action>,
    /// Channels told when a run needs approval, and when it failed (the
    /// escalation).
    #[serde(default)]
    pub notify: Vec<String>,
    /// No new run for the same target sooner than this after the last
    /// (default 10m).
    #[serde(default)]
    pub cooldown: Option<String>,
    /// Most runs an hour, all targets together (default 3).
    #[serde(default)]
    pub max_runs_per_hour: Option<u32>,
    /// Limits on how much one playbook may touch.
    #[serde(default)]
    pub blast_radius: BlastRadius,
}

fn yes() -> bool {
    true
}

/// The blast-radius guard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    /// The label that names a run's target (default `service`).
    #[serde(default)]
    pub target_label: Option<String>,
    /// Most distinct targets the playbook may act on in an hour (default 3).
    #[serde(default)]
    pub max_targets: Option<u32>,
    /// No run while more than this many alerts of the tenant fire: when
    /// that much is unhealthy, a person decides (default 10).
    #[serde(default)]
    pub max_firing: Option<u32>,
}

/// The verification: `sql` returns a numeric value that must meet
/// `condition` at every check for `hold`, the hold complete within `within`
/// of the last step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// One read-only query with a numeric value column (its first row is
    /// the value; no row is a failed check). Bound, never spliced: `$from`
    /// and `$to` (the last `window`) and `$target` (the run's target).
    pub sql: String,
    /// What the value must meet.
    pub condition: Condition,
    /// How long it must keep holding (default 1m).
    #[serde(default)]
    pub hold: Option<String>,
    /// How long after the steps it may take (default 5m).
    #[serde(default)]
    pub within: Option<String>,
    /// Time between checks (default 10s).
    #[serde(default)]
    pub every: Option<String>,
    /// The window `$from`..`$to` covers, ending at the check (default 1m).
    #[serde(default)]
    pub window: Option<String>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// An HTTP request (e.g. a deploy system's rollback endpoint).
    Http {
        /// GET, POST, PUT, PATCH or DELETE (default POST).
        #[serde(default)]
        method: Option<String>,
        /// http(s) URL; templates allowed (substituted values must be
        /// plain names).
        url: String,
        /// Headers; templates allowed.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// JSON body; templates allowed in its strings.
        #[serde(default)]
        body: Option<Value>,
        /// Default 30s.
        #[serde(default)]
        timeout: Option<String>,
    },
    /// A program from `[heal] commands`, run without a shell.
    Command {
        /// Its absolute path, exactly as allowlisted; never templated.
        program: String,
        /// Arguments; templates allowed (substituted values must be plain
        /// names: no shell syntax, no paths, no leading `-`).
        #[serde(default)]
        args: Vec<String>,
        /// The only environment it gets, besides `PATH` (templates
        /// allowed).
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Working directory (absolute; default the server's data
        /// directory).
        #[serde(default)]
        cwd: Option<String>,
        /// Default 60s; the program is killed after it.
        #[serde(default)]
        timeout: Option<String>,
    },
    /// A Kubernetes operation through `[heal] kubectl`.
    Kubectl {
        /// `rollout-restart`, `rollout-undo` or `scale`.
        op: String,
        /// `deployment/NAME` (or statefulset, daemonset); templates allowed.
        resource: String,
        /// Namespace; templates allowed.
        #[serde(default)]
        namespace: Option<String>,
        /// Replicas, for `scale`.
        #[serde(default)]
        replicas: Option<u32>,
        /// Default 120s.
        #[serde(default)]
        timeout: Option<String>,
    },
    /// A message to channels (alerting's channels, by name).
    Notify {
        /// Channel names.
        channels: Vec<String>,
        /// The text; templates allowed.
        message: String,
    },
    /// A pause.
    Wait {
        /// How long (`30s`).
        duration: String,
    },
}

/// Kubernetes operations.
pub const KUBECTL_OPS: [&str; 3] = ["rollout-restart", "rollout-undo", "scale"];
/// HTTP methods an action may use.
pub const HTTP_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Most steps in a list.
pub const MAX_STEPS: usize = 20;

impl Action {
    /// Its kind, as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Http { .. } => "http",
            Action::Command { .. } => "command",
            Action::Kubectl { .. } => "kubectl",
            Action::Notify { .. } => "notify",
            Action::Wait { .. } => "wait",
        }
    }

    /// Checks it against the server's allowlist.
    pub fn validate(&self, cfg: &HealConfig) -> Result<(), String> {
        match self {
            Action::Http {
                method,
                url,
                timeout,
                ..
            } => {
                let m = method.as_deref().unwrap_or("POST");
                if !HTTP_METHODS.contains(&m) {
                    return Err(format!("method `{m}`: use {}", HTTP_METHODS.join(", ")));
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("url `{url}` must be http or https"));
                }
                opt_secs(timeout, "timeout")?;
            }
            Action::Command {
                program,
                cwd,
                timeout,
                ..
            } => {
                if program.contains("{{") {
                    return Err("`program` is never templated: name the allowlisted path".into());
                }
                if !cfg.commands.iter().any(|c| c == program) {
                    return Err(format!(
                        "`{program}` is not in the server's allowlist ([heal] commands{})",
                        if cfg.commands.is_empty() {
                            " is empty".to_owned()
                        } else {
                            format!(": {}", cfg.commands.join(", "))
                        }
                    ));
                }
                if let Some(d) = cwd
                    && !d.starts_with('/')
                {
                    return Err(format!("cwd `{d}` must be an absolute path"));
                }
                opt_secs(timeout, "timeout")?;
            }
            Action::Kubectl {
                op,
                replicas,
                timeout,
                ..
            } => {
                if cfg.kubectl.is_empty() {
                    return Err("kubectl steps need [heal] kubectl (its path) set".into());
                }
                if !KUBECTL_OPS.contains(&op.as_str()) {
                    return Err(format!("op `{op}`: use {}", KUBECTL_OPS.join(", ")));
                }
                if (op == "scale") != replicas.is_some() {
                    return Err("`replicas` goes with `scale`, and only with it".into());
                }
                opt_secs(timeout, "timeout")?;
            }
            Action::Notify { channels, .. } => {
                if channels.is_empty() {
                    return Err("notify needs at least one channel".into());
                }
            }
            Action::Wait { duration } => {
                if secs(duration, "duration")? > 3600 {
                    return Err("a wait is at most 1h".into());
                }
            }
        }
        Ok(())
    }
}

fn opt_secs(v: &Option<String>, what: &str) -> Result<(), String> {
    if let Some(t) = v {
        secs(t, what)?;
    }
    Ok(())
}

impl PlaybookSpec {
    /// Checks everything but the verification query itself (the service
    /// plans it).
    pub fn validate(&self, cfg: &HealConfig) -> Result<(), String> {
        let n = self.name.trim();
        if n.is_empty()
            || n.len() > 100
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(
                "`name`: 1 to 100 letters, digits, `-`, `_` or `.` (it is part of URLs)".into(),
            );
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!("a playbook has 1 to {MAX_STEPS} steps"));
        }
        if self.rollback.len() > MAX_STEPS {
            return Err(format!("at most {MAX_STEPS} rollback steps"));
        }
        for m in &self.matchers {
            m.validate()?;
        }
        for (list, what) in [(&self.steps, "step"), (&self.rollback, "rollback step")] {
            for (i, a) in list.iter().enumerate() {
                a.validate(cfg)
                    .map_err(|e| format!("{what} {} ({}): {e}", i + 1, a.kind()))?;
            }
        }
        if let Some(v) = &self.verify {
            for (t, what) in [
                (&v.hold, "verify.hold"),
                (&v.within, "verify.within"),
                (&v.every, "verify.every"),
                (&v.window, "verify.window"),
            ] {
                opt_secs(t, what)?;
            }
            if v.sql.trim().is_empty() {
                return Err("verify.sql is empty".into());
            }
            let d =
                |t: &Option<String>, def: u64| t.as_deref().map_or(Ok(def), |t| secs(t, "verify"));
            if d(&v.hold, 60)? > d(&v.within, 300)? {
                return Err("verify.hold must not be longer than verify.within".into());
            }
        }
        opt_secs(&self.cooldown, "cooldown")?;
        Ok(())
    }

    /// Whether an alert with `labels` triggers it.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.enabled
            && !self.matchers.is_empty()
            && crate::alerts::model::all_match(&self.matchers, labels)
    }

    /// The label naming a run's target.
    pub fn target_label(&self) -> &str {
        self.blast_radius
            .target_label
            .as_deref()
            .unwrap_or("service")
    }

    /// Seconds between runs for one target.
    pub fn cooldown_secs(&self) -> u64 {
        self.cooldown
            .as_deref()
            .and_then(|c| secs(c, "cooldown").ok())
            .unwrap_or(600)
    }
}

/// A value substituted into a command argument, a URL, a kubectl resource
/// or an environment variable must be a plain name: letters, digits and
/// `._:@+=-`, not starting with `-` (an option) or `.` (`..`, hidden
/// files), at most 253 characters. Shell syntax, spaces, quotes and path
/// separators are refused, whatever runs the value.
pub fn plain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && !value.starts_with(['-', '.'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:@+=-".contains(c))
}
