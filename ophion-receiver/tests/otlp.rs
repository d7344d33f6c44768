//! OTLP compliance and robustness of the receiver over real HTTP and gRPC
//! connections: status codes, error bodies, partial success, limits, and
//! every bad-input case of `shared/docs/OTLP.md`.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest,
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_client::TraceServiceClient,
        },
    },
    common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value},
};
use ophion_core::{
    Signal, TenantId,
    testing::{Generator, kv_str, now_ns},
};
use ophion_receiver::{AuthError, Authenticator};
use prost::Message as _;
use tonic::{Code, codec::CompressionEncoding};
use tonic_types::StatusExt as _;

const PB: &str = "application/x-protobuf";

fn spans(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

async fn post(r: &Running, path: &str, ct: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(r.url(path))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("request")
}

fn rpc_status(body: &[u8]) -> tonic_types::pb::Status {
    tonic_types::pb::Status::decode(body).expect("google.rpc.Status body")
}

#[tokio::test]
async fn full_success_and_empty_request() {
    let sink = memory();
    let r = start(sink.clone()).await;
    let req = Generator::new(1, now_ns()).traces(50);
    let resp = post(&r, "/v1/traces", PB, req.encode_to_vec()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], PB);
    let body =
        ExportTraceServiceResponse::decode(resp.bytes().await.expect("body")).expect("response");
    assert_eq!(
        body.partial_success, None,
        "full success has no partial_success"
    );
    assert_eq!(sink.rows(Signal::Traces), spans(&req));

    let resp = post(&r, "/v1/traces", PB, Vec::new()).await;
    assert_eq!(resp.status(), 200, "an empty request is a success");
    let resp = post(
        &r,
        "/v1/logs",
        "application/json; charset=utf-8",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.expect("text"), "{}");
    r.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_readable_status() {
    let r = start(memory()).await;
    let resp = post(&r, "/v1/traces", PB, vec![0xff, 0xff, 0xff, 0x0f, 0x01]).await;
    assert_eq!(resp.status(), 400);
    let st = rpc_status(&resp.bytes().await.expect("body"));
    assert_eq!(st.code, Code::InvalidArgument as i32);
    assert!(
        st.message.contains("cannot decode OTLP traces request"),
        "{}",
        st.message
    );

    let resp = post(
        &r,
        "/v1/metrics",
        "application/json",
        b"{\"resourceMetrics\": [".to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.expect("json status");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("malformed JSON"),
        "{v}"
    );

    // Invalid UTF-8 inside a protobuf string field (span name).
    let mut req = Generator::new(2, now_ns()).traces(1);
    req.resource_spans[0].scope_spans[0].spans[0].name = "XXXX".into();
    let mut bytes = req.encode_to_vec();
    let at = bytes
        .windows(4)
        .position(|w| w == b"XXXX")
        .expect("name bytes");
    bytes[at] = 0xc3;
    bytes[at + 1] = 0x28;
    let resp = post(&r, "/v1/traces", PB, bytes).await;
    assert_eq!(resp.status(), 400, "invalid UTF-8 is refused");

    // Invalid UTF-8 in JSON.
    let mut json =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"ab"}}]}]}]}"#
            .to_vec();
    let at = json.windows(2).position(|w| w == b"ab").expect("body");
    json[at] = 0xff;
    let resp = post(&r, "/v1/logs", "application/json", json).await;
    assert_eq!(resp.status(), 400);
    let s = r.receiver.stats();
    assert_eq!(s.failed_bad_data, 4);
    assert_eq!(s.traces.accepted + s.logs.accepted + s.metrics.accepted, 0);
    r.stop().await;
}

