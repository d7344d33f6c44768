//! OTLP/gRPC: the three collector services, gzip accepted, message size
//! checked after decompression (tonic >= 0.14.3).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::{
    logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
        logs_service_server::{LogsService, LogsServiceServer},
    },
    metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
    trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use ophion_core::TenantId;
use prost::Message as _;
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Code, Request, Response, Status, codec::CompressionEncoding, service::Routes};
use tonic_types::{ErrorDetails, StatusExt as _};

use axum::{extract::State, middleware::Next};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use crate::service::{Accepted, Decoded, Failure, Shared, gunzip_into, too_large};

/// The gRPC services, sharing one pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Grpc {
    shared: Arc<Shared>,
}

/// A request's slot, carried from the front door to the handler.
#[derive(Clone)]
struct Permit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

pub(crate) fn status(f: &Failure) -> Status {
    let msg = f.message().to_owned();
    match f {
        Failure::BadData(_) | Failure::UnsupportedMedia(_) => {
            Status::new(Code::InvalidArgument, msg)
        }
        Failure::TooLarge(_) => Status::new(Code::ResourceExhausted, msg),
        Failure::Overloaded { retry_after, .. } | Failure::Unavailable { retry_after, .. } => {
            Status::with_error_details(
                Code::Unavailable,
                msg,
                ErrorDetails::with_retry_info(Some(*retry_after)),
            )
        }
        Failure::Unauthenticated(_) => Status::new(Code::Unauthenticated, msg),
        Failure::Forbidden(_) => Status::new(Code::PermissionDenied, msg),
        Failure::Internal(_) => Status::new(Code::Internal, msg),
    }
}

impl Grpc {
    async fn export(&self, request: Request<Decoded>) -> Result<Accepted, Status> {
        // The services are only reachable through `routes`, whose front door
        // authenticated the request and took its slot.
        let tenant = request
            .extensions()
            .get::<TenantId>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("request did not pass authentication"))?;
        let req = request.into_inner();
        let size = match &req {
            Decoded::Traces(r) => r.encoded_len(),
            Decoded::Logs(r) => r.encoded_len(),
            Decoded::Metrics(r) => r.encoded_len(),
        };
        self.shared
            .export_decoded(&tenant, req, size)
            .await
            .map_err(|f| status(&f))
    }
}

fn map<T>(req: Request<T>, f: impl FnOnce(T) -> Decoded) -> Request<Decoded> {
    let (meta, ext, msg) = req.into_parts();
    Request::from_parts(meta, ext, f(msg))
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let a = Grpc::export(self, map(request, Decoded::Traces)).await?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: a.rejected as i64,
                error_message: a.message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let a = Grpc::export(self, map(request, Decoded::Logs)).await?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: a.rejected as i64,
                error_message: a.message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let a = Grpc::export(self, map(request, Decoded::Metrics)).await?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (a.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: a.rejected as i64,
                error_message: a.message,
            }),
        }))
    }
}

const GRPC_ENCODING: &str = "grpc-encoding";

/// The front door of every gRPC request, before tonic reads the message:
/// authenticates, takes a request slot, and inflates gzip messages with the
/// receiver's capped inflater (tonic's own inflater grows its buffer by
/// doubling past the size limit before it refuses a message).
async fn front_door(
    State(shared): State<Arc<Shared>>,
    mut req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let admitted = shared
        .authenticate(req.headers())
        .and_then(|tenant| Ok((tenant, shared.try_permit()?)));
    let (tenant, permit) = match admitted {
        Ok(a) => a,
        Err(f) => return status(&f).into_http(),
    };
    req.extensions_mut().insert(tenant);
    req.extensions_mut().insert(Permit(Arc::new(permit)));
    let gzip = req
        .headers()
        .get(GRPC_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if gzip {
        let (mut parts, body) = req.into_parts();
        let limit = shared.config.max_body_bytes;
        let framed = match Limited::new(body, limit.saturating_add(5)).collect().await {
            Ok(c) => inflate_frames(&c.to_bytes(), limit),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
            Err(e) => Err(Failure::BadData(format!("cannot read request: {e}"))),
        };
        match framed {
            Ok(bytes) => {
                parts.headers.remove(GRPC_ENCODING);
                req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            }
            Err(f) => return status(&shared.fail(f)).into_http(),
        }
    }
    next.run(req).await
}

/// Rewrites a stream of gRPC length-prefixed messages so that none is
/// compressed, holding every message to `limit` bytes after inflation.
fn inflate_frames(mut input: &[u8], limit: usize) -> Result<Vec<u8>, Failure> {
    let bad = |m: &str| Failure::BadData(m.to_owned());
    let mut out = Vec::new();
    while !input.is_empty() {
        let [flag, a, b, c, d, ..] = *input else {
            return Err(bad("truncated gRPC message header"));
        };
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        let payload = input
            .get(5..5 + len)
            .ok_or_else(|| bad("truncated gRPC message"))?;
        match flag {
            0 if len > limit => return Err(too_large(limit)),
            0 => out.extend_from_slice(&input[..5 + len]),
            1 => {
                let start = out.len();
                out.extend_from_slice(&[0; 5]);
                gunzip_into(payload, limit, &mut out)?;
                let n = (out.len() - start - 5) as u32;
                out[start + 1..start + 5].copy_from_slice(&n.to_be_bytes());
            }
            _ => return Err(bad("unknown gRPC message flag")),
        }
        input = &input[5 + len..];
    }
    Ok(out)
}

/// The three services behind their front door, as tonic routes. Tonic is
/// not allowed to inflate messages itself: the front door already did.
pub(crate) fn routes(shared: Arc<Shared>) -> Routes {
    let limit = shared.config.max_body_bytes;
    let svc = Grpc {
        shared: Arc::clone(&shared),
    };
    let traces = TraceServiceServer::new(svc.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(svc.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(svc)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let router = Routes::new(traces)
        .add_service(logs)
        .add_service(metrics)
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(shared, front_door));
    Routes::from(router)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(b: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = e.write_all(b);
        e.finish().unwrap_or_default()
    }

    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![flag];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_are_inflated_and_checked() {
        let msg = b"hello hello hello hello";
        let input = [frame(1, &gz(msg)), frame(0, b"plain")].concat();
        let out = inflate_frames(&input, 1024).map_err(|f| f.message().to_owned());
        assert_eq!(out, Ok([frame(0, msg), frame(0, b"plain")].concat()));
        assert!(matches!(
            inflate_frames(&frame(1, &gz(&[0; 4096])), 1024),
            Err(Failure::TooLarge(_))
        ));
        assert!(matches!(
            inflate_frames(&frame(0, &[0; 2048]), 1024),
            Err(Failure::TooLarge(_))
        ));
        assert!(matches!(
            inflate_frames(&[1, 0, 0], 1024),
            Err(Failure::BadData(_))
        ));
        assert!(matches!(
            inflate_frames(&frame(1, b"not gzip"), 1024),
            Err(Failure::BadData(_))
        ));
        let mut truncated = frame(0, b"abc");
        truncated.pop();
        assert!(matches!(
            inflate_frames(&truncated, 1024),
            Err(Failure::BadData(_))
        ));
    }
}
