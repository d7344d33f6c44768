//! The export pipeline both transports share: decompress, decode, convert,
//! write to the sink, and map every outcome to an OTLP answer.

use std::{io::Read as _, sync::Arc, time::Duration};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use ophion_core::{Clock, Signal, SinkError, TelemetryBatch, TelemetrySink, TenantId};
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    auth::{AuthError, Authenticator},
    config::ReceiverConfig,
    convert::{self, Converted, TimeWindow},
    forward::{self, EncodedRequest, RequestSink},
    json,
    stats::{FailureKind, ReceiverStats},
};

/// Requests up to this size are decoded and converted right on the async
/// worker that read them; larger ones go to the blocking pool, so a big
/// request does not stall the worker's other tasks for long.
///
/// Inline is much cheaper: on the blocking pool, a request's allocations
/// land on whichever pool thread runs it, with cold caches and heap pages,
/// and the same work costs 2 to 3 µs more per span, a quarter of the
/// receiver's whole CPU budget (docs/benchmarks.md). 1 MiB is about 2,000
/// spans, or 15 ms of one core at most (OTLP/JSON); SDKs send 512 spans a
/// batch by default. tonic decodes gRPC messages inline at any size.
const BLOCKING_THRESHOLD: usize = 1024 * 1024;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

/// Why a whole request failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    BadData(String),
    TooLarge(String),
    UnsupportedMedia(String),
    Overloaded {
        retry_after: Duration,
        message: String,
    },
    Unavailable {
        retry_after: Duration,
        message: String,
    },
    Unauthenticated(String),
    Forbidden(String),
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    Internal(String),
}

impl Failure {
    fn kind(&self) -> FailureKind {
        match self {
            Failure::BadData(_) => FailureKind::BadData,
            Failure::TooLarge(_) => FailureKind::TooLarge,
            Failure::UnsupportedMedia(_) => FailureKind::UnsupportedMedia,
            Failure::Overloaded { .. } => FailureKind::Overloaded,
            Failure::Unavailable { .. } => FailureKind::Unavailable,
            Failure::Unauthenticated(_) | Failure::Forbidden(_) => FailureKind::Unauthenticated,
            Failure::RateLimited { .. } => FailureKind::RateLimited,
            Failure::Internal(_) => FailureKind::Internal,
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::BadData(m)
            | Failure::TooLarge(m)
            | Failure::UnsupportedMedia(m)
            | Failure::Unauthenticated(m)
            | Failure::Forbidden(m)
            | Failure::Internal(m) => m,
            Failure::Overloaded { message, .. }
            | Failure::Unavailable { message, .. }
            | Failure::RateLimited { message, .. } => message,
        }
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(m) => Failure::Unauthenticated(m),
            AuthError::Forbidden(m) => Failure::Forbidden(m),
            AuthError::RateLimited {
                retry_after,
                message,
            } => Failure::RateLimited {
                retry_after,
                message,
            },
        }
    }
}

impl From<SinkError> for Failure {
    fn from(e: SinkError) -> Self {
        let message = e.to_string();
        match e {
            SinkError::Overloaded { retry_after, .. } => Failure::Overloaded {
                retry_after,
                message,
            },
            SinkError::Unavailable { retry_after, .. } => Failure::Unavailable {
                retry_after,
                message,
            },
            SinkError::Rejected(_) => Failure::BadData(message),
            // Internal details stay in the server log.
            _ => {
                tracing::error!(error = %message, "sink failed");
                Failure::Internal("internal error while storing telemetry".into())
            }
        }
    }
}

/// A successful export: how many items were rejected, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) rejected: u64,
    pub(crate) message: String,
}