#[tokio::test]
async fn wrong_method_media_type_and_encoding() {
    let r = start(memory()).await;
    let resp = reqwest::get(r.url("/v1/traces")).await.expect("get");
    assert_eq!(resp.status(), 405);
    let resp = post(&r, "/v1/traces", "text/plain", b"hello".to_vec()).await;
    assert_eq!(resp.status(), 415);
    let v: serde_json::Value = resp.json().await.expect("json");
    assert!(
        v["message"]
            .as_str()
            .expect("msg")
            .contains("application/x-protobuf")
    );
    let resp = reqwest::Client::new()
        .post(r.url("/v1/traces"))
        .header("content-type", PB)
        .header("content-encoding", "br")
        .body(vec![1, 2, 3])
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 415);
    let resp = post(&r, "/v1/nope", PB, vec![]).await;
    assert_eq!(resp.status(), 404);
    r.stop().await;
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_oversized_refused() {
    let sink = memory();
    let mut cfg = loopback_config();
    cfg.max_body_bytes = 64 * 1024;
    let r = start_with(sink.clone(), cfg, None).await;
    let req = Generator::new(3, now_ns()).traces(20);
    let resp = reqwest::Client::new()
        .post(r.url("/v1/traces"))
        .header("content-type", PB)
        .header("content-encoding", "gzip")
        .body(gzip(&req.encode_to_vec()))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200);
    assert_eq!(sink.rows(Signal::Traces), spans(&req));

    // Plain body over the limit.
    let big = Generator::new(4, now_ns()).traces(1000).encode_to_vec();
    assert!(big.len() > 64 * 1024);
    let resp = post(&r, "/v1/traces", PB, big.clone()).await;
    assert_eq!(resp.status(), 413);
    assert!(
        resp.headers().get("retry-after").is_none(),
        "413 is not retryable"
    );
    // Compressed body under the limit that inflates over it.
    let compressed = gzip(&big);
    assert!(compressed.len() < 64 * 1024);
    let resp = reqwest::Client::new()
        .post(r.url("/v1/traces"))
        .header("content-type", PB)
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 413);
    let st = rpc_status(&resp.bytes().await.expect("body"));
    assert!(st.message.contains("after decompression"), "{}", st.message);
    // Corrupt gzip.
    let resp = reqwest::Client::new()
        .post(r.url("/v1/traces"))
        .header("content-type", PB)
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 8, 0, 1, 2, 3])
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 400);
    assert_eq!(
        sink.rows(Signal::Traces),
        spans(&req),
        "nothing else stored"
    );
    r.stop().await;
}

#[tokio::test]
async fn mixed_bad_ids_and_timestamps_give_partial_success() {
    let sink = memory();
    let r = start(sink.clone()).await;
    let mut req = Generator::new(5, now_ns()).traces(30);
    let total = spans(&req);
    {
        let s = &mut req.resource_spans[0].scope_spans[0].spans;
        s[0].trace_id.truncate(15);
        s[1].trace_id = vec![0; 16];
        s[2].span_id = vec![0; 8];
        s[3].start_time_unix_nano = 0;
        s[4].start_time_unix_nano = 9_214_646_400_000_000_000; // year 2262
        s[4].end_time_unix_nano = s[4].start_time_unix_nano + 1;
        s[5].start_time_unix_nano = now_ns() + 86_400 * 1_000_000_000; // a day ahead
        s[5].end_time_unix_nano = s[5].start_time_unix_nano + 1;
    }
    let resp = post(&r, "/v1/traces", PB, req.encode_to_vec()).await;
    assert_eq!(resp.status(), 200);
    let body =
        ExportTraceServiceResponse::decode(resp.bytes().await.expect("body")).expect("decode");
    let ps = body.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 6);
    assert!(
        ps.error_message.contains("invalid trace_id")
            && ps.error_message.contains("outside the accepted window"),
        "{}",
        ps.error_message
    );
    assert_eq!(
        sink.rows(Signal::Traces),
        total - 6,
        "valid spans of the same request are stored"
    );

    // JSON: the same answer shape, and a non-hex id rejects only its span.
    let doc = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[
        {{"traceId":"zz","spanId":"0102030405060708","name":"bad","startTimeUnixNano":"{t}","endTimeUnixNano":"{t}"}},
        {{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"good","startTimeUnixNano":"{t}","endTimeUnixNano":"{t}"}}]}}]}}]}}"#,
        t = now_ns()
    );
    let resp = post(&r, "/v1/traces", "application/json", doc.into_bytes()).await;
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");
    assert_eq!(sink.rows(Signal::Traces), total - 6 + 1);

    // Logs with bad ids are kept, unlinked.
    let mut logs = Generator::new(6, now_ns()).logs(10);
    logs.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![0; 16];
    logs.resource_logs[0].scope_logs[0].log_records[0].span_id = vec![7; 3];
    let resp = post(&r, "/v1/logs", PB, logs.encode_to_vec()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sink.rows(Signal::Logs), 10);
    assert_eq!(r.receiver.stats().unlinked_logs, 1);
    r.stop().await;
}

