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

use crate::service::{Accepted, Decoded, Failure, Shared};

/// The gRPC services, sharing one pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Grpc {
    shared: Arc<Shared>,
}

/// A request's slot, carried from the interceptor to the handler.
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
        let tenant = request
            .extensions()
            .get::<TenantId>()
            .cloned()
            .unwrap_or_default();
        // Interceptor-less use (services added to someone else's server
        // without `routes`) still gets a slot here.
        let _own_permit = match request.extensions().get::<Permit>() {
            Some(_) => None,
            None => Some(self.shared.try_permit().map_err(|f| status(&f))?),
        };
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

/// Runs before the message is read: authenticates and takes a request slot.
fn interceptor(
    shared: Arc<Shared>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |mut req: Request<()>| {
        let headers = req.metadata().clone().into_headers();
        let tenant = shared.authenticate(&headers).map_err(|f| status(&f))?;
        let permit = shared.try_permit().map_err(|f| status(&f))?;
        req.extensions_mut().insert(tenant);
        req.extensions_mut().insert(Permit(Arc::new(permit)));
        Ok(req)
    }
}

/// The three services, configured and intercepted, as tonic routes.
pub(crate) fn routes(shared: Arc<Shared>) -> Routes {
    let limit = shared.config.max_body_bytes;
    let svc = Grpc {
        shared: Arc::clone(&shared),
    };
    let intercept = interceptor(shared);
    let traces = TraceServiceServer::new(svc.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(svc.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(svc)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    Routes::new(tonic::service::interceptor::InterceptedService::new(
        traces,
        intercept.clone(),
    ))
    .add_service(tonic::service::interceptor::InterceptedService::new(
        logs,
        intercept.clone(),
    ))
    .add_service(tonic::service::interceptor::InterceptedService::new(
        metrics, intercept,
    ))
}
