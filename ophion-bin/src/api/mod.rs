//! The HTTP API on the API address: `/api/v1/*` (JSON, described by the
//! OpenAPI document at `/api/v1/openapi.json`), and the operations
//! endpoints `/healthz`, `/readyz` and `/metrics` (Prometheus text).
//!
//! Every error is JSON `{"error": {"code": "...", "message": "..."}}` with
//! the matching HTTP status; messages say what went wrong in the caller's
//! terms, never a stack trace or SQL internals.
//!
//! A new endpoint: its handler in the module of its area (`traces`, `logs`,
//! `metrics`, `services`, `query`, `users`, `ops`, `ai`, `chat`, `mcp`, `dashboards`), and one entry in
//! [`routes::table`], which gives the router, the permission check
//! (`access`) and the OpenAPI document ([`openapi`]). Handlers read
//! through [`crate::read::Reader`] and call services such as
//! [`crate::ai::AiService`]; they hold no engine logic.

mod access;
mod ai;
mod alerts;
mod chat;
mod dashboards;
mod heal;
mod logs;
mod mcp;
mod metrics;
pub mod openapi;
mod ops;
mod query;
pub mod routes;
mod services;
pub mod tail;
mod time;
mod traces;
pub mod ui;
mod users;

pub use openapi::Doc;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

use axum::{
    Json, Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use ophion_core::QueryError;
use ophion_receiver::OtlpReceiver;
use ophion_store::Store;
use serde_json::json;

use crate::{guard::MemoryGuard, read::ReadError};

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The store, for its figures (`/status`, `/metrics`); reads go
    /// through [`ApiState::reader`].
    pub store: Store,
    /// The read seam every handler queries through.
    pub reader: crate::read::Reader,
    /// The receiver, for its counters.
    pub receiver: OtlpReceiver,
    /// The memory guard, for its counters.
    pub guard: Arc<MemoryGuard>,
    /// Live log records for `/api/v1/logs/tail`.
    pub tail: tail::LogTail,
    /// Users, sessions, the audit log.
    pub auth: Arc<crate::auth::Auth>,
    /// False once shutdown has begun: `/readyz` answers 503.
    pub ready: AtomicBool,
    /// API requests answered with an error status, by class.
    pub client_errors: AtomicU64,
    /// API requests answered with a 5xx status.
    pub server_errors: AtomicU64,
    /// Process start.
    pub started: Instant,
    /// The AI engine: analysis, the continuous watch and its insights.
    pub ai: Arc<crate::ai::AiService>,
    /// The copilot (`/api/v1/ai/chat`).
    pub copilot: Arc<crate::copilot::Copilot>,
    /// The MCP endpoint (`/api/v1/mcp`) over the copilot's tools.
    pub mcp: crate::copilot::mcp::HttpService,
    /// Saved dashboards.
    pub dashboards: crate::dashboards::Dashboards,
    /// Auto-healing playbooks and runs.
    pub heal: Arc<crate::heal::Heal>,
    /// Alert rules, channels, silences, incidents.
    pub alerts: Arc<crate::alerts::Alerts>,
}

/// The API and operations routes of [`routes::table`], each behind the
/// permission check, plus the 404 fallback and the error counters.
pub fn router(state: Arc<ApiState>) -> Router {
    with_routes(state, Vec::new()).unwrap_or_else(|e| {
        // The built-in table is checked by tests; reaching this is a bug.
        tracing::error!(error = %e, "invalid route table");
        Router::new()
    })
}

/// [`router`] with `extra` routes (an embedder's own endpoints) beside the
/// built-in ones; refused when a (method, path) is listed twice.
pub fn with_routes(
    state: Arc<ApiState>,
    extra: Vec<routes::Route>,
) -> Result<Router, routes::RouteError> {
    let mut table = routes::table();
    table.extend(extra);
    Ok(routes::build(Arc::clone(&state), table)?
        .fallback(not_found)
        // A handler that panics answers 500 (and the panic is logged);
        // the connection and the server carry on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        // Outermost: counts every answer and adds the security headers.
        .layer(axum::middleware::from_fn_with_state(
            state,
            ops::count_errors,
        )))
}

/// The answer to a request whose handler panicked: a logged error and a
/// 500 that tells nothing of the panic.
fn panicked(why: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = why
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| why.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = what, "an API handler panicked; answered 500");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has details",
    )
    .into_response()
}

/// What no route answers: the dashboard's files and pages ([`ui`]), else
/// a 404.
async fn not_found(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if let Some(page) = ui::serve(&method, &uri, &headers) {
        return page;
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
    .into_response()
}

/// An API error: status, a stable machine code and a readable message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// An error with `status`, machine `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: over a rate limit; try again after `wait`.
    pub fn too_many(wait: std::time::Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {} s", wait.as_secs().max(1)),
        );
        e.retry_after = Some(wait);
        e
    }

    /// 500 without details (they go to the log).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has details",
        )
    }

    /// 400 for a request parameter that cannot be used.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut r = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: never tell a client to retry early.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl From<QueryError> for ApiError {
    fn from(q: QueryError) -> Self {
        let (status, code) = match &q {
            QueryError::NotReadOnly(_) => (StatusCode::BAD_REQUEST, "not_read_only"),
            QueryError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            QueryError::NotCovered(_) => (StatusCode::BAD_REQUEST, "not_covered"),
            QueryError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "query_timeout"),
            QueryError::OutOfMemory => (StatusCode::UNPROCESSABLE_ENTITY, "query_memory_limit"),
            QueryError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            QueryError::Internal(_) => {
                tracing::error!(error = %q, "API query failed");
                return Self::internal();
            }
            _ => (StatusCode::BAD_REQUEST, "query_refused"),
        };
        Self::new(status, code, q.to_string())
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::BadRequest(m) => Self::bad_request(m),
            ReadError::Query(q) => q.into(),
        }
    }
}

impl From<ophion_store::Error> for ApiError {
    fn from(e: ophion_store::Error) -> Self {
        e.into_query_error().into()
    }
}

impl ApiState {
    /// Marks the server as shutting down.
    pub fn set_unready(&self) {
        self.ready.store(false, Relaxed);
    }
}
