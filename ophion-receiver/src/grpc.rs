//! OTLP/gRPC: the three collector services on tonic's unary machinery,
//! behind a front door that authenticates, takes a request slot and
//! inflates gzip messages under the size limit, with a codec that answers
//! `INVALID_ARGUMENT` for messages that do not decode (OTLP's rule; plain
//! tonic answers `INTERNAL`).

use std::{future::Future, marker::PhantomData, pin::Pin, sync::Arc};

use axum::{extract::State, middleware::Next, routing::post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse},
    metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    },
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse},
};
use ophion_core::TenantId;
use prost::Message;
use tokio::sync::OwnedSemaphorePermit;
use tonic::{
    Code, Request, Response, Status,
    codec::{BufferSettings, Codec, CompressionEncoding, DecodeBuf, Decoder},
    server::UnaryService,
    service::Routes,
};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::service::{Accepted, Decoded, Failure, Shared, gunzip_into, too_large};

/// The gRPC services, sharing one pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Grpc {
    shared: Arc<Shared>,
}

/// A request's slot, carried from the front door to the handler.
#[derive(Clone)]
struct Permit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// The request's one message, uncompressed, as the client encoded it,
/// carried from the front door to the handler.
#[derive(Clone)]
struct PlainMessage(bytes::Bytes);

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
        Failure::RateLimited { retry_after, .. } => Status::with_error_details(
            Code::ResourceExhausted,
            msg,
            ErrorDetails::with_retry_info(Some(*retry_after)),
        ),
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
        // The message as the client sent it (the front door kept it): its
        // size, and what a forwarder passes on without encoding it again.
        let message = request
            .extensions()
            .get::<PlainMessage>()
            .map(|m| m.0.clone());
        let req = request.into_inner();
        let size = match (&message, &req) {
            (Some(m), _) => m.len(),
            (None, Decoded::Traces(r)) => r.encoded_len(),
            (None, Decoded::Logs(r)) => r.encoded_len(),
            (None, Decoded::Metrics(r)) => r.encoded_len(),
        };
        self.shared
            .export_decoded(&tenant, req, message, size)
            .await
            .map_err(|f| status(&f))
    }
}

fn map<T>(req: Request<T>, f: impl FnOnce(T) -> Decoded) -> Request<Decoded> {
    let (meta, ext, msg) = req.into_parts();
    Request::from_parts(meta, ext, f(msg))
}

type Answer<Resp> = Pin<Box<dyn Future<Output = Result<Response<Resp>, Status>> + Send>>;

impl Grpc {
    fn traces(
        self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Answer<ExportTraceServiceResponse> {
        Box::pin(async move {
            let a = self.export(map(request, Decoded::Traces)).await?;
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (a.rejected > 0).then_some(ExportTracePartialSuccess {
                    rejected_spans: a.rejected as i64,
                    error_message: a.message,
                }),
            }))
        })
    }

    fn logs(self, request: Request<ExportLogsServiceRequest>) -> Answer<ExportLogsServiceResponse> {
        Box::pin(async move {
            let a = self.export(map(request, Decoded::Logs)).await?;
            Ok(Response::new(ExportLogsServiceResponse {
                partial_success: (a.rejected > 0).then_some(ExportLogsPartialSuccess {
                    rejected_log_records: a.rejected as i64,
                    error_message: a.message,
                }),
            }))
        })
    }

    fn metrics(
        self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Answer<ExportMetricsServiceResponse> {
        Box::pin(async move {
            let a = self.export(map(request, Decoded::Metrics)).await?;
            Ok(Response::new(ExportMetricsServiceResponse {
                partial_success: (a.rejected > 0).then_some(ExportMetricsPartialSuccess {
                    rejected_data_points: a.rejected as i64,
                    error_message: a.message,
                }),
            }))
        })
    }
}

/// One export method as a tonic unary service.
struct Method<Req, Resp> {
    grpc: Grpc,
    call: fn(Grpc, Request<Req>) -> Answer<Resp>,
}

