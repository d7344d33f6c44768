// Services: rate, errors and latency per service with sparklines, and the
// service map coloured by health.
import { useQuery } from "@tanstack/react-query";
import { ENTRY_SPANS, get, sqlOr } from "../api";
import { Sparkline } from "../chart";
import { Link, navigate } from "../router";
import { useRange } from "../time";
import { Table, View, dur, pct } from "../ui";

type Service = { name: string; requests: number; errors: number; error_ratio: number; rate_per_sec: number; p50_ns: number; p95_ns: number; p99_ns: number };
type Edge = { caller: string; callee: string; calls: number; errors: number; p95_ns: number };

function health(ratio: number): string {
  return ratio >= 0.05 ? "var(--bad)" : ratio >= 0.01 ? "var(--warn)" : "var(--good)";
}

/** Services laid out in columns by call depth (callers left, callees right). */
function ServiceMap({ nodes, edges, ratios }: { nodes: string[]; edges: Edge[]; ratios: Map<string, number> }) {
  const depth = new Map<string, number>(nodes.map((n) => [n, 0]));
  for (let i = 0; i < nodes.length; i++) {
    for (const e of edges) {
      const d = (depth.get(e.caller) ?? 0) + 1;
      if (d > (depth.get(e.callee) ?? 0) && d < nodes.length) depth.set(e.callee, d);
    }
  }
  const cols = new Map<number, string[]>();
  for (const n of nodes) cols.set(depth.get(n)!, [...(cols.get(depth.get(n)!) ?? []), n]);
  const colCount = Math.max(...cols.keys(), 0) + 1;
  const rowCount = Math.max(...[...cols.values()].map((c) => c.length), 1);
  const W = Math.max(colCount * 190, 300);
  const H = rowCount * 70 + 20;
  const pos = new Map<string, [number, number]>();
  for (const [d, list] of cols) list.forEach((n, i) => pos.set(n, [40 + d * 190, 35 + i * 70 + ((rowCount - list.length) * 70) / 2]));
  return (
    <div className="table-wrap">
      <svg className="map" width={W} height={H} role="img" aria-label="Service map" data-testid="service-map">
        {edges.map((e) => {
          const [x1, y1] = pos.get(e.caller)!;
          const [x2, y2] = pos.get(e.callee)!;
          return (
            <g key={`${e.caller}>${e.callee}`}>
              <line x1={x1} y1={y1} x2={x2} y2={y2} strokeWidth={1 + Math.min(4, Math.log10(e.calls + 1))} style={{ stroke: health(e.calls ? e.errors / e.calls : 0) }} />
              <title>{`${e.caller} → ${e.callee}: ${e.calls} calls, ${e.errors} errors, p95 ${dur(e.p95_ns)}`}</title>
            </g>
          );
        })}
        {nodes.map((n) => {
          const [x, y] = pos.get(n)!;
          return (
            <g key={n} tabIndex={0} role="link" aria-label={`Traces of ${n}`} style={{ cursor: "pointer" }}
              onClick={() => navigate(`/traces?service=${encodeURIComponent(n)}`)}
              onKeyDown={(ev) => ev.key === "Enter" && navigate(`/traces?service=${encodeURIComponent(n)}`)}>
              <circle cx={x} cy={y} r={12} style={{ fill: health(ratios.get(n) ?? 0) }} />
              <text x={x + 16} y={y + 4}>{n}</text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

export default function Services() {
  const r = useRange();
  const services = useQuery({
    queryKey: ["services", r.from, r.to, r.tick],
    queryFn: () => get<{ services: Service[] }>("/api/v1/services", { from: r.from, to: r.to }),
  });
  // The map joins spans with their parents, the dearest query of the
  // page: asked once the table is on screen, so it never delays it.
  const graph = useQuery({
    queryKey: ["graph", r.from, r.to, r.tick],
    queryFn: () => get<{ nodes: string[]; edges: Edge[] }>("/api/v1/service-graph", { from: r.from, to: r.to }),
    enabled: !services.isPending,
  });
  const sparks = useQuery({
    queryKey: ["sparks", r.from, r.to, r.tick],
    queryFn: () =>
      sqlOr(
        "SELECT service_name, minute, CAST(sum(spans) AS DOUBLE) AS n FROM service_minutes WHERE minute >= $from AND minute < $to GROUP BY 1, 2 ORDER BY 1, 2",
        `SELECT service_name, date_bin(INTERVAL '1 minute', start_time) AS minute, CAST(count(*) AS DOUBLE) AS n FROM spans WHERE ${ENTRY_SPANS} AND start_time >= $from AND start_time < $to GROUP BY 1, 2 ORDER BY 1, 2`,
        r,
      ),
  });
  const lines = new Map<string, number[]>();
  for (const row of sparks.data?.rows ?? []) {
    const k = String(row[0]);
    lines.set(k, [...(lines.get(k) ?? []), Number(row[2])]);
  }
  const ratios = new Map((services.data?.services ?? []).map((s) => [s.name, s.error_ratio]));
  return (
    <>
      <h2>Services</h2>
      <View q={services} isEmpty={(d) => d.services.length === 0} empty="No services sent spans in this range.">
        {(d) => (
          <Table
            testid="services"
            head={["Service", "Requests/s", "Requests", "Errors", "p50", "p95", "p99", "Rate"]}
            rows={d.services.map((s) => [
              <Link to={`/traces?service=${encodeURIComponent(s.name)}`}>{s.name}</Link>,
              s.rate_per_sec.toFixed(2),
              s.requests,
              <span style={{ color: health(s.error_ratio) }}>{pct(s.error_ratio)}</span>,
              dur(s.p50_ns),
              dur(s.p95_ns),
              dur(s.p99_ns),
              <Sparkline values={lines.get(s.name) ?? []} />,
            ])}
          />
        )}
      </View>
      <h2>Service map</h2>
      <View q={graph} isEmpty={(g) => g.nodes.length === 0} empty="No calls between services in this range.">
        {(g) => <ServiceMap nodes={g.nodes} edges={g.edges} ratios={ratios} />}
      </View>
    </>
  );
}
