//! `ophion alerts ...` and `ophion incidents`: alerting from a terminal.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::listing;
use crate::cli::{CliError, args::AlertsCommand, client::Client, render::*};

fn labels_text(v: &Value) -> String {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "alertname" && k.as_str() != "severity")
        .map(|(k, v)| format!("{k}={}", cell(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A matcher as amtool writes it: `a=b`, `a!=b`, `a=~re`, `a!~re`.
pub(in crate::cli) fn matcher(text: &str) -> Result<Value, CliError> {
    for (op, is_equal, is_regex) in [
        ("!~", false, true),
        ("=~", true, true),
        ("!=", false, false),
        ("=", true, false),
    ] {
        if let Some((name, value)) = text.split_once(op) {
            let name = name.trim();
            if !name.is_empty() {
                return Ok(
                    json!({"name": name, "value": value.trim().trim_matches('"'),
                    "isEqual": is_equal, "isRegex": is_regex}),
                );
            }
        }
    }
    Err(CliError::Refused(format!(
        "`{text}` is not a matcher: use name=value, name!=value, name=~regex or name!~regex"
    )))
}

/// `ophion alerts ...`.
pub(in crate::cli) async fn alerts(
    c: &Client,
    cmd: AlertsCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        AlertsCommand::Rules { json } => {
            let head = ["id", "name", "kind", "severity", "every", "health", "error"];
            let row = |r: &Value| {
                [
                    "id",
                    "name",
                    "kind",
                    "severity",
                    "interval",
                    "health",
                    "last_error",
                ]
                .map(|k| cell(&r[k]))
                .to_vec()
            };
            listing(
                c,
                ("/api/v1/alerts/rules", &[]),
                "rules",
                json,
                &head,
                row,
                out,
            )
            .await?;
        }
        AlertsCommand::List { json } => {
            let head = [
                "state", "alert", "severity", "labels", "value", "since", "incident",
            ];
            let row = |a: &Value| {
                vec![
                    cell(&a["state"]),
                    cell(&a["labels"]["alertname"]),
                    cell(&a["labels"]["severity"]),
                    labels_text(&a["labels"]),
                    cell(&a["value"]),
                    cell(&a["active_since"]),
                    cell(&a["incident_id"]),
                ]
            };
            listing(c, ("/api/v1/alerts", &[]), "alerts", json, &head, row, out).await?;
        }
        AlertsCommand::History => {
            let v = c.get_json("/api/v1/alerts/history", &[]).await?;
            let rows: Vec<Vec<String>> = v["history"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    vec![
                        cell(&h["at"]),
                        format!("{}->{}", cell(&h["from"]), cell(&h["to"])),
                        cell(&h["labels"]["alertname"]),
                        labels_text(&h["labels"]),
                        cell(&h["value"]),
                    ]
                })
                .collect();
            table(
                out,
                &["at", "change", "alert", "labels", "value"].map(String::from),
                &rows,
            );
        }
        AlertsCommand::Silence {
            matchers,
            duration,
            comment,
        } => {
            if matchers.is_empty() {
                let v = c.get_json("/api/v1/silences", &[]).await?;
                let rows: Vec<Vec<String>> = v["silences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let m = s["matchers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|m| {
                                let op = match (m["isEqual"] != false, m["isRegex"] == true) {
                                    (true, false) => "=",
                                    (false, false) => "!=",
                                    (true, true) => "=~",
                                    (false, true) => "!~",
                                };
                                format!("{}{op}{}", cell(&m["name"]), cell(&m["value"]))
                            })
                            .collect::<Vec<_>>()
                            .join(",");
                        vec![
                            cell(&s["id"]),
                            m,
                            cell(&s["startsAt"]),
                            cell(&s["endsAt"]),
                            cell(&s["every"]),
                            cell(&s["comment"]),
                        ]
                    })
                    .collect();
                table(
                    out,
                    &["id", "matchers", "from", "until", "every", "comment"].map(String::from),
                    &rows,
                );
                return Ok(());
            }
            let matchers = matchers
                .iter()
                .map(|m| matcher(m))
                .collect::<Result<Vec<_>, _>>()?;
            let v = c
                .post_json(
                    "/api/v1/silences",
                    &json!({"matchers": matchers, "startsAt": "now",
                    "endsAt": format!("now+{duration}"), "comment": comment}),
                )
                .await?;
            let _ = writeln!(out, "silence {} for {duration}", cell(&v["id"]));
        }
        AlertsCommand::Apply { file, prune } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::Refused(format!("cannot read {}: {e}", file.display())))?;
            let mut bundle: Value = toml::from_str(&text)
                .map_err(|e| CliError::Refused(format!("{}: {e}", file.display())))?;
            bundle["prune"] = Value::Bool(prune);
            let v = c.post_json("/api/v1/alerts/apply", &bundle).await?;
            let _ = writeln!(
                out,
                "{} rules created, {} updated, {} deleted",
                cell(&v["created"]),
                cell(&v["updated"]),
                cell(&v["deleted"])
            );
        }
    }
    Ok(())
}

/// `ophion incidents`.
pub(in crate::cli) async fn incidents(
    c: &Client,
    open: bool,
    json: bool,
    out: &mut String,
) -> Result<(), CliError> {
    let v = c.get_json("/api/v1/incidents", &[]).await?;
    let list: Vec<&Value> = v["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| !open || i["status"] == "open")
        .collect();
    if json {
        out.push_str(&pretty(&json!({"incidents": list})));
        return Ok(());
    }
    for i in list {
        let _ = writeln!(
            out,
            "#{} {} priority {} since {} services {}",
            cell(&i["id"]),
            cell(&i["status"]),
            cell(&i["priority"]),
            cell(&i["opened_at"]),
            i["services"]
                .as_array()
                .into_iter()
                .flatten()
                .map(cell)
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (n, a) in i["alerts"].as_array().into_iter().flatten().enumerate() {
            let _ = writeln!(
                out,
                "  {} {} {} {}",
                if n == 0 { "root cause?" } else { "           " },
                cell(&a["state"]),
                cell(&a["labels"]["alertname"]),
                labels_text(&a["labels"]),
            );
        }
    }
    Ok(())
}
