//! Seeded generators of realistic OTLP telemetry, shared by tests and
//! benchmarks (feature `testing`).
//!
//! A small shop runs five services; each trace starts at the `frontend` with
//! an HTTP request and fans out over gRPC to the other services, which call
//! PostgreSQL and Redis. Spans carry about ten attributes, like the
//! auto-instrumentation of real SDKs; about 2% of requests fail with an
//! exception event. Logs are web-server lines linked to the traces; metrics
//! cover all five OTLP point types. The same seed always gives the same data.

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    metrics::v1::{
        AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
        Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        Summary, SummaryDataPoint, exponential_histogram_data_point::Buckets, metric::Data,
        number_data_point, summary_data_point::ValueAtQuantile,
    },
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status},
};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// A string attribute.
pub fn kv_str(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

/// An integer attribute.
pub fn kv_int(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

/// An attribute with any value.
pub fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

struct Service {
    name: &'static str,
    version: &'static str,
    language: &'static str,
}

const SERVICES: [Service; 5] = [
    Service {
        name: "frontend",
        version: "2.4.1",
        language: "nodejs",
    },
    Service {
        name: "checkout",
        version: "1.9.0",
        language: "go",
    },
    Service {
        name: "cart",
        version: "3.0.2",
        language: "dotnet",
    },
    Service {
        name: "payment",
        version: "0.12.7",
        language: "rust",
    },
    Service {
        name: "product-catalog",
        version: "1.1.0",
        language: "python",
    },
];

const ROUTES: [(&str, &str); 4] = [
    ("GET", "/api/products/{id}"),
    ("GET", "/api/cart"),
    ("POST", "/api/cart/items"),
    ("POST", "/api/checkout"),
];

/// Seeded generator of OTLP requests.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    now_ns: u64,
}

impl Generator {
    /// A generator whose timestamps start at `start_ns` (Unix nanoseconds)
    /// and move forward by a few milliseconds per trace.
    pub fn new(seed: u64, start_ns: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            now_ns: start_ns,
        }
    }

    /// Moves the clock to `ns`. The generator's time runs faster than the
    /// wall clock at a few thousand spans a second (a few milliseconds per
    /// trace), so a long run re-anchors it to stay inside a server's
    /// accepted time window.
    pub fn set_clock(&mut self, ns: u64) {
        self.now_ns = ns;
    }

    fn resource(&mut self, svc: usize) -> Resource {
        let s = &SERVICES[svc];
        let pod = self.rng.random_range(0..3);
        Resource {
            attributes: vec![
                kv_str("service.name", s.name),
                kv_str("service.namespace", "shop"),
                kv_str("service.version", s.version),
                kv_str("service.instance.id", format!("{}-{pod}", s.name)),
                kv_str("deployment.environment.name", "production"),
                kv_str("host.name", format!("node-{}", svc % 3)),
                kv_str("k8s.namespace.name", "shop"),
                kv_str("k8s.pod.name", format!("{}-7d9f8b-{pod}", s.name)),
                kv_str("telemetry.sdk.language", s.language),
                kv_str("telemetry.sdk.name", "opentelemetry"),
                kv_str("telemetry.sdk.version", "1.30.0"),
            ],
            dropped_attributes_count: 0,
            entity_refs: vec![],
        }
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b[..]);
        b[0] |= 1; // never all zero
        b.to_vec()
    }

    /// About `n_spans` spans (whole traces, so a few more), grouped by service
    /// into one `ResourceSpans` each.
    pub fn traces(&mut self, n_spans: usize) -> ExportTraceServiceRequest {
        let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        let mut made = 0;
        while made < n_spans {
            made += self.trace(&mut per_service);
        }
        // Source-code attributes, as auto-instrumentation adds them; they
        // bring spans to the ~500 bytes of protobuf typical of real SDKs.
        for (svc, spans) in per_service.iter_mut().enumerate() {
            let service = SERVICES[svc].name;
            for span in spans.iter_mut() {
                let handler = span
                    .name
                    .split([' ', '/'])
                    .next_back()
                    .unwrap_or("handle")
                    .to_lowercase();
                span.attributes.extend([
                    kv_str(
                        "code.function.name",
                        format!("shop::{}::handlers::{handler}", service.replace('-', "_")),
                    ),
                    kv_str(
                        "code.file.path",
                        format!("/app/services/{service}/src/handlers/{handler}.rs"),
                    ),
                    kv_int("code.line.number", self.rng.random_range(10..900)),
                    kv_str(
                        "thread.name",
                        format!("{service}-worker-{}", self.rng.random_range(0..16)),
                    ),
                ]);
            }
        }
        let resource_spans = per_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(svc, spans)| ResourceSpans {
                resource: Some(self.resource(svc)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("@opentelemetry/instrumentation-{}", SERVICES[svc].language),
                        version: "0.41.0".into(),
                        attributes: vec![],
                        dropped_attributes_count: 0,
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    fn span(
        &mut self,
        trace_id: &[u8],
        parent: &[u8],
        name: String,
        kind: span::SpanKind,
        start: u64,
        dur: u64,
    ) -> Span {
        Span {
            trace_id: trace_id.to_vec(),
            span_id: self.id::<8>(),
            trace_state: String::new(),
            parent_span_id: parent.to_vec(),
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: vec![],
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status: None,
        }
    }

    /// One request through the shop; returns the number of spans made.
    fn trace(&mut self, out: &mut [Vec<Span>]) -> usize {
        self.now_ns += self.rng.random_range(1_000_000..5_000_000);
        let trace_id = self.id::<16>();
        let (method, route) = ROUTES[self.rng.random_range(0..ROUTES.len())];
        let failed = self.rng.random_bool(0.02);
        let total = self.rng.random_range(5_000_000..80_000_000u64);
        let start = self.now_ns;
        let mut root = self.span(
            &trace_id,
            &[],
            format!("{method} {route}"),
            span::SpanKind::Server,
            start,
            total,
        );
        let item = self.rng.random_range(1..5000);
        let status = if failed { 500 } else { 200 };
        root.attributes = vec![
            kv_str("http.request.method", method),
            kv_str("http.route", route),
            kv_int("http.response.status_code", status),
            kv_str("url.path", route.replace("{id}", &item.to_string())),
            kv_str("url.scheme", "https"),
            kv_str("server.address", "shop.example.com"),
            kv_str("network.protocol.version", "1.1"),
            kv_str(
                "client.address",
                format!("10.0.{}.{}", item % 255, item % 97),
            ),
            kv_str(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0",
            ),
            kv_int("app.user_id", self.rng.random_range(1..100_000)),
        ];
        if failed {
            root.status = Some(Status {
                message: "upstream failure".into(),
                code: status::StatusCode::Error as i32,
            });
            root.events
                .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                    time_unix_nano: start + total - 1000,
                    name: "exception".into(),
                    attributes: vec![
                        kv_str("exception.type", "UpstreamError"),
                        kv_str("exception.message", "checkout failed: payment declined"),
                    ],
                    dropped_attributes_count: 0,
                });
        }
        let root_id = root.span_id.clone();
        out[0].push(root);
        let mut n = 1;
        let callees: &[usize] = match route {
            "/api/checkout" => &[1, 2, 3],
            "/api/products/{id}" => &[4],
            _ => &[2],
        };
        let mut t = start + 200_000;
        let step = total / (callees.len() as u64 + 1);
        for &svc in callees {
            n += self.rpc(&trace_id, &root_id, svc, t, step, failed && svc == 3, out);
            t += step;
        }
        n
    }

    #[allow(clippy::too_many_arguments)]
    fn rpc(
        &mut self,
        trace_id: &[u8],
        parent: &[u8],
        svc: usize,
        start: u64,
        dur: u64,
        failed: bool,
        out: &mut [Vec<Span>],
    ) -> usize {
        let service = format!(
            "shop.{}.v1.{}Service",
            SERVICES[svc].name.replace('-', ""),
            SERVICES[svc].name
        );
        let method = match svc {
            1 => "PlaceOrder",
            2 => "GetCart",
            3 => "Charge",
            _ => "GetProduct",
        };
        let rpc_attrs = |code: i64| {
            vec![
                kv_str("rpc.system", "grpc"),
                kv_str("rpc.service", service.clone()),
                kv_str("rpc.method", method),
                kv_int("rpc.grpc.status_code", code),
                kv_str("server.address", SERVICES[svc].name),
                kv_int("server.port", 8080),
                kv_str("network.transport", "tcp"),
            ]
        };
        let code = if failed { 13 } else { 0 };
        let mut client = self.span(
            trace_id,
            parent,
            format!("{service}/{method}"),
            span::SpanKind::Client,
            start,
            dur,
        );
        client.attributes = rpc_attrs(code);
        let client_id = client.span_id.clone();
        let mut server = self.span(
            trace_id,
            &client_id,
            format!("{service}/{method}"),
            span::SpanKind::Server,
            start + 50_000,
            dur - 100_000,
        );
        server.attributes = rpc_attrs(code);
        server.attributes.push(kv_str("app.region", "eu-west-1"));
        if failed {
            let st = Some(Status {
                message: "card declined".into(),
                code: status::StatusCode::Error as i32,
            });
            client.status = st.clone();
            server.status = st;
        }
        let server_id = server.span_id.clone();
        out[0].push(client);
        out[svc].push(server);
        let mut n = 2;
        // Database calls: the cart uses Redis, the others PostgreSQL.
        let queries = self.rng.random_range(1..4u64);
        let mut t = start + 100_000;
        for q in 0..queries {
            let qdur = (dur / (queries + 2)).max(10_000);
            let (system, op, text) = if svc == 2 {
                (
                    "redis",
                    "GET",
                    format!("GET cart:{}", self.rng.random_range(1..10_000)),
                )
            } else {
                (
                    "postgresql",
                    "SELECT",
                    format!("SELECT * FROM products WHERE id = ${}", q + 1),
                )
            };
            let mut db = self.span(
                trace_id,
                &server_id,
                format!("{op} {system}"),
                span::SpanKind::Client,
                t,
                qdur,
            );
            db.attributes = vec![
                kv_str("db.system.name", system),
                kv_str("db.operation.name", op),
                kv_str("db.namespace", "shop"),
                kv_str("db.query.text", text),
                kv_str("server.address", format!("{system}.shop.svc")),
                kv_int("server.port", if system == "redis" { 6379 } else { 5432 }),
                kv_str("network.peer.address", "10.1.2.3"),
                kv_int("db.response.returned_rows", self.rng.random_range(0..50)),
            ];
            out[svc].push(db);
            n += 1;
            t += qdur;
        }
        n
    }

    /// `n` log records from the services, web-server style, most of them
    /// linked to a trace.
    pub fn logs(&mut self, n: usize) -> ExportLogsServiceRequest {
        let mut per_service: Vec<Vec<LogRecord>> = vec![Vec::new(); SERVICES.len()];
        for _ in 0..n {
            self.now_ns += self.rng.random_range(100_000..2_000_000);
            let svc = self.rng.random_range(0..SERVICES.len());
            let (method, route) = ROUTES[self.rng.random_range(0..ROUTES.len())];
            let roll = self.rng.random_range(0..100);
            let (sev, text, status) = match roll {
                0..=1 => (17, "ERROR", 500),
                2..=6 => (13, "WARN", 429),
                _ => (9, "INFO", 200),
            };
            let ms = self.rng.random_range(1..900);
            let body = format!(
                "{method} {} {status} {ms}ms bytes={} ua=\"Mozilla/5.0\"",
                route.replace("{id}", &self.rng.random_range(1..5000).to_string()),
                self.rng.random_range(100..20_000)
            );
            let linked = self.rng.random_bool(0.8);
            per_service[svc].push(LogRecord {
                time_unix_nano: self.now_ns,
                observed_time_unix_nano: self.now_ns + 1_000_000,
                severity_number: sev,
                severity_text: text.into(),
                body: Some(AnyValue {
                    value: Some(Value::StringValue(body)),
                }),
                attributes: vec![
                    kv_str("http.request.method", method),
                    kv_str("http.route", route),
                    kv_int("http.response.status_code", status),
                    kv_str("code.function.name", "handle_request"),
                    kv_int("thread.id", self.rng.random_range(1..64)),
                ],
                dropped_attributes_count: 0,
                flags: if linked { 1 } else { 0 },
                trace_id: if linked { self.id::<16>() } else { vec![] },
                span_id: if linked { self.id::<8>() } else { vec![] },
                event_name: String::new(),
            });
        }
        let resource_logs = per_service
            .into_iter()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(svc, log_records)| ResourceLogs {
                resource: Some(self.resource(svc)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app.logger".into(),
                        ..Default::default()
                    }),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportLogsServiceRequest { resource_logs }
    }

    /// About `n_points` metric points covering all five OTLP types
    /// (gauge, monotonic and non-monotonic sums, explicit and exponential
    /// histograms, summaries), with exemplars on histograms.
    pub fn metrics(&mut self, n_points: usize) -> ExportMetricsServiceRequest {
        let mut resource_metrics = Vec::new();
        let mut made = 0;
        while made < n_points {
            self.now_ns += 10_000_000_000;
            for svc in 0..SERVICES.len() {
                let (metrics, n) = self.service_metrics();
                made += n;
                resource_metrics.push(ResourceMetrics {
                    resource: Some(self.resource(svc)),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "app.meter".into(),
                            ..Default::default()
                        }),
                        metrics,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                });
                if made >= n_points {
                    break;
                }
            }
        }
        ExportMetricsServiceRequest { resource_metrics }
    }

    fn service_metrics(&mut self) -> (Vec<Metric>, usize) {
        let t = self.now_ns;
        let start = t - 60_000_000_000;
        let metric = |name: &str, unit: &str, data: Data| Metric {
            name: name.into(),
            description: format!("{name} of the service"),
            unit: unit.into(),
            metadata: vec![],
            data: Some(data),
        };
        let numbers = |rng: &mut StdRng, int: bool| -> Vec<NumberDataPoint> {
            ROUTES
                .iter()
                .map(|(m, r)| NumberDataPoint {
                    attributes: vec![kv_str("http.request.method", *m), kv_str("http.route", *r)],
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    exemplars: vec![],
                    flags: 0,
                    value: Some(if int {
                        number_data_point::Value::AsInt(rng.random_range(0..1_000_000))
                    } else {
                        number_data_point::Value::AsDouble(rng.random_range(0.0..100.0))
                    }),
                })
                .collect()
        };
        let gauge = numbers(&mut self.rng, false);
        let counter = numbers(&mut self.rng, true);
        let updown = numbers(&mut self.rng, true);
        let bounds = vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
        let trace_id = self.id::<16>();
        let span_id = self.id::<8>();
        let hist: Vec<HistogramDataPoint> = ROUTES
            .iter()
            .map(|(m, r)| {
                let counts: Vec<u64> = (0..=bounds.len())
                    .map(|_| self.rng.random_range(0..100))
                    .collect();
                let count = counts.iter().sum();
                HistogramDataPoint {
                    attributes: vec![kv_str("http.request.method", *m), kv_str("http.route", *r)],
                    start_time_unix_nano: start,
                    time_unix_nano: t,
                    count,
                    sum: Some(count as f64 * 42.5),
                    bucket_counts: counts,
                    explicit_bounds: bounds.clone(),
                    exemplars: vec![opentelemetry_proto::tonic::metrics::v1::Exemplar {
                        filtered_attributes: vec![kv_str("user.id", "u-17")],
                        time_unix_nano: t - 1_000_000,
                        span_id: span_id.clone(),
                        trace_id: trace_id.clone(),
                        value: Some(
                            opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsDouble(
                                812.5,
                            ),
                        ),
                    }],
                    flags: 0,
                    min: Some(0.5),
                    max: Some(1800.0),
                }
            })
            .collect();
        let pos: Vec<u64> = (0..8).map(|_| self.rng.random_range(0..50)).collect();
        let neg: Vec<u64> = (0..2).map(|_| self.rng.random_range(0..5)).collect();
        let exp = ExponentialHistogramDataPoint {
            attributes: vec![kv_str("rpc.method", "Charge")],
            start_time_unix_nano: start,
            time_unix_nano: t,
            count: pos.iter().sum::<u64>() + neg.iter().sum::<u64>() + 3,
            sum: Some(1234.5),
            scale: 3,
            zero_count: 3,
            positive: Some(Buckets {
                offset: 10,
                bucket_counts: pos,
            }),
            negative: Some(Buckets {
                offset: -2,
                bucket_counts: neg,
            }),
            flags: 0,
            exemplars: vec![],
            min: Some(-1.5),
            max: Some(97.25),
            zero_threshold: 0.001,
        };
        let summary = SummaryDataPoint {
            attributes: vec![kv_str("queue", "orders")],
            start_time_unix_nano: start,
            time_unix_nano: t,
            count: 1000,
            sum: 5321.0,
            quantile_values: vec![
                ValueAtQuantile {
                    quantile: 0.5,
                    value: 4.2,
                },
                ValueAtQuantile {
                    quantile: 0.99,
                    value: 17.9,
                },
            ],
            flags: 0,
        };
        let n = gauge.len() + counter.len() + updown.len() + hist.len() + 2;
        let metrics = vec![
            metric(
                "process.cpu.utilization",
                "1",
                Data::Gauge(Gauge { data_points: gauge }),
            ),
            metric(
                "http.server.requests",
                "{request}",
                Data::Sum(Sum {
                    data_points: counter,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "db.client.connection.count",
                "{connection}",
                Data::Sum(Sum {
                    data_points: updown,
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: false,
                }),
            ),
            metric(
                "http.server.request.duration",
                "ms",
                Data::Histogram(Histogram {
                    data_points: hist,
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            ),
            metric(
                "rpc.server.duration",
                "ms",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![exp],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                }),
            ),
            metric(
                "queue.latency",
                "s",
                Data::Summary(Summary {
                    data_points: vec![summary],
                }),
            ),
        ];
        (metrics, n)
    }
}

/// splitmix64's output for `x`: 64 well-mixed bits, a seeded scramble
/// (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A tiny seeded generator ([`splitmix64`] over a counter) for tests and
/// benches that want their own randomness, independent of `rand`'s
/// algorithms and of the generators above: the same seed gives the same
/// numbers on every platform and release.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        let out = splitmix64(self.0);
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        out
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is below 2^-40 for the
    /// small `n` tests use).
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }
}

