//! The optional authentication hook.

use std::fmt::Debug;

use ophion_core::TenantId;

/// Why a request was not let in.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials, or credentials that are not valid. HTTP 401 / gRPC
    /// `UNAUTHENTICATED`.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid credentials without the right to ingest. HTTP 403 / gRPC
    /// `PERMISSION_DENIED`.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// Over a rate limit: HTTP 429 + `Retry-After` / gRPC
    /// `RESOURCE_EXHAUSTED` + `RetryInfo`.
    #[error("rate limited: {message}")]
    RateLimited {
        /// When to try again.
        retry_after: std::time::Duration,
        /// Which limit.
        message: String,
    },
}

/// Decides, from the request headers alone, whether a request may export
/// telemetry and for which tenant.
///
/// Called before the body is read or decoded, on both transports (gRPC
/// metadata is presented as HTTP headers). Must be fast and must not block:
/// it runs on the request's async task. Implementations typically look up a
/// hashed API key (`Authorization: Bearer ...` or `x-ophion-api-key`) in
/// memory.
pub trait Authenticator: Debug + Send + Sync {
    /// The tenant the request's data belongs to, or why it is refused.
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantId, AuthError>;

    /// The same, knowing the connection's peer address when the transport
    /// has it (for limits per client). Defaults to [`Self::authenticate`].
    fn authenticate_from(
        &self,
        headers: &http::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<TenantId, AuthError> {
        let _ = peer;
        self.authenticate(headers)
    }
}
