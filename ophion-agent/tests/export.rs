//! What each answer of a server means to the exporter, against local
//! servers that answer as scripted: OTLP/HTTP (axum) and OTLP/gRPC
//! (tonic, with `google.rpc.RetryInfo` details).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::post};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use ophion_agent::export::{Exporter, Outcome, Protocol};
use ophion_core::Signal;
use prost::Message as _;

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// Serves `answers` in turn on POST /v1/traces, recording what came.
async fn http_server(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(answers));
    let (g, q) = (Arc::clone(&got), Arc::clone(&queue));
    let app = Router::new().route(
        "/v1/traces",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, q) = (Arc::clone(&g), Arc::clone(&q));
                async move {
                    assert_eq!(headers["authorization"], "Bearer oph_test");
                    // An empty body is the exporter asking which protocol
                    // this is; exports are gzipped.
                    if !body.is_empty() {
                        assert_eq!(headers["content-encoding"], "gzip");
                        let mut plain = Vec::new();
                        std::io::Read::read_to_end(
                            &mut flate2::read::GzDecoder::new(&body[..]),
                            &mut plain,
                        )
                        .expect("gzip");
                        g.lock().expect("lock").push(plain);
                    }
                    let (status, headers, body) = q.lock().expect("lock").remove(0);
                    let mut h = axum::http::HeaderMap::new();
                    for (k, v) in headers {
                        h.insert(k, v.parse().expect("header"));
                    }
                    (StatusCode::from_u16(status).expect("status"), h, body).into_response()
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), got)
}

fn request(n: usize) -> Vec<u8> {
    let mut r = ExportTraceServiceRequest::default();
    for _ in 0..n {
        r.resource_spans.push(Default::default());
    }
    r.encode_to_vec()
}

#[tokio::test]
async fn http_answers_mean_retry_drop_split_or_delivered() {
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "3 spans too old".into(),
        }),
    }
    .encode_to_vec();
    let (url, got) = http_server(vec![
        (503, vec![("retry-after", "7".into())], vec![]),
        (429, vec![], vec![]),
        (400, vec![], b"bad data".to_vec()),
        (413, vec![], vec![]),
        (401, vec![], vec![]),
        (200, vec![], partial),
        (200, vec![], vec![]),
    ])
    .await;
    let e = Exporter::new(
        &url,
        Some(Protocol::HttpProtobuf),
        Some("oph_test".into()),
        Duration::from_secs(5),
    )
    .expect("exporter");
    let body = request(2);
    let o = e.send(Signal::Traces, &body).await;
    assert_eq!(
        o,
        Outcome::Retry {
            after: Some(Duration::from_secs(7)),
            reason: "server answered 503".into()
        }
    );
    assert!(matches!(
        e.send(Signal::Traces, &body).await,
        Outcome::Retry { after: None, .. }
    ));
    assert!(
        matches!(e.send(Signal::Traces, &body).await, Outcome::Drop(m) if m.contains("bad data"))
    );
    assert!(matches!(
        e.send(Signal::Traces, &body).await,
        Outcome::TooLarge(_)
    ));
    // Refused credentials keep the data and back off.
    assert!(
        matches!(e.send(Signal::Traces, &body).await, Outcome::Retry { after: Some(d), .. } if d >= Duration::from_secs(30))
    );
    assert_eq!(
        e.send(Signal::Traces, &body).await,
        Outcome::Delivered {
            rejected: 3,
            message: "3 spans too old".into()
        }
    );
    assert_eq!(
        e.send(Signal::Traces, &body).await,
        Outcome::Delivered {
            rejected: 0,
            message: String::new()
        }
    );
    // The bytes sent are the request, unchanged.
    assert!(got.lock().expect("lock").iter().all(|b| *b == body));
}

#[tokio::test]
async fn an_unreachable_server_is_a_retry_and_the_protocol_is_found_by_asking() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let e = Exporter::new(
        &format!("http://127.0.0.1:{port}"),
        None,
        None,
        Duration::from_secs(2),
    )
    .expect("exporter");
    assert!(matches!(
        e.send(Signal::Traces, &request(1)).await,
        Outcome::Retry { .. }
    ));
    // A gRPC server on a port that says nothing of its protocol.
    let (addr, _) = grpc_server(Arc::new(Mutex::new(vec![Ok(())]))).await;
    let e = Exporter::new(
        &format!("http://{addr}"),
        None,
        None,
        Duration::from_secs(5),
    )
    .expect("exporter");
    assert_eq!(e.probe().await, Ok(Protocol::Grpc));
    assert_eq!(
        e.send(Signal::Traces, &request(1)).await,
        Outcome::Delivered {
            rejected: 0,
            message: String::new()
        }
    );
    // An OTLP/HTTP one.
    let (url, _) = http_server(vec![(200, vec![], vec![])]).await;
    let e = Exporter::new(&url, None, Some("oph_test".into()), Duration::from_secs(5))
        .expect("exporter");
    assert_eq!(e.probe().await, Ok(Protocol::HttpProtobuf));
}

type Answers = Arc<Mutex<Vec<Result<(), tonic::Status>>>>;

#[derive(Debug, Clone)]
struct Scripted(Answers);

#[async_trait::async_trait]
impl TraceService for Scripted {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let next = {
            let mut a = self.0.lock().expect("lock");
            if a.is_empty() { Ok(()) } else { a.remove(0) }
        };
        next.map(|()| tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_server(answers: Answers) -> (SocketAddr, Answers) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let svc = TraceServiceServer::new(Scripted(Arc::clone(&answers)));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l))
            .await
    });
    (addr, answers)
}

#[tokio::test]
async fn grpc_retry_info_is_honoured_and_invalid_argument_dropped() {
    use tonic_types::{ErrorDetails, StatusExt as _};
    let retry = tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        "busy",
        ErrorDetails::with_retry_info(Some(Duration::from_secs(4))),
    );
    let (addr, _) = grpc_server(Arc::new(Mutex::new(vec![
        Err(retry),
        Err(tonic::Status::invalid_argument("bad spans")),
        Ok(()),
    ])))
    .await;
    let e = Exporter::new(
        &format!("http://{addr}"),
        Some(Protocol::Grpc),
        None,
        Duration::from_secs(5),
    )
    .expect("exporter");
    let body = request(1);
    assert!(
        matches!(e.send(Signal::Traces, &body).await, Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(4))
    );
    assert!(
        matches!(e.send(Signal::Traces, &body).await, Outcome::Drop(m) if m.contains("bad spans"))
    );
    assert_eq!(
        e.send(Signal::Traces, &body).await,
        Outcome::Delivered {
            rejected: 0,
            message: String::new()
        }
    );
}
