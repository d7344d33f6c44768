//! The route table: the one list of the API's routes. Each [`Route`] names
//! its method, path, permission, handler and OpenAPI description; the
//! router ([`build`]), the permission check (`access.rs`) and
//! `/api/v1/openapi.json` ([`super::openapi`]) all come from it, so a route
//! cannot be served without a permission or go undocumented.
//!
//! A new endpoint: write the handler in its module, add one `Route::new`
//! below. A route without a permission does not compile:
//!
//! ```compile_fail,E0061
//! use ophion_bin::api::{Doc, routes::Route};
//! async fn hello() -> &'static str { "hi" }
//! let r = Route::new(http::Method::GET, "/api/v1/hello", hello, Doc::new("Hello"));
//! ```

use std::sync::Arc;

use axum::{
    Extension, Router,
    handler::Handler,
    http::{HeaderValue, Method, header},
    response::{IntoResponse, Response},
    routing::{MethodFilter, MethodRouter, on},
};
use serde_json::json;

use super::{
    ApiState, Doc,
    access::{self, Permissions},
    logs, metrics, ops, query, services, traces, users,
};
use crate::auth::Permission;

mod ai;
mod alerts;
mod heal;

/// One route of the API.
#[derive(Debug)]
pub struct Route {
    method: Method,
    path: &'static str,
    permission: Permission,
    doc: Doc,
    handler: MethodRouter<Arc<ApiState>>,
}

impl Route {
    /// `method` on `path` (axum's syntax, `{param}`), allowed to callers
    /// with `permission`, answered by `handler`, described by `doc`.
    ///
    /// # Panics
    /// On a method axum cannot route (an extension method): a programming
    /// error caught by every test that builds the router.
    pub fn new<H, T>(
        method: Method,
        path: &'static str,
        permission: Permission,
        handler: H,
        doc: Doc,
    ) -> Self
    where
        H: Handler<T, Arc<ApiState>>,
        T: 'static,
    {
        #[allow(clippy::expect_used)]
        let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
        Self {
            method,
            path,
            permission,
            doc,
            handler: on(filter, handler),
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path pattern, as the router matches it.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// What a caller needs.
    pub fn permission(&self) -> Permission {
        self.permission
    }
}

/// Why a route table cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The same method and path twice.
    #[error("route {0} {1} is listed twice")]
    Duplicate(Method, &'static str),
}

/// The router, permission table and OpenAPI document of `routes`, with the
/// access check in front of every route; refuses a table that lists a
/// (method, path) twice.
pub fn build(state: Arc<ApiState>, routes: Vec<Route>) -> Result<Router, RouteError> {
    let mut permissions = Permissions::default();
    for r in &routes {
        if !permissions.insert(r.method.clone(), r.path, r.permission) {
            return Err(RouteError::Duplicate(r.method.clone(), r.path));
        }
    }
    let document = super::openapi::document(
        routes
            .iter()
            .map(|r| (&r.method, r.path, r.permission, &r.doc)),
    );
    let document: Arc<str> = document.to_string().into();
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<ApiState>>)> = Vec::new();
    for r in routes {
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, handler)) => *handler = std::mem::take(handler).merge(r.handler),
            None => by_path.push((r.path, r.handler)),
        }
    }
    let gate = access::Gate {
        state: Arc::clone(&state),
        permissions: Arc::new(permissions),
    };
    let router = by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        });
    Ok(router
        .route_layer(axum::middleware::from_fn_with_state(
            gate,
            access::authorize,
        ))
        .layer(Extension(document))
        .with_state(state))
}

async fn openapi(Extension(doc): Extension<Arc<str>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.to_string(),
    )
        .into_response()
}