impl<Req, Resp> UnaryService<Req> for Method<Req, Resp> {
    type Response = Resp;
    type Future = Answer<Resp>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.call)(self.grpc.clone(), request)
    }
}

/// tonic's prost codec, except that a message that does not decode is the
/// client's fault.
struct OtlpCodec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> Codec for OtlpCodec<E, D>
where
    E: Message + Send + 'static,
    D: Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = ProstEncoder<E>;
    type Decoder = OtlpDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<E, D>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder(ProstCodec::<E, D>::default().decoder())
    }
}

struct OtlpDecoder<D>(ProstDecoder<D>);

impl<D: Message + Default> Decoder for OtlpDecoder<D> {
    type Item = D;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        self.0.decode(buf).map_err(|e| {
            Status::invalid_argument(format!("cannot decode OTLP request: {}", e.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// Serves one unary call of `method`.
async fn unary<Req, Resp>(
    method: Method<Req, Resp>,
    limit: usize,
    req: axum::extract::Request,
) -> axum::response::Response
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Send + 'static,
{
    let mut grpc = tonic::server::Grpc::new(OtlpCodec::<Resp, Req>(PhantomData))
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    grpc.unary(method, req).await.map(axum::body::Body::new)
}

const GRPC_ENCODING: &str = "grpc-encoding";

/// The front door of every gRPC request, before tonic reads the message:
/// authenticates, takes a request slot, reads the body under the size limit
/// and inflates gzip messages with the receiver's capped inflater. Doing the
/// size check here gives OTLP's `RESOURCE_EXHAUSTED` (tonic's own check
/// answers `OUT_OF_RANGE`, which OTLP clients retry forever) and keeps
/// tonic's inflater, which grows its buffer past the limit, out of the way.
async fn front_door(
    State(shared): State<Arc<Shared>>,
    mut req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let peer = req
        .extensions()
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|i| i.remote_addr())
        .map(|a| a.ip());
    let admitted = shared
        .authenticate(req.headers(), peer)
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
    let (mut parts, body) = req.into_parts();
    let limit = shared.config.max_body_bytes;
    let framed = match Limited::new(body, limit.saturating_add(5)).collect().await {
        Ok(c) => plain_frames(c.to_bytes(), limit, gzip),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(e) => Err(Failure::BadData(format!("cannot read request: {e}"))),
    };
    match framed {
        Ok(bytes) => {
            parts.headers.remove(GRPC_ENCODING);
            if let Some(m) = single_message(&bytes) {
                parts.extensions.insert(PlainMessage(m));
            }
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(f) => status(&shared.fail(f)).into_http(),
    }
}

/// Checks a body of gRPC length-prefixed messages against `limit` and
/// returns it with every message uncompressed: unchanged when none was
/// compressed, else rebuilt with the gzip messages inflated (only allowed
/// when the request declared `grpc-encoding: gzip`).
fn plain_frames(input: bytes::Bytes, limit: usize, gzip: bool) -> Result<bytes::Bytes, Failure> {
    let bad = |m: &str| Failure::BadData(m.to_owned());
    let mut rest = &input[..];
    let mut out: Option<Vec<u8>> = None;
    while !rest.is_empty() {
        let [flag, a, b, c, d, ..] = *rest else {
            return Err(bad("truncated gRPC message header"));
        };
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        let payload = rest
            .get(5..5 + len)
            .ok_or_else(|| bad("truncated gRPC message"))?;
        match flag {
            0 if len > limit => return Err(too_large(limit)),
            0 => {
                if let Some(out) = out.as_mut() {
                    out.extend_from_slice(&rest[..5 + len]);
                }
            }
            1 if gzip => {
                let out = out.get_or_insert_with(|| input[..input.len() - rest.len()].to_vec());
                let start = out.len();
                out.extend_from_slice(&[0; 5]);
                gunzip_into(payload, limit, out)?;
                let n = (out.len() - start - 5) as u32;
                out[start + 1..start + 5].copy_from_slice(&n.to_be_bytes());
            }
            1 => {
                return Err(bad(
                    "compressed gRPC message without a grpc-encoding header",
                ));
            }
            _ => return Err(bad("unknown gRPC message flag")),
        }
        rest = &rest[5 + len..];
    }
    Ok(out.map_or(input, bytes::Bytes::from))
}

/// The message of a body of exactly one uncompressed gRPC message (what a
/// unary call carries).
fn single_message(framed: &bytes::Bytes) -> Option<bytes::Bytes> {
    let [0, a, b, c, d, ..] = framed[..] else {
        return None;
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    (framed.len() == 5 + len).then(|| framed.slice(5..))
}

/// The three services behind their front door, as tonic routes. Only the
/// front door inflates messages: tonic's own inflater is never enabled.
pub(crate) fn routes(shared: Arc<Shared>) -> Routes {
    let limit = shared.config.max_body_bytes;
    let grpc = Grpc {
        shared: Arc::clone(&shared),
    };
    let (g1, g2, g3) = (grpc.clone(), grpc.clone(), grpc);
    let router = axum::Router::new()
        .route(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            post(move |req| {
                unary(
                    Method {
                        grpc: g1,
                        call: Grpc::traces,
                    },
                    limit,
                    req,
                )
            }),
        )
        .route(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            post(move |req| {
                unary(
                    Method {
                        grpc: g2,
                        call: Grpc::logs,
                    },
                    limit,
                    req,
                )
            }),
        )
        .route(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            post(move |req| {
                unary(
                    Method {
                        grpc: g3,
                        call: Grpc::metrics,
                    },
                    limit,
                    req,
                )
            }),
        )
        .layer(axum::middleware::from_fn_with_state(shared, front_door))
        .fallback(|| async {
            Status::unimplemented("unknown gRPC method").into_http::<axum::body::Body>()
        });
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

    fn check(input: Vec<u8>, gzip: bool) -> Result<Vec<u8>, Failure> {
        plain_frames(input.into(), 1024, gzip).map(|b| b.to_vec())
    }

    #[test]
    fn only_a_body_of_one_plain_message_is_kept_as_it_came() {
        let one = bytes::Bytes::from(frame(0, b"message"));
        assert_eq!(single_message(&one).as_deref(), Some(&b"message"[..]));
        let empty = bytes::Bytes::from(frame(0, b""));
        assert_eq!(single_message(&empty).as_deref(), Some(&b""[..]));
        let two = bytes::Bytes::from([frame(0, b"one"), frame(0, b"two")].concat());
        assert_eq!(single_message(&two), None);
        let gzipped = bytes::Bytes::from(frame(1, &gz(b"message")));
        assert_eq!(single_message(&gzipped), None);
        assert_eq!(single_message(&bytes::Bytes::from_static(&[0, 0])), None);
    }

    #[test]
    fn frames_are_inflated_and_checked() {
        let msg = b"hello hello hello hello";
        let plain = [frame(0, b"one"), frame(0, b"two")].concat();
        assert_eq!(
            check(plain.clone(), false).ok(),
            Some(plain),
            "uncompressed passes unchanged"
        );
        let mixed = [frame(1, &gz(msg)), frame(0, b"plain")].concat();
        let inflated = [frame(0, msg), frame(0, b"plain")].concat();
        assert_eq!(check(mixed.clone(), true).ok(), Some(inflated));
        assert!(
            matches!(check(mixed, false), Err(Failure::BadData(_))),
            "gzip flag without grpc-encoding"
        );
        assert!(matches!(
            check(frame(1, &gz(&[0; 4096])), true),
            Err(Failure::TooLarge(_))
        ));
        assert!(matches!(
            check(frame(0, &[0; 2048]), false),
            Err(Failure::TooLarge(_))
        ));
        assert!(matches!(
            check(vec![1, 0, 0], true),
            Err(Failure::BadData(_))
        ));
        assert!(matches!(
            check(frame(1, b"not gzip"), true),
            Err(Failure::BadData(_))
        ));
        assert!(matches!(
            check(frame(7, b""), false),
            Err(Failure::BadData(_))
        ));
        let mut truncated = frame(0, b"abc");
        truncated.pop();
        assert!(matches!(check(truncated, false), Err(Failure::BadData(_))));
    }
}
