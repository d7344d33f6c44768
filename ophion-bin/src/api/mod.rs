//! The HTTP API on the API address: `/api/v1/*` (JSON, described by the
//! OpenAPI document at `/api/v1/openapi.json`), and the operations
//! endpoints `/healthz`, `/readyz` and `/metrics` (Prometheus text).
//!
//! Every error is JSON `{"error": {"code": "...", "message": "..."}}` with
//! the matching HTTP status; messages say what went wrong in the caller's
//! terms, never a stack trace or SQL internals.

mod access;
pub(crate) mod ai;
pub(crate) use time::{Range, now_ns};
pub(crate) use traces::ts_text;
pub mod json;
mod logs;
pub(crate) mod metrics;
mod ops;
mod query;
mod services;
pub mod tail;
mod time;
mod traces;
mod users;

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
    routing::{delete, get, patch, post},
};
use datafusion::common::ScalarValue;
use ophion_core::TenantId;
use ophion_receiver::OtlpReceiver;
use ophion_store::{QueryError, QueryOutput, Store};
use serde_json::json;

use crate::guard::MemoryGuard;
use ophion_core::Histogram;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// The store queries read.
    pub store: Store,
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
    /// API queries run and their latency.
    pub queries: Histogram,
    /// API requests answered with an error status, by class.
    pub client_errors: AtomicU64,
    /// API requests answered with a 5xx status.
    pub server_errors: AtomicU64,
    /// Process start.
    pub started: Instant,
    /// Log-template miners of the AI endpoints, per tenant.
    pub miners: ai::Miners,
    /// Continuous anomaly detection's state and findings.
    pub ai_watch: crate::ai_watch::AiWatch,
}

/// The OpenAPI document, kept next to the handlers it describes.
const OPENAPI: &str = include_str!("openapi.json");

/// The paths the router serves under `/api/v1` (a test checks the OpenAPI
/// document describes each one, and that each route has an entry in the
/// permission table, [`crate::auth::rbac::ROUTES`]).
pub const PATHS: [&str; 27] = [
    "/api/v1/openapi.json",
    "/api/v1/query",
    "/api/v1/traces",
    "/api/v1/traces/{trace_id}",
    "/api/v1/services",
    "/api/v1/services/{name}/operations",
    "/api/v1/service-graph",
    "/api/v1/logs",
    "/api/v1/logs/tail",
    "/api/v1/metrics",
    "/api/v1/metrics/query",
    "/api/v1/status",
    "/api/v1/version",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/password",
    "/api/v1/auth/me",
    "/api/v1/users",
    "/api/v1/users/{id}",
    "/api/v1/audit",
    "/api/v1/audit/verify",
    "/api/v1/tenants",
    "/api/v1/keys",
    "/api/v1/keys/{id}",
    "/api/v1/ai/analyze",
    "/api/v1/ai/insights",
];

/// The API and operations routes. Every request passes the permission
/// check (the permission table, [`crate::auth::rbac::ROUTES`]) after
/// routing.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::prometheus))
        .route(PATHS[0], get(openapi))
        .route(PATHS[1], post(query::run))
        .route(PATHS[2], get(traces::search))
        .route(PATHS[3], get(traces::get))
        .route(PATHS[4], get(services::list))
        .route(PATHS[5], get(services::operations))
        .route(PATHS[6], get(services::graph))
        .route(PATHS[7], get(logs::search))
        .route(PATHS[8], get(logs::tail))
        .route(PATHS[9], get(metrics::list))
        .route(PATHS[10], get(metrics::query))
        .route(PATHS[11], get(ops::status))
        .route(PATHS[12], get(ops::version))
        .route(PATHS[13], post(users::login))
        .route(PATHS[14], post(users::refresh))
        .route(PATHS[15], post(users::logout))
        .route(PATHS[16], post(users::change_password))
        .route(PATHS[17], get(users::me))
        .route(PATHS[18], get(users::list_users).post(users::create_user))
        .route(PATHS[19], patch(users::update_user))
        .route(PATHS[20], get(users::audit_log))
        .route(PATHS[21], get(users::audit_verify))
        .route(PATHS[22], post(users::create_tenant))
        .route(PATHS[23], get(users::list_keys).post(users::create_key))
        .route(PATHS[24], delete(users::revoke_key))
        .route(PATHS[25], post(ai::analyze))
        .route(PATHS[26], get(ai::insights))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            access::authorize,
        ))
        .fallback(not_found)
        // Outermost: counts every answer and adds the security headers.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            ops::count_errors,
        ))
        .with_state(state)
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /api/v1/openapi.json",
    )
}

