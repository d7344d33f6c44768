//! Sending queued requests to the server over OTLP, and what each answer
//! means for the queue.
//!
//! Retries follow the OTLP specification: over HTTP, 429, 502, 503 and
//! 504 are retryable and `Retry-After` (seconds) is honoured; over gRPC,
//! `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `ABORTED`, `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `OUT_OF_RANGE` and `DATA_LOSS` are, and a
//! `google.rpc.RetryInfo` delay is honoured. Connection failures are
//! retryable. Credentials refused (401/403, `UNAUTHENTICATED`,
//! `PERMISSION_DENIED`) are retried too, slowly: the data stays queued
//! until the key is fixed rather than being thrown away. Data the server
//! can never take (400, `INVALID_ARGUMENT`) is dropped and counted; a
//! partial success is counted as rejected items.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceResponse, metrics::v1::ExportMetricsServiceResponse,
    trace::v1::ExportTraceServiceResponse,
};
use ophion_core::Signal;
use prost::Message as _;
use tonic_types::StatusExt as _;

/// The wire protocol to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

impl Protocol {
    /// The protocol OTLP's default ports imply: gRPC on 4317, HTTP on
    /// 4318; `None` for any other port (the exporter asks the server).
    pub fn for_endpoint(endpoint: &str) -> Option<Self> {
        let port = endpoint
            .rsplit_once(':')
            .and_then(|(_, p)| p.trim_end_matches('/').parse::<u16>().ok());
        match port {
            Some(4317) => Some(Protocol::Grpc),
            Some(4318) => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }
}

/// What became of one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it; `rejected` items of it were refused
    /// (partial success), for the reason in `message`.
    Delivered {
        /// Items the server refused.
        rejected: u64,
        /// Its reason.
        message: String,
    },
    /// Try again later (after `after` when the server said).
    Retry {
        /// The server's suggested delay.
        after: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// The request is too large for the server: send it in smaller parts.
    TooLarge(String),
    /// The server will never take it.
    Drop(String),
}

/// Sends to one server.
#[derive(Debug, Clone)]
pub struct Exporter {
    endpoint: String,
    /// Known, or found out by [`Exporter::probe`].
    protocol: std::sync::Arc<std::sync::Mutex<Option<Protocol>>>,
    key: Option<String>,
    http: reqwest::Client,
    grpc: Option<tonic::transport::Channel>,
    timeout: Duration,
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

impl Exporter {
    /// An exporter to `endpoint` (e.g. `http://127.0.0.1:4317`) over
    /// `protocol` (`None`: by the port, 4317 gRPC and 4318 HTTP, else
    /// asked of the server), presenting `key` as `Authorization: Bearer`.
    pub fn new(
        endpoint: &str,
        protocol: Option<Protocol>,
        key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let grpc = Some(
            tonic::transport::Endpoint::from_shared(endpoint.clone())
                .map_err(|e| format!("server endpoint {endpoint}: {e}"))?
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_lazy(),
        );
        let protocol = std::sync::Arc::new(std::sync::Mutex::new(
            protocol.or_else(|| Protocol::for_endpoint(&endpoint)),
        ));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            endpoint,
            protocol,
            key,
            http,
            grpc,
            timeout,
        })
    }

    /// Sends `protobuf` (one `Export*ServiceRequest`, possibly several
    /// concatenated: protobuf merges them into one).
    pub async fn send(&self, signal: Signal, protobuf: &[u8]) -> Outcome {
        let known = *self.protocol.lock().unwrap_or_else(|e| e.into_inner());
        let protocol = match known {
            Some(p) => p,
            None => match self.probe().await {
                Ok(p) => {
                    tracing::info!(endpoint = %self.endpoint, protocol = ?p, "the server speaks this OTLP protocol");
                    *self.protocol.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                    p
                }
                Err(reason) => {
                    return Outcome::Retry {
                        after: None,
                        reason,
                    };
                }
            },
        };
        match protocol {
            Protocol::HttpProtobuf => self.send_http(signal, protobuf).await,
            Protocol::Grpc => self.send_grpc(signal, protobuf).await,
        }
    }

