//! `ophion instrument`: from an uninstrumented project to its telemetry
//! in Ophion.
//!
//! 1. Detect the project's languages and frameworks from its manifests
//!    ([`detect`]).
//! 2. Print the steps for each ([`plan`]): packages, a run wrapper
//!    (`otel-run.sh`) setting `OTEL_SERVICE_NAME`,
//!    `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_RESOURCE_ATTRIBUTES`, and for
//!    a project with a `Dockerfile` a Compose override and a Kubernetes
//!    patch. Every file change is printed as a unified diff.
//! 3. With `--apply` (never the default), perform them: write the files
//!    shown, run the package commands shown.
//! 4. With `--verify`, wait until the server has telemetry from the
//!    service and report what arrived.

pub(crate) mod detect;
pub(crate) mod plan;

use std::{path::Path, time::Duration};

use super::{CliError, client::Client};
use plan::{Settings, Step};

/// What `ophion instrument` was asked.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The project.
    pub(crate) dir: std::path::PathBuf,
    /// Perform the steps.
    pub(crate) apply: bool,
    /// The service name (default: the directory's name).
    pub(crate) service: Option<String>,
    /// Where the application sends OTLP/HTTP.
    pub(crate) endpoint: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub(crate) resource_attributes: Option<String>,
    /// Wait for the service's telemetry.
    pub(crate) verify: bool,
    /// How long to wait, seconds.
    pub(crate) timeout: u64,
}

/// `before` -> `after` of `path` as a unified diff.
fn diff(path: &Path, before: &str, after: &str) -> String {
    let name = path.display().to_string();
    let old = if before.is_empty() {
        "/dev/null".to_owned()
    } else {
        format!("a/{name}")
    };
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&old, &format!("b/{name}"))
        .to_string()
}

fn apply(step: &Step, dir: &Path, out: &mut String) -> Result<(), CliError> {
    let fail = |what: String| CliError::Refused(what);
    match step {
        Step::Write {
            path,
            after,
            executable,
            ..
        } => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| fail(format!("{}: {e}", parent.display())))?;
            }
            std::fs::write(path, after).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            #[cfg(unix)]
            if *executable {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            }
            #[cfg(not(unix))]
            let _ = executable;
            out.push_str(&format!("wrote {}\n", path.display()));
        }
        Step::Run { argv } => {
            let status = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .current_dir(dir)
                .stdout(std::process::Stdio::null())
                .status()
                .map_err(|e| fail(format!("{}: {e}", argv[0])))?;
            if !status.success() {
                return Err(fail(format!("`{}` failed ({status})", argv.join(" "))));
            }
            out.push_str(&format!("ran {}\n", argv.join(" ")));
        }
        Step::Manual(_) => {}
    }
    Ok(())
}

/// Runs `ophion instrument`.
pub(crate) async fn instrument(c: &Client, r: Request, out: &mut String) -> Result<(), CliError> {
    let dir = r
        .dir
        .canonicalize()
        .map_err(|e| CliError::Refused(format!("{}: {e}", r.dir.display())))?;
    let service = r.service.clone().unwrap_or_else(|| {
        dir.file_name()
            .map_or_else(|| "app".to_owned(), |n| n.to_string_lossy().into_owned())
    });
    let settings = Settings {
        service: service.clone(),
        endpoint: r.endpoint.clone(),
        resource_attributes: r.resource_attributes.clone().unwrap_or_default(),
    };
    if r.verify && !r.apply {
        // Only the check: the plan was shown (and applied) before.
        return verify(c, &service, Duration::from_secs(r.timeout), out).await;
    }
    let found = detect::detect(&dir);
    if found.is_empty() {
        return Err(CliError::Refused(format!(
            "no manifest of a known language in {} (package.json, requirements.txt, pyproject.toml, pom.xml, build.gradle, *.csproj, go.mod, Gemfile, Cargo.toml)",
            dir.display()
        )));
    }
    let mut steps = Vec::new();
    for f in &found {
        let frameworks = if f.frameworks.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.frameworks.join(", "))
        };
        out.push_str(&format!(
            "# {}{frameworks}: {}\n",
            f.language.name(),
            f.manifest.display()
        ));
        steps.extend(plan::plan(&dir, f, &settings));
    }
    steps.extend(plan::containers(&dir, &settings));
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Write {
                path,
                before,
                after,
                ..
            } => {
                if before == after {
                    out.push_str(&format!("{}. {} is up to date\n", i + 1, path.display()));
                    continue;
                }
                out.push_str(&format!(
                    "{}. {} {}:\n",
                    i + 1,
                    if before.is_empty() {
                        "create"
                    } else {
                        "change"
                    },
                    path.display()
                ));
                out.push_str(&diff(
                    path.strip_prefix(&dir).unwrap_or(path),
                    before,
                    after,
                ));
            }
            Step::Run { argv } => out.push_str(&format!("{}. run: {}\n", i + 1, argv.join(" "))),
            Step::Manual(text) => out.push_str(&format!("{}. by hand: {text}\n", i + 1)),
        }
    }
    if r.apply {
        for step in &steps {
            if let Step::Write { before, after, .. } = step
                && before == after
            {
                continue;
            }
            apply(step, &dir, out)?;
        }
    } else if !found.is_empty() {
        out.push_str("Nothing was changed: run again with --apply to make these changes.\n");
    }
    if r.verify {
        verify(c, &service, Duration::from_secs(r.timeout), out).await?;
    }
    Ok(())
}

/// Waits until the server has spans, logs or metrics of `service` from
/// the last 15 minutes, then reports them.
async fn verify(
    c: &Client,
    service: &str,
    limit: Duration,
    out: &mut String,
) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let quoted = ophion_core::query::sql_literal(service);
    let sql = format!(
        "SELECT 'spans' AS signal, count(*) AS n FROM spans WHERE service_name = {quoted} AND start_time > now() - INTERVAL '15 minutes' \
         UNION ALL SELECT 'logs', count(*) FROM logs WHERE service_name = {quoted} AND timestamp > now() - INTERVAL '15 minutes' \
         UNION ALL SELECT 'metric points', count(*) FROM metrics WHERE service_name = {quoted} AND timestamp > now() - INTERVAL '15 minutes'"
    );
    loop {
        let v = c
            .post_json("/api/v1/query", &serde_json::json!({ "sql": sql }))
            .await?;
        let counts: Vec<(String, i64)> = v["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r[0].as_str()?.to_owned(), r[1].as_i64()?)))
            .collect();
        if counts.iter().any(|(_, n)| *n > 0) {
            out.push_str(&format!(
                "verified: the server has telemetry from {service} (last 15 minutes):"
            ));
            for (signal, n) in &counts {
                out.push_str(&format!(" {n} {signal};"));
            }
            out.push('\n');
            let ops = c
                .get_json(
                    &format!("/api/v1/services/{service}/operations"),
                    &[("from", Some("now-15m".into()))],
                )
                .await?;
            for op in ops["operations"].as_array().into_iter().flatten().take(10) {
                out.push_str(&format!(
                    "  {} ({}): {} requests, {} errors\n",
                    op["name"].as_str().unwrap_or("?"),
                    op["kind"].as_str().unwrap_or("?"),
                    op["requests"].as_i64().unwrap_or(0),
                    op["errors"].as_i64().unwrap_or(0)
                ));
            }
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(CliError::Refused(format!(
                "no telemetry from {service} reached the server within {}s: is the application running through ./otel-run.sh, and is {} reachable from it?",
                limit.as_secs(),
                "OTEL_EXPORTER_OTLP_ENDPOINT"
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
