// One dashboard panel or SQL result: a query's rows as a time series,
// bars, a single stat or a table; or a metric as the builder states it,
// drawn the way the metrics explorer draws it.
import { useQuery } from "@tanstack/react-query";
import { get, type Rows } from "../api";
import { TimeChart, type Series } from "../chart";
import { useRange } from "../time";
import { Table, View, cell } from "../ui";

/** A metric as the builder states it (the API's `MetricPanel`). */
export type MetricQuery = { name: string; aggregation?: string; group_by?: string[]; service?: string };
/** The aggregations `GET /api/v1/metrics/query` takes. */
export const AGGS = ["avg", "sum", "min", "max", "rate", "p50", "p95", "p99"];
/** A dashboard panel: SQL or a built metric. */
export type Panel = { title: string; chart: string; sql?: string; metric?: MetricQuery };
type Found = { series: { group: Record<string, string>; points: [string, number | null][] }[] };

/** What a metric query is called on a chart. */
export const metricLabel = (m: MetricQuery) => `${m.aggregation ?? "auto"}(${m.name})${m.service ? ` of ${m.service}` : ""}`;

/** A metric over the page's range, as series (one per group). */
export function MetricChart({ m, chart = "timeseries" }: { m: MetricQuery; chart?: string }) {
  const r = useRange();
  const q = useQuery({
    queryKey: ["metric", m.name, m.aggregation, m.group_by?.join(","), m.service, r.from, r.to, r.tick],
    queryFn: () => get<Found>("/api/v1/metrics/query", { name: m.name, aggregation: m.aggregation, group_by: m.group_by?.join(","), service: m.service, from: r.from, to: r.to }),
    enabled: !!m.name,
  });
  return (
    <View q={q} isEmpty={(d) => d.series.length === 0} empty="No points of this metric in this range.">
      {(d) => {
        const series = d.series.map((s) => ({
          label: Object.entries(s.group).map(([k, v]) => `${k}=${v}`).join(", ") || m.name,
          points: s.points.map(([t, v]): [number, number | null] => [Date.parse(t), v]),
        }));
        if (chart === "stat") {
          const last = series.flatMap((s) => s.points.filter((p) => p[1] !== null)).sort((a, b) => b[0] - a[0])[0];
          return <p style={{ fontSize: 32, margin: "12px 0" }}>{cell(last?.[1] ?? null)}</p>;
        }
        return <TimeChart title={metricLabel(m)} series={series} kind={chart === "bar" ? "bars" : "line"} />;
      }}
    </View>
  );
}

/** Rows as series: the first time-like column is x; other numeric columns
 * are series, split by the text columns. */
export function toSeries(d: Rows): Series[] {
  const isTime = (t: string) => t.startsWith("Timestamp") || t.startsWith("Date");
  const isNum = (t: string) => /Int|Float|Decimal|Double/.test(t);
  const tx = d.columns.findIndex((c) => isTime(c.type));
  if (tx < 0) return [];
  const nums = d.columns.map((c, i) => (i !== tx && isNum(c.type) ? i : -1)).filter((i) => i >= 0);
  const texts = d.columns.map((c, i) => (i !== tx && !isNum(c.type) && !isTime(c.type) ? i : -1)).filter((i) => i >= 0);
  const out = new Map<string, Series>();
  for (const r of d.rows) {
    const t = Date.parse(String(r[tx]));
    for (const n of nums) {
      const key = [d.columns[n].name, ...texts.map((i) => cell(r[i]))].join(" ");
      const s = out.get(key) ?? { label: key, points: [] };
      s.points.push([t, r[n] === null ? null : Number(r[n])]);
      out.set(key, s);
    }
  }
  return [...out.values()];
}

export function Result({ d, chart }: { d: Rows; chart: string }) {
  if (chart === "stat") {
    const v = d.rows[0]?.[d.columns.length - 1];
    return <p style={{ fontSize: 32, margin: "12px 0" }}>{cell(v)}</p>;
  }
  if (chart === "timeseries" || chart === "bar") {
    const s = toSeries(d);
    if (s.length) return <TimeChart series={s} kind={chart === "bar" ? "bars" : "line"} />;
  }
  return (
    <Table
      testid="result"
      head={d.columns.map((c) => c.name)}
      rows={d.rows.slice(0, 1000).map((r) => r.map((v) => <span className="mono">{cell(v)}</span>))}
    />
  );
}
