#!/usr/bin/env python3
"""A/B run of two (or more) ophion-server binaries in one session.

Each binary, in alternation for --rounds rounds, is started on a fresh data
directory (pinned to core 0; this generator runs on core 1), left idle for
two seconds (idle RSS), sent --spans spans as OTLP/HTTP protobuf in batches
of 1,000 from 4 connections (server CPU per span, counted from
/proc/PID/stat until the server has been idle for a second), then asked
three API queries 15 times each (median wall time). Prints one row per run
and the medians per binary.

Usage: scripts/ab-server.py --server old=/path/a --server new=/path/b
       [--spans 300000] [--rounds 2]
Needs: the Python OpenTelemetry SDK venv (scripts/test makes it).
"""
import argparse, http.client, json, os, random, shutil, statistics, subprocess
import sys, tempfile, threading, time, urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

PASSWORD = "ab-bench-password"
SERVICES = ["frontend", "cart", "checkout", "payment", "inventory", "shipping"]


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v))


def payload(rng, now_ns, n=1000):
    """n spans in traces of 5, each service a resource."""
    by_service = {s: [] for s in SERVICES}
    for t in range(n // 5):
        trace = rng.randbytes(16)
        start = now_ns - rng.randrange(60_000_000_000)
        parent = b""
        for depth in range(5):
            sid = rng.randbytes(8)
            svc = SERVICES[(t + depth) % len(SERVICES)]
            dur = rng.randrange(1_000_000, 50_000_000)
            by_service[svc].append(Span(
                trace_id=trace, span_id=sid, parent_span_id=parent,
                name=f"GET /api/{svc}/{depth}", kind=2 if depth == 0 else 3,
                start_time_unix_nano=start, end_time_unix_nano=start + dur,
                attributes=[kv("http.route", f"/api/{svc}"), kv("app.user_id", str(rng.randrange(10_000)))]))
            parent = sid
    req = ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource=Resource(attributes=[kv("service.name", s)]),
                      scope_spans=[ScopeSpans(spans=spans)])
        for s, spans in by_service.items() if spans])
    return req.SerializeToString(), req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def post(host, port, path, body, headers):
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def run(label, binary, spans, payloads):
    data = tempfile.mkdtemp(prefix="ab-ophion-")
    env = dict(os.environ, OPHION_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn",
               OPHION__LIMITS__API_PER_IP="0")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", binary, "--data-dir", data, "--grpc-addr", "127.0.0.1:0",
         "--otlp-http-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        addrs = json.loads(proc.stdout.readline())
        otlp_host, otlp_port = addrs["otlp_http"].rsplit(":", 1)
        api = "http://" + addrs["api"]
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(api + "/readyz").status == 200:
                    break
            except Exception:
                time.sleep(0.1)
        time.sleep(2)
        idle = rss_mib(proc.pid)
        batches = spans // 1000
        sent = [0]
        lock = threading.Lock()

        def sender(k):
            c = http.client.HTTPConnection(otlp_host, int(otlp_port), timeout=60)
            i = k
            while True:
                with lock:
                    if sent[0] >= batches:
                        break
                    sent[0] += 1
                body = payloads[i % len(payloads)][0]
                while True:
                    c.request("POST", "/v1/traces", body=body,
                              headers={"Content-Type": "application/x-protobuf"})
                    r = c.getresponse()
                    r.read()
                    if r.status == 200:
                        break
                    time.sleep(0.05)
                i += 4
            c.close()

        before = cpu_secs(proc.pid)
        t0 = time.time()
        threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        last = cpu_secs(proc.pid)
        while True:
            time.sleep(1.0)
            now = cpu_secs(proc.pid)
            if now - last < 0.02:
                break
            last = now
        us_per_span = (last - before) / (batches * 1000) * 1e6
        status, body = post(addrs["api"].split(":")[0], int(addrs["api"].rsplit(":", 1)[1]),
                            "/api/v1/auth/login",
                            json.dumps({"username": "admin", "password": PASSWORD}),
                            {"Content-Type": "application/json"})
        token = json.loads(body)["token"]
        auth = {"Authorization": "Bearer " + token}
        trace_id = payloads[0][1]
        queries = {
            "trace by id": ("GET", f"/api/v1/traces/{trace_id}", None),
            "services (RED)": ("GET", "/api/v1/services?from=now-2h", None),
            "SQL p95 by service": ("POST", "/api/v1/query", json.dumps({
                "sql": "SELECT service_name, count(*) AS n, approx_percentile_cont(duration_ns, 0.95) AS p95 "
                       "FROM spans GROUP BY service_name ORDER BY n DESC"})),
        }
        medians = {}
        host, port = addrs["api"].rsplit(":", 1)
        for name, (method, path, qbody) in queries.items():
            times = []
            for _ in range(15):
                c = http.client.HTTPConnection(host, int(port), timeout=60)
                t = time.perf_counter()
                c.request(method, path, body=qbody,
                          headers=dict(auth, **({"Content-Type": "application/json"} if qbody else {})))
                r = c.getresponse()
                r.read()
                times.append((time.perf_counter() - t) * 1000)
                c.close()
                assert r.status == 200, (name, r.status)
            medians[name] = statistics.median(times)
        return {"label": label, "idle_rss_mib": idle, "us_per_span": us_per_span,
                "spans_per_s": batches * 1000 / wall, **{f"{k} ms": v for k, v in medians.items()}}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", action="append", required=True, help="label=path")
    ap.add_argument("--spans", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})
    rng = random.Random(7)
    now = time.time_ns()
    payloads = [payload(rng, now) for _ in range(40)]
    rows = []
    for r in range(a.rounds):
        for s in a.server:
            label, path = s.split("=", 1)
            row = run(label, path, a.spans, payloads)
            rows.append(row)
            print(json.dumps({"round": r + 1, **{k: round(v, 3) if isinstance(v, float) else v
                                                 for k, v in row.items()}}), flush=True)
    print("medians per binary:")
    for s in a.server:
        label = s.split("=", 1)[0]
        mine = [x for x in rows if x["label"] == label]
        keys = [k for k in mine[0] if k != "label"]
        print(label, {k: round(statistics.median(x[k] for x in mine), 3) for k in keys})


if __name__ == "__main__":
    sys.exit(main())
