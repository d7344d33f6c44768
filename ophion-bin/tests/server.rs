//! End-to-end: the real `ophion-server` binary on OS-chosen ports with a
//! temporary data directory. Telemetry goes in over OTLP; every API endpoint
//! is checked against values computed here from what was sent; the server
//! is stopped with SIGTERM and started again on the same directory.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use common::*;
use futures::StreamExt as _;
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{KeyValue, any_value::Value as Av},
    metrics::v1::metric::Data,
};
use ophion_core::testing::Generator;
use serde_json::Value;

fn str_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Av::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

/// One span as the test sees it.
#[derive(Debug, Clone)]
struct Sent {
    trace: String,
    span: String,
    parent: String,
    service: String,
    name: String,
    kind: i32,
    error: bool,
    start: u64,
    duration: i64,
}

fn spans_of(req: &ExportTraceServiceRequest) -> Vec<Sent> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| str_attr(&r.attributes, "service.name"))
            .expect("service.name");
        for s in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            out.push(Sent {
                trace: hex::encode(&s.trace_id),
                span: hex::encode(&s.span_id),
                parent: hex::encode(&s.parent_span_id),
                service: service.clone(),
                name: s.name.clone(),
                kind: s.kind,
                error: s.status.as_ref().is_some_and(|st| st.code == 2),
                start: s.start_time_unix_nano,
                duration: (s.end_time_unix_nano - s.start_time_unix_nano) as i64,
            });
        }
    }
    out
}

struct Sent3 {
    spans: Vec<Sent>,
    traces: ExportTraceServiceRequest,
    logs: ExportLogsServiceRequest,
    metrics: ExportMetricsServiceRequest,
    from: u64,
    to: u64,
}

/// Telemetry from the last few minutes, sent over OTLP/HTTP protobuf.
async fn send_generated(http: &reqwest::Client, server: &Server) -> Sent3 {
    let t0 = now_ns() - 20 * 60 * 1_000_000_000;
    let traces = Generator::new(11, t0).traces(3000);
    let logs = Generator::new(12, t0).logs(2000);
    let metrics = Generator::new(13, t0).metrics(500);
    export(http, server, "/v1/traces", &traces).await;
    export(http, server, "/v1/logs", &logs).await;
    export(http, server, "/v1/metrics", &metrics).await;
    Sent3 {
        spans: spans_of(&traces),
        traces,
        logs,
        metrics,
        from: t0 - 60_000_000_000,
        to: now_ns() + 60_000_000_000,
    }
}

fn range(s: &Sent3) -> Vec<(&'static str, String)> {
    vec![("from", s.from.to_string()), ("to", s.to.to_string())]
}

