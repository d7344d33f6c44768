//! An answer as the copilot returns it, and what the engines share to
//! write one from tool outputs.

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    question::{Lang, Question},
    tools::{Evidence, QueryRecord, ToolOutput},
};

/// The copilot's answer (`POST /api/v1/ai/chat`, `ophion ask`, MCP).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Answer {
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The answer's text; every number in it comes from `queries`.
    pub answer: String,
    /// The queries run, with their rows.
    pub queries: Vec<QueryRecord>,
    /// Traces, logs and services the answer points at.
    pub evidence: Vec<Evidence>,
    /// `builtin`, or the language model provider's name.
    pub engine: String,
    /// True when the question was not understood and nothing was run.
    pub declined: bool,
    /// A dashboard spec, for "dashboard for X" (savable with
    /// `POST /api/v1/dashboards`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<Value>,
    /// The analysis behind a root-cause or troubleshooting answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Value>,
    /// Ordered next steps, for "what's wrong with X".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Value>,
}

pub(super) fn args(q: &Question, extra: Value) -> Value {
    let mut a = json!({"from": q.when.from, "to": q.when.to});
    if let (Some(o), Value::Object(e)) = (a.as_object_mut(), extra) {
        o.extend(e);
    }
    a
}

/// The value of `column` in a tool output's first query's row `i`.
pub(super) fn cell(out: &ToolOutput, i: usize, column: &str) -> Value {
    out.queries
        .first()
        .and_then(|q| {
            let c = q.columns.iter().position(|n| n == column)?;
            q.rows.get(i)?.get(c).cloned()
        })
        .unwrap_or(Value::Null)
}

pub(super) fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

pub(super) fn rows(out: &ToolOutput) -> usize {
    out.queries.first().map_or(0, |q| q.rows.len())
}

/// A number as answers write it: up to 3 decimals, no trailing zeros.
pub(super) fn fmt(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

pub(super) fn pct(v: f64) -> String {
    format!("{}%", fmt(v * 100.0))
}

/// Collects an answer's lines, queries and evidence.
pub(super) struct Builder {
    lang: Lang,
    pub(super) lines: Vec<String>,
    pub(super) answer: Answer,
}

impl Builder {
    pub(super) fn new(lang: Lang) -> Self {
        Self {
            lang,
            lines: Vec::new(),
            answer: Answer::default(),
        }
    }

    pub(super) fn say(&mut self, en: String, pt: String) {
        self.lines.push(if self.lang == Lang::Pt { pt } else { en });
    }

    pub(super) fn keep(&mut self, out: ToolOutput) -> ToolOutput {
        self.answer.queries.extend(out.queries.iter().cloned());
        for e in &out.evidence {
            if !self.answer.evidence.contains(e) {
                self.answer.evidence.push(e.clone());
            }
        }
        out
    }

    pub(super) fn finish(mut self) -> Answer {
        self.answer.answer = self.lines.join("\n");
        self.answer
    }
}

/// Log text goes into answers quoted, one line, at most 200 characters.
pub(super) fn quote(body: &str) -> String {
    let one: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    format!("\"{}\"", one.replace('"', "'"))
}