    /// Which protocol the endpoint speaks: an empty OTLP/HTTP export (a
    /// no-op) answered over HTTP/1.1 means OTLP/HTTP; a gRPC answer, no
    /// such route, or a connection the server drops (an HTTP/2-only gRPC
    /// server) means gRPC. A server that cannot be reached: not known yet.
    pub async fn probe(&self) -> Result<Protocol, String> {
        let mut req = self
            .http
            .post(format!("{}/v1/traces", self.endpoint))
            .header("content-type", "application/x-protobuf")
            .body(Vec::new());
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        match req.send().await {
            Ok(r) => {
                let grpc = r.headers().contains_key("grpc-status")
                    || r.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("application/grpc"))
                    || matches!(r.status().as_u16(), 404 | 405);
                Ok(if grpc {
                    Protocol::Grpc
                } else {
                    Protocol::HttpProtobuf
                })
            }
            Err(e) if e.is_connect() || e.is_timeout() => {
                Err(format!("cannot reach {}: {e}", self.endpoint))
            }
            Err(_) => Ok(Protocol::Grpc),
        }
    }

    async fn send_http(&self, signal: Signal, protobuf: &[u8]) -> Outcome {
        let path = match signal {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        };
        let mut req = self
            .http
            .post(format!("{}/v1/{path}", self.endpoint))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(gzip(protobuf));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    reason: format!("cannot reach {}: {e}", self.endpoint),
                };
            }
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        match status {
            200..=299 => {
                let (rejected, message) = partial(signal, &body);
                Outcome::Delivered { rejected, message }
            }
            429 | 502 | 503 | 504 => Outcome::Retry {
                after,
                reason: format!("server answered {status}"),
            },
            413 => Outcome::TooLarge(format!("server answered 413: {}", text(&body))),
            401 | 403 => Outcome::Retry {
                after: Some(after.unwrap_or(Duration::from_secs(30))),
                reason: format!("server refused the ingest key ({status}): {}", text(&body)),
            },
            400..=499 => Outcome::Drop(format!("server answered {status}: {}", text(&body))),
            _ => Outcome::Retry {
                after,
                reason: format!("server answered {status}: {}", text(&body)),
            },
        }
    }

    async fn send_grpc(&self, signal: Signal, protobuf: &[u8]) -> Outcome {
        let Some(channel) = self.grpc.clone() else {
            return Outcome::Drop("no gRPC channel".into());
        };
        fn request<T>(msg: T, timeout: Duration, key: Option<&str>) -> tonic::Request<T> {
            let mut r = tonic::Request::new(msg);
            r.set_timeout(timeout);
            if let Some(k) = key
                && let Ok(v) = format!("Bearer {k}").parse()
            {
                r.metadata_mut().insert("authorization", v);
            }
            r
        }
        let (timeout, key) = (self.timeout, self.key.as_deref());
        // The queued bytes go out as they are: no decoding and encoding
        // again (they were decoded once, when the agent received them).
        let path = match signal {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        };
        let mut client = tonic::client::Grpc::new(channel);
        let answer = match client.ready().await {
            Ok(()) => client
                .unary(
                    request(protobuf.to_vec(), timeout, key),
                    http::uri::PathAndQuery::from_static(path),
                    Raw,
                )
                .await
                .map(tonic::Response::into_inner),
            Err(e) => Err(tonic::Status::unavailable(format!(
                "cannot reach {}: {e}",
                self.endpoint
            ))),
        };
        match answer {
            Ok(body) => {
                let (rejected, message) = partial(signal, &body);
                Outcome::Delivered { rejected, message }
            }
            Err(status) => {
                use tonic::Code;
                let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
                let reason = format!("server answered {:?}: {}", status.code(), status.message());
                match status.code() {
                    Code::Unavailable
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::OutOfRange
                    | Code::DataLoss
                    | Code::Unknown
                    | Code::Internal => Outcome::Retry { after, reason },
                    Code::Unauthenticated | Code::PermissionDenied => Outcome::Retry {
                        after: Some(after.unwrap_or(Duration::from_secs(30))),
                        reason,
                    },
                    _ if status.message().contains("exceeds the limit") => {
                        Outcome::TooLarge(reason)
                    }
                    _ => Outcome::Drop(reason),
                }
            }
        }
    }
}

/// A gRPC codec of bytes as they are: the request is already protobuf,
/// the response is decoded by [`partial`].
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; bytes::Buf::remaining(src)];
        bytes::Buf::copy_to_slice(src, &mut out);
        Ok(Some(out))
    }
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// Rejected items and the reason from an export response's
/// `partial_success`.
fn partial(signal: Signal, body: &[u8]) -> (u64, String) {
    let p = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
    };
    p.map_or((0, String::new()), |(n, m)| (n.max(0) as u64, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ports_pick_the_protocol() {
        assert_eq!(
            Protocol::for_endpoint("http://127.0.0.1:4317"),
            Some(Protocol::Grpc)
        );
        assert_eq!(
            Protocol::for_endpoint("http://127.0.0.1:4317/"),
            Some(Protocol::Grpc)
        );
        assert_eq!(
            Protocol::for_endpoint("http://127.0.0.1:4318"),
            Some(Protocol::HttpProtobuf)
        );
        assert_eq!(Protocol::for_endpoint("https://otel.example"), None);
        assert_eq!(Protocol::for_endpoint("http://127.0.0.1:24317"), None);
    }
}
