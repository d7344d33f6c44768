//! The web dashboard on the API port: the files `build.rs` built and
//! gzipped, embedded in the binary. Hashed files under `/assets/` are
//! cached for a year; every other path that is not the API's answers
//! `index.html` (the app routes on the client), never cached. A content
//! security policy allows this origin only: no inline script, no
//! third-party origin.

use std::io::Read as _;

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its URL path.
    pub path: &'static str,
    /// Its media type.
    pub mime: &'static str,
    /// Its bytes, gzipped.
    pub gzip: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The policy of the dashboard's pages.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Whether the dashboard was built into this binary.
pub fn embedded() -> bool {
    !ASSETS.is_empty()
}

/// Paths that belong to the API, never to the dashboard.
fn api_path(path: &str) -> bool {
    path.starts_with("/api/")
        || path == "/api"
        || path == "/metrics"
        || path == "/healthz"
        || path == "/readyz"
}

/// The file for `path`, or `index.html` for a client-side route; `None`
/// for the API's paths, other methods, or a build without the dashboard.
pub(super) fn serve(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || api_path(path) || !embedded() {
        return None;
    }
    let exact = ASSETS.iter().find(|a| a.path == path);
    // A missing hashed asset is a 404 (an old page asking for a file that
    // is gone), not the app.
    if exact.is_none() && path.starts_with("/assets/") {
        return None;
    }
    let asset = exact.or_else(|| ASSETS.iter().find(|a| a.path == "/index.html"))?;
    let hashed = asset.path.starts_with("/assets/");
    let gzip_ok = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let body = if gzip_ok {
        Body::from(asset.gzip)
    } else {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(asset.gzip)
            .read_to_end(&mut plain)
            .is_err()
        {
            return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Body::from(plain)
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    if gzip_ok {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hashed {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    Some(r)
}
