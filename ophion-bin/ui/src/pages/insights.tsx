// Insights: what the server's watch found (anomalies drawn on their
// series with the expected band and the anomalous point marked), the
// root-cause candidates and tips of the page's range with their evidence,
// and a forecast with its interval for any service's RED series or metric.
// The forecast's choices are in the URL, so a view can be shared.
import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { ENTRY_SPANS, get, send, sqlOr, toIso } from "../api";
import { TimeChart } from "../chart";
import { Link, setParams, useRoute } from "../router";
import { useRange } from "../time";
import { Table, View, time } from "../ui";

type Insight = {
  kind: string; severity: string; service: string; operation?: string | null; metric?: string; title: string; detail: string;
  evidence: string[]; from: string; to: string; score?: number; value?: number; expected_low?: number; expected_high?: number;
};

/** The watch's RED series (ophion_ai::red::METRICS) as SQL per minute:
 * from the rollups, and from the spans where the rollups do not cover
 * the range. */
const fromSpans = (measure: string, svc: string, op: string) =>
  `SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, ${measure} AS v FROM spans WHERE service_name = ${svc}${op ? ` AND name = ${op}` : ` AND ${ENTRY_SPANS}`} AND start_time >= $from AND start_time < $to GROUP BY 1 ORDER BY 1`;
