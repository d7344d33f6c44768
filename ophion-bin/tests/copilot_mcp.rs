//! The Python `mcp` client from PyPI (tests/python/mcp_client.py) lists
//! and calls the copilot's tools over stdio (`ophion mcp`) and over
//! streamable HTTP (`/api/v1/mcp`), with a valid token and with a wrong
//! one. The tools read the caller's tenant; `run_sql` passes the guard.

mod common;

use common::{Server, client, export, now_ns};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    trace::v1::{Span, Status, span::SpanKind, status::StatusCode},
};
use ophion_core::testing::service_request;
use serde_json::Value;

fn spans(n: u64, t0: u64) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: (i as u128 + 7).to_be_bytes().to_vec(),
            span_id: (i + 7).to_be_bytes().to_vec(),
            name: "POST /checkout".into(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: t0 + i * 1000,
            end_time_unix_nano: t0 + i * 1000 + 2_000_000,
            status: Some(if i % 4 == 0 {
                Status {
                    code: StatusCode::Error as i32,
                    message: "x".into(),
                }
            } else {
                Status::default()
            }),
            ..Default::default()
        })
        .collect();
    service_request("checkout", spans)
}

fn run_client(args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/mcp_client.py");
    let out = std::process::Command::new(ophion_tests::python())
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "client output: {text}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check_good(v: &Value, how: &str) {
    assert!(v.get("error").is_none(), "{how}: {v}");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in [
        "run_sql",
        "service_red",
        "search_logs",
        "get_trace",
        "analyze",
        "list_services",
    ] {
        assert!(tools.contains(&t), "{how}: {t} missing from {tools:?}");
    }
    let calls = v["calls"].as_array().expect("calls");
    // service_red: 40 requests, 10 errors.
    assert_eq!(calls[0]["is_error"], false, "{how}: {v}");
    let q = &calls[0]["structured"]["queries"][0];
    let cols = q["columns"].as_array().expect("columns");
    let at = |c: &str| cols.iter().position(|x| x == c).expect(c);
    assert_eq!(q["rows"][0][at("requests")], 40, "{how}");
    assert_eq!(q["rows"][0][at("errors")], 10, "{how}");
    // The guard refuses DROP.
    assert_eq!(calls[1]["is_error"], true, "{how}: {v}");
    assert!(
        calls[1]["text"]
            .as_str()
            .is_some_and(|t| t.contains("refused")),
        "{how}: {v}"
    );
    // Only the caller's tenant: 40 spans.
    assert_eq!(
        calls[2]["structured"]["queries"][0]["rows"][0][0], 40,
        "{how}: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_client_lists_and_calls_the_tools_over_stdio_and_http() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    export(
        &http,
        &s,
        "/v1/traces",
        &spans(40, now_ns() - 10 * 60 * 1_000_000_000),
    )
    .await;
    let ophion = env!("CARGO_BIN_EXE_ophion");
    let (api, token) = (s.api.clone(), s.token.clone());
    let (stdio, over_http, bad_stdio, bad_http) = tokio::task::spawn_blocking(move || {
        (
            run_client(&["stdio", ophion, &api, &token]),
            run_client(&["http", &api, &token]),
            run_client(&["stdio", ophion, &api, "not-a-token"]),
            run_client(&["http", &api, "not-a-token"]),
        )
    })
    .await
    .expect("clients");
    check_good(&stdio, "stdio");
    check_good(&over_http, "http");
    // Over stdio without a valid token: the tools are listed (locally) but
    // every call is refused by the server.
    assert!(bad_stdio.get("error").is_none(), "{bad_stdio}");
    for c in bad_stdio["calls"].as_array().expect("calls") {
        assert_eq!(c["is_error"], true, "{bad_stdio}");
        assert!(
            c["text"].as_str().is_some_and(|t| t.contains("sign in")),
            "{bad_stdio}"
        );
    }
    // Over HTTP without a valid token: the session cannot even start (the
    // SDK reports the server's error response; the response is a 401).
    let e = bad_http["error"].as_str().expect("an error");
    assert!(bad_http.get("tools").is_none(), "{bad_http}");
    assert!(e.contains("error"), "{e}");
    let r = http
        .post(format!("{}/api/v1/mcp", s.api))
        .bearer_auth("not-a-token")
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
}
