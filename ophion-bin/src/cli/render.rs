//! Rendering answers for a terminal: tables, log lines, span trees.

use std::fmt::Write as _;

use serde_json::Value;

pub(super) fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A value as table text.
pub(super) fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows of an API answer (arrays of values) as table text.
pub(super) fn rows_text(rows: &Value) -> Vec<Vec<String>> {
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_array().into_iter().flatten().map(cell).collect())
        .collect()
}

pub(super) fn millis(ns: Option<f64>) -> String {
    ns.map_or_else(String::new, |n| format!("{:.2} ms", n / 1e6))
}

pub(super) fn table(out: &mut String, names: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count()).min(80);
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| {
                let c: String = c.chars().take(*w).collect();
                format!("{c:<w$}")
            })
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(out, names);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule);
    for r in rows {
        line(out, r);
    }
}

pub(super) fn log_line(out: &mut String, l: &Value) {
    let _ = writeln!(
        out,
        "{} {:<5} {}: {}",
        cell(&l["timestamp"]),
        cell(&l["severity_text"]),
        cell(&l["service_name"]),
        cell(&l["body"])
    );
}

/// The spans of a trace as an indented tree, children in start order.
pub(super) fn span_tree(out: &mut String, v: &Value) {
    let spans: Vec<&Value> = v["spans"].as_array().into_iter().flatten().collect();
    let _ = writeln!(
        out,
        "trace {}: {} spans, {} services, {}",
        cell(&v["trace_id"]),
        spans.len(),
        v["services"].as_array().map_or(0, Vec::len),
        millis(v["duration_ns"].as_f64())
    );
    let id = |s: &Value| cell(&s["span_id"]);
    fn walk(
        out: &mut String,
        spans: &[&Value],
        id: &dyn Fn(&Value) -> String,
        node: &Value,
        depth: usize,
        seen: &mut Vec<String>,
    ) {
        if seen.contains(&id(node)) {
            return; // a cycle in broken data
        }
        seen.push(id(node));
        let status = match node["status_code"].as_str() {
            Some("error") => " [error]",
            _ => "",
        };
        let _ = writeln!(
            out,
            "{}{} {} {}{status}",
            "  ".repeat(depth),
            cell(&node["service_name"]),
            cell(&node["name"]),
            millis(node["duration_ns"].as_f64())
        );
        for child in spans
            .iter()
            .filter(|s| cell(&s["parent_span_id"]) == id(node))
        {
            walk(out, spans, id, child, depth + 1, seen);
        }
    }
    let mut seen = Vec::new();
    let roots: Vec<String> = v["root_span_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    for s in spans.iter().filter(|s| roots.contains(&id(s))) {
        walk(out, &spans, &id, s, 0, &mut seen);
    }
}
