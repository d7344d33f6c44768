// One trace: a virtualised waterfall with a collapsible span tree, the
// critical path, span details and the trace's logs. Only the rows in view
// are in the DOM, so traces of tens of thousands of spans stay fluid.
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState, type UIEvent } from "react";
import { get } from "../api";
import { Link } from "../router";
import { Table, View, cell, dur, listKeys, time } from "../ui";

type Span = {
  span_id: string; parent_span_id: string | null; name: string; kind: string; service_name: string;
  start_time_unix_nano: number; end_time_unix_nano: number; duration_ns: number; status_code: string; status_message: string | null;
  attributes: Record<string, unknown>; resource_attributes: Record<string, unknown>; events: unknown[]; links: unknown[];
};
type Log = { timestamp: string; severity_text: string | null; body: unknown; service_name: string; span_id: string | null };
type TraceDoc = { trace_id?: string; spans: Span[]; logs: Log[]; span_count: number; duration_ns: number; services: string[] };

const ROW = 22;
const PALETTE = ["#3b82f6", "#10b981", "#f97316", "#a855f7", "#06b6d4", "#eab308", "#ec4899", "#84cc16"];

type Tree = { byId: Map<string, Span>; children: Map<string, string[]>; roots: string[]; start: number; end: number; critical: Set<string> };

function build(spans: Span[]): Tree {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map<string, string[]>();
  const roots: string[] = [];
  for (const s of spans) {
    if (s.parent_span_id && byId.has(s.parent_span_id)) {
      const c = children.get(s.parent_span_id);
      if (c) c.push(s.span_id);
      else children.set(s.parent_span_id, [s.span_id]);
    } else roots.push(s.span_id);
  }
  const byStart = (a: string, b: string) => byId.get(a)!.start_time_unix_nano - byId.get(b)!.start_time_unix_nano;
  for (const c of children.values()) c.sort(byStart);
  roots.sort(byStart);
  let start = Infinity;
  let end = -Infinity;
  for (const s of spans) {
    start = Math.min(start, s.start_time_unix_nano);
    end = Math.max(end, s.end_time_unix_nano);
  }
  // Critical path: from each root's end backwards, the child that finished
  // last before the time reached so far, recursively (iterative: deep
  // traces must not overflow the stack).
  const critical = new Set<string>();
  const stack: [string, number][] = roots.map((r) => [r, byId.get(r)!.end_time_unix_nano]);
  while (stack.length) {
    const [id, until] = stack.pop()!;
    critical.add(id);
    let t = until;
    const kids = [...(children.get(id) ?? [])].sort((a, b) => byId.get(b)!.end_time_unix_nano - byId.get(a)!.end_time_unix_nano);
    for (const k of kids) {
      const c = byId.get(k)!;
      if (c.start_time_unix_nano >= t) continue;
      stack.push([k, Math.min(c.end_time_unix_nano, t)]);
      t = c.start_time_unix_nano;
    }
  }
  return { byId, children, roots, start, end, critical };
}

