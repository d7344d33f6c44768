//! The real server fed by the Python OpenTelemetry SDK (gRPC and HTTP) and
//! the Rust SDK (gRPC), read back through the API; and the `ophion` CLI
//! against it: output and exit codes.

mod common;

use std::{process::Command, time::Duration};

use common::*;
use opentelemetry::{
    KeyValue,
    trace::{SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _},
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use serde_json::Value;

async fn check_python(http: &reqwest::Client, server: &Server, sent: &Value) {
    let service = sent["service"].as_str().expect("service");
    let trace = sent["trace_id"].as_str().expect("trace id");
    let v = get_ok(http, server, &format!("/api/v1/traces/{trace}"), &[]).await;
    let spans = v["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 2, "{v}");
    let child = spans
        .iter()
        .find(|s| s["name"] == "POST /orders")
        .expect("child");
    assert_eq!(child["span_id"], sent["child_span_id"]);
    assert_eq!(child["parent_span_id"], sent["parent_span_id"]);
    assert_eq!(child["service_name"], service);
    assert_eq!(child["kind"], "server");
    assert_eq!(child["status_code"], "error");
    assert_eq!(child["status_message"], "order rejected");
    assert_eq!(child["attributes"]["http.route"], "/orders");
    assert_eq!(child["attributes"]["app.retries"], "2");
    assert_eq!(child["resource_attributes"]["service.version"], "3.2.1");
    assert_eq!(child["events"][0]["name"], "validation");
    assert_eq!(v["root_span_ids"][0], sent["parent_span_id"]);
    // The trace's log record.
    let logs = v["logs"].as_array().expect("logs");
    assert!(
        logs.iter()
            .any(|l| l["body"] == "order rejected for customer c-7"),
        "{v}"
    );
    // Search finds it too, by text and service.
    let v = get_ok(
        http,
        server,
        "/api/v1/logs",
        &[("q", "REJECTED for".into()), ("service", service.into())],
    )
    .await;
    assert_eq!(v["total"], 1, "{v}");
    // Metrics the SDK sent, with their types and units.
    let v = get_ok(http, server, "/api/v1/metrics", &[]).await;
    let find = |name: &str| {
        v["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| {
                m["name"] == name
                    && m["services"]
                        .as_array()
                        .is_some_and(|s| s.contains(&Value::from(service)))
            })
            .cloned()
            .unwrap_or_else(|| panic!("{name} of {service} not listed: {v}"))
    };
    assert_eq!(find("py.counter")["type"], "sum");
    assert_eq!(find("py.counter")["description"], "count");
    assert_eq!(find("py.hist")["type"], "histogram");
    assert_eq!(find("py.hist")["unit"], "ms");
    assert_eq!(find("py.gauge")["type"], "gauge");
    let v = get_ok(
        http,
        server,
        "/api/v1/metrics/query",
        &[
            ("name", "py.counter".into()),
            ("aggregation", "sum".into()),
            ("service", service.into()),
            ("step", "2h".into()),
        ],
    )
    .await;
    assert_eq!(v["series"][0]["points"][0][1], 5.0, "{v}");
    // One observation of 42 ms: the p50 lies in the bucket holding 42.
    let v = get_ok(
        http,
        server,
        "/api/v1/metrics/query",
        &[
            ("name", "py.hist".into()),
            ("aggregation", "p50".into()),
            ("service", service.into()),
            ("step", "2h".into()),
        ],
    )
    .await;
    let p50 = v["series"][0]["points"][0][1].as_f64().expect("p50");
    assert!((25.0..=50.0).contains(&p50), "{v}");
}

/// Two Rust services, `rust-frontend` calling `rust-backend`, exported over
/// gRPC by opentelemetry-otlp.
async fn rust_send(server: &Server) -> String {
    let provider = |name: &str| {
        SdkTracerProvider::builder()
            .with_resource(
                Resource::builder()
                    .with_service_name(name.to_owned())
                    .build(),
            )
            .with_simple_exporter(
                SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(format!("http://{}", server.grpc))
                    .build()
                    .expect("exporter"),
            )
            .build()
    };
    let front = provider("rust-frontend");
    let back = provider("rust-backend");
    let ft = front.tracer("frontend");
    let bt = back.tracer("backend");
    let mut trace_id = String::new();
    ft.in_span("GET /checkout", |cx| {
        trace_id = cx.span().span_context().trace_id().to_string();
        let mut call = bt
            .span_builder("POST /charge")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("payment.amount", 42_i64)])
            .start_with_context(&bt, &cx);
        use opentelemetry::trace::Span as _;
        call.set_status(Status::error("card declined"));
        std::thread::sleep(Duration::from_millis(5));
        call.end();
    });
    tokio::task::spawn_blocking(move || {
        front.shutdown().expect("shutdown");
        back.shutdown().expect("shutdown");
    })
    .await
    .expect("join");
    trace_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdks_in_api_out_and_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&dir.path().join("data"), &[]);
    let http = client();

    for transport in ["grpc", "http"] {
        let target = if transport == "grpc" {
            server.grpc.to_string()
        } else {
            server.otlp_http.clone()
        };
        let sent = ophion_tests::send_with_python_sdk(transport, target).await;
        check_python(&http, &server, &sent).await;
    }

    let trace = rust_send(&server).await;
    let v = get_ok(&http, &server, &format!("/api/v1/traces/{trace}"), &[]).await;
    assert_eq!(v["span_count"], 2, "{v}");
    let v = get_ok(&http, &server, "/api/v1/service-graph", &[]).await;
    let edge = v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["caller"] == "rust-frontend" && e["callee"] == "rust-backend")
        .cloned()
        .unwrap_or_else(|| panic!("no rust-frontend -> rust-backend edge: {v}"));
    assert_eq!(edge["calls"], 1);
    assert_eq!(edge["errors"], 1);
    assert!(edge["p50_ns"].as_f64().expect("latency") >= 5e6);

    // The CLI.
    let ophion = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ophion"))
            .env("OPHION_SERVER", &server.api)
            .env("OPHION_TOKEN", &server.token)
            .args(args)
            .output()
            .expect("run ophion");
        (
            out.status.code().expect("exit code"),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = ophion(&[
        "query",
        "SELECT count(*) AS n FROM spans WHERE service_name = 'rust-backend'",
        "--format",
        "csv",
    ]);
    assert_eq!((code, out.as_str()), (0, "n\n1\n"), "{err}");
    let (code, out, _) = ophion(&[
        "query",
        "SELECT service_name, count(*) AS n FROM spans WHERE service_name LIKE 'rust-%' GROUP BY 1 ORDER BY 1",
        "--format",
        "table",
    ]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["service_name", "n"]
    );
    assert!(lines[1].starts_with("----"));
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["rust-backend", "1"]
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["rust-frontend", "1"]
    );
    assert!(lines[4].starts_with("(2 rows"), "{out}");
    let (code, out, _) = ophion(&["query", "SELECT 1 AS one", "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(v["rows"][0][0], 1);

    let (code, out, _) = ophion(&["traces", "get", &trace]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("trace {trace}: 2 spans, 2 services")),
        "{out}"
    );
    assert!(
        lines[1].starts_with("rust-frontend GET /checkout "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("  rust-backend POST /charge "),
        "{out}"
    );
    assert!(lines[2].ends_with("[error]"), "{out}");

    let (code, out, _) = ophion(&[
        "traces",
        "search",
        "--service",
        "rust-backend",
        "--status",
        "error",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains(&trace), "{out}");
    let (code, out, _) = ophion(&["services"]);
    assert_eq!(code, 0);
    for s in ["rust-frontend", "py-svc-grpc", "py-svc-http"] {
        assert!(out.lines().any(|l| l.starts_with(s)), "{s} in {out}");
    }
    let (code, out, _) = ophion(&["logs", "search", "order rejected"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.matches("order rejected for customer c-7").count(),
        2,
        "{out}"
    );
    let (code, out, _) = ophion(&["status"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ophion 0.1.0 at "), "{out}");

    // Exit codes: refused by the server, bad usage, unreachable.
    let (code, _, err) = ophion(&["query", "SELEC 1"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("ophion: invalid query"), "{err}");
    let (code, _, err) = ophion(&["traces", "get", "nothex"]);
    assert_eq!(code, 1);
    assert!(err.contains("32 hex characters"), "{err}");
    let (code, _, _) = ophion(&["frobnicate"]);
    assert_eq!(code, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_ophion"))
        .args(["--server", "http://127.0.0.1:9", "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the Ophion server"));
}

/// The README's quick start, as written: the `curl` of the example OTLP/JSON
/// file and the `ophion query` after it (pointed at this test's ports; the
/// binaries are the ones `cargo run` would run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_works() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let run = &readme[readme.find("## Run").expect("Run section")..];
    let line = |prefix: &str| {
        run.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in the README's Run section"))
            .to_owned()
    };
    let start = line("OPHION_ADMIN_PASSWORD=");
    assert!(start.ends_with(" cargo run --release -p ophion-bin --bin ophion-server"));
    let password = start
        .trim_start_matches("OPHION_ADMIN_PASSWORD=")
        .split(' ')
        .next()
        .expect("password")
        .to_owned();
    let curl = line("curl ").replace("http://127.0.0.1:4318", "OTLP_HTTP");
    assert!(
        curl.contains("OTLP_HTTP"),
        "the curl line targets the default port"
    );
    let cargo_ophion = "cargo run -q -p ophion-bin --bin ophion -- ";
    let login = line("echo ");
    assert!(login.contains(cargo_ophion));
    let query = line(cargo_ophion);

    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(
        &dir.path().join("data"),
        &[("OPHION_ADMIN_PASSWORD", &password)],
    );
    let config_home = dir.path().join("config");
    let sh = |cmd: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(root)
            .env("OPHION_SERVER", &server.api)
            .env("XDG_CONFIG_HOME", &config_home)
            .env_remove("OPHION_TOKEN")
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let ophion = format!("{} ", env!("CARGO_BIN_EXE_ophion"));
    let answer = sh(&curl.replace("OTLP_HTTP", &server.otlp_http));
    let v: Value = serde_json::from_str(&answer).expect("OTLP/JSON answer");
    assert!(
        v.get("partialSuccess").is_none(),
        "every record accepted: {answer}"
    );
    let signed_in = sh(&login.replace(cargo_ophion, &ophion));
    assert!(signed_in.contains("signed in as admin"), "{signed_in}");
    let out = sh(&query.replace(cargo_ophion, &ophion));
    assert!(out.contains("quickstart,INFO,hello from curl"), "{out}");
    assert!(out.contains("quickstart,ERROR,something failed"), "{out}");
}