/// Length-delimited field `tag` holding `bytes`.
fn ld(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// A trace request whose one span has an attribute nested `depth` arrays
/// deep, encoded by hand: building it as a Rust value would overflow the
/// test's own stack when encoding and dropping it.
fn deeply_nested_request(depth: usize) -> Vec<u8> {
    let mut value = ld(1, b"leaf"); // AnyValue.string_value
    for _ in 0..depth {
        value = ld(5, &ld(1, &value)); // AnyValue.array_value(ArrayValue.values)
    }
    let attr = ld(9, &[ld(1, b"deep"), ld(2, &value)].concat()); // Span.attributes(KeyValue)
    let mut span = Generator::new(7, now_ns()).traces(1).resource_spans[0].scope_spans[0].spans[0]
        .encode_to_vec();
    span.extend_from_slice(&attr); // repeated fields may be appended
    ld(1, &ld(2, &ld(2, &span))) // request.resource_spans.scope_spans.spans
}

fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for _ in 0..depth {
        v = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    v
}

#[tokio::test]
async fn hostile_attributes_are_capped_not_fatal() {
    let sink = memory();
    let r = start(sink.clone()).await;
    // Thousands of levels: the protobuf decoder's recursion limit refuses it.
    let resp = post(&r, "/v1/traces", PB, deeply_nested_request(5000)).await;
    assert_eq!(resp.status(), 400);
    let st = rpc_status(&resp.bytes().await.expect("body"));
    assert!(st.message.contains("recursion limit"), "{}", st.message);
    // Same over JSON: serde_json's nesting limit.
    let deep_json = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{}"x"{}}}]}}]}}]}}"#,
        r#"{"arrayValue":{"values":["#.repeat(3000),
        "]}}".repeat(3000)
    );
    let resp = post(&r, "/v1/logs", "application/json", deep_json.into_bytes()).await;
    assert_eq!(resp.status(), 400);

    // Deeper than max_value_depth but decodable: the attribute is dropped and counted.
    let mut req = Generator::new(8, now_ns()).traces(1);
    let n = spans(&req);
    let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
    span.attributes.push(KeyValue {
        key: "deep".into(),
        value: Some(nested(30)),
        ..Default::default()
    });
    // 1 MiB of two-byte characters, before the limit on the count bites.
    span.attributes.push(kv_str("huge", "ü".repeat(512 * 1024)));
    span.attributes
        .extend((0..10_000).map(|i| kv_str(&format!("key.{i}"), "v")));
    let resp = post(&r, "/v1/traces", PB, req.encode_to_vec()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(sink.rows(Signal::Traces), n);
    let s = r.receiver.stats();
    assert!(s.dropped_attributes >= 10_000 - 128, "{s:?}");
    assert!(
        s.truncated_values >= 1,
        "the 1 MiB value was truncated: {s:?}"
    );
    r.stop().await;
}

#[tokio::test]
async fn overload_is_retryable_on_both_transports() {
    let r = start(Arc::new(OverloadedSink)).await;
    let req = Generator::new(9, now_ns()).traces(5);
    let resp = post(&r, "/v1/traces", PB, req.encode_to_vec()).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "3");
    let mut client = TraceServiceClient::connect(r.grpc_url())
        .await
        .expect("connect");
    let err = client.export(req).await.expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable);
    let info = err.get_details_retry_info().expect("RetryInfo");
    assert_eq!(info.retry_delay, Some(Duration::from_secs(3)));
    r.stop().await;
}