/// Parameters and conditions for `column` in `[from_ns, to_ns)`, for code
/// outside the API that queries the store the same way.
pub(crate) fn time_filter(column: &str, from_ns: i64, to_ns: i64) -> Params {
    time::Range {
        from: from_ns,
        to: to_ns,
    }
    .filter(column)
}

/// Named SQL parameters, and the `WHERE` conditions that use them.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, ScalarValue)>, Vec<String>);

impl Params {
    /// Binds `$name` to `value`.
    pub fn bind(&mut self, name: &str, value: ScalarValue) -> &mut Self {
        self.0.push((name.to_owned(), value));
        self
    }

    /// Adds a condition (SQL using bound names, never user text).
    pub fn when(&mut self, condition: impl Into<String>) -> &mut Self {
        self.1.push(condition.into());
        self
    }

    /// Adds `condition` binding `$name` to `value`.
    pub fn filter(&mut self, condition: &str, name: &str, value: ScalarValue) -> &mut Self {
        self.bind(name, value);
        self.when(condition)
    }

    /// The conditions joined with `AND` (`TRUE` when there are none).
    pub fn conditions(&self) -> String {
        if self.1.is_empty() {
            "TRUE".into()
        } else {
            self.1.join(" AND ")
        }
    }
}

/// A UTF-8 text parameter.
pub fn text(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_owned()))
}

/// An attribute key safe to write inside `attributes['...']`: letters,
/// digits and `._-/:`.
pub fn attribute_key(key: &str) -> Result<&str, ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c));
    if ok {
        Ok(key)
    } else {
        Err(ApiError::bad_request(format!(
            "attribute key `{key}`: use letters, digits and . _ - / :"
        )))
    }
}

/// `key=value` (or `key:value`) attribute filters.
pub fn attribute_filter(text: &str) -> Result<(&str, &str), ApiError> {
    let (k, v) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| {
            ApiError::bad_request(format!("attribute filter `{text}`: use key=value"))
        })?;
    Ok((attribute_key(k.trim())?, v.trim()))
}

/// A lowercase-hex id of `len` bytes.
pub fn hex_id(text: &str, len: usize, what: &str) -> Result<String, ApiError> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() == len * 2 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(ApiError::bad_request(format!(
            "{what} `{text}` must be {} hex characters",
            len * 2
        )))
    }
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

impl From<ophion_store::Error> for ApiError {
    fn from(e: ophion_store::Error) -> Self {
        use ophion_store::Error as E;
        match e {
            E::Query(q) => {
                let (status, code) = match &q {
                    QueryError::NotReadOnly(_) => (StatusCode::BAD_REQUEST, "not_read_only"),
                    QueryError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
                    QueryError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "query_timeout"),
                    QueryError::OutOfMemory => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "query_memory_limit")
                    }
                    _ => (StatusCode::BAD_REQUEST, "query_refused"),
                };
                Self::new(status, code, q.to_string())
            }
            e if e.is_retryable() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            e => {
                tracing::error!(error = %e, "API request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the server log has details",
                )
            }
        }
    }
}

impl ApiState {
    /// Runs an internal query for `tenant` with bound parameters, counted
    /// with the rest.
    pub async fn sql(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: &Params,
    ) -> Result<QueryOutput, ApiError> {
        let started = Instant::now();
        let out = self
            .store
            .sql_with_params(tenant, sql, params.0.clone())
            .await;
        self.queries.observe(started.elapsed());
        Ok(out?)
    }

    /// Marks the server as shutting down.
    pub fn set_unready(&self) {
        self.ready.store(false, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_describes_every_path() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "an OpenAPI 3 document"
        );
        let paths = doc["paths"].as_object().expect("paths");
        for p in super::PATHS {
            assert!(paths.contains_key(p), "{p} is not in openapi.json");
        }
        assert_eq!(
            paths.len(),
            super::PATHS.len(),
            "openapi.json lists a path the router lacks"
        );
    }

    #[test]
    fn every_route_has_a_permission_and_every_permission_a_route() {
        use crate::auth::rbac::ROUTES;
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        for p in super::PATHS {
            assert!(
                ROUTES.iter().any(|(_, path, _)| *path == p),
                "{p} has no entry in the permission table"
            );
        }
        for (method, path, _) in ROUTES {
            let described = doc["paths"][*path][method.to_lowercase()].is_object();
            let operational = ["/healthz", "/readyz", "/metrics"].contains(path);
            assert!(
                described || operational,
                "{method} {path} is in the permission table but not in openapi.json"
            );
        }
    }
}
