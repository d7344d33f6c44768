// Dashboards: the list, one dashboard's panels over the time range, and
// an editor for its title and panels (each SQL or a metric built from
// pickers).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { get, send, sql } from "../api";
import type { Me } from "../main";
import { Link, navigate, useRoute } from "../router";
import { useRange } from "../time";
import { Failed, Table, View } from "../ui";
import { AGGS, MetricChart, Result, type MetricQuery, type Panel } from "./panel";

type Dash = { id: number; title: string; service?: string | null; panels: Panel[]; created_by: string; updated_at: number };
const CHARTS = ["timeseries", "bar", "stat", "table", "logs"];

function SqlPanel({ p }: { p: Panel }) {
  const r = useRange();
  const q = useQuery({ queryKey: ["panel", p.sql, r.from, r.to, r.tick], queryFn: () => sql(p.sql ?? "", r) });
  return (
    <View q={q} isEmpty={(d) => d.rows.length === 0} empty="No rows in this range.">
      {(d) => <Result d={d} chart={p.chart} />}
    </View>
  );
}

function PanelView({ p }: { p: Panel }) {
  return (
    <div className="card" data-testid="panel">
      <h3>{p.title}</h3>
      {p.metric ? <MetricChart m={p.metric} chart={p.chart} /> : <SqlPanel p={p} />}
    </div>
  );
}

/** The builder's pickers for a metric panel. */
function MetricFields({ m, names, onChange }: { m: MetricQuery; names: string[]; onChange: (m: MetricQuery) => void }) {
  return (
    <>
      <select aria-label="Metric" value={m.name} onChange={(e) => onChange({ ...m, name: e.target.value })}>
        <option value="">pick a metric…</option>
        {[...new Set([m.name, ...names])].filter(Boolean).map((n) => (
          <option key={n}>{n}</option>
        ))}
      </select>
      <select aria-label="Aggregation" value={m.aggregation ?? ""} onChange={(e) => onChange({ ...m, aggregation: e.target.value || undefined })}>
        <option value="">by type</option>
        {AGGS.map((a) => (
          <option key={a}>{a}</option>
        ))}
      </select>
      <input aria-label="Service" placeholder="service" value={m.service ?? ""} onChange={(e) => onChange({ ...m, service: e.target.value || undefined })} />
      <input
        aria-label="Group by"
        placeholder="group by: keys, comma-separated"
        value={(m.group_by ?? []).join(",")}
        onChange={(e) => onChange({ ...m, group_by: e.target.value ? e.target.value.split(",").map((k) => k.trim()) : undefined })}
      />
    </>
  );
}

function Editor({ d, onDone }: { d: Dash; onDone: () => void }) {
  const [draft, setDraft] = useState<Dash>(structuredClone(d));
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: () => send("PUT", `/api/v1/dashboards/${d.id}`, { title: draft.title, service: draft.service ?? undefined, panels: draft.panels.map(clean) }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ["dashboards"] });
      qc.invalidateQueries({ queryKey: ["dashboard", d.id] });
      onDone();
    },
  });
  const r = useRange();
  const names = useQuery({ queryKey: ["metric-list", r.from, r.to], queryFn: () => get<{ metrics: { name: string }[] }>("/api/v1/metrics", { from: r.from, to: r.to }) });
  const put = (i: number, p: Panel) => setDraft({ ...draft, panels: draft.panels.map((q, j) => (j === i ? p : q)) });
  const set = (i: number, k: "title" | "chart" | "sql", v: string) => put(i, { ...draft.panels[i], [k]: v });
  // Only the panel's own kind goes out: SQL or a metric, never both.
  const clean = (p: Panel): Panel => (p.metric ? { title: p.title, chart: p.chart, metric: p.metric } : { title: p.title, chart: p.chart, sql: p.sql ?? "" });
  return (
    <div className="details">
      <label>
        Title <input value={draft.title} onChange={(e) => setDraft({ ...draft, title: e.target.value })} />
      </label>
      {draft.panels.map((p, i) => (
        <div key={i} className="row">
          <input aria-label="Panel title" value={p.title} onChange={(e) => set(i, "title", e.target.value)} />
          <select aria-label="Chart" value={p.chart} onChange={(e) => set(i, "chart", e.target.value)}>
            {CHARTS.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </select>
          <select
            aria-label="Panel query"
            value={p.metric ? "metric" : "sql"}
            onChange={(e) => put(i, e.target.value === "metric" ? { ...p, metric: { name: "" } } : { title: p.title, chart: p.chart, sql: p.sql ?? "" })}
          >
            <option value="sql">SQL</option>
            <option value="metric">Metric</option>
          </select>
          {p.metric ? (
            <MetricFields m={p.metric} names={(names.data?.metrics ?? []).map((x) => x.name)} onChange={(m) => put(i, { ...p, metric: m })} />
          ) : (
            <textarea aria-label="Panel SQL" className="mono" rows={2} style={{ flex: 1, minWidth: 260 }} value={p.sql ?? ""} onChange={(e) => set(i, "sql", e.target.value)} />
          )}
          <button onClick={() => setDraft({ ...draft, panels: draft.panels.filter((_, j) => j !== i) })}>Remove</button>
        </div>
      ))}
      <div className="row">
        <button onClick={() => setDraft({ ...draft, panels: [...draft.panels, { title: "New panel", chart: "table", sql: "SELECT count(*) AS spans FROM spans WHERE start_time >= $from AND start_time < $to" }] })}>
          Add panel
        </button>
        <button onClick={() => save.mutate()} disabled={save.isPending}>
          Save
        </button>
        <button onClick={onDone}>Cancel</button>
      </div>
      {save.error ? <Failed error={save.error} /> : null}
    </div>
  );
}