async fn check_services(http: &reqwest::Client, server: &Server, sent: &Sent3) {
    // Independent computation: entry spans per service.
    let mut per: BTreeMap<String, (Vec<i64>, usize)> = BTreeMap::new();
    for s in &sent.spans {
        if s.kind == 2 || s.kind == 5 || s.parent.is_empty() {
            let e = per.entry(s.service.clone()).or_default();
            e.0.push(s.duration);
            e.1 += usize::from(s.error);
        }
    }
    let v = get_ok(http, server, "/api/v1/services", &range(sent)).await;
    let services = v["services"].as_array().expect("services");
    assert_eq!(services.len(), per.len(), "{v}");
    let secs = (sent.to - sent.from) as f64 / 1e9;
    for s in services {
        let name = s["name"].as_str().expect("name");
        let (durations, errors) = per.get_mut(name).expect("known service");
        durations.sort_unstable();
        let n = durations.len();
        assert_eq!(s["requests"].as_u64(), Some(n as u64), "{name}");
        assert_eq!(s["errors"].as_u64(), Some(*errors as u64), "{name}");
        let ratio = s["error_ratio"].as_f64().expect("ratio");
        assert!((ratio - *errors as f64 / n as f64).abs() < 1e-9, "{name}");
        let rate = s["rate_per_sec"].as_f64().expect("rate");
        assert!((rate - n as f64 / secs).abs() < 1e-6, "{name}: {rate}");
        for (q, k) in [(0.5, "p50_ns"), (0.95, "p95_ns"), (0.99, "p99_ns")] {
            let got = s[k].as_f64().expect("percentile");
            assert!(
                close_percentile(durations, q, got),
                "{name} {k}: {got} vs exact {}",
                nearest_rank(durations, q)
            );
        }
    }

    // Operations of one service.
    let (svc, (durations, _)) = per.iter().next().expect("a service");
    let v = get_ok(
        http,
        server,
        &format!("/api/v1/services/{svc}/operations"),
        &range(sent),
    )
    .await;
    let mut expected: HashMap<(String, i32), usize> = HashMap::new();
    for s in sent.spans.iter().filter(|s| &s.service == svc) {
        *expected.entry((s.name.clone(), s.kind)).or_default() += 1;
    }
    let ops = v["operations"].as_array().expect("operations");
    assert_eq!(ops.len(), expected.len(), "{v}");
    let total: u64 = ops.iter().map(|o| o["requests"].as_u64().expect("n")).sum();
    assert_eq!(total as usize, expected.values().sum::<usize>());
    assert!(!durations.is_empty());

    // Service graph: parent -> child across services.
    let by_id: HashMap<(&str, &str), &Sent> = sent
        .spans
        .iter()
        .map(|s| ((s.trace.as_str(), s.span.as_str()), s))
        .collect();
    let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for c in &sent.spans {
        if let Some(p) = by_id.get(&(c.trace.as_str(), c.parent.as_str()))
            && p.service != c.service
        {
            let e = edges
                .entry((p.service.clone(), c.service.clone()))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(c.error);
        }
    }
    assert!(!edges.is_empty(), "the generator makes cross-service calls");
    let v = get_ok(http, server, "/api/v1/service-graph", &range(sent)).await;
    let got: BTreeMap<(String, String), (u64, u64)> = v["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                (
                    e["caller"].as_str().expect("caller").to_owned(),
                    e["callee"].as_str().expect("callee").to_owned(),
                ),
                (
                    e["calls"].as_u64().expect("calls"),
                    e["errors"].as_u64().expect("errors"),
                ),
            )
        })
        .collect();
    assert_eq!(got, edges);
}

