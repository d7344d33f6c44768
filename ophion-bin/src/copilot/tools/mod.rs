//! The copilot's read-only tools: the one list ([`SPECS`]) the built-in
//! engine, a language model and MCP clients all call through
//! [`Toolbox::call`].
//!
//! Every tool reads the caller's tenant through the read seam, binds what
//! it is given as parameters (never as SQL text), and returns, beside its
//! result, the queries it ran with their rows: an answer's numbers are
//! those rows. `run_sql` takes SQL only through the [`super::guard`].
//!
//! A service's requests are its entry spans ([`crate::read::ENTRY_SPANS`]);
//! latency percentiles are in milliseconds, exact (`percentile_cont`,
//! linear interpolation) up to 10,000 requests, from the store's
//! per-minute latency buckets above that (within 2 %, and a
//! `percentiles` column says so; see [`crate::read::rollup`]).

mod rollup;

use rollup::{callers, order_by};

use std::sync::Arc;

use ophion_core::TenantId;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::guard::{self, Refused};
use crate::{
    ai::{AiError, AiService},
    read::{ENTRY_SPANS, Params, Range, ReadError, Reader, hex_id, json as to_json, text, time},
};

/// One query a tool ran, as answers carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// The SQL, with `$name` placeholders for `params`.
    pub sql: String,
    /// The bound values.
    pub params: Map<String, Value>,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each an array in column order.
    pub rows: Vec<Value>,
}

/// Something an answer points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// `trace`, `logs`, `service` or `query`.
    pub kind: String,
    /// What it is, for people.
    pub label: String,
    /// Where to see it (an API path).
    pub link: String,
}

/// What a tool returns.
#[derive(Debug, Clone, Default)]
pub struct ToolOutput {
    /// The result, as the model or client sees it.
    pub result: Value,
    /// The queries it ran.
    pub queries: Vec<QueryRecord>,
    /// What it points at.
    pub evidence: Vec<Evidence>,
}

/// Why a tool call failed. Messages are for the caller (person or model).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// No such tool.
    #[error("there is no tool `{0}`")]
    Unknown(String),
    /// Arguments that do not fit the tool's schema.
    #[error("arguments of `{tool}`: {message}")]
    Arguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// The SQL guard refused a query.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The analysis failed.
    #[error("analysis failed: {0}")]
    Analysis(String),
}

impl From<ophion_core::QueryError> for ToolError {
    fn from(e: ophion_core::QueryError) -> Self {
        ToolError::Read(e.into())
    }
}

/// A tool as models and MCP clients see it.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// Name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// JSON Schema of its arguments.
    pub parameters: fn() -> Value,
}

