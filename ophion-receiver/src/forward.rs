//! Forwarding: whole OTLP requests handed on as protobuf, unconverted.
//!
//! A receiver built with [`crate::OtlpReceiver::forwarder`] authenticates,
//! limits, inflates and decodes every request as usual (so bad input is
//! refused with the same answers), then hands the request to a
//! [`RequestSink`] as OTLP protobuf instead of converting it to Arrow: what
//! an agent that queues telemetry and sends it on to a server needs.
//! Protobuf bodies are passed on byte for byte; JSON bodies and gRPC
//! messages are encoded once.

use std::fmt::Debug;

use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use ophion_core::{Signal, SinkError, TenantId};

/// One OTLP export request, encoded as protobuf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest {
    /// What it carries.
    pub signal: Signal,
    /// The `Export*ServiceRequest` message, protobuf-encoded.
    pub protobuf: Vec<u8>,
    /// Spans, log records or data points in it.
    pub items: u64,
}

/// Where a forwarding receiver writes requests. `Ok` means durable: the
/// receiver acknowledges the request to its client only then.
#[async_trait::async_trait]
pub trait RequestSink: Debug + Send + Sync {
    /// Takes one request of one tenant.
    async fn write_request(
        &self,
        tenant: &TenantId,
        request: EncodedRequest,
    ) -> Result<(), SinkError>;

    /// Whether a write would be refused as overloaded right now (asked
    /// before a body is read; cheap, non-blocking). The default admits
    /// everything.
    fn admit(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Spans in a trace request.
pub fn span_count(r: &ExportTraceServiceRequest) -> u64 {
    r.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// Log records in a logs request.
pub fn log_count(r: &ExportLogsServiceRequest) -> u64 {
    r.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum()
}

/// Data points in a metrics request.
pub fn point_count(r: &ExportMetricsServiceRequest) -> u64 {
    r.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        } as u64)
        .sum()
}