async fn check_traces(http: &reqwest::Client, server: &Server, sent: &Sent3) {
    // One trace, span by span.
    let mut by_trace: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for s in &sent.spans {
        by_trace.entry(&s.trace).or_default().push(s);
    }
    let (id, spans) = by_trace
        .iter()
        .max_by_key(|(_, v)| v.len())
        .expect("a trace");
    let v = get_ok(http, server, &format!("/api/v1/traces/{id}"), &[]).await;
    assert_eq!(v["span_count"].as_u64(), Some(spans.len() as u64));
    let got: BTreeMap<String, Value> = v["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| (s["span_id"].as_str().expect("id").to_owned(), s.clone()))
        .collect();
    for s in spans {
        let g = &got[&s.span];
        assert_eq!(g["service_name"].as_str(), Some(s.service.as_str()));
        assert_eq!(g["name"].as_str(), Some(s.name.as_str()));
        assert_eq!(g["duration_ns"].as_i64(), Some(s.duration));
        assert_eq!(g["start_time_unix_nano"].as_u64(), Some(s.start));
        let parent = g["parent_span_id"].as_str().unwrap_or("");
        assert_eq!(parent, s.parent);
        assert_eq!(g["status_code"].as_str() == Some("error"), s.error);
        // Promoted attributes are back in the attribute objects.
        assert!(g["attributes"].get("code.function.name").is_some(), "{g}");
        assert!(
            g["resource_attributes"].get("service.version").is_some(),
            "{g}"
        );
    }
    // The waterfall view: the same spans and timing, nothing else.
    let w = get_ok(
        http,
        server,
        &format!("/api/v1/traces/{id}"),
        &[("view", "waterfall".into())],
    )
    .await;
    assert_eq!(w["view"], "waterfall");
    assert_eq!(w["span_count"], v["span_count"]);
    assert_eq!(w["duration_ns"], v["duration_ns"]);
    assert_eq!(w["logs"].as_array().map(Vec::len), Some(0));
    for s in w["spans"].as_array().expect("spans") {
        let full = &got[s["span_id"].as_str().expect("id")];
        for k in [
            "parent_span_id",
            "name",
            "kind",
            "service_name",
            "start_time_unix_nano",
            "end_time_unix_nano",
            "duration_ns",
            "status_code",
        ] {
            assert_eq!(s[k], full[k], "{k}");
        }
        assert!(
            s.get("attributes").is_none() && s.get("resource_attributes").is_none(),
            "{s}"
        );
    }
    let l = get_ok(
        http,
        server,
        &format!("/api/v1/traces/{id}"),
        &[("view", "logs".into())],
    )
    .await;
    assert_eq!(l["view"], "logs");
    assert_eq!(l["span_count"], v["span_count"]);
    assert_eq!(l["logs"], v["logs"]);
    assert_eq!(l["spans"].as_array().map(Vec::len), Some(0));
    let (status, body) = get(
        http,
        server,
        &format!("/api/v1/traces/{id}"),
        &[("view", "everything".into())],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let span_services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    let services: BTreeSet<&str> = v["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(services, span_services);

    // Unknown and malformed ids.
    let (status, body) = get(
        http,
        server,
        &format!("/api/v1/traces/{}", "0".repeat(32)),
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "trace_not_found");
    let (status, body) = get(http, server, "/api/v1/traces/xyz", &[]).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("hex"))
    );

    // Search: by service and minimum duration.
    let svc = &sent.spans[0].service;
    let mut durations: Vec<i64> = sent
        .spans
        .iter()
        .filter(|s| &s.service == svc)
        .map(|s| s.duration)
        .collect();
    durations.sort_unstable();
    let min = durations[durations.len() / 2];
    let expected: BTreeSet<&str> = sent
        .spans
        .iter()
        .filter(|s| &s.service == svc && s.duration >= min)
        .map(|s| s.trace.as_str())
        .collect();
    let mut q = range(sent);
    q.extend([
        ("service", svc.clone()),
        ("min_duration", format!("{}ms", min / 1_000_000)),
        ("limit", "1000".into()),
    ]);
    let ms_floor = (min / 1_000_000) * 1_000_000;
    let expected_floor: BTreeSet<&str> = sent
        .spans
        .iter()
        .filter(|s| &s.service == svc && s.duration >= ms_floor)
        .map(|s| s.trace.as_str())
        .collect();
    let v = get_ok(http, server, "/api/v1/traces", &q).await;
    let got: BTreeSet<&str> = v["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .filter_map(|t| t["trace_id"].as_str())
        .collect();
    assert!(expected.is_subset(&expected_floor));
    assert_eq!(got, expected_floor);
    // Newest first, each with its summary.
    let t = &v["traces"][0];
    let all = &by_trace[t["trace_id"].as_str().expect("id")];
    assert_eq!(t["span_count"].as_u64(), Some(all.len() as u64));
    assert_eq!(
        t["error_count"].as_u64(),
        Some(all.iter().filter(|s| s.error).count() as u64)
    );

    // Search by status and by attribute.
    let errors: BTreeSet<&str> = sent
        .spans
        .iter()
        .filter(|s| s.error)
        .map(|s| s.trace.as_str())
        .collect();
    let mut q = range(sent);
    q.extend([("status", "error".into()), ("limit", "1000".into())]);
    let v = get_ok(http, server, "/api/v1/traces", &q).await;
    assert_eq!(v["traces"].as_array().expect("traces").len(), errors.len());
    let mut q = range(sent);
    q.extend([
        ("attribute", "http.response.status_code=500".into()),
        ("limit", "1000".into()),
    ]);
    let v = get_ok(http, server, "/api/v1/traces", &q).await;
    assert!(!v["traces"].as_array().expect("traces").is_empty());
    let (status, _) = get(
        http,
        server,
        "/api/v1/traces",
        &[("min_duration", "soon".into())],
    )
    .await;
    assert_eq!(status, 400);
}

async fn check_logs(http: &reqwest::Client, server: &Server, sent: &Sent3) {
    let records: Vec<(String, String, i32, u64)> = sent
        .logs
        .resource_logs
        .iter()
        .flat_map(|rl| {
            let service = rl
                .resource
                .as_ref()
                .and_then(|r| str_attr(&r.attributes, "service.name"))
                .expect("service");
            rl.scope_logs
                .iter()
                .flat_map(|s| &s.log_records)
                .map(move |l| {
                    let body = match l.body.as_ref().and_then(|b| b.value.as_ref()) {
                        Some(Av::StringValue(s)) => s.clone(),
                        _ => String::new(),
                    };
                    (service.clone(), body, l.severity_number, l.time_unix_nano)
                })
        })
        .collect();
    // Case-insensitive contains, plus a service and a severity filter.
    let needle = "/API/CART";
    let svc = records[0].0.clone();
    let expected: Vec<&(String, String, i32, u64)> = records
        .iter()
        .filter(|r| r.1.to_lowercase().contains(&needle.to_lowercase()) && r.0 == svc && r.2 >= 9)
        .collect();
    let mut q = range(sent);
    q.extend([
        ("q", needle.to_owned()),
        ("service", svc.clone()),
        ("severity", "info".to_owned()),
        ("limit", "5".to_owned()),
    ]);
    let v = get_ok(http, server, "/api/v1/logs", &q).await;
    assert_eq!(
        v["total"].as_u64(),
        Some(expected.len() as u64),
        "{}",
        v["total"]
    );
    let hist: u64 = v["histogram"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|b| b["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        hist,
        expected.len() as u64,
        "the histogram counts every match"
    );
    let logs = v["logs"].as_array().expect("logs");
    assert_eq!(logs.len(), expected.len().min(5));
    // Newest first.
    let mut newest: Vec<u64> = expected.iter().map(|r| r.3).collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    let got: Vec<u64> = logs
        .iter()
        .map(|l| l["timestamp_unix_nano"].as_u64().expect("ts"))
        .collect();
    assert_eq!(got, newest[..got.len()].to_vec());
    // Errors only.
    let mut q = range(sent);
    q.push(("severity", "error".to_owned()));
    let v = get_ok(http, server, "/api/v1/logs", &q).await;
    assert_eq!(
        v["total"].as_u64(),
        Some(records.iter().filter(|r| r.2 >= 17).count() as u64)
    );
    let (status, v) = get(http, server, "/api/v1/logs", &[("severity", "loud".into())]).await;
    assert_eq!(status, 400, "{v}");
}

async fn check_metrics(http: &reqwest::Client, server: &Server, sent: &Sent3) {
    let mut kinds: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut gauge_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for rm in &sent.metrics.resource_metrics {
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let kind = match &m.data {
                Some(Data::Gauge(g)) => {
                    let vals = gauge_values.entry(m.name.clone()).or_default();
                    for p in &g.data_points {
                        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
                        vals.push(match p.value {
                            Some(N::AsDouble(d)) => d,
                            Some(N::AsInt(i)) => i as f64,
                            None => continue,
                        });
                    }
                    "gauge"
                }
                Some(Data::Sum(_)) => "sum",
                Some(Data::Histogram(_)) => "histogram",
                Some(Data::ExponentialHistogram(_)) => "exponential_histogram",
                Some(Data::Summary(_)) => "summary",
                None => continue,
            };
            kinds.insert(m.name.clone(), kind);
        }
    }
    let v = get_ok(http, server, "/api/v1/metrics", &range(sent)).await;
    let got: BTreeMap<String, String> = v["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_owned(),
                m["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = kinds
        .iter()
        .map(|(k, v)| (k.clone(), (*v).to_owned()))
        .collect();
    assert_eq!(got, want);

    // A gauge averaged over one step covering the range.
    let (name, values) = gauge_values.iter().next().expect("a gauge");
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let step = format!("{}s", (sent.to - sent.from) / 1_000_000_000 + 1);
    let mut q = range(sent);
    q.extend([
        ("name", name.clone()),
        ("aggregation", "avg".into()),
        ("step", step.clone()),
    ]);
    let v = get_ok(http, server, "/api/v1/metrics/query", &q).await;
    let points = v["series"][0]["points"].as_array().expect("points");
    assert_eq!(points.len(), 1, "{v}");
    let got = points[0][1].as_f64().expect("value");
    assert!(
        (got - mean).abs() < 1e-6 * mean.abs().max(1.0),
        "{got} vs {mean}"
    );
    // Grouped by an attribute: one series per value.
    let mut q = range(sent);
    q.extend([
        ("name", name.clone()),
        ("group_by", "service.name".into()),
        ("step", step.clone()),
    ]);
    let v = get_ok(http, server, "/api/v1/metrics/query", &q).await;
    assert!(v["series"].as_array().expect("series").len() > 1, "{v}");
    // Percentiles of a histogram lie within its bounds; rates of a sum are
    // not negative.
    if let Some((h, _)) = kinds.iter().find(|(_, k)| **k == "histogram") {
        let mut q = range(sent);
        q.extend([("name", h.clone()), ("aggregation", "p95".into())]);
        let v = get_ok(http, server, "/api/v1/metrics/query", &q).await;
        assert!(!v["series"].as_array().expect("series").is_empty(), "{v}");
    }
    if let Some((c, _)) = kinds.iter().find(|(_, k)| **k == "sum") {
        let mut q = range(sent);
        q.extend([("name", c.clone()), ("aggregation", "rate".into())]);
        let v = get_ok(http, server, "/api/v1/metrics/query", &q).await;
        for s in v["series"].as_array().expect("series") {
            for p in s["points"].as_array().expect("points") {
                assert!(p[1].as_f64().expect("rate") >= 0.0, "{v}");
            }
        }
        let mut q = range(sent);
        q.extend([("name", c.clone()), ("aggregation", "p99".into())]);
        let (status, v) = get(http, server, "/api/v1/metrics/query", &q).await;
        assert_eq!(status, 400, "{v}");
    }
}

async fn check_query(http: &reqwest::Client, server: &Server, sent: &Sent3) {
    let n = sent.spans.len();
    let rows = sql(http, server, "SELECT count(*) AS n FROM spans").await;
    assert_eq!(rows[0][0].as_u64(), Some(n as u64));
    // CSV.
    let r = http
        .post(format!("{}/api/v1/query", server.api))
        .bearer_auth(&server.token)
        .header("accept", "text/csv")
        .json(&serde_json::json!({"sql": "SELECT service_name, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1"}))
        .send()
        .await
        .expect("csv");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/csv")
    );
    let text = r.text().await.expect("text");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("service_name,n"));
    let total: usize = lines
        .map(|l| {
            l.rsplit(',')
                .next()
                .expect("n")
                .parse::<usize>()
                .expect("count")
        })
        .sum();
    assert_eq!(total, n);
    // Arrow IPC.
    let r = http
        .post(format!("{}/api/v1/query", server.api))
        .bearer_auth(&server.token)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({"sql": "SELECT trace_id, attributes FROM spans"}))
        .send()
        .await
        .expect("arrow");
    let bytes = r.bytes().await.expect("bytes");
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).expect("ipc");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, n);
    // Errors are JSON with a code, and say what is wrong.
    for (sql, status, code) in [
        ("SELEC 1", 400, "invalid_query"),
        ("SELECT nope FROM spans", 400, "invalid_query"),
        ("DROP TABLE spans", 400, "not_read_only"),
        // The span rollups keep a day: an unbounded scan is refused, not
        // answered in part.
        ("SELECT count(*) FROM span_minutes", 400, "not_covered"),
        (
            "INSERT INTO spans SELECT * FROM spans",
            400,
            "not_read_only",
        ),
    ] {
        let (got, v) = query(http, server, sql).await;
        assert_eq!(got, status, "{sql}");
        assert_eq!(v["error"]["code"], code, "{sql}: {v}");
        assert!(!v["error"]["message"].as_str().expect("message").is_empty());
    }
    let r = http
        .post(format!("{}/api/v1/query", server.api))
        .bearer_auth(&server.token)
        .body("not json")
        .send()
        .await
        .expect("query");
    assert_eq!(r.status(), 400);
    let (status, v) = get(http, server, "/api/v1/nothing-here", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "not_found");
}