function One({ id, me }: { id: number; me: Me }) {
  const q = useQuery({ queryKey: ["dashboard", id], queryFn: () => get<Dash>(`/api/v1/dashboards/${id}`) });
  const [editing, setEditing] = useState(false);
  const qc = useQueryClient();
  const del = useMutation({
    mutationFn: () => send("DELETE", `/api/v1/dashboards/${id}`),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ["dashboards"] });
      navigate("/dashboards");
    },
  });
  return (
    <View q={q}>
      {(d) => (
        <>
          <h2>{d.title}</h2>
          <div className="row">
            <Link to="/dashboards">All dashboards</Link>
            {me.role !== "viewer" && <button onClick={() => setEditing(!editing)}>Edit</button>}
            {me.role !== "viewer" && <button onClick={() => confirm(`Delete "${d.title}"?`) && del.mutate()}>Delete</button>}
            <button onClick={() => navigator.clipboard?.writeText(window.location.href)}>Copy link</button>
          </div>
          {editing && <Editor d={d} onDone={() => setEditing(false)} />}
          <div className="grid">
            {d.panels.map((p, i) => (
              <PanelView key={i} p={p} />
            ))}
          </div>
        </>
      )}
    </View>
  );
}

export default function Dashboards({ me }: { me: Me }) {
  const { path } = useRoute();
  const id = Number(path.split("/")[2]);
  const list = useQuery({ queryKey: ["dashboards"], queryFn: () => get<{ dashboards: Dash[] }>("/api/v1/dashboards"), enabled: !id });
  const qc = useQueryClient();
  const create = useMutation({
    mutationFn: () => send<{ id: number }>("POST", "/api/v1/dashboards", { title: "New dashboard", panels: [{ title: "Spans per service", chart: "table", sql: "SELECT service_name, count(*) AS spans FROM spans WHERE start_time >= $from AND start_time < $to GROUP BY 1" }] }),
    onSuccess: (v) => {
      qc.invalidateQueries({ queryKey: ["dashboards"] });
      navigate(`/dashboards/${v.id}`);
    },
  });
  if (id) return <One id={id} me={me} />;
  return (
    <>
      <h2>Dashboards</h2>
      {me.role !== "viewer" && <button onClick={() => create.mutate()}>New dashboard</button>}
      {create.error ? <Failed error={create.error} /> : null}
      <View q={list} isEmpty={(d) => d.dashboards.length === 0} empty="No dashboards yet: save a chart from Metrics, or ask the copilot for one.">
        {(d) => (
          <Table
            testid="dashboards"
            head={["Title", "Panels", "Saved by"]}
            rows={d.dashboards.map((x) => [<Link to={`/dashboards/${x.id}`}>{x.title}</Link>, x.panels.length, x.created_by])}
          />
        )}
      </View>
    </>
  );
}