/// A decoded export request of any signal.
#[derive(Debug)]
pub(crate) enum Decoded {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl Decoded {
    pub(crate) fn signal(&self) -> Signal {
        match self {
            Decoded::Traces(_) => Signal::Traces,
            Decoded::Logs(_) => Signal::Logs,
            Decoded::Metrics(_) => Signal::Metrics,
        }
    }
}

/// Decodes a request body of `signal` (pure; exposed for fuzzing and benches).
pub fn decode(signal: Signal, protobuf: bool, bytes: &[u8]) -> Result<DecodedRequest, String> {
    let enc = if protobuf {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    decode_body(signal, enc, bytes)
        .map(DecodedRequest)
        .map_err(|f| f.message().to_owned())
}

/// An opaque decoded request, for [`decode`] and [`convert_decoded`].
#[derive(Debug)]
pub struct DecodedRequest(Decoded);

/// Converts a decoded request with the given limits and window (pure).
pub fn convert_decoded(
    req: &DecodedRequest,
    limits: &crate::config::Limits,
    window: TimeWindow,
    now_ns: i64,
) -> Converted {
    convert_any(&req.0, limits, window, now_ns)
}

fn decode_body(signal: Signal, encoding: Encoding, bytes: &[u8]) -> Result<Decoded, Failure> {
    let bad = |e: &dyn std::fmt::Display| {
        Failure::BadData(format!("cannot decode OTLP {signal} request: {e}"))
    };
    Ok(match (signal, encoding) {
        (Signal::Traces, Encoding::Protobuf) => {
            Decoded::Traces(ExportTraceServiceRequest::decode(bytes).map_err(|e| bad(&e))?)
        }
        (Signal::Logs, Encoding::Protobuf) => {
            Decoded::Logs(ExportLogsServiceRequest::decode(bytes).map_err(|e| bad(&e))?)
        }
        (Signal::Metrics, Encoding::Protobuf) => {
            Decoded::Metrics(ExportMetricsServiceRequest::decode(bytes).map_err(|e| bad(&e))?)
        }
        (Signal::Traces, Encoding::Json) => {
            Decoded::Traces(json::decode_traces(bytes).map_err(|e| bad(&e))?)
        }
        (Signal::Logs, Encoding::Json) => {
            Decoded::Logs(json::decode_logs(bytes).map_err(|e| bad(&e))?)
        }
        (Signal::Metrics, Encoding::Json) => {
            Decoded::Metrics(json::decode_metrics(bytes).map_err(|e| bad(&e))?)
        }
    })
}

fn convert_any(
    req: &Decoded,
    limits: &crate::config::Limits,
    window: TimeWindow,
    now_ns: i64,
) -> Converted {
    match req {
        Decoded::Traces(r) => convert::traces(r, limits, window),
        Decoded::Logs(r) => convert::logs(r, limits, window, now_ns),
        Decoded::Metrics(r) => convert::metrics(r, limits, window),
    }
}

/// Inflates a gzip body, refusing to produce more than `limit` bytes.
pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    gunzip_into(body, limit, &mut out)?;
    Ok(out)
}

/// Appends the inflated `body` to `out`, refusing to produce more than
/// `limit` bytes. Two passes: the first only counts the inflated bytes, so a
/// gzip bomb costs CPU but no memory; the second inflates into an allocation
/// of exactly the right size, so no buffer is ever grown by doubling.
pub(crate) fn gunzip_into(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    let bad = |e: std::io::Error| Failure::BadData(format!("cannot decompress gzip body: {e}"));
    let mut counter = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
    let size = std::io::copy(&mut counter, &mut std::io::sink()).map_err(bad)?;
    if size > limit as u64 {
        return Err(too_large(limit));
    }
    out.reserve_exact(size as usize);
    flate2::read::MultiGzDecoder::new(body)
        .take(size)
        .read_to_end(out)
        .map_err(bad)?;
    Ok(())
}

pub(crate) fn too_large(limit: usize) -> Failure {
    Failure::TooLarge(format!(
        "request body exceeds the limit of {limit} bytes after decompression; send smaller batches"
    ))
}

/// Where accepted requests go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Converted to Arrow rows and written to a telemetry sink.
    Store(Arc<dyn TelemetrySink>),
    /// Handed on as protobuf, unconverted.
    Forward(Arc<dyn RequestSink>),
}

