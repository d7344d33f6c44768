//! Authentication and authorization of API requests: the route table's
//! permissions ([`Permissions`]) decide what each route
//! needs; a bearer access token says who is asking. Handlers take the [`Principal`], whose
//! tenant scopes everything they read.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State},
    http::{HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use ophion_core::TenantId;

use super::{ApiError, ApiState};
use crate::auth::{AuthError, Permission, Principal, audit};

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", m)
            }
            AuthError::Invalid(m) => ApiError::bad_request(m),
            AuthError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            AuthError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            AuthError::RateLimited(wait) => ApiError::too_many(wait),
            AuthError::Store(e) if e.is_retryable() => e.into(),
            e => {
                tracing::error!(error = %e, "auth failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the server log has details",
                )
            }
        }
    }
}

/// Who may call what: (method, path pattern) to permission, filled from
/// the route table ([`super::routes::table`]).
#[derive(Debug, Default)]
pub(super) struct Permissions(HashMap<(Method, &'static str), Permission>);

impl Permissions {
    /// Adds a route's permission; `false` when the route is already there.
    pub(super) fn insert(&mut self, method: Method, path: &'static str, p: Permission) -> bool {
        self.0.insert((method, path), p).is_none()
    }

    /// The permission `method` on route `path` needs; `None` when the table
    /// has no such route (refused).
    pub(super) fn get(&self, method: &Method, path: &str) -> Option<Permission> {
        self.0
            .iter()
            .find(|((m, p), _)| m == method && *p == path)
            .map(|(_, perm)| *perm)
    }

    /// Whether any method is routed on `path` (then another method is 405).
    pub(super) fn has_path(&self, path: &str) -> bool {
        self.0.keys().any(|(_, p)| *p == path)
    }
}

/// The client's address: the peer, or for a trusted proxy the address it
/// forwarded (see [`crate::auth::limits`]); empty when unknown.
fn address(s: &ApiState, ext: &axum::http::Extensions, headers: &axum::http::HeaderMap) -> String {
    let peer = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    s.auth
        .limits
        .config
        .client(peer, headers)
        .map(|ip| ip.to_string())
        .unwrap_or_default()
}

/// The client's address, for handlers (empty when unknown).
#[derive(Debug, Clone)]
pub(super) struct Client(pub String);

impl FromRequestParts<Arc<ApiState>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(address(s, &parts.extensions, &parts.headers)))
    }
}

/// Operations endpoints that load balancers and scrapers poll: never
/// rate-limited.
const UNLIMITED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

fn unauthenticated(message: String) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ophion\""),
    );
    r
}

/// What the access check reads: the server's state and the route table's
/// permissions.
#[derive(Debug, Clone)]
pub(super) struct Gate {
    pub state: Arc<ApiState>,
    pub permissions: Arc<Permissions>,
}

/// The middleware: looks the route up in the permission table,
/// authenticates the caller unless the route is public, checks the role,
/// and hands the principal to the handler. Denials are audited.
pub(super) async fn authorize(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let s = &gate.state;
    let Some(path): Option<String> = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await; // no route: the fallback answers 404
    };
    let method = req.method().clone();
    let from = address(s, req.extensions(), req.headers());
    if !UNLIMITED.contains(&path.as_str())
        && let Err(wait) = s.auth.limits.api_ip.take(&from)
    {
        return ApiError::too_many(wait).into_response();
    }
    // The router answers HEAD with the GET handler: it needs what GET needs.
    let asked = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    let Some(perm) = gate.permissions.get(&asked, &path) else {
        if gate.permissions.has_path(&path) {
            return next.run(req).await; // the router answers 405
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route has no entry in the permission table",
        )
        .into_response();
    };
    if perm == Permission::Public {
        return next.run(req).await;
    }
    let Some(token) = crate::auth::bearer(req.headers()).filter(|t| !t.is_empty()) else {
        return unauthenticated("sign in first: Authorization: Bearer <token>".into());
    };
    if token.starts_with(crate::auth::keys::KEY_PREFIX) {
        return unauthenticated("ingest keys are write-only: they cannot use the API".into());
    }
    let principal = match s.auth.authenticate(token).await {
        Ok(p) => p,
        Err(AuthError::Unauthenticated(m)) => return unauthenticated(m),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !perm.allows(principal.role, principal.tenant == TenantId::default()) {
        s.auth
            .audit(audit::Event {
                tenant: principal.tenant.as_str().to_owned(),
                actor: principal.username.clone(),
                action: "permission_denied",
                target: format!("{method} {path}"),
                source: from.clone(),
                outcome: "denied",
                detail: format!("role {} lacks {perm:?}", principal.role.as_str()),
            })
            .await;
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("your role ({}) may not do this", principal.role.as_str()),
        )
        .into_response();
    }
    if let Err(wait) = s.auth.limits.api_user.take(&principal.user_id.to_string()) {
        return ApiError::too_many(wait).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
        })
    }
}