function Waterfall({ tree, onPick, picked }: { tree: Tree; onPick: (id: string) => void; picked: string | null }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const [top, setTop] = useState(0);
  const height = Math.min(600, Math.max(200, window.innerHeight - 260));
  const rows = useMemo(() => {
    const out: [string, number][] = [];
    const stack: [string, number][] = [...tree.roots].reverse().map((r) => [r, 0]);
    while (stack.length) {
      const [id, depth] = stack.pop()!;
      out.push([id, depth]);
      if (!collapsed.has(id)) for (const c of [...(tree.children.get(id) ?? [])].reverse()) stack.push([c, depth + 1]);
    }
    return out;
  }, [tree, collapsed]);
  const services = useMemo(() => [...new Set([...tree.byId.values()].map((s) => s.service_name))], [tree]);
  const span = Math.max(1, tree.end - tree.start);
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const last = Math.min(rows.length, Math.ceil((top + height) / ROW) + 10);
  const at = useMemo(() => (picked ? rows.findIndex((r) => r[0] === picked) : -1), [rows, picked]);
  const toggle = (id: string) => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };
  return (
    <div
      className="scroller"
      style={{ height }}
      onScroll={(e: UIEvent<HTMLDivElement>) => setTop(e.currentTarget.scrollTop)}
      data-testid="waterfall"
      tabIndex={0}
      role="tree"
      aria-label="Waterfall (arrow keys move, left and right collapse and expand)"
      aria-activedescendant={picked && at >= 0 ? `span-${picked}` : undefined}
      onKeyDown={listKeys(rows.length, at, ROW, height, (i) => onPick(rows[i][0]), (key) => {
        if (!picked || !tree.children.get(picked)?.length) return false;
        const closed = collapsed.has(picked);
        if ((key === "ArrowLeft" && !closed) || (key === "ArrowRight" && closed)) toggle(picked);
        return key === "ArrowLeft" || key === "ArrowRight";
      })}
    >
      <div className="spacer" style={{ height: rows.length * ROW }}>
        {rows.slice(first, last).map(([id, depth], i) => {
          const s = tree.byId.get(id)!;
          const kids = tree.children.get(id)?.length ?? 0;
          const left = ((s.start_time_unix_nano - tree.start) / span) * 100;
          const width = Math.max(0.2, (s.duration_ns / span) * 100);
          const color = s.status_code === "error" ? "var(--bad)" : PALETTE[services.indexOf(s.service_name) % PALETTE.length];
          return (
            <div
              key={id}
              id={`span-${id}`}
              role="treeitem"
              aria-level={depth + 1}
              aria-selected={picked === id}
              aria-expanded={kids ? !collapsed.has(id) : undefined}
              className={`vrow${picked === id ? " sel" : ""}`}
              style={{ top: (first + i) * ROW, height: ROW }}
              data-span={id}
              onClick={() => onPick(id)}
            >
              <span className="wf-name" style={{ paddingLeft: Math.min(depth, 20) * 12 }} title={`depth ${depth}`}>
                {kids ? (
                  <button className="twisty" aria-label={collapsed.has(id) ? "Expand" : "Collapse"} onClick={(e) => { e.stopPropagation(); toggle(id); }}>
                    {collapsed.has(id) ? "▸" : "▾"}
                  </button>
                ) : (
                  <span className="twisty" />
                )}
                <b>{s.service_name}</b> {s.name}
              </span>
              <span className="wf-bar">
                <span className={tree.critical.has(id) ? "crit" : ""} style={{ left: `${left}%`, width: `${width}%`, background: color }} title={dur(s.duration_ns)} />
              </span>
              <span className="mono">{dur(s.duration_ns)}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function Details({ s }: { s: Span }) {
  const kv = (o: Record<string, unknown>) => Object.entries(o ?? {}).map(([k, v]) => [<span className="mono">{k}</span>, <span className="mono">{cell(v)}</span>]);
  return (
    <div className="details" data-testid="span-details">
      <h3>
        {s.service_name}: {s.name}
      </h3>
      <p>
        {s.kind} · {dur(s.duration_ns)} · status <span className={s.status_code === "error" ? "bad" : ""}>{s.status_code}</span>
        {s.status_message ? ` (${s.status_message})` : ""} · <span className="mono">{s.span_id}</span>
      </p>
      <h4>Attributes</h4>
      <Table head={["Key", "Value"]} rows={kv(s.attributes)} />
      <h4>Resource</h4>
      <Table head={["Key", "Value"]} rows={kv(s.resource_attributes)} />
      {s.events?.length ? (<><h4>Events</h4><pre className="mono">{JSON.stringify(s.events, null, 1)}</pre></>) : null}
      {s.links?.length ? (<><h4>Links</h4><pre className="mono">{JSON.stringify(s.links, null, 1)}</pre></>) : null}
    </div>
  );
}

export default function Trace({ id }: { id: string }) {
  const path = `/api/v1/traces/${encodeURIComponent(id)}`;
  const [picked, setPicked] = useState<string | null>(null);
  // The waterfall's columns first (a fifth of a big trace's bytes), the
  // logs beside them, and every span's details only once one is picked:
  // parsing tens of megabytes of attributes would stall scrolling.
  const t = useQuery({ queryKey: ["trace-waterfall", id], queryFn: () => get<TraceDoc>(path, { view: "waterfall" }) });
  const logs = useQuery({ queryKey: ["trace-logs", id], queryFn: () => get<TraceDoc>(path, { view: "logs" }) });
  const full = useQuery({ queryKey: ["trace", id], queryFn: () => get<TraceDoc>(path), enabled: t.isSuccess && picked !== null });
  const tree = useMemo(() => (t.data ? build(t.data.spans) : null), [t.data]);
  const details = useMemo(() => new Map((full.data?.spans ?? []).map((s) => [s.span_id, s])), [full.data]);
  return (
    <>
      <h2>
        Trace <span className="mono">{id}</span>
      </h2>
      <View q={t} isEmpty={(d) => d.spans.length === 0} empty="No such trace.">
        {(d) => (
          <>
            <p>
              {d.span_count} spans · {dur(d.duration_ns)} · {d.services.join(", ")} · <span className="warn">outlined</span>: critical path
            </p>
            <div className="split two">
              <div>{tree && <Waterfall tree={tree} picked={picked} onPick={setPicked} />}</div>
              <div>
                {!picked ? (
                  <p className="state">Pick a span to see its details.</p>
                ) : details.get(picked) ? (
                  <Details s={details.get(picked)!} />
                ) : full.isError ? (
                  <p className="state error">Could not load the span's details: {String(full.error)}</p>
                ) : (
                  <p className="state">Loading the span's details…</p>
                )}
              </div>
            </div>
            <h3>Logs of this trace</h3>
            <View q={logs} isEmpty={(f) => f.logs.length === 0} empty="No logs carry this trace id.">
              {(f) => (
                <Table
                  testid="trace-logs"
                  head={["Time", "Service", "Severity", "Message"]}
                  rows={f.logs.map((l) => [time(l.timestamp), l.service_name, l.severity_text ?? "", <pre>{cell(l.body)}</pre>])}
                />
              )}
            </View>
            <p>
              <Link to={`/logs?trace_id=${id}`}>Search logs of this trace</Link>
            </p>
          </>
        )}
      </View>
    </>
  );
}
