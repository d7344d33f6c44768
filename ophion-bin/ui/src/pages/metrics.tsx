// Metrics explorer: pick a metric, an aggregation and a group-by, chart
// it, and save it to a dashboard as a built panel (the same query, drawn
// the same way there).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { get, send } from "../api";
import type { Me } from "../main";
import { navigate, setParams, useRoute } from "../router";
import { useRange } from "../time";
import { Failed } from "../ui";
import { AGGS, MetricChart, metricLabel, type MetricQuery, type Panel } from "./panel";

type Metric = { name: string; type: string; unit: string | null; description: string | null; services: string[] };
type Dash = { id: number; title: string; panels: Panel[] };

export default function Metrics({ me }: { me: Me }) {
  const r = useRange();
  const { params } = useRoute();
  const name = params.get("metric") ?? "";
  const agg = params.get("agg") ?? "avg";
  const groupBy = params.get("group_by") ?? "";
  const service = params.get("service") ?? "";
  const list = useQuery({ queryKey: ["metric-list", r.from, r.to], queryFn: () => get<{ metrics: Metric[] }>("/api/v1/metrics", { from: r.from, to: r.to }) });
  const m: MetricQuery = {
    name,
    aggregation: agg,
    ...(service ? { service } : {}),
    ...(groupBy ? { group_by: groupBy.split(",").map((k) => k.trim()).filter(Boolean) } : {}),
  };
  const qc = useQueryClient();
  const dashboards = useQuery({ queryKey: ["dashboards"], queryFn: () => get<{ dashboards: Dash[] }>("/api/v1/dashboards") });
  const [target, setTarget] = useState("new");
  const [title, setTitle] = useState("");
  const save = useMutation({
    mutationFn: async () => {
      const panel: Panel = { title: title || metricLabel(m), chart: "timeseries", metric: m };
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
        <>
          <MetricChart m={m} />
          {canEdit && (
            <div className="row" aria-label="Save to a dashboard">
              <label>
                Panel title
                <input aria-label="Panel title" value={title} placeholder={metricLabel(m)} onChange={(e) => setTitle(e.target.value)} />
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
    </>
  );
}
