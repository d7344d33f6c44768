//! `ophion query`, `traces`, `logs` and `services`: reading telemetry.

use std::{fmt::Write as _, io::IsTerminal as _};

use futures::StreamExt as _;

use serde_json::Value;

use crate::cli::args::{Format, LogsCommand, Range, TracesCommand};
use crate::cli::{CliError, client::Client, render::*};

/// `ophion query SQL`.
pub(in crate::cli) async fn query(
    c: &Client,
    sql: String,
    format: Option<Format>,
    out: &mut String,
) -> Result<(), CliError> {
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    let url = format!("{}/api/v1/query", c.base);
    let body = serde_json::json!({ "sql": sql });
    if format == Format::Csv {
        let resp = c
            .send(c.http.post(url).header("accept", "text/csv").json(&body))
            .await?;
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        out.push_str(&text);
        return Ok(());
    }
    let v: Value = c
        .send(c.http.post(url).json(&body))
        .await?
        .json()
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    if format == Format::Json {
        out.push_str(&pretty(&v));
    } else {
        let names: Vec<String> = v["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap_or("").to_owned())
            .collect();
        table(out, &names, &rows_text(&v["rows"]));
        let n = v["stats"]["rows"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "({n} row{}{}, {:.1} ms)",
            if n == 1 { "" } else { "s" },
            if v["stats"]["truncated"].as_bool() == Some(true) {
                ", truncated at the row cap"
            } else {
                ""
            },
            v["stats"]["elapsed_ms"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// `ophion ask QUESTION`: the answer, then the SQL it ran and the rows.
pub(in crate::cli) async fn ask(
    c: &Client,
    question: &str,
    conversation: Option<String>,
    json: bool,
    out: &mut String,
) -> Result<(), CliError> {
    let url = format!("{}/api/v1/ai/chat", c.base);
    let mut body = serde_json::json!({ "message": question });
    if let Some(id) = conversation {
        body["conversation_id"] = Value::String(id);
    }
    let v: Value = c
        .send(c.http.post(url).json(&body))
        .await?
        .json()
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    if json {
        out.push_str(&pretty(&v));
        return Ok(());
    }
    let _ = writeln!(out, "{}", v["answer"].as_str().unwrap_or(""));
    for q in v["queries"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "\nSQL: {}", q["sql"].as_str().unwrap_or(""));
        if let Some(p) = q["params"].as_object().filter(|p| !p.is_empty()) {
            let list: Vec<String> = p.iter().map(|(k, v)| format!("${k} = {v}")).collect();
            let _ = writeln!(out, "     {}", list.join(", "));
        }
        let names: Vec<String> = q["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or("").to_owned())
            .collect();
        table(out, &names, &rows_text(&q["rows"]));
    }
    for e in v["evidence"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "see: {} {}",
            e["label"].as_str().unwrap_or(""),
            e["link"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "({} engine; conversation {})",
        v["engine"].as_str().unwrap_or(""),
        v["conversation_id"].as_str().unwrap_or("")
    );
    Ok(())
}

/// `ophion traces ...`.
pub(in crate::cli) async fn traces(
    c: &Client,
    cmd: TracesCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        TracesCommand::Get { id, json } => {
            let v = c.get_json(&format!("/api/v1/traces/{id}"), &[]).await?;
            if json {
                out.push_str(&pretty(&v));
            } else {
                span_tree(out, &v);
            }
        }
        TracesCommand::Search {
            service,
            operation,
            attribute,
            min_duration,
            max_duration,
            status,
            limit,
            range,
        } => {
            let v = c
                .get_json(
                    "/api/v1/traces",
                    &[
                        ("service", service),
                        ("operation", operation),
                        ("attribute", attribute),
                        ("min_duration", min_duration),
                        ("max_duration", max_duration),
                        ("status", status),
                        ("limit", limit.map(|l| l.to_string())),
                        ("from", range.from),
                        ("to", range.to),
                    ],
                )
                .await?;
            let rows: Vec<Vec<String>> = v["traces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        cell(&t["trace_id"]),
                        cell(&t["start_time"]),
                        millis(t["duration_ns"].as_f64()),
                        cell(&t["span_count"]),
                        cell(&t["error_count"]),
                        format!("{} {}", cell(&t["root_service"]), cell(&t["root_name"])),
                    ]
                })
                .collect();
            table(
                out,
                &["trace_id", "start", "duration", "spans", "errors", "root"].map(String::from),
                &rows,
            );
        }
    }
    Ok(())
}

/// `ophion logs ...`.
pub(in crate::cli) async fn logs(
    c: &Client,
    cmd: LogsCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        LogsCommand::Search {
            text,
            service,
            severity,
            trace_id,
            attribute,
            limit,
            range,
        } => {
            let v = c
                .get_json(
                    "/api/v1/logs",
                    &[
                        ("q", text),
                        ("service", service),
                        ("severity", severity),
                        ("trace_id", trace_id),
                        ("attribute", attribute),
                        ("limit", limit.map(|l| l.to_string())),
                        ("from", range.from),
                        ("to", range.to),
                    ],
                )
                .await?;
            for l in v["logs"].as_array().into_iter().flatten() {
                log_line(out, l);
            }
            let _ = writeln!(out, "({} matching in the range)", v["total"]);
        }
        LogsCommand::Tail {
            text,
            service,
            severity,
        } => {
            let query: Vec<(&str, String)> =
                [("q", text), ("service", service), ("severity", severity)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
            let resp = c
                .send(
                    c.http
                        .get(format!("{}/api/v1/logs/tail", c.base))
                        .query(&query),
                )
                .await?;
            let mut stream = resp.bytes_stream();
            let mut pending = String::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| CliError::Unreachable(e.to_string()))?;
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    let data = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(str::trim_start)
                        .collect::<String>();
                    let kind = event
                        .lines()
                        .find_map(|l| l.strip_prefix("event:"))
                        .map(str::trim);
                    if kind == Some("lagged") {
                        println!("(missed some records: the tail could not keep up)");
                    } else if kind == Some("end") {
                        // The token expired or was revoked.
                        let why = serde_json::from_str::<Value>(&data).unwrap_or_default();
                        return Err(CliError::Refused(format!(
                            "the tail ended: {} (sign in again with `ophion login`)",
                            why["reason"].as_str().unwrap_or("the session ended")
                        )));
                    } else if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        let mut line = String::new();
                        log_line(&mut line, &v);
                        print!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// `ophion services`.
pub(in crate::cli) async fn services(
    c: &Client,
    range: Range,
    out: &mut String,
) -> Result<(), CliError> {
    let v = c
        .get_json(
            "/api/v1/services",
            &[("from", range.from), ("to", range.to)],
        )
        .await?;
    let rows: Vec<Vec<String>> = v["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["name"]),
                format!("{:.2}", s["rate_per_sec"].as_f64().unwrap_or(0.0)),
                format!("{:.1}%", 100.0 * s["error_ratio"].as_f64().unwrap_or(0.0)),
                millis(s["p50_ns"].as_f64()),
                millis(s["p95_ns"].as_f64()),
                millis(s["p99_ns"].as_f64()),
            ]
        })
        .collect();
    table(
        out,
        &["service", "req/s", "errors", "p50", "p95", "p99"].map(String::from),
        &rows,
    );
    Ok(())
}
