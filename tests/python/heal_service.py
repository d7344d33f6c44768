"""A small HTTP service for the auto-healing test: it serves GET /work,
calls itself ten times a second, and sends a server span per request to an
Ophion receiver with the OpenTelemetry SDK (OTLP/HTTP). POST /break makes
every later request fail (status 500, an error span) until the process
restarts. A file `stay-broken` in its state directory makes it start broken
(a restart that does not fix it).

Usage: heal_service.py --service NAME --otlp http://HOST:PORT --state-dir DIR
Writes DIR/pid and DIR/port (the port it listens on, chosen by the OS).
"""
import argparse
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

args = argparse.ArgumentParser()
args.add_argument("--service", required=True)
args.add_argument("--otlp", required=True)
args.add_argument("--state-dir", required=True)
a = args.parse_args()

provider = TracerProvider(resource=Resource.create({"service.name": a.service}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=a.otlp + "/v1/traces"), schedule_delay_millis=200))
tracer = provider.get_tracer("heal-service")
state = {"broken": os.path.exists(os.path.join(a.state_dir, "stay-broken"))}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        with tracer.start_as_current_span("GET /work", kind=SpanKind.SERVER) as span:
            span.set_attribute("http.route", "/work")
            code = 500 if state["broken"] else 200
            span.set_attribute("http.response.status_code", code)
            if code >= 500:
                span.set_status(Status(StatusCode.ERROR, "broken"))
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"broken\n" if code >= 500 else b"ok\n")

    def do_POST(self):
        if self.path == "/break":
            state["broken"] = True
        self.send_response(204)
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
with open(os.path.join(a.state_dir, "port"), "w") as f:
    f.write(str(port))
with open(os.path.join(a.state_dir, "pid"), "w") as f:
    f.write(str(os.getpid()))


def traffic():
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/work", timeout=2).read()
        except Exception:
            pass
        time.sleep(0.1)


threading.Thread(target=traffic, daemon=True).start()
server.serve_forever()
