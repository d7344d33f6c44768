// One dashboard panel or SQL result: a query's rows as a time series,
// bars, a single stat or a table.
import type { Rows } from "../api";
import { TimeChart, type Series } from "../chart";
import { Table, cell } from "../ui";

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
