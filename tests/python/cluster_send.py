"""Sends the same spans every run (seeded ids, fixed times) with the Python
OpenTelemetry SDK over OTLP/gRPC, each trace to one of the given
endpoints in turn, and prints the spans each export acknowledged as JSON:
{"acked": [[trace_id_hex, span_id_hex], ...], "failed": n}.

Usage: cluster_send.py SEED TRACES HOST:PORT[,HOST:PORT...] BASE_NS
"""
import json
import random
import sys

from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

seed, traces, targets, base = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4])


class Seeded(IdGenerator):
    def __init__(self, rng):
        self.rng = rng

    def generate_span_id(self):
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self):
        return self.rng.getrandbits(128) or 1


acked, failed = [], [0]


class Recording(SpanExporter):
    """Delegates, and records what the server acknowledged."""

    def __init__(self, inner):
        self.inner = inner

    def export(self, spans):
        result = self.inner.export(spans)
        if result == SpanExportResult.SUCCESS:
            acked.extend([format(s.context.trace_id, "032x"), format(s.context.span_id, "016x")] for s in spans)
        else:
            failed[0] += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()


rng = random.Random(seed)
services = ["checkout", "payments", "inventory", "shipping"]
ids = Seeded(rng)  # one id stream for the run, whatever the endpoints
providers = {}
for i, target in enumerate(targets):
    for service in services:
        p = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=ids)
        p.add_span_processor(BatchSpanProcessor(Recording(OTLPSpanExporter(endpoint=target, insecure=True)),
                                                max_export_batch_size=256))
        providers[(i, service)] = p

for t in range(traces):
    service = services[t % len(services)]
    tracer = providers[(t % len(targets), service)].get_tracer("cluster-test")
    start = base + t * 1_000_000_000
    root = tracer.start_span(f"GET /{service}/{t % 7}", kind=SpanKind.SERVER, start_time=start,
                             attributes={"http.request.method": "GET", "app.shard": t % 5})
    children = 1 + t % 6
    for c in range(children):
        child = tracer.start_span(f"query-{c % 3}", kind=SpanKind.CLIENT, start_time=start + 1000 * (c + 1),
                                  context=otel_trace.set_span_in_context(root),
                                  attributes={"db.system": "postgresql"})
        if (t + c) % 11 == 0:
            child.set_status(Status(StatusCode.ERROR, "deadlock"))
        child.end(end_time=start + 1000 * (c + 1) + 50_000 * (1 + (t * 7 + c) % 13))
    root.end(end_time=start + 2_000_000 + 10_000 * (t % 17))

for p in providers.values():
    p.force_flush()
    p.shutdown()
print(json.dumps({"acked": acked, "failed": failed[0]}))
