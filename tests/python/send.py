"""Sends traces, metrics (every instrument kind, an exponential histogram
included) and logs to an Ophion receiver with the Python OpenTelemetry SDK,
then prints what it sent as JSON for the Rust test to check.

Usage: send.py grpc HOST:PORT | send.py http http://HOST:PORT
"""
import json
import logging
import sys

from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

transport, target = sys.argv[1], sys.argv[2]
if transport == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    spans = OTLPSpanExporter(endpoint=target, insecure=True)
    metrics = OTLPMetricExporter(endpoint=target, insecure=True)
    logs = OTLPLogExporter(endpoint=target, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    spans = OTLPSpanExporter(endpoint=target + "/v1/traces")
    metrics = OTLPMetricExporter(endpoint=target + "/v1/metrics")
    logs = OTLPLogExporter(endpoint=target + "/v1/logs")

service = "py-svc-" + transport
resource = Resource.create({"service.name": service, "service.version": "3.2.1", "host.name": "py-host", "team": "sre"})

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
log = logging.getLogger("py-app")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(logger_provider=logger_provider))

tracer = tracer_provider.get_tracer("py-tracer", "0.9")
with tracer.start_as_current_span("py-parent") as parent:
    with tracer.start_as_current_span(
        "POST /orders",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/orders", "http.response.status_code": 500,
                    "app.retries": 2, "app.ratio": 0.5, "app.flag": False, "app.list": ["x", "y"]},
    ) as child:
        child.add_event("validation", {"field": "email"})
        child.set_status(Status(StatusCode.ERROR, "order rejected"))
        log.warning("order rejected for customer %s", "c-7", extra={"order.total": 12.5})
    ids = {"trace_id": format(child.get_span_context().trace_id, "032x"),
           "child_span_id": format(child.get_span_context().span_id, "016x"),
           "parent_span_id": format(parent.get_span_context().span_id, "016x")}

reader = PeriodicExportingMetricReader(metrics, export_interval_millis=60_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader],
                               views=[View(instrument_name="py.exp", aggregation=ExponentialBucketHistogramAggregation())])
meter = meter_provider.get_meter("py-meter", "1.0")
attrs = {"route": "/orders"}
meter.create_counter("py.counter", unit="1", description="count").add(5, attrs)
meter.create_up_down_counter("py.updown").add(-2, attrs)
meter.create_histogram("py.hist", unit="ms").record(42.0, attrs)
exp = meter.create_histogram("py.exp")
for v in (1.0, 2.0, 4.0):
    exp.record(v, attrs)
meter.create_gauge("py.gauge").set(7.5, attrs)
meter.create_observable_counter("py.obs.counter", callbacks=[lambda _o: [Observation(9, attrs)]])
meter.create_observable_gauge("py.obs.gauge", callbacks=[lambda _o: [Observation(3.5, attrs)]])
meter.create_observable_up_down_counter("py.obs.updown", callbacks=[lambda _o: [Observation(-4, attrs)]])

tracer_provider.shutdown()
logger_provider.shutdown()
meter_provider.shutdown()
print(json.dumps({"service": service, **ids}))