#[tokio::test]
async fn many_small_requests_at_once_lose_nothing() {
    let sink = Arc::new(SlowSink::default());
    let mut cfg = loopback_config();
    cfg.max_concurrent_requests = 4;
    let r = start_with(sink.clone(), cfg, None).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let body = Generator::new(100 + i, now_ns()).traces(3);
        let n = spans(&body);
        let (client, url) = (client.clone(), r.url("/v1/traces"));
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(url)
                .header("content-type", PB)
                .body(body.encode_to_vec())
                .send()
                .await
                .expect("send");
            (
                resp.status().as_u16(),
                resp.headers().get("retry-after").is_some(),
                n,
            )
        }));
    }
    let (mut ok_spans, mut refused) = (0, 0);
    for t in tasks {
        let (status, retry_after, n) = t.await.expect("task");
        match status {
            200 => ok_spans += n,
            503 => {
                assert!(retry_after, "503 must carry Retry-After");
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        refused > 0,
        "64 concurrent requests over 4 slots should see refusals"
    );
    assert_eq!(
        sink.0.rows(Signal::Traces),
        ok_spans,
        "every acknowledged span stored, nothing else"
    );
    assert_eq!(r.receiver.stats().failed_overloaded, refused as u64);
    r.stop().await;
}

#[tokio::test]
async fn grpc_gzip_size_limit_and_bad_data() {
    let sink = memory();
    let mut cfg = loopback_config();
    cfg.max_body_bytes = 64 * 1024;
    let r = start_with(sink.clone(), cfg, None).await;
    let mut client = TraceServiceClient::connect(r.grpc_url())
        .await
        .expect("connect")
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let req = Generator::new(10, now_ns()).traces(20);
    let resp = client
        .export(req.clone())
        .await
        .expect("export")
        .into_inner();
    assert_eq!(resp.partial_success, None);
    assert_eq!(sink.rows(Signal::Traces), spans(&req));
    // Compresses far below the limit, inflates far above it.
    let mut big = Generator::new(11, now_ns()).traces(1);
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv_str("pad", "a".repeat(4 * 1024 * 1024)));
    let err = client.export(big.clone()).await.expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.metadata().get("grpc-status-details-bin").is_none(),
        "no RetryInfo: not retryable"
    );
    // Uncompressed and over the limit: RESOURCE_EXHAUSTED too (tonic alone
    // would answer OUT_OF_RANGE, which OTLP clients retry).
    let mut plain = TraceServiceClient::connect(r.grpc_url())
        .await
        .expect("connect");
    let err = plain.export(big).await.expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Bad ids: partial success over gRPC too.
    let mut bad = Generator::new(12, now_ns()).traces(10);
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1];
    let resp = client.export(bad).await.expect("export").into_inner();
    assert_eq!(resp.partial_success.expect("partial").rejected_spans, 1);
    r.stop().await;
}

#[derive(Debug)]
struct KeyAuth;

impl Authenticator for KeyAuth {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantId, AuthError> {
        match headers
            .get("x-ophion-api-key")
            .and_then(|v| v.to_str().ok())
        {
            Some("key-a") => Ok(TenantId::new("tenant-a").expect("tenant")),
            Some(_) => Err(AuthError::Forbidden("unknown key".into())),
            None => Err(AuthError::Unauthenticated(
                "missing x-ophion-api-key".into(),
            )),
        }
    }
}

#[tokio::test]
async fn authenticator_runs_before_decoding_and_sets_the_tenant() {
    let sink = memory();
    let r = start_with(sink.clone(), loopback_config(), Some(Arc::new(KeyAuth))).await;
    // Garbage body without a key: refused as unauthenticated, not as malformed.
    let resp = post(&r, "/v1/logs", PB, vec![0xff; 10]).await;
    assert_eq!(resp.status(), 401);
    let logs = Generator::new(13, now_ns()).logs(5);
    let resp = reqwest::Client::new()
        .post(r.url("/v1/logs"))
        .header("content-type", PB)
        .header("x-ophion-api-key", "key-a")
        .body(logs.encode_to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let batches = sink.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0.as_str(), "tenant-a");

    let mut client = TraceServiceClient::connect(r.grpc_url())
        .await
        .expect("connect");
    let err = client
        .export(Generator::new(14, now_ns()).traces(1))
        .await
        .expect_err("no key");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(Generator::new(14, now_ns()).traces(1));
    req.metadata_mut()
        .insert("x-ophion-api-key", "wrong".parse().expect("meta"));
    assert_eq!(
        client.export(req).await.expect_err("bad key").code(),
        Code::PermissionDenied
    );
    let mut req = tonic::Request::new(Generator::new(14, now_ns()).traces(1));
    req.metadata_mut()
        .insert("x-ophion-api-key", "key-a".parse().expect("meta"));
    client.export(req).await.expect("authorised");
    assert_eq!(sink.batches()[1].0.as_str(), "tenant-a");
    let _ = ExportLogsServiceRequest::default();
    r.stop().await;
}