async fn check_ops(http: &reqwest::Client, server: &Server, sent: &Sent3) {
    let ok = |path: &str| format!("{}{path}", server.api);
    assert_eq!(
        http.get(ok("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(ok("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    let doc = get_ok(http, server, "/api/v1/openapi.json", &[]).await;
    assert!(doc["paths"]["/api/v1/query"].is_object());
    let text = metrics(&server.api).await;
    let sample = |name: &str| prometheus_sample(&text, name);
    assert_eq!(
        sample("ophion_ingested_items_total{signal=\"traces\"}") as usize,
        sent.spans.len()
    );
    assert!(sample("ophion_query_seconds_count") > 0.0);
    assert!(sample("ophion_wal_append_seconds_count") >= 3.0);
    assert!(sample("ophion_resident_memory_bytes") > 0.0);
    assert!(text.contains("ophion_refused_requests_total{reason=\"bad_data\"}"));
    assert!(text.contains("# TYPE ophion_flush_seconds histogram"));
    assert!(text.contains("# TYPE ophion_parquet_files_compacted_total counter"));
    for counter in [
        "ophion_parquet_files_expired_total",
        "ophion_parquet_orphans_deleted_total",
        "ophion_text_index_rows_skipped_total",
        "ophion_peer_failures_total",
        "ophion_distributed_queries_total",
        "ophion_distributed_fallbacks_total",
        "ophion_worker_tasks_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {counter} counter")),
            "{counter}"
        );
        let value = text.lines().find_map(|l| {
            l.strip_prefix(counter)?
                .strip_prefix(' ')?
                .parse::<u64>()
                .ok()
        });
        assert!(value.is_some(), "{counter} has no value");
    }
    let _ = &sent.traces;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_what_was_sent_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let http = client();
    let sent = send_generated(&http, &server).await;
    check_services(&http, &server, &sent).await;
    check_traces(&http, &server, &sent).await;
    check_logs(&http, &server, &sent).await;
    check_metrics(&http, &server, &sent).await;
    check_query(&http, &server, &sent).await;
    check_ops(&http, &server, &sent).await;

    // SIGTERM: buffered rows are written out as Parquet, exit within 30 s.
    let (status, took) = server.stop(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(30));
    let parquet = walk(&data.join("parquet"));
    assert!(!parquet.is_empty(), "shutdown wrote Parquet files");

    // The same answers from the same directory.
    let server = Server::start(&data, &[]);
    check_services(&http, &server, &sent).await;
    check_traces(&http, &server, &sent).await;
    check_logs(&http, &server, &sent).await;
    let rows = sql(&http, &server, "SELECT count(*) FROM logs").await;
    let logs: usize = sent
        .logs
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert_eq!(rows[0][0].as_u64(), Some(logs as u64));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tail_streams_new_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    let resp = http
        .get(format!("{}/api/v1/logs/tail", server.api))
        .bearer_auth(&server.token)
        .query(&[("q", "needle-42")])
        .send()
        .await
        .expect("tail");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    let mut stream = resp.bytes_stream();
    let mut logs = Generator::new(5, now_ns()).logs(50);
    // Two records match, the rest do not.
    let records = &mut logs.resource_logs[0].scope_logs[0].log_records;
    for r in records.iter_mut().take(2) {
        r.body = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(Av::StringValue("found NEEDLE-42 here".into())),
        });
    }
    export(&http, &server, "/v1/logs", &logs).await;
    let mut seen = 0;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen < 2 {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("tail events within 20 s")
            .expect("stream open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        seen = text.matches("found NEEDLE-42 here").count();
    }
    assert_eq!(seen, 2, "{text}");
    assert!(
        !text.contains("ua=\\\"Mozilla"),
        "non-matching records are filtered: {text}"
    );
}

