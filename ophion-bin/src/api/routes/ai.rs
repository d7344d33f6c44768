//! The AI engine's, the copilot's and the dashboards' routes: part of
//! the one route table ([`super::table`]).

use axum::http::Method;
use serde_json::json;

use super::Route;
use crate::{
    api::{Doc, ai, chat, dashboards, mcp},
    auth::Permission,
};

/// The routes of this part.
pub(super) fn table() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/v1/ai/analyze",
            Permission::Read,
            ai::analyze,
            Doc::new("Analyse a time window (viewer): RED anomalies, log templates, ranked root-cause candidates and tips")
            .body(true, json!({"type": "object", "required": ["start", "end"], "properties": {"service": {"type": "string", "description": "Limit anomalies, tips and logs to one service (root causes are ranked over all)"}, "trace_id": {"type": "string", "description": "Limit the analysis to one trace (32 hex digits)"}, "start": {"type": "string", "description": "RFC 3339, unix nanoseconds, now or now-<duration>"}, "end": {"type": "string"}}}))
            .ok(200, "anomalies, patterns, root_causes ([{service, operation, kind, score, evidence}]) and tips"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/ai/chat",
            Permission::Read,
            chat::chat,
            Doc::new("Ask the copilot (viewer): a question in English or Portuguese about the caller's telemetry")
            .description("Answers with the built-in engine, or the configured language model through the same read-only tools. Every number in `answer` comes from `queries` (the SQL run, its bound params, columns and rows). With `Accept: text/event-stream`, `delta` events carry the text as it is written and a final `answer` event the whole JSON (or an `error` event). A question the built-in engine does not understand is declined (`declined: true`), never guessed.")
            .body(true, json!({"type": "object", "required": ["message"], "properties": {"message": {"type": "string", "maxLength": 4096}, "conversation_id": {"type": "string", "description": "Go on with one of your conversations"}}}))
            .ok(200, "{conversation_id, answer, queries: [{sql, params, columns, rows}], evidence: [{kind, label, link}], engine, declined, dashboard?, steps?, analysis?}")
            .errors(&[400, 404, 429, 502, 503]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/ai/tools",
            Permission::Read,
            mcp::list,
            Doc::new("The copilot's read-only tools (viewer): name, description and the JSON Schema of the arguments")
            .ok(200, "{tools: [{name, description, parameters}]}"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/ai/tools/{name}",
            Permission::Read,
            mcp::call,
            Doc::new("Run one of the copilot's read-only tools on the caller's tenant (viewer); what `ophion mcp` forwards to")
            .path("name", "string", "")
            .body(true, json!({"type": "object", "description": "The tool's arguments"}))
            .ok(200, "{result, queries: [{sql, params, columns, rows}], evidence}")
            .errors(&[400, 404]),
        ),
        Route::new(
            Method::POST,
            "/api/v1/mcp",
            Permission::Read,
            mcp::serve,
            Doc::new("Model Context Protocol, streamable HTTP (viewer): the copilot's read-only tools for MCP clients")
            .ok(200, "JSON-RPC answers, as JSON or server-sent events"),
        ),
        Route::new(
            Method::GET,
            "/api/v1/mcp",
            Permission::Read,
            mcp::serve,
            Doc::new("Model Context Protocol: the server-sent event stream of a session (viewer)")
            .ok(200, "server-sent events"),
        ),
        Route::new(
            Method::DELETE,
            "/api/v1/mcp",
            Permission::Read,
            mcp::serve,
            Doc::new("Model Context Protocol: end a session (viewer)")
            .ok(200, "ended"),
        ),
        Route::new(
            Method::GET,
            "/api/v1/ai/insights",
            Permission::Read,
            ai::insights,
            Doc::new("Current insights (viewer): the analysis of the last 15 minutes and the findings of the continuous watch (RED series, the metrics in [ai] watch_metrics, log patterns) as one list of {kind, severity, service, operation?, metric?, title, detail, evidence, from, to, score?, value?, expected_low?, expected_high?} (anomalies of the watch carry the value and the expected band)")
            .query("service", "string", "")
            .ok(200, "insights"),
        ),
        Route::new(
            Method::GET,
            "/api/v1/ai/forecast",
            Permission::Read,
            ai::forecast,
            Doc::new("Forecast one series per minute (viewer): a service's RED series or a stored metric, with 95% intervals")
            .required_query("series", "string", "`requests`, `error_ratio`, `p95_ms` (of `service`), or a metric's name.")
            .query("service", "string", "Service (required for RED series).")
            .query("operation", "string", "One operation of the service (RED series).")
            .query("horizon", "integer", "Minutes ahead (default 60, at most 1440).")
            .range()
            .ok(200, "{series, service, operation, step_seconds, period_minutes, history: [[time, value|null]], forecast: [{time, value, lower, upper}]}; the history defaults to the last 24 h")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/dashboards",
            Permission::Read,
            dashboards::list,
            Doc::new("The tenant's saved dashboards (viewer)")
            .ok(200, "{dashboards: [{id, title, service?, panels: [{title, chart, sql | metric}], created_by, updated_at}]}"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/dashboards",
            Permission::Edit,
            dashboards::create,
            Doc::new("Save a dashboard (editor), e.g. the spec the copilot returns for \"dashboard for checkout\"")
            .description("A panel is either SQL, which must pass the copilot's SQL guard (one read-only query over spans, logs, metrics; `$from` and `$to` are the dashboard's range), or a metric as the builder states it (drawn as `GET /api/v1/metrics/query` draws it). Charts: timeseries, stat, table, logs, bar.")
            .body(true, dashboard_schema())
            .ok(201, "The saved dashboard")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/dashboards/{id}",
            Permission::Read,
            dashboards::get,
            Doc::new("One saved dashboard (viewer)")
            .path("id", "integer", "")
            .ok(200, "The dashboard")
            .errors(&[404]),
        ),
        Route::new(
            Method::PUT,
            "/api/v1/dashboards/{id}",
            Permission::Edit,
            dashboards::update,
            Doc::new("Replace a saved dashboard (editor)")
            .path("id", "integer", "")
            .body(true, dashboard_schema())
            .ok(200, "The dashboard")
            .errors(&[400, 404]),
        ),
        Route::new(
            Method::DELETE,
            "/api/v1/dashboards/{id}",
            Permission::Edit,
            dashboards::delete,
            Doc::new("Delete a saved dashboard (editor)")
            .path("id", "integer", "")
            .ok_content(204, "Deleted", json!({}))
            .errors(&[404]),
        ),
    ]
}

/// A dashboard as sent: title, optional service, panels of SQL or a metric.
fn dashboard_schema() -> serde_json::Value {
    let metric = json!({"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"},
        "aggregation": {"type": "string", "enum": crate::read::metrics::AGGREGATIONS},
        "group_by": {"type": "array", "items": {"type": "string"}},
        "service": {"type": "string"}}});
    json!({"type": "object", "required": ["title", "panels"], "properties": {
        "title": {"type": "string"},
        "service": {"type": "string"},
        "panels": {"type": "array", "items": {"type": "object", "required": ["title", "chart"], "properties": {
            "title": {"type": "string"},
            "chart": {"type": "string", "enum": crate::dashboards::CHARTS},
            "sql": {"type": "string"},
            "metric": metric}}}}})
}