/// Nanoseconds since the Unix epoch now, for generators that must produce
/// data inside a receiver's accepted time window.
pub fn now_ns() -> u64 {
    use crate::Clock as _;
    u64::try_from(crate::SystemClock.now_nanos()).unwrap_or(0)
}

/// How many spans a request holds.
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// A loopback TCP port free right now, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The sum of a metric's samples in Prometheus text (every label set of
/// `name`; `name{labels}` for one of them), 0 when there are none.
pub fn prometheus_sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']) || name.ends_with('}'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One request of `spans` from service `service`.
pub fn service_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv_str("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One request of log `records` from service `service`.
pub fn service_logs_request(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv_str("service.name", service)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Readings of a process from Linux's `/proc`, for tests and benchmarks
/// that check memory and CPU (`None`: this process).
pub mod process {
    fn read(pid: Option<u32>, file: &str) -> String {
        let who = pid.map_or_else(|| "self".to_owned(), |p| p.to_string());
        std::fs::read_to_string(format!("/proc/{who}/{file}")).unwrap_or_default()
    }

    /// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`, `RssAnon:`),
    /// 0 when absent.
    pub fn status_kib(pid: Option<u32>, field: &str) -> u64 {
        read(pid, "status")
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(pid: Option<u32>) -> u64 {
        status_kib(pid, "VmRSS:") * 1024
    }

    /// CPU seconds used, user plus system (from `/proc/PID/stat`, in the
    /// kernel's 100 Hz ticks).
    pub fn cpu_secs(pid: Option<u32>) -> f64 {
        let stat = read(pid, "stat");
        // Fields after the command name, which is in parentheses; utime and
        // stime are fields 14 and 15, 12 and 13 after ")".
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_samples_are_matched_by_whole_name() {
        let text =
            "# HELP a_total x\na_total 2\na_total_more 5\nb{class=\"5xx\"} 3\nb{class=\"4xx\"} 4\n";
        assert_eq!(prometheus_sample(text, "a_total"), 2.0);
        assert_eq!(prometheus_sample(text, "b"), 7.0);
        assert_eq!(prometheus_sample(text, "b{class=\"5xx\"}"), 3.0);
        assert_eq!(prometheus_sample(text, "c"), 0.0);
    }

    #[test]
    fn process_readings_are_plausible() {
        assert!(process::rss_bytes(None) > 1 << 20);
        assert!(process::cpu_secs(None) >= 0.0);
        assert_eq!(process::status_kib(None, "NoSuchField:"), 0);
    }

    #[test]
    fn same_seed_same_data() {
        let a = Generator::new(7, 1_700_000_000_000_000_000).traces(100);
        let b = Generator::new(7, 1_700_000_000_000_000_000).traces(100);
        assert_eq!(a, b);
        let spans = span_count(&a);
        assert!((100..120).contains(&spans), "{spans}");
    }
}

/// A throwaway PostgreSQL server for tests of the shared catalog: Debian's
/// `postgresql` package (`/usr/lib/postgresql/<version>/bin`, or `initdb`
/// on the `PATH`), a fresh cluster in a temporary directory, listening on
/// a free loopback port. PostgreSQL refuses to run as root, so as root the
/// cluster belongs to the `postgres` user the package creates.
pub mod postgres {
    use std::{
        path::{Path, PathBuf},
        process::{Child, Command, Stdio},
        time::{Duration, Instant},
    };

    /// A running server; stopped (and its files removed) when dropped.
    #[derive(Debug)]
    pub struct Postgres {
        child: Child,
        dir: PathBuf,
        bin: PathBuf,
        root: bool,
        /// Its port on 127.0.0.1.
        pub port: u16,
    }

    impl Drop for Postgres {
        fn drop(&mut self) {
            // Through pg_ctl: as root, the child is `runuser`, and the
            // server its child.
            let data = self.dir.join("data").to_string_lossy().to_string();
            let _ = command(
                &self.bin.join("pg_ctl"),
                &["-D", &data, "stop", "-m", "immediate", "-w"],
                self.root,
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Postgres {
        /// A connection string for `database` as the superuser `ophion`.
        pub fn url(&self, database: &str) -> String {
            format!(
                "host=127.0.0.1 port={} user=ophion dbname={database}",
                self.port
            )
        }

        /// The server process's id.
        pub fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    /// A schema name of its own for each data directory (`t_` and a hash
    /// of its path), so a server reopened on a directory finds its tables
    /// and no two directories share them.
    pub fn schema_for(dir: &Path) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in dir.to_string_lossy().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        format!("t_{h:016x}")
    }

    /// Runs `sql` with `psql` on the database at `url`, stopping at the
    /// first error; panics (with psql's message) if it fails.
    pub fn psql(url: &str, sql: &str) {
        let out = psql_command(url, sql).output().expect("psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `psql` running `sql` on the database at `url`, stopping at the
    /// first error.
    fn psql_command(url: &str, sql: &str) -> Command {
        let mut c = Command::new(bin_dir().join("psql"));
        c.arg(url).args(["-v", "ON_ERROR_STOP=1", "-c", sql]);
        c
    }

    /// The directory holding `initdb` and `postgres`.
    fn bin_dir() -> PathBuf {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .collect();
        found.sort();
        if let Some(newest) = found.pop() {
            return newest;
        }
        let on_path = Command::new("sh")
            .args(["-c", "command -v initdb"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        on_path
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| {
                panic!("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
            })
    }

    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    /// `bin` with `args`, as the `postgres` user when running as root.
    fn command(bin: &Path, args: &[&str], root: bool) -> Command {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin).args(args);
            c
        } else {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    }

    /// Starts a fresh server with `databases` created; waits until it
    /// answers.
    pub fn start(databases: &[&str]) -> Postgres {
        let bin = bin_dir();
        let root = is_root();
        // Tests of one process start servers at once: a counter keeps
        // their directories apart.
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "ophion-pg-{}-{n}-{}",
            std::process::id(),
            super::now_ns()
        ));
        std::fs::create_dir_all(&dir).expect("postgres dir");
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot give {} to the postgres user", dir.display());
        }
        let data = dir.join("data");
        let data_s = data.to_string_lossy().to_string();
        let out = command(
            &bin.join("initdb"),
            &["-D", &data_s, "-U", "ophion", "--auth=trust", "-E", "UTF8"],
            root,
        )
        .output()
        .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::free_port();
        let port_s = port.to_string();
        let sockets = dir.to_string_lossy().to_string();
        let child = command(
            &bin.join("postgres"),
            &[
                "-D",
                &data_s,
                "-p",
                &port_s,
                "-k",
                &sockets,
                "-c",
                "listen_addresses=127.0.0.1",
                // Tests do not need the server's own durability.
                "-c",
                "fsync=off",
            ],
            root,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres");
        let server = Postgres {
            child,
            dir,
            bin: bin.clone(),
            root,
            port,
        };
        let admin = server.url("postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !psql_command(&admin, "SELECT 1")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        for db in databases {
            psql(&admin, &format!("CREATE DATABASE {db}"));
        }
        server
    }
}

/// moto's S3 server for tests (`moto_server` beside the test venv's
/// Python, `OPHION_PYTHON`, which `scripts/test` creates).
pub mod moto {
    use std::{
        io::{Read as _, Write as _},
        process::{Child, Command, Stdio},
        time::{Duration, Instant},
    };

    /// A running moto server; killed when dropped.
    #[derive(Debug)]
    pub struct Moto {
        child: Child,
        /// Its base URL, `http://127.0.0.1:<port>`.
        pub url: String,
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// `PUT /bucket` over plain HTTP/1.1; whether moto answered 200.
    fn create_bucket(port: u16, bucket: &str) -> bool {
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let sent = write!(
            conn,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut answer = String::new();
        sent.is_ok()
            && conn.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    /// Starts moto on a free loopback port with extra environment `env`
    /// (e.g. `INITIAL_NO_AUTH_ACTION_COUNT`) and creates `bucket`.
    pub fn start(bucket: &str, env: &[(&str, &str)]) -> Moto {
        let python = std::env::var("OPHION_PYTHON").unwrap_or_else(|_| {
            panic!(
                "OPHION_PYTHON is not set: run scripts/test, which installs moto[server] in a venv"
            )
        });
        let bin = std::path::Path::new(&python).with_file_name("moto_server");
        let port = super::free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !create_bucket(port, bucket) {
            assert!(
                Instant::now() < deadline,
                "moto did not start on {}",
                moto.url
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }
}