fn range_props(extra: Value) -> Value {
    let mut props = json!({
        "from": {"type": "string", "description": "start: RFC 3339, unix ns, now or now-15m (default: an hour before `to`)"},
        "to": {"type": "string", "description": "end, same forms (default: now)"},
    });
    if let (Some(p), Value::Object(e)) = (props.as_object_mut(), extra) {
        p.extend(e);
    }
    props
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// Every tool: the one list.
pub const SPECS: &[ToolSpec] = &[
    ToolSpec {
        name: "run_sql",
        description: "Run one read-only SQL query (DataFusion dialect) over the caller's tenant: tables spans, logs and metrics, and the per-minute rollups span_minutes (minute, service_name, name, http_route, kind, entry, duration_ns bucket, spans, errors; filter on minute within the last day; p95 = approx_percentile_cont_with_weight(duration_ns, spans, 0.95)), service_minutes (minute, service_name, duration_ns bucket, spans, errors: the requests of span_minutes per service) and service_edges (minute, caller, callee, duration_ns bucket of the callee, calls, errors); at most 1000 rows.",
        parameters: || object(json!({"sql": {"type": "string"}}), &["sql"]),
    },
    ToolSpec {
        name: "list_services",
        description: "Services with requests, errors, error ratio and p95 latency (ms) over a time range.",
        parameters: || object(range_props(json!({})), &[]),
    },
    ToolSpec {
        name: "service_red",
        description: "Rate, errors and latency percentiles (p50, p95, p99 in ms) of a service's requests, or of one of its operations, over a time range.",
        parameters: || {
            object(
                range_props(json!({
                    "service": {"type": "string"},
                    "operation": {"type": "string", "description": "span name or HTTP route"},
                    "latency": {"type": "boolean", "description": "compute the percentiles (default true; false is faster over many spans)"},
                })),
                &["service"],
            )
        },
    },
    ToolSpec {
        name: "top_operations",
        description: "A service's (or every service's) operations ranked by p95 latency, errors or requests.",
        parameters: || {
            object(
                range_props(json!({
                    "service": {"type": "string"},
                    "order_by": {"type": "string", "enum": ["p95", "errors", "requests"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                })),
                &[],
            )
        },
    },
    ToolSpec {
        name: "top_errors",
        description: "The most frequent errors (service, operation, status message) over a time range.",
        parameters: || {
            object(
                range_props(json!({
                    "service": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                })),
                &[],
            )
        },
    },
    ToolSpec {
        name: "search_logs",
        description: "Log records whose body contains a text (case-insensitive), optionally of one service, newest first.",
        parameters: || {
            object(
                range_props(json!({
                    "text": {"type": "string"},
                    "service": {"type": "string"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                })),
                &["text"],
            )
        },
    },
    ToolSpec {
        name: "service_calls",
        description: "Which services call a service (callers) or which it calls (callees), with call counts, over a time range.",
        parameters: || {
            object(
                range_props(json!({
                    "service": {"type": "string"},
                    "direction": {"type": "string", "enum": ["callers", "callees"]},
                })),
                &["service", "direction"],
            )
        },
    },
    ToolSpec {
        name: "get_trace",
        description: "Every span of one trace (32 hex characters).",
        parameters: || object(json!({"trace_id": {"type": "string"}}), &["trace_id"]),
    },
    ToolSpec {
        name: "analyze",
        description: "Root causes, anomalies and new log patterns over a time range, optionally around one service.",
        parameters: || object(range_props(json!({"service": {"type": "string"}})), &[]),
    },
];

/// Rows `run_sql` returns at most.
pub const SQL_ROWS: usize = 1000;

/// The tools over one server's reader and AI service.
#[derive(Debug, Clone)]
pub struct Toolbox {
    reader: Reader,
    ai: Arc<AiService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlArgs {
    sql: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RangeArgs {
    from: Option<String>,
    to: Option<String>,
    service: Option<String>,
    operation: Option<String>,
    order_by: Option<String>,
    limit: Option<usize>,
    text: Option<String>,
    direction: Option<String>,
    latency: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceArgs {
    trace_id: String,
}

fn parse<T: DeserializeOwned>(tool: &str, args: &Value) -> Result<T, ToolError> {
    let args = if args.is_null() { &json!({}) } else { args };
    serde_json::from_value(args.clone()).map_err(|e| ToolError::Arguments {
        tool: tool.into(),
        message: e.to_string(),
    })
}

fn required<'a>(tool: &str, v: &'a Option<String>, name: &str) -> Result<&'a str, ToolError> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ToolError::Arguments {
            tool: tool.into(),
            message: format!("`{name}` is required"),
        })
}

/// Rate and errors (entry spans).
const RATE_COLUMNS: &str = "count(*) AS requests, \
     sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
     CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS error_ratio, \
     count(*) / $secs AS rate_per_sec";

/// The columns every RED row carries (entry spans): rate, errors and
/// exact latency percentiles.
fn red_columns() -> String {
    format!(
        "{RATE_COLUMNS}, \
         percentile_cont(duration_ns, 0.5) / 1e6 AS p50_ms, \
         percentile_cont(duration_ns, 0.95) / 1e6 AS p95_ms, \
         percentile_cont(duration_ns, 0.99) / 1e6 AS p99_ms"
    )
}

impl Toolbox {
    /// Tools reading through `reader`, analysing with `ai`.
    pub fn new(reader: Reader, ai: Arc<AiService>) -> Self {
        Self { reader, ai }
    }

    /// Calls tool `name` with `args` for `tenant`.
    pub async fn call(
        &self,
        tenant: &TenantId,
        name: &str,
        args: &Value,
    ) -> Result<ToolOutput, ToolError> {
        match name {
            "run_sql" => {
                let a: SqlArgs = parse(name, args)?;
                let g = guard::check(&a.sql, SQL_ROWS)?;
                let q = self
                    .run(tenant, &g.sql, &Params::default(), g.limit)
                    .await?;
                Ok(self.output(vec![q], Vec::new()))
            }
            "get_trace" => {
                let a: TraceArgs = parse(name, args)?;
                let id = hex_id(&a.trace_id, 16, "trace id")?;
                let mut p = Params::default();
                p.filter("trace_id = $trace", "trace", text(&id));
                let sql = format!(
                    "SELECT span_id, parent_span_id, service_name, name, kind, start_time, \
                     duration_ns / 1e6 AS duration_ms, status_code, status_message \
                     FROM spans WHERE {} ORDER BY start_time",
                    p.conditions()
                );
                let q = self.run(tenant, &sql, &p, 10_000).await?;
                let ev = vec![Evidence {
                    kind: "trace".into(),
                    label: format!("trace {id}"),
                    link: format!("/api/v1/traces/{id}"),
                }];
                Ok(self.output(vec![q], ev))
            }
            "analyze" => {
                let a: RangeArgs = parse(name, args)?;
                let range = self.range(&a)?;
                let out = self
                    .ai
                    .analyze(tenant, range, a.service.as_deref(), None)
                    .await
                    .map_err(|e| match e {
                        AiError::Read(r) => ToolError::Read(r),
                        other => ToolError::Analysis(other.to_string()),
                    })?;
                let result = out.to_json();
                let evidence = out
                    .root_cause_services()
                    .into_iter()
                    .map(|s| service_evidence(&s))
                    .collect();
                Ok(ToolOutput {
                    result,
                    queries: Vec::new(),
                    evidence,
                })
            }
            _ => {
                let a: RangeArgs = parse(name, args)?;
                self.ranged(tenant, name, &a).await
            }
        }
    }

    fn range(&self, a: &RangeArgs) -> Result<Range, ToolError> {
        Ok(time::resolve(a.from.as_deref(), a.to.as_deref())?)
    }

    /// The tools over a time range.
    async fn ranged(
        &self,
        tenant: &TenantId,
        name: &str,
        a: &RangeArgs,
    ) -> Result<ToolOutput, ToolError> {
        let range = self.range(a)?;
        if let Some(out) = self.red_from_rollups(tenant, name, a, range).await? {
            return Ok(out);
        }
        let mut p = range.filter("start_time");
        p.bind("secs", ophion_core::query::Param::Float64(range.secs()));
        let limit = a.limit.unwrap_or(10).clamp(1, 1000);
        let (sql, evidence) = match name {
            "list_services" => {
                p.when(ENTRY_SPANS);
                (
                    format!(
                        "SELECT service_name AS service, {} FROM spans WHERE {} \
                         GROUP BY service_name ORDER BY service_name",
                        red_columns(),
                        p.conditions()
                    ),
                    Vec::new(),
                )
            }
            "service_red" => {
                let service = required(name, &a.service, "service")?;
                p.filter("service_name = $service", "service", text(service));
                match a.operation.as_deref().filter(|o| !o.trim().is_empty()) {
                    Some(op) => {
                        p.filter(
                            "(name = $operation OR http_route = $operation)",
                            "operation",
                            text(op),
                        );
                    }
                    None => {
                        p.when(ENTRY_SPANS);
                    }
                }
                let columns = if a.latency == Some(false) {
                    RATE_COLUMNS.to_owned()
                } else {
                    red_columns()
                };
                (
                    format!("SELECT {columns} FROM spans WHERE {}", p.conditions()),
                    vec![service_evidence(service)],
                )
            }
            "top_operations" => {
                let order = order_by(name, a)?;
                let mut ev = Vec::new();
                if let Some(s) = a.service.as_deref() {
                    p.filter("service_name = $service", "service", text(s));
                    ev.push(service_evidence(s));
                }
                p.when(ENTRY_SPANS);
                (
                    format!(
                        "SELECT service_name AS service, name AS operation, {} FROM spans WHERE {} \
                         GROUP BY service_name, name ORDER BY {order}, service, operation LIMIT {limit}",
                        red_columns(),
                        p.conditions()
                    ),
                    ev,
                )
            }
            "top_errors" => {
                let mut ev = Vec::new();
                if let Some(s) = a.service.as_deref() {
                    p.filter("service_name = $service", "service", text(s));
                    ev.push(service_evidence(s));
                }
                p.when("status_code = 'error'");
                (
                    format!(
                        "SELECT service_name AS service, name AS operation, \
                         coalesce(status_message, '') AS message, count(*) AS errors \
                         FROM spans WHERE {} GROUP BY 1, 2, 3 \
                         ORDER BY errors DESC, service, operation, message LIMIT {limit}",
                        p.conditions()
                    ),
                    ev,
                )
            }
            "search_logs" => {
                let needle = required(name, &a.text, "text")?;
                let mut p = range.filter("timestamp");
                p.filter(
                    "strpos(lower(body), $needle) > 0",
                    "needle",
                    text(&needle.to_lowercase()),
                );
                let mut link = format!("/api/v1/logs?q={}", uri_component(needle));
                if let Some(s) = a.service.as_deref() {
                    p.filter("service_name = $service", "service", text(s));
                    link.push_str(&format!("&service={}", uri_component(s)));
                }
                let sql = format!(
                    "SELECT timestamp, service_name AS service, severity_text AS severity, body \
                     FROM logs WHERE {} ORDER BY timestamp DESC LIMIT {limit}",
                    p.conditions()
                );
                let q = self.run(tenant, &sql, &p, limit).await?;
                let ev = vec![Evidence {
                    kind: "logs".into(),
                    label: format!("logs containing \"{needle}\""),
                    link,
                }];
                return Ok(self.output(vec![q], ev));
            }
            "service_calls" => {
                let service = required(name, &a.service, "service")?;
                let callers = callers(name, a)?;
                p.bind("service", text(service));
                // A call is a span whose parent belongs to another
                // service; a client span to an untraced peer
                // (`server.address`) with no child counts as a call to that
                // peer. The service's own spans come first in each join, so
                // the hash table is built from them, not from the window.
                let cond = p.conditions();
                let (mine, first, peer, peer_name) = if callers {
                    (
                        "SELECT trace_id, parent_span_id AS link FROM spans \
                         WHERE {cond} AND service_name = $service AND parent_span_id IS NOT NULL",
                        "JOIN w o ON m.trace_id = o.trace_id AND m.link = o.span_id",
                        "kind = 'client' AND server_address = $service",
                        "x.service_name",
                    )
                } else {
                    (
                        "SELECT trace_id, span_id AS link FROM spans \
                         WHERE {cond} AND service_name = $service",
                        "JOIN w o ON m.trace_id = o.trace_id AND m.link = o.parent_span_id",
                        "service_name = $service AND kind = 'client' AND server_address IS NOT NULL",
                        "x.server_address",
                    )
                };
                let sql = format!(
                    "WITH w AS (SELECT trace_id, span_id, parent_span_id, service_name FROM spans WHERE {cond}), \
                     m AS ({mine}), \
                     x AS (SELECT trace_id, span_id, service_name, server_address FROM spans WHERE {cond} AND {peer}) \
                     SELECT service, CAST(sum(calls) AS BIGINT) AS calls FROM ( \
                       SELECT o.service_name AS service, count(*) AS calls FROM m {first} \
                         WHERE o.service_name <> $service GROUP BY 1 \
                       UNION ALL \
                       SELECT {peer_name} AS service, count(*) AS calls FROM x \
                         LEFT JOIN w y ON y.trace_id = x.trace_id AND y.parent_span_id = x.span_id \
                         WHERE y.span_id IS NULL GROUP BY 1) \
                     GROUP BY service ORDER BY calls DESC, service",
                    mine = mine.replace("{cond}", &cond),
                );
                (sql, vec![service_evidence(service)])
            }
            other => return Err(ToolError::Unknown(other.into())),
        };
        let q = self.run(tenant, &sql, &p, 1000).await?;
        Ok(self.output(vec![q], evidence))
    }

    fn output(&self, queries: Vec<QueryRecord>, evidence: Vec<Evidence>) -> ToolOutput {
        let result = match queries.as_slice() {
            [q] => json!({"columns": q.columns, "rows": q.rows}),
            _ => json!({"queries": queries}),
        };
        ToolOutput {
            result,
            queries,
            evidence,
        }
    }

    /// Runs `sql` with `p` for `tenant`, keeping at most `limit` rows.
    async fn run(
        &self,
        tenant: &TenantId,
        sql: &str,
        p: &Params,
        limit: usize,
    ) -> Result<QueryRecord, ToolError> {
        let out = self.reader.sql(tenant, sql, p).await?;
        let columns = out
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut rows = to_json::rows(&out.batches);
        rows.truncate(limit);
        Ok(QueryRecord {
            sql: sql.to_owned(),
            params: p.as_json(),
            columns,
            rows,
        })
    }
}

fn service_evidence(service: &str) -> Evidence {
    Evidence {
        kind: "service".into(),
        label: format!("service {service}"),
        link: service_link(service),
    }
}

/// The API path of a service's operations, the name percent-encoded.
pub(super) fn service_link(service: &str) -> String {
    format!("/api/v1/services/{}/operations", uri_component(service))
}

/// Percent-encodes everything but unreserved characters.
fn uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
