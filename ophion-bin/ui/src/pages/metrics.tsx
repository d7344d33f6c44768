// Metrics explorer: pick a metric, an aggregation and a group-by, chart
// it, and save it to a dashboard as a panel.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { get, send } from "../api";
import { TimeChart } from "../chart";
import type { Me } from "../main";
import { navigate, setParams, useRoute } from "../router";
import { useRange } from "../time";
import { Failed, View } from "../ui";

type Metric = { name: string; type: string; unit: string | null; description: string | null; services: string[] };
type Series = { series: { group: Record<string, string>; points: [string, number | null][] }[] };
type Dash = { id: number; title: string; panels: { title: string; chart: string; sql: string }[] };
const AGGS = ["avg", "sum", "min", "max", "rate", "p50", "p95", "p99"];

/** The panel SQL that draws the same chart on a dashboard. */
function panelSql(name: string, agg: string, service: string): string {
  const fn = ["sum", "min", "max"].includes(agg) ? agg : "avg";
  const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
  return `SELECT date_bin(INTERVAL '1 minute', timestamp) AS minute, ${fn}(value) AS value FROM metrics WHERE metric_name = ${lit(name)}${service ? ` AND service_name = ${lit(service)}` : ""} AND timestamp >= $from AND timestamp < $to GROUP BY 1 ORDER BY 1`;
}

export default function Metrics({ me }: { me: Me }) {
  const r = useRange();
  const { params } = useRoute();
  const name = params.get("metric") ?? "";
  const agg = params.get("agg") ?? "avg";
  const groupBy = params.get("group_by") ?? "";
  const service = params.get("service") ?? "";
  const list = useQuery({ queryKey: ["metric-list", r.from, r.to], queryFn: () => get<{ metrics: Metric[] }>("/api/v1/metrics", { from: r.from, to: r.to }) });
  const series = useQuery({
    queryKey: ["metric", name, agg, groupBy, service, r.from, r.to, r.tick],
    queryFn: () => get<Series>("/api/v1/metrics/query", { name, aggregation: agg, group_by: groupBy, service, from: r.from, to: r.to }),
    enabled: !!name,
  });
  const qc = useQueryClient();
  const dashboards = useQuery({ queryKey: ["dashboards"], queryFn: () => get<{ dashboards: Dash[] }>("/api/v1/dashboards") });
  const [target, setTarget] = useState("new");
  const [title, setTitle] = useState("");
  const save = useMutation({
    mutationFn: async () => {
      const panel = { title: title || `${agg}(${name})${service ? ` of ${service}` : ""}`, chart: "timeseries", sql: panelSql(name, agg, service) };
      if (target === "new") return send<{ id: number }>("POST", "/api/v1/dashboards", { title: panel.title, panels: [panel] });
      const d = dashboards.data!.dashboards.find((x) => String(x.id) === target)!;
      await send("PUT", `/api/v1/dashboards/${d.id}`, { title: d.title, panels: [...d.panels, panel] });
      return { id: d.id };
    },
    onSuccess: (v) => {
      qc.invalidateQueries({ queryKey: ["dashboards"] });
      navigate(`/dashboards/${v.id}`);
    },
  });
  const canEdit = me.role !== "viewer";
  return (
    <>
      <h2>Metrics</h2>
      <div className="row">
        <label>
          Metric
          <select aria-label="Metric" value={name} onChange={(e) => setParams({ metric: e.target.value || undefined })}>
            <option value="">pick a metric…</option>
            {(list.data?.metrics ?? []).map((m) => (
              <option key={m.name} value={m.name}>
                {m.name} ({m.type}{m.unit ? `, ${m.unit}` : ""})
              </option>
            ))}
          </select>
        </label>
        <label>
          Aggregation
          <select aria-label="Aggregation" value={agg} onChange={(e) => setParams({ agg: e.target.value })}>
            {AGGS.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Service
          <input aria-label="Service" defaultValue={service} onBlur={(e) => setParams({ service: e.target.value || undefined })} />
        </label>
        <label>
          Group by
          <input aria-label="Group by" placeholder="attribute keys, comma-separated" defaultValue={groupBy} onBlur={(e) => setParams({ group_by: e.target.value || undefined })} />
        </label>
      </div>
      {list.error ? <Failed error={list.error} /> : null}
      {!name ? (
        <p className="state">Pick a metric to chart it.</p>
      ) : (
        <View q={series} isEmpty={(d) => d.series.length === 0} empty="No points of this metric in this range.">
          {(d) => (
            <>
              <TimeChart
                title={`${agg}(${name})`}
                series={d.series.map((s) => ({
                  label: Object.entries(s.group).map(([k, v]) => `${k}=${v}`).join(", ") || name,
                  points: s.points.map(([t, v]) => [Date.parse(t), v]),
                }))}
              />
              {canEdit && (
                <div className="row" aria-label="Save to a dashboard">
                  <label>
                    Panel title
                    <input aria-label="Panel title" value={title} placeholder={`${agg}(${name})`} onChange={(e) => setTitle(e.target.value)} />
                  </label>
                  <label>
                    Dashboard
                    <select aria-label="Dashboard" value={target} onChange={(e) => setTarget(e.target.value)}>
                      <option value="new">a new dashboard</option>
                      {(dashboards.data?.dashboards ?? []).map((x) => (
                        <option key={x.id} value={x.id}>
                          {x.title}
                        </option>
                      ))}
                    </select>
                  </label>
                  <button onClick={() => save.mutate()} disabled={save.isPending}>
                    Save to dashboard
                  </button>
                  {save.error ? <Failed error={save.error} /> : null}
                </div>
              )}
            </>
          )}
        </View>
      )}
    </>
  );
}
