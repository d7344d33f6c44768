//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`, protobuf and
//! JSON bodies, optional gzip, answers in the request's content type.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use http_body_util::{BodyExt as _, Limited};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse},
    metrics::v1::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse},
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse},
};
use ophion_core::Signal;
use prost::Message as _;

use crate::service::{Accepted, Encoding, Failure, Shared, too_large};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .with_state(shared)
}

/// The connection's peer address, when the server was started with
/// connect info (the receiver's own `serve` is; an embedder's may not be).
struct Peer(Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

async fn traces(s: State<Arc<Shared>>, p: Peer, h: HeaderMap, b: Body) -> Response {
    export(s, p, h, b, Signal::Traces).await
}

async fn metrics(s: State<Arc<Shared>>, p: Peer, h: HeaderMap, b: Body) -> Response {
    export(s, p, h, b, Signal::Metrics).await
}

async fn logs(s: State<Arc<Shared>>, p: Peer, h: HeaderMap, b: Body) -> Response {
    export(s, p, h, b, Signal::Logs).await
}

/// The body encoding named by `Content-Type`, ignoring parameters and case.
fn encoding(headers: &HeaderMap) -> Result<Encoding, Failure> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        PROTOBUF => Ok(Encoding::Protobuf),
        JSON => Ok(Encoding::Json),
        _ => Err(Failure::UnsupportedMedia(format!(
            "unsupported content type {raw:?}: use {PROTOBUF} or {JSON}"
        ))),
    }
}

/// Whether the body is gzip-compressed; other encodings are refused.
fn gzip(headers: &HeaderMap) -> Result<bool, Failure> {
    let raw = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        other => Err(Failure::UnsupportedMedia(format!(
            "unsupported content encoding {other:?}: use gzip or none"
        ))),
    }
}

async fn export(
    State(shared): State<Arc<Shared>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
    signal: Signal,
) -> Response {
    // Media type first, so even refusals can answer in the client's encoding.
    let enc = match encoding(&headers) {
        Ok(e) => e,
        Err(f) => {
            drain(body, shared.config.max_body_bytes).await;
            return failure(Encoding::Json, shared.fail(f));
        }
    };
    match export_inner(&shared, &headers, peer, body, signal, enc).await {
        Ok(accepted) => success(enc, signal, &accepted),
        Err(f) => failure(enc, f),
    }
}

async fn export_inner(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    body: Body,
    signal: Signal,
    enc: Encoding,
) -> Result<Accepted, Failure> {
    let limit = shared.config.max_body_bytes;
    // Refused before the body is looked at, but the body is still read and
    // discarded (bounded), so the client sees the 401 or 415 instead of a
    // connection closed under its upload.
    let tenant = match shared.authenticate(headers, peer) {
        Ok(t) => t,
        Err(f) => {
            drain(body, limit).await;
            return Err(f);
        }
    };
    let gzip = match gzip(headers) {
        Ok(g) => g,
        Err(f) => {
            drain(body, limit).await;
            return Err(shared.fail(f));
        }
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > limit
    {
        return Err(shared.fail(too_large(limit)));
    }
    let _permit = match shared.try_permit() {
        Ok(p) => p,
        Err(f) => {
            drain(body, limit).await;
            return Err(f);
        }
    };
    // The compressed body may not exceed the limit either.
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(shared.fail(too_large(limit)));
        }
        Err(e) => {
            return Err(shared.fail(Failure::BadData(format!("cannot read request body: {e}"))));
        }
    };
    shared.export_bytes(&tenant, signal, enc, gzip, bytes).await
}

/// Reads and discards a refused request's body (at most `limit` bytes, for
/// at most a few seconds), so that the client reads our answer and its
/// `Retry-After` instead of a broken connection. Costs no memory beyond one
/// frame at a time.
async fn drain(mut body: Body, limit: usize) {
    use http_body_util::BodyExt as _;
    let mut seen = 0usize;
    let reading = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > limit {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reading).await;
}

fn content_type(enc: Encoding) -> HeaderValue {
    HeaderValue::from_static(match enc {
        Encoding::Protobuf => PROTOBUF,
        Encoding::Json => JSON,
    })
}

fn success(enc: Encoding, signal: Signal, a: &Accepted) -> Response {
    let body: Vec<u8> = match enc {
        Encoding::Protobuf => match signal {
            Signal::Traces => ExportTraceServiceResponse {
                partial_success: (a.rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: a.rejected as i64,
                    error_message: a.message.clone(),
                }),
            }
            .encode_to_vec(),
            Signal::Logs => ExportLogsServiceResponse {
                partial_success: (a.rejected > 0).then(|| ExportLogsPartialSuccess {
                    rejected_log_records: a.rejected as i64,
                    error_message: a.message.clone(),
                }),
            }
            .encode_to_vec(),
            Signal::Metrics => ExportMetricsServiceResponse {
                partial_success: (a.rejected > 0).then(|| ExportMetricsPartialSuccess {
                    rejected_data_points: a.rejected as i64,
                    error_message: a.message.clone(),
                }),
            }
            .encode_to_vec(),
        },
        Encoding::Json => {
            let doc = if a.rejected == 0 {
                serde_json::json!({})
            } else {
                let field = match signal {
                    Signal::Traces => "rejectedSpans",
                    Signal::Logs => "rejectedLogRecords",
                    Signal::Metrics => "rejectedDataPoints",
                };
                // int64 is a string in the protobuf JSON mapping.
                serde_json::json!({"partialSuccess": {field: a.rejected.to_string(), "errorMessage": a.message}})
            };
            doc.to_string().into_bytes()
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type(enc))],
        body,
    )
        .into_response()
}

/// An error answer: the HTTP status OTLP prescribes and a `google.rpc.Status`
/// body in the request's encoding.
fn failure(enc: Encoding, f: Failure) -> Response {
    let (status, grpc_code, retry_after) = match &f {
        Failure::BadData(_) => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument, None),
        Failure::TooLarge(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            None,
        ),
        Failure::UnsupportedMedia(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            None,
        ),
        Failure::Overloaded { retry_after, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            Some(*retry_after),
        ),
        Failure::Unavailable { retry_after, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            Some(*retry_after),
        ),
        Failure::Unauthenticated(_) => {
            (StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated, None)
        }
        Failure::RateLimited { retry_after, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::ResourceExhausted,
            Some(*retry_after),
        ),
        Failure::Forbidden(_) => (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied, None),
        Failure::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            tonic::Code::Internal,
            None,
        ),
    };
    let body = match enc {
        Encoding::Protobuf => tonic_types::pb::Status {
            code: grpc_code as i32,
            message: f.message().to_owned(),
            details: vec![],
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": grpc_code as i32, "message": f.message()})
            .to_string()
            .into_bytes(),
    };
    let mut resp = (status, [(header::CONTENT_TYPE, content_type(enc))], body).into_response();
    if let Some(d) = retry_after
        && let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