#[tokio::test]
async fn routes_mount_inside_other_servers() {
    let sink = memory();
    let receiver = ophion_receiver::OtlpReceiver::builder(sink.clone())
        .build()
        .expect("build");
    // Someone else's axum application, with a route of its own.
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "app ok" }))
        .merge(receiver.http_router());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http_addr = http.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(http, app).await });
    // Someone else's tonic server.
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let grpc_addr = grpc.local_addr().expect("addr");
    let routes = receiver.grpc_routes();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc))
            .await
    });

    let health = reqwest::get(format!("http://{http_addr}/health"))
        .await
        .expect("get");
    assert_eq!(health.text().await.expect("text"), "app ok");
    let req = Generator::new(20, now_ns()).traces(5);
    let resp = reqwest::Client::new()
        .post(format!("http://{http_addr}/v1/traces"))
        .header("content-type", PB)
        .body(req.encode_to_vec())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    let mut client = TraceServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect")
        .send_compressed(CompressionEncoding::Gzip);
    client.export(req.clone()).await.expect("export");
    assert_eq!(sink.rows(Signal::Traces), 2 * spans(&req));
    assert_eq!(receiver.stats().traces.accepted, 2 * spans(&req) as u64);
}

/// A raw unary gRPC call: the grpc-status the server answered with.
async fn raw_grpc(r: &Running, method: &str, frame: Vec<u8>, gzip: bool) -> Option<String> {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2 client");
    let mut req = client
        .post(format!("{}{method}", r.grpc_url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if gzip {
        req = req.header("grpc-encoding", "gzip");
    }
    let resp = req.body(frame).send().await.expect("send");
    resp.headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or("").to_owned())
}

fn grpc_frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::from(compressed)];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test]
async fn grpc_bad_data_is_invalid_argument() {
    let sink = memory();
    let r = start(sink.clone()).await;
    let trace = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let garbage = vec![0xff, 0xff, 0xff, 0x0f, 0x01];
    assert_eq!(
        raw_grpc(&r, trace, grpc_frame(false, &garbage), false)
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        raw_grpc(&r, trace, grpc_frame(true, &gzip(&garbage)), true)
            .await
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        raw_grpc(&r, trace, grpc_frame(true, b"not gzip"), true)
            .await
            .as_deref(),
        Some("3")
    );
    let deep = grpc_frame(false, &deeply_nested_request(5000));
    assert_eq!(
        raw_grpc(&r, trace, deep, false).await.as_deref(),
        Some("3"),
        "recursion limit is bad data"
    );
    let logs = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    let ok = Generator::new(21, now_ns()).logs(3).encode_to_vec();
    assert_eq!(
        raw_grpc(&r, logs, grpc_frame(true, &gzip(&ok)), true)
            .await
            .as_deref(),
        None,
        "success: status in trailers"
    );
    assert_eq!(sink.rows(Signal::Logs), 3);
    let unknown = "/opentelemetry.proto.collector.trace.v1.TraceService/Nope";
    assert_eq!(
        raw_grpc(&r, unknown, grpc_frame(false, &[]), false)
            .await
            .as_deref(),
        Some("12"),
        "UNIMPLEMENTED"
    );
    assert_eq!(
        r.receiver.stats().failed_bad_data,
        1,
        "the corrupt gzip is counted by the front door"
    );
    r.stop().await;
}