const RED: Record<string, (svc: string, op: string) => [string, string]> = {
  requests: (svc, op) => [
    `SELECT minute, CAST(sum(spans) AS DOUBLE) AS v FROM span_minutes WHERE service_name = ${svc}${op ? ` AND name = ${op}` : " AND entry"} AND minute >= $from AND minute < $to GROUP BY 1 ORDER BY 1`,
    fromSpans("CAST(count(*) AS DOUBLE)", svc, op),
  ],
  error_ratio: (svc, op) => [
    `SELECT minute, CAST(sum(errors) AS DOUBLE) / sum(spans) AS v FROM span_minutes WHERE service_name = ${svc}${op ? ` AND name = ${op}` : " AND entry"} AND minute >= $from AND minute < $to GROUP BY 1 ORDER BY 1`,
    fromSpans("CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) / count(*)", svc, op),
  ],
  p95_ms: (svc, op) => {
    const q = fromSpans("approx_percentile_cont(duration_ns, 0.95) / 1e6", svc, op);
    return [q, q];
  },
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
        const [rollups, spans] = red(lit(i.service), i.operation ? lit(i.operation) : "");
        const d = await sqlOr(rollups, spans, { from, to });
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

type Cause = { service: string; operation: string; kind: string; score: number; evidence: string[] };
type Tip = { kind: string; severity: string; service: string; operation: string; title: string; detail: string; evidence: string[] };
type Analysis = { root_causes: Cause[]; tips: Tip[] };
type Forecast = { period_minutes: number | null; history: [string, number | null][]; forecast: { time: string; value: number; lower: number; upper: number }[] };

const TRACE_ID = /\b[0-9a-f]{32}\b/g;

/** Evidence lines, with each trace id a link to its trace. */
function Evidence({ lines }: { lines: string[] }) {
  return (
    <ul className="evidence">
      {lines.map((line, i) => {
        const parts: ReactNode[] = [];
        let at = 0;
        for (const m of line.matchAll(TRACE_ID)) {
          parts.push(line.slice(at, m.index), <Link key={m.index} to={`/traces/${m[0]}`}>{m[0].slice(0, 12)}…</Link>);
          at = (m.index ?? 0) + m[0].length;
        }
        parts.push(line.slice(at));
        return <li key={i}>{parts}</li>;
      })}
    </ul>
  );
}

/** Root-cause candidates of the page's range, best first, each with its score drawn and its evidence. */
function Causes() {
  const r = useRange();
  const a = useQuery({
    queryKey: ["analysis", r.from, r.to, r.tick],
    queryFn: () => send<Analysis>("POST", "/api/v1/ai/analyze", { start: toIso(r.from), end: toIso(r.to) }),
  });
  return (
    <View q={a} isEmpty={(d) => d.root_causes.length === 0 && d.tips.length === 0} empty="No root-cause candidates or tips in this range.">
      {(d) => (
        <>
          {d.root_causes.length > 0 && <h3>Root-cause candidates</h3>}
          <div className="grid">
            {d.root_causes.slice(0, 6).map((c, i) => (
              <div className="card" key={i} data-testid="root-cause">
                <h4>
                  {i + 1}. {c.service} · {c.operation} <span className="muted">({c.kind.replaceAll("_", " ")})</span>
                </h4>
                <meter min={0} max={1} value={c.score} aria-label={`score ${c.score.toFixed(2)}`} /> {c.score.toFixed(2)}
                <Evidence lines={c.evidence} />
              </div>
            ))}
          </div>
          {d.tips.length > 0 && <h3>Tips</h3>}
          {d.tips.slice(0, 20).map((t, i) => (
            <details key={i} className="card" data-testid="tip">
              <summary>
                <span className={t.severity === "critical" ? "bad" : "warn"}>{t.severity}</span> {t.title}
              </summary>
              <p>{t.detail}</p>
              <Evidence lines={t.evidence} />
            </details>
          ))}
        </>
      )}
    </View>
  );
}

const RED_SERIES = ["requests", "error_ratio", "p95_ms"];

/** A series' last six hours and the next hour's forecast with its 95% interval. */
function ForecastView() {
  const { params } = useRoute();
  const r = useRange();
  const service = params.get("fservice") ?? "";
  const series = params.get("fseries") ?? "requests";
  const services = useQuery({ queryKey: ["services", r.from, r.to], queryFn: () => get<{ services: { name: string }[] }>("/api/v1/services", { from: r.from, to: r.to }) });
  const f = useQuery({
    queryKey: ["forecast", service, series],
    enabled: !!service || !RED_SERIES.includes(series),
    queryFn: () => get<Forecast>("/api/v1/ai/forecast", { series, service, from: "now-6h", to: "now", horizon: 60 }),
  });
  return (
    <>
      <div className="row">
        <label>
          Service
          <select aria-label="Forecast service" value={service} onChange={(e) => setParams({ fservice: e.target.value || undefined })}>
            <option value="">pick a service…</option>
            {(services.data?.services ?? []).map((s) => (
              <option key={s.name}>{s.name}</option>
            ))}
          </select>
        </label>
        <label>
          Series
          <input
            aria-label="Forecast series"
            list="forecast-series"
            defaultValue={series}
            onBlur={(e) => setParams({ fseries: e.target.value || undefined })}
            onKeyDown={(e) => e.key === "Enter" && setParams({ fseries: e.currentTarget.value || undefined })}
          />
          <datalist id="forecast-series">
            {RED_SERIES.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
        </label>
      </div>
      {!service && RED_SERIES.includes(series) ? (
        <p className="state">Pick a service to forecast its {series}, or name a metric.</p>
      ) : (
        <View q={f} isEmpty={(d) => d.history.every((h) => h[1] === null)} empty="No history to forecast from in the last six hours.">
          {(d) => (
            <div data-testid="forecast">
              <TimeChart
                height={220}
                series={[
                  { label: series, points: d.history.map(([t, v]) => [Date.parse(t), v]) },
                  { label: "forecast", points: d.forecast.map((p) => [Date.parse(p.time), p.value]) },
                ]}
                band={d.forecast.map((p) => ({ t: Date.parse(p.time), low: p.lower, high: p.upper }))}
              />
              <p className="state">
                {d.period_minutes ? `Repeats every ${d.period_minutes} minutes; ` : "No cycle found; "}
                in an hour: {d.forecast.at(-1)?.value.toFixed(2)} (95% between {d.forecast.at(-1)?.lower.toFixed(2)} and {d.forecast.at(-1)?.upper.toFixed(2)}).
              </p>
            </div>
          )}
        </View>
      )}
    </>
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
      <h3>Forecast</h3>
      <ForecastView />
      <Causes />
    </>
  );
}