/// Paging through a search with `before = next` returns every match exactly
/// once, newest first, even when many records share a timestamp (900 sent,
/// 40 distinct timestamps; pages of 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_search_pages_lose_and_repeat_nothing() {
    use opentelemetry_proto::tonic::{
        common::v1::AnyValue,
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    };
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    let base = now_ns() - 60_000_000_000;
    let mut expected: Vec<(u64, String)> = Vec::new();
    for batch in 0..3u64 {
        let log_records = (0..300u64)
            .map(|i| {
                let n = batch * 300 + i;
                // A multiplicative walk over 40 slots: ties everywhere, sent
                // out of order.
                let at = base + (n * 17 % 40) * 1_000_000;
                let body = format!(
                    "{} record {n}",
                    if n % 3 == 0 { "other" } else { "page-me" }
                );
                if n % 3 != 0 {
                    expected.push((at, body.clone()));
                }
                LogRecord {
                    time_unix_nano: at,
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(Av::StringValue(body)),
                    }),
                    ..Default::default()
                }
            })
            .collect();
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![ophion_core::testing::kv_str("service.name", "pager")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        };
        export(&http, &server, "/v1/logs", &req).await;
    }
    let from = (base - 1_000_000_000).to_string();
    let to = (base + 1_000_000_000).to_string();
    let mut got: Vec<(u64, String)> = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = vec![
            ("q", "PAGE-ME".to_owned()),
            ("from", from.clone()),
            ("to", to.clone()),
            ("limit", "7".to_owned()),
            (
                "buckets",
                if before.is_some() { "0" } else { "60" }.to_owned(),
            ),
        ];
        if let Some(b) = &before {
            q.push(("before", b.clone()));
        }
        let v = get_ok(&http, &server, "/api/v1/logs", &q).await;
        if before.is_none() {
            assert_eq!(
                v["total"].as_u64(),
                Some(expected.len() as u64),
                "{}",
                v["total"]
            );
        } else {
            assert!(
                v.get("histogram").is_none(),
                "buckets=0 asks for no histogram"
            );
        }
        let logs = v["logs"].as_array().expect("logs");
        for l in logs {
            got.push((
                l["timestamp_unix_nano"].as_u64().expect("ts"),
                l["body"].as_str().expect("body").to_owned(),
            ));
        }
        pages += 1;
        assert!(pages < 200, "paging does not end");
        match v["next"].as_str() {
            Some(n) => before = Some(n.to_owned()),
            None => break,
        }
    }
    assert!(
        got.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first across pages"
    );
    let seen: BTreeSet<&String> = got.iter().map(|g| &g.1).collect();
    assert_eq!(seen.len(), got.len(), "no record twice");
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every match once");
    assert!(pages > 20, "{pages} pages: the test pages for real");
    let (status, v) = get(
        &http,
        &server,
        "/api/v1/logs",
        &[("before", "yesterday".to_owned())],
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("next"),
        "{v}"
    );
}
