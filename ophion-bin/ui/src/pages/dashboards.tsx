// Dashboards: the list, one dashboard's panels over the time range, and
// an editor for its title and panels (SQL per panel).
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { get, send, sql } from "../api";
import type { Me } from "../main";
import { Link, navigate, useRoute } from "../router";
import { useRange } from "../time";
import { Failed, Table, View } from "../ui";
import { Result } from "./panel";

type Panel = { title: string; chart: string; sql: string };
type Dash = { id: number; title: string; service?: string | null; panels: Panel[]; created_by: string; updated_at: number };
const CHARTS = ["timeseries", "bar", "stat", "table", "logs"];

function PanelView({ p }: { p: Panel }) {
  const r = useRange();
  const q = useQuery({ queryKey: ["panel", p.sql, r.from, r.to, r.tick], queryFn: () => sql(p.sql, r) });
  return (
    <div className="card" data-testid="panel">
      <h3>{p.title}</h3>
      <View q={q} isEmpty={(d) => d.rows.length === 0} empty="No rows in this range.">
        {(d) => <Result d={d} chart={p.chart} />}
      </View>
    </div>
  );
}

function Editor({ d, onDone }: { d: Dash; onDone: () => void }) {
  const [draft, setDraft] = useState<Dash>(structuredClone(d));
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: () => send("PUT", `/api/v1/dashboards/${d.id}`, { title: draft.title, service: draft.service ?? undefined, panels: draft.panels }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ["dashboards"] });
      qc.invalidateQueries({ queryKey: ["dashboard", d.id] });
      onDone();
    },
  });
  const set = (i: number, k: keyof Panel, v: string) => setDraft({ ...draft, panels: draft.panels.map((p, j) => (j === i ? { ...p, [k]: v } : p)) });
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
          <textarea aria-label="Panel SQL" className="mono" rows={2} style={{ flex: 1, minWidth: 260 }} value={p.sql} onChange={(e) => set(i, "sql", e.target.value)} />
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