impl Target {
    fn admit(&self) -> Result<(), SinkError> {
        match self {
            Target::Store(s) => s.admit(),
            Target::Forward(s) => s.admit(),
        }
    }
}

/// A decoded request made ready for its target.
enum Prepared {
    Converted(Converted),
    Encoded(EncodedRequest),
}

/// `req` as protobuf for forwarding; `body` is its protobuf encoding when
/// the client sent one (passed on as it came).
fn encoded(req: &Decoded, body: Option<&[u8]>) -> EncodedRequest {
    let (items, bytes) = match req {
        Decoded::Traces(r) => (
            forward::span_count(r),
            body.map_or_else(|| r.encode_to_vec(), <[u8]>::to_vec),
        ),
        Decoded::Logs(r) => (
            forward::log_count(r),
            body.map_or_else(|| r.encode_to_vec(), <[u8]>::to_vec),
        ),
        Decoded::Metrics(r) => (
            forward::point_count(r),
            body.map_or_else(|| r.encode_to_vec(), <[u8]>::to_vec),
        ),
    };
    EncodedRequest {
        signal: req.signal(),
        protobuf: bytes,
        items,
    }
}

/// State shared by the gRPC and HTTP front ends.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) config: ReceiverConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) auth: Option<Arc<dyn Authenticator>>,
    pub(crate) permits: Arc<Semaphore>,
    /// CPU-bound decode and convert work running at once (one per core).
    pub(crate) decode_slots: Semaphore,
    pub(crate) stats: ReceiverStats,
}

impl Shared {
    pub(crate) fn authenticate(
        &self,
        headers: &http::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<TenantId, Failure> {
        match &self.auth {
            None => Ok(TenantId::default_tenant()),
            Some(a) => a
                .authenticate_from(headers, peer)
                .map_err(|e| self.fail(e.into())),
        }
    }

    /// Waits for one of the CPU-bound decode slots (one per core). More
    /// decodes at once would not finish sooner, but each would hold its
    /// decoded request in memory and spread allocations over more threads.
    async fn decode_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.decode_slots.acquire().await.ok()
    }