/// Every route the server serves: the one list.
pub fn table() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/healthz",
            Permission::Public,
            ops::healthz,
            Doc::new("Liveness: 200 while the process runs")
            .ok(200, "Alive"),
        ),
        Route::new(
            Method::GET,
            "/readyz",
            Permission::Public,
            ops::readyz,
            Doc::new("Readiness: 200 while serving, 503 once shutdown has begun")
            .ok(200, "Ready")
            .ok_content(503, "Error", json!({})),
        ),
        Route::new(
            Method::GET,
            "/metrics",
            Permission::Public,
            ops::prometheus,
            Doc::new("The server's own metrics in the Prometheus text format")
            .ok_content(200, "Prometheus text", json!({"text/plain": {"schema": {"type": "string"}}})),
        ),
        Route::new(
            Method::GET,
            "/api/v1/openapi.json",
            Permission::Public,
            openapi,
            Doc::new("This document")
            .ok(200, "The OpenAPI document")
            .errors(&[400]),
        ),
        Route::new(
            Method::POST,
            "/api/v1/query",
            Permission::Read,
            query::run,
            Doc::new("Run one read-only SQL query")
            .description("Tables `spans`, `logs`, `metrics` (see docs/architecture.md). Only a single SELECT; DDL, DML, COPY and SET are refused. `trace_id = '<hex>'` works; attributes are read with `attributes['key']`. Answers JSON by default, CSV for `Accept: text/csv`, an Arrow IPC stream for `Accept: application/vnd.apache.arrow.stream`.")
            .body(true, json!({"type": "object", "required": ["sql"], "properties": {"sql": {"type": "string"}}}))
            .ok_schema(200, "The rows", json!({"$ref": "#/components/schemas/QueryResult"}))
            .errors(&[400, 422, 504]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/traces",
            Permission::Read,
            traces::search,
            Doc::new("Search traces")
            .query("service", "string", "Service name of a matching span.")
            .query("operation", "string", "Span name of a matching span.")
            .query("attribute", "string", "`key=value` a matching span carries.")
            .query("min_duration", "string", "Minimum span duration, e.g. `250ms`.")
            .query("max_duration", "string", "Maximum span duration.")
            .query("status", "string", "`error`, `ok` or `unset`.")
            .query("limit", "integer", "Traces returned (default 20, at most 1000).")
            .range()
            .ok(200, "Traces with a matching span, newest first: id, start, duration, span and error counts, services, root service and operation.")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/traces/{trace_id}",
            Permission::Read,
            traces::get,
            Doc::new("One trace: every span (parent links, service, timing, status, attributes, events, links) and the trace's logs")
            .path("trace_id", "string", "32 hex characters.")
            .query("view", "string", "`full` (default); `waterfall`: only ids, parent, name, kind, service, times and status, and no logs (a big trace's first paint); `logs`: the logs and the summary, no spans.")
            .ok(200, "The trace")
            .errors(&[400, 404]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/services",
            Permission::Read,
            services::list,
            Doc::new("Services with request rate, error ratio and p50/p95/p99 latency of their entry spans (server, consumer, or root)")
            .range()
            .ok(200, "Services")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/services/{name}/operations",
            Permission::Read,
            services::operations,
            Doc::new("A service's operations (span name and kind) with rate, error ratio and latency")
            .path("name", "string", "Service name.")
            .range()
            .ok(200, "Operations")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/service-graph",
            Permission::Read,
            services::graph,
            Doc::new("Caller -> callee edges between services, from parent/child spans, with calls, errors and latency of the callee spans")
            .range()
            .ok(200, "Nodes and edges")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/logs",
            Permission::Read,
            logs::search,
            Doc::new("Search logs, newest first, with a count histogram over the range")
            .query("q", "string", "Text the body contains (case-insensitive).")
            .query("service", "string", "Service name.")
            .query("severity", "string", "Minimum severity: trace, debug, info, warn, error, fatal, or a number.")
            .query("trace_id", "string", "Trace id (hex).")
            .query("attribute", "string", "`key=value`.")
            .query("limit", "integer", "Records a page (default 100, at most 10000; a page also holds every record sharing its last timestamp).")
            .query("buckets", "integer", "Histogram buckets (default 60; 0 for none, as later pages need).")
            .query("before", "string", "The next page: the `next` of the page before (absent on the last page).")
            .range()
            .ok(200, "Records, `next` when more may follow, and (with buckets) the total and the histogram")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/logs/tail",
            Permission::Read,
            logs::tail,
            Doc::new("Follow new log records as server-sent events (`log` events with a record as JSON; `lagged` when the client fell behind)")
            .query("q", "string", "Text the body contains (case-insensitive).")
            .query("service", "string", "Service name.")
            .query("severity", "string", "Minimum severity.")
            .ok_content(200, "An event stream", json!({"text/event-stream": {"schema": {"type": "string"}}}))
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/metrics",
            Permission::Read,
            metrics::list,
            Doc::new("Metric names with type, unit, description and services")
            .range()
            .ok(200, "Metrics")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/metrics/query",
            Permission::Read,
            metrics::query,
            Doc::new("One metric as time series")
            .required_query("name", "string", "Metric name.")
            .query("aggregation", "string", "`avg` (default), `sum`, `min`, `max` of gauges and sums; `rate` (per second) of sums; `p50`, `p95`, `p99` of histograms.")
            .query("step", "string", "Step, e.g. `60s` (default: the range in 60 steps).")
            .query("group_by", "string", "Comma-separated attribute keys (span/point attributes, then resource attributes).")
            .query("service", "string", "Service name.")
            .range()
            .ok(200, "Series: group and [time, value] points")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/status",
            Permission::Read,
            ops::status,
            Doc::new("Status: version, uptime and stored data per signal of your tenant; for admins of the default tenant the whole server (memory, buffers, received data of every tenant)")
            .ok(200, "Status")
            .errors(&[400]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/version",
            Permission::Public,
            ops::version,
            Doc::new("Server version")
            .ok(200, "Version")
            .errors(&[400]),
        ),
        Route::new(
            Method::POST,
            "/api/v1/auth/login",
            Permission::Public,
            users::login,
            Doc::new("Sign in: an access token (Bearer, short-lived) and a one-time refresh token")
            .description("User names are unique per tenant. `tenant` may be left out when the name is the default tenant's or exists in one tenant only.")
            .body(true, json!({"type": "object", "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "tenant": {"type": "string"}}, "required": ["username", "password"]}))
            .ok(200, "OK"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/auth/refresh",
            Permission::Public,
            users::refresh,
            Doc::new("Trade a refresh token (once) for new tokens; a reused refresh token revokes all of its user's tokens")
            .body(true, json!({"type": "object", "properties": {"refresh_token": {"type": "string"}}, "required": ["refresh_token"]}))
            .ok(200, "OK"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/auth/logout",
            Permission::SignedIn,
            users::logout,
            Doc::new("Sign out: revokes this access token and, if given, the refresh token")
            .body(false, json!({"type": "object", "properties": {"refresh_token": {"type": "string"}}}))
            .ok_content(204, "Signed out", json!({})),
        ),
        Route::new(
            Method::POST,
            "/api/v1/auth/password",
            Permission::SignedIn,
            users::change_password,
            Doc::new("Change your own password (revokes your tokens)")
            .body(true, json!({"type": "object", "properties": {"current_password": {"type": "string"}, "new_password": {"type": "string"}}, "required": ["current_password", "new_password"]}))
            .ok_content(204, "Changed", json!({})),
        ),
        Route::new(
            Method::GET,
            "/api/v1/auth/me",
            Permission::SignedIn,
            users::me,
            Doc::new("Who the token belongs to: id, user name, tenant, role")
            .ok(200, "OK"),
        ),
        Route::new(
            Method::GET,
            "/api/v1/users",
            Permission::Admin,
            users::list_users,
            Doc::new("Users of your tenant (admin)")
            .ok(200, "OK"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/users",
            Permission::Admin,
            users::create_user,
            Doc::new("Create a user in your tenant (admin)")
            .body(true, json!({"type": "object", "properties": {"username": {"type": "string"}, "password": {"type": "string"}, "role": {"type": "string", "enum": ["viewer", "editor", "admin"]}}, "required": ["username", "password", "role"]}))
            .ok(201, "Created"),
        ),
        Route::new(
            Method::PATCH,
            "/api/v1/users/{id}",
            Permission::Admin,
            users::update_user,
            Doc::new("Change a user's role, disable or enable them, or reset their password (admin; disabling and password changes revoke their tokens)")
            .path("id", "integer", "")
            .body(true, json!({"type": "object", "properties": {"role": {"type": "string", "enum": ["viewer", "editor", "admin"]}, "disabled": {"type": "boolean"}, "password": {"type": "string"}}}))
            .ok(200, "OK"),
        ),
        Route::new(
            Method::GET,
            "/api/v1/audit",
            Permission::Admin,
            users::audit_log,
            Doc::new("Your tenant's audit records, newest first (admin)")
            .query("action", "string", "only this action (login, logout, permission_denied, user_create, ...)")
            .query("actor", "string", "only this actor")
            .query("outcome", "string", "ok, failed or denied")
            .query("from", "string", "start of the range")
            .query("to", "string", "end of the range")
            .query("limit", "integer", "at most this many (default 100)")
            .ok(200, "OK"),
        ),
        Route::new(
            Method::GET,
            "/api/v1/audit/verify",
            Permission::Admin,
            users::audit_verify,
            Doc::new("Recompute your tenant's audit hash chain: ok, records checked, the first broken record")
            .ok(200, "OK"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/tenants",
            Permission::Operator,
            users::create_tenant,
            Doc::new("Create a tenant with its first admin (admins of the default tenant)")
            .body(true, json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "admin_username": {"type": "string"}, "admin_password": {"type": "string"}}, "required": ["id", "name", "admin_username", "admin_password"]}))
            .ok(201, "Created"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/admin/signing-key/rotate",
            Permission::Operator,
            users::rotate_signing_key,
            Doc::new("Replace the token signing key (admins of the default tenant): every session of every tenant ends, everyone signs in again")
            .description("Refused with 409 when the key comes from OPHION_SIGNING_KEY: rotate it there and restart. See docs/security.md.")
            .ok_content(204, "Rotated", json!({}))
            .errors(&[409]),
        ),
        Route::new(
            Method::GET,
            "/api/v1/keys",
            Permission::Admin,
            users::list_keys,
            Doc::new("Ingest keys of your tenant, without their secrets (admin)")
            .ok(200, "Keys"),
        ),
        Route::new(
            Method::POST,
            "/api/v1/keys",
            Permission::Admin,
            users::create_key,
            Doc::new("Create an ingest key (admin); the key is in this answer only")
            .body(true, json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}))
            .ok(201, "Created: id, name, prefix, key"),
        ),
        Route::new(
            Method::DELETE,
            "/api/v1/keys/{id}",
            Permission::Admin,
            users::revoke_key,
            Doc::new("Revoke an ingest key (admin); the receivers refuse it at once")
            .path("id", "integer", "")
            .ok_content(204, "Revoked", json!({})),
        ),
    ]
    .into_iter()
    .chain(ai::table())
    .chain(alerts::table())
    .chain(heal::table())
    .collect()
}
