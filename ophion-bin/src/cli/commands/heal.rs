//! `ophion heal ...`: playbooks and healing runs from a terminal.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::listing;
use crate::cli::{CliError, args::HealCommand, client::Client, render::*};

/// `ophion heal ...`.
pub(in crate::cli) async fn heal(
    c: &Client,
    cmd: HealCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        HealCommand::Playbooks {
            apply: Some(file), ..
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::Refused(format!("cannot read {}: {e}", file.display())))?;
            let bundle: Value = toml::from_str(&text)
                .map_err(|e| CliError::Refused(format!("{}: {e}", file.display())))?;
            for p in bundle["playbooks"].as_array().into_iter().flatten() {
                let v = c.post_json("/api/v1/playbooks", p).await?;
                let _ = writeln!(
                    out,
                    "playbook {} version {}",
                    cell(&v["name"]),
                    cell(&v["version"])
                );
            }
        }
        HealCommand::Playbooks { apply: None, json } => {
            let head = ["name", "version", "mode", "enabled", "steps", "by"];
            let row = |p: &Value| {
                vec![
                    cell(&p["name"]),
                    cell(&p["version"]),
                    cell(&p["mode"]),
                    cell(&p["enabled"]),
                    p["steps"].as_array().map_or(0, Vec::len).to_string(),
                    cell(&p["updated_by"]),
                ]
            };
            listing(
                c,
                ("/api/v1/playbooks", &[]),
                "playbooks",
                json,
                &head,
                row,
                out,
            )
            .await?;
        }
        HealCommand::Run {
            playbook,
            labels,
            dry_run,
        } => {
            let mut l = Map::new();
            for pair in labels {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| CliError::Refused(format!("`{pair}`: write name=value")))?;
                l.insert(k.trim().to_owned(), json!(v.trim()));
            }
            let v = c
                .post_json(
                    "/api/v1/heal/runs",
                    &json!({"playbook": playbook, "labels": l, "dry_run": dry_run}),
                )
                .await?;
            show(&v, out);
        }
        HealCommand::Runs { state, json } => {
            let head = [
                "id", "playbook", "target", "mode", "state", "trigger", "started", "reason",
            ];
            let row = |r: &Value| {
                vec![
                    cell(&r["id"]),
                    cell(&r["playbook"]),
                    cell(&r["target"]),
                    cell(&r["mode"]),
                    cell(&r["state"]),
                    cell(&r["trigger"]["source"]),
                    cell(&r["created_at"]),
                    cell(&r["reason"]),
                ]
            };
            let query = [("state", state)];
            listing(
                c,
                ("/api/v1/heal/runs", &query),
                "runs",
                json,
                &head,
                row,
                out,
            )
            .await?;
        }
        HealCommand::Show { id, json } => {
            let v = c.get_json(&format!("/api/v1/heal/runs/{id}"), &[]).await?;
            if json {
                out.push_str(&pretty(&v));
            } else {
                show(&v, out);
            }
        }
        HealCommand::Approve { id } | HealCommand::Reject { id } => {
            let verb = if matches!(cmd, HealCommand::Approve { .. }) {
                "approve"
            } else {
                "reject"
            };
            let v = c
                .post_json(&format!("/api/v1/heal/runs/{id}/{verb}"), &json!({}))
                .await?;
            let _ = writeln!(out, "run {id}: {}", cell(&v["state"]));
        }
    }
    Ok(())
}

/// A run and its steps: phase, kind, state, duration, what ran, output.
fn show(v: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "run {} of playbook {} (version {}) on {}: {} [{}]{}",
        cell(&v["id"]),
        cell(&v["playbook"]),
        cell(&v["version"]),
        cell(&v["target"]),
        cell(&v["state"]),
        cell(&v["mode"]),
        v["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    );
    for s in v["steps"].as_array().into_iter().flatten() {
        let ms = s["duration_ms"]
            .as_f64()
            .map(|d| format!("{d:.0} ms"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {} {} {}: {} ({ms}) {}",
            cell(&s["phase"]),
            cell(&s["position"]),
            cell(&s["kind"]),
            cell(&s["state"]),
            s["input"]
        );
        for line in s["output"].as_str().unwrap_or("").lines().take(20) {
            let _ = writeln!(out, "      {line}");
        }
        if let Some(e) = s["error"].as_str() {
            let _ = writeln!(out, "      error: {e}");
        }
    }
}