    /// A slot for one request, or a retryable refusal when all are taken
    /// or the sink says it is overloaded (asked before any body is read).
    pub(crate) fn try_permit(&self) -> Result<OwnedSemaphorePermit, Failure> {
        if let Err(e) = self.target.admit() {
            return Err(self.fail(e.into()));
        }
        Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            self.fail(Failure::Overloaded {
                retry_after: Duration::from_secs(self.config.retry_after_secs),
                message: format!(
                    "receiver overloaded: {} requests in flight; retry later",
                    self.config.max_concurrent_requests
                ),
            })
        })
    }

    pub(crate) fn fail(&self, f: Failure) -> Failure {
        self.stats.failure(f.kind());
        tracing::debug!(kind = ?f.kind(), message = f.message(), "export refused");
        f
    }

    /// HTTP path: body bytes (possibly gzip) -> stored.
    pub(crate) async fn export_bytes(
        self: &Arc<Self>,
        tenant: &TenantId,
        signal: Signal,
        encoding: Encoding,
        gzip: bool,
        body: Bytes,
    ) -> Result<Accepted, Failure> {
        let this = Arc::clone(self);
        let offload =
            body.len() > BLOCKING_THRESHOLD || (gzip && body.len() > BLOCKING_THRESHOLD / 8);
        let work = move || -> Result<(Prepared, usize), Failure> {
            let limit = this.config.max_body_bytes;
            let inflated;
            let bytes: &[u8] = if gzip {
                inflated = gunzip(&body, limit)?;
                &inflated
            } else {
                &body
            };
            if bytes.len() > limit {
                return Err(too_large(limit));
            }
            let decoded = decode_body(signal, encoding, bytes)?;
            let protobuf = (encoding == Encoding::Protobuf).then_some(bytes);
            Ok((this.prepare(&decoded, protobuf), bytes.len()))
        };
        let result = if offload {
            let _slot = self.decode_slot().await;
            tokio::task::spawn_blocking(work)
                .await
                .unwrap_or_else(|_| Err(Failure::Internal("decoder task failed".into())))
        } else {
            work()
        };
        match result {
            Ok((prepared, size)) => {
                self.stats.request(signal, size);
                self.store(tenant, signal, prepared).await
            }
            Err(f) => {
                self.stats.request(signal, 0);
                Err(self.fail(f))
            }
        }
    }

    /// gRPC path: tonic already decoded the message; `protobuf` is the
    /// message as it came (uncompressed), when known, `size` its length.
    pub(crate) async fn export_decoded(
        self: &Arc<Self>,
        tenant: &TenantId,
        req: Decoded,
        protobuf: Option<bytes::Bytes>,
        size: usize,
    ) -> Result<Accepted, Failure> {
        let signal = req.signal();
        self.stats.request(signal, size);
        let prepared = if size > BLOCKING_THRESHOLD {
            let this = Arc::clone(self);
            let _slot = self.decode_slot().await;
            tokio::task::spawn_blocking(move || this.prepare(&req, protobuf.as_deref()))
                .await
                .map_err(|_| self.fail(Failure::Internal("converter task failed".into())))?
        } else {
            self.prepare(&req, protobuf.as_deref())
        };
        self.store(tenant, signal, prepared).await
    }

    /// Converts `req`, or encodes it when forwarding (`protobuf`: the body
    /// it was decoded from, when that was protobuf).
    fn prepare(&self, req: &Decoded, protobuf: Option<&[u8]>) -> Prepared {
        match self.target {
            Target::Store(_) => Prepared::Converted(self.convert(req)),
            Target::Forward(_) => Prepared::Encoded(encoded(req, protobuf)),
        }
    }

    fn convert(&self, req: &Decoded) -> Converted {
        let now = self.clock.now_nanos();
        let window = TimeWindow::around(now, &self.config.limits);
        convert_any(req, &self.config.limits, window, now)
    }

    async fn store(
        &self,
        tenant: &TenantId,
        signal: Signal,
        prepared: Prepared,
    ) -> Result<Accepted, Failure> {
        let c = match (prepared, &self.target) {
            (Prepared::Converted(c), _) => c,
            (Prepared::Encoded(r), Target::Forward(sink)) => {
                let items = r.items;
                sink.write_request(tenant, r)
                    .await
                    .map_err(|e| self.fail(e.into()))?;
                self.stats.items(signal, items, 0, &Default::default());
                return Ok(Accepted {
                    rejected: 0,
                    message: String::new(),
                });
            }
            (Prepared::Encoded(_), Target::Store(_)) => {
                return Err(self.fail(Failure::Internal(
                    "a stored request was not converted".into(),
                )));
            }
        };
        let rejected = c.rejected.total();
        let noun = match signal {
            Signal::Traces => "spans",
            Signal::Logs => "log records",
            Signal::Metrics => "data points",
        };
        let message = c.rejected.message(noun, &c.window);
        let accepted = c.accepted() as u64;
        if let Some(batch) = c.batch {
            let batch = TelemetryBatch::new(signal, batch)
                .map_err(|e| self.fail(Failure::Internal(e.to_string())))?;
            let Target::Store(sink) = &self.target else {
                return Err(self.fail(Failure::Internal("a converted request has no store".into())));
            };
            sink.write(tenant, batch)
                .await
                .map_err(|e| self.fail(e.into()))?;
        }
        self.stats.items(signal, accepted, rejected, &c.stats);
        if rejected > 0 {
            tracing::debug!(%signal, rejected, message, "partial success");
        }
        Ok(Accepted { rejected, message })
    }
}
