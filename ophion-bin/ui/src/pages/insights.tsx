// Insights: what the server's watch found. Anomalies are drawn on their
// series with the expected band and the anomalous point marked.
import { useQuery } from "@tanstack/react-query";
import { get, sql } from "../api";
import { TimeChart } from "../chart";
import { Table, View, time } from "../ui";

type Insight = {
  kind: string; severity: string; service: string; operation?: string | null; metric?: string; title: string; detail: string;
  evidence: string[]; from: string; to: string; score?: number; value?: number; expected_low?: number; expected_high?: number;
};

/** The watch's RED series (ophion_ai::red::METRICS) as SQL per minute. */
const RED: Record<string, (svc: string, op: string) => string> = {
  requests: (svc, op) =>
    `SELECT minute, CAST(sum(spans) AS DOUBLE) AS v FROM span_minutes WHERE service_name = ${svc}${op ? ` AND name = ${op}` : " AND entry"} AND minute >= $from AND minute < $to GROUP BY 1 ORDER BY 1`,
  error_ratio: (svc, op) =>
    `SELECT minute, CAST(sum(errors) AS DOUBLE) / sum(spans) AS v FROM span_minutes WHERE service_name = ${svc}${op ? ` AND name = ${op}` : " AND entry"} AND minute >= $from AND minute < $to GROUP BY 1 ORDER BY 1`,
  p95_ms: (svc, op) =>
    `SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, approx_percentile_cont(duration_ns, 0.95) / 1e6 AS v FROM spans WHERE service_name = ${svc}${op ? ` AND name = ${op}` : " AND (kind IN ('server', 'consumer') OR parent_span_id IS NULL)"} AND start_time >= $from AND start_time < $to GROUP BY 1 ORDER BY 1`,
};

function AnomalyChart({ i }: { i: Insight }) {
  const at = Date.parse(i.from);
  const from = new Date(at - 60 * 60e3).toISOString();
  const to = new Date(at + 15 * 60e3).toISOString();
  const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
  const red = i.metric ? RED[i.metric] : undefined;
  const q = useQuery({
    queryKey: ["insight-series", i.service, i.operation, i.metric, i.from],
    enabled: !!i.metric,
    queryFn: async (): Promise<[number, number][]> => {
      if (red) {
        const d = await sql(red(lit(i.service), i.operation ? lit(i.operation) : ""), { from, to });
        return d.rows.map((r) => [Date.parse(String(r[0])), Number(r[1])]);
      }
      const d = await get<{ series: { points: [string, number | null][] }[] }>("/api/v1/metrics/query", { name: i.metric ?? "", service: i.service, from, to });
      return (d.series[0]?.points ?? []).filter((p) => p[1] !== null).map(([t, v]) => [Date.parse(t), v as number]);
    },
  });
  return (
    <View q={q} isEmpty={(d) => d.length === 0} empty="The series is no longer stored.">
      {(d) => (
        <TimeChart
          height={180}
          series={[{ label: i.metric ?? "value", points: d }]}
          band={i.expected_low !== undefined ? [{ t: at, low: i.expected_low, high: i.expected_high ?? i.expected_low }] : undefined}
          marks={i.value !== undefined ? [[at, i.value]] : d.filter(([t]) => t === at)}
        />
      )}
    </View>
  );
}

export default function Insights() {
  const q = useQuery({ queryKey: ["insights"], queryFn: () => get<{ insights: Insight[] }>("/api/v1/ai/insights"), refetchInterval: 30_000 });
  return (
    <>
      <h2>Insights</h2>
      <View q={q} isEmpty={(d) => d.insights.length === 0} empty="Nothing unusual found in the last 15 minutes.">
        {(d) => (
          <>
            <div className="grid">
              {d.insights
                .filter((i) => i.kind === "anomaly")
                .slice(0, 12)
                .map((i, n) => (
                  <div className="card" key={n} data-testid="anomaly">
                    <h3 className={i.severity === "critical" ? "bad" : "warn"}>{i.title}</h3>
                    <p>{i.detail}</p>
                    {i.metric ? <AnomalyChart i={i} /> : null}
                  </div>
                ))}
            </div>
            <h3>All findings</h3>
            <Table
              testid="insights"
              head={["When", "Kind", "Severity", "Service", "Finding", "Detail"]}
              rows={d.insights.map((i) => [time(i.from), i.kind, <span className={i.severity === "critical" ? "bad" : "warn"}>{i.severity}</span>, i.service, i.title, i.detail])}
            />
          </>
        )}
      </View>
    </>
  );
}
