// Logs explorer: search and filters in the URL, a volume histogram, a
// virtualised list (only the rows in view are drawn) that loads the next
// page as the reader nears its end, record details with a jump to the
// trace, live tail, and the patterns of the range.
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useRef, useState, type UIEvent } from "react";
import { events, get, raw, send, session, toIso, url } from "../api";
import { TimeChart } from "../chart";
import { Link } from "../router";
import { useUrlForm } from "../form";
import { useRange } from "../time";
import { Table, Tabs, View, cell, listKeys, time } from "../ui";

type Log = {
  timestamp: string; severity_text: string | null; severity_number: number | null; body: unknown; service_name: string;
  trace_id: string | null; span_id: string | null; attributes: Record<string, unknown>; resource_attributes: Record<string, unknown>;
};
type Found = { logs: Log[]; next: string | null; total?: number; histogram?: { start: string; count: number }[] };
const FIELDS = ["q", "service", "severity", "trace_id", "attribute"] as const;
const ROW = 24;
/** Records a page; the next page is asked for when fewer than NEAR remain below the view. */
const PAGE = 2000;
const NEAR = 400;

function sev(l: Log): string {
  const n = l.severity_number ?? 0;
  return n >= 21 ? "fatal" : n >= 17 ? "error" : n >= 13 ? "warn" : n >= 9 ? "info" : n >= 5 ? "debug" : n ? "trace" : "";
}

function List({ logs, onPick, picked, onNearEnd, complete = true }: { logs: Log[]; onPick: (i: number) => void; picked: number | null; onNearEnd?: () => void; complete?: boolean }) {
  const [top, setTop] = useState(0);
  const height = 480;
  const first = Math.max(0, Math.floor(top / ROW) - 20);
  const last = Math.min(logs.length, Math.ceil((top + height) / ROW) + 20);
  useEffect(() => {
    if (onNearEnd && last + NEAR >= logs.length) onNearEnd();
  }, [last, logs.length, onNearEnd]);
  return (
    <div
      className="scroller"
      style={{ height }}
      onScroll={(e: UIEvent<HTMLDivElement>) => setTop(e.currentTarget.scrollTop)}
      data-testid="log-list"
      data-complete={complete}
      data-rows={logs.length}
      tabIndex={0}
      role="listbox"
      aria-label="Log records (arrow keys pick a record)"
      aria-activedescendant={picked !== null ? `log-${picked}` : undefined}
      onKeyDown={listKeys(logs.length, picked ?? -1, ROW, height, onPick)}
    >
      <div className="spacer" style={{ height: logs.length * ROW }}>
        {logs.slice(first, last).map((l, i) => (
          <div
            key={first + i}
            id={`log-${first + i}`}
            role="option"
            aria-selected={picked === first + i}
            className={`vrow${picked === first + i ? " sel" : ""}`}
            style={{ top: (first + i) * ROW, height: ROW }}
            onClick={() => onPick(first + i)}
          >
            <span className="mono">{time(l.timestamp)}</span>
            <span className={`sev-${sev(l)}`}>{l.severity_text ?? sev(l)}</span>
            <b>{l.service_name}</b>
            <span>{cell(l.body)}</span>
          </div>
        ))}
      </div>
    </div>
  );
}

function Record({ l }: { l: Log }) {
  const kv = (o: Record<string, unknown>) => Object.entries(o ?? {}).map(([k, v]) => [<span className="mono">{k}</span>, <span className="mono">{cell(v)}</span>]);
  return (
    <div className="details" data-testid="log-details">
      <p>
        {time(l.timestamp)} · {l.service_name} · {l.severity_text}
        {l.trace_id ? (
          <>
            {" · "}
            <Link to={`/traces/${l.trace_id}`}>Open trace {l.trace_id.slice(0, 8)}…</Link>
          </>
        ) : null}
      </p>
      <pre>{cell(l.body)}</pre>
      <h4>Attributes</h4>
      <Table head={["Key", "Value"]} rows={kv(l.attributes)} />
      <h4>Resource</h4>
      <Table head={["Key", "Value"]} rows={kv(l.resource_attributes)} />
    </div>
  );
}

/** Live tail over server-sent events (fetch, so the token goes in a header). */
function Tail({ filter }: { filter: Record<string, string> }) {
  const [lines, setLines] = useState<Log[]>([]);
  const [error, setError] = useState<string | null>(null);
  const key = JSON.stringify(filter);
  const stop = useRef<AbortController | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    stop.current = ctl;
    (async () => {
      try {
        const r = await raw(url("/api/v1/logs/tail", JSON.parse(key)), { signal: ctl.signal, headers: { accept: "text/event-stream" } });
        await events(r, (kind, data) => {
          if (kind === "log" && data) {
            const rec = JSON.parse(data) as Log;
            setLines((old) => [rec, ...old].slice(0, 2000));
          }
        });
      } catch (e) {
        if (!ctl.signal.aborted) setError(String(e));
      }
    })();
    return () => ctl.abort();
  }, [key]);
  return (
    <>
      <p className="state" role="status">
        Following new records{session() ? "" : " (signed out)"}… {lines.length} so far.
      </p>
      {error && <p className="state error">{error}</p>}
      <List logs={lines} onPick={() => undefined} picked={null} />
    </>
  );
}

function Patterns() {
  const r = useRange();
  const p = useQuery({
    queryKey: ["patterns", r.from, r.to, r.tick],
    queryFn: () => send<{ patterns: { template_id: string; template: string; count: number }[] }>("POST", "/api/v1/ai/analyze", { start: toIso(r.from), end: toIso(r.to) }),
  });
  return (
    <View q={p} isEmpty={(d) => !d.patterns?.length} empty="No log patterns in this range.">
      {(d) => <Table testid="patterns" head={["Count", "Template"]} rows={d.patterns.map((x) => [x.count, <span className="mono">{x.template}</span>])} />}
    </View>
  );
}

export default function Logs() {
  const r = useRange();
  const { q, form, setForm, submit, input } = useUrlForm(FIELDS, () => setPicked(null));
  const [tab, setTab] = useState<"search" | "tail" | "patterns">("search");
  const [picked, setPicked] = useState<number | null>(null);
  const found = useInfiniteQuery({
    queryKey: ["logs", r.from, r.to, r.tick, ...FIELDS.map((k) => q[k])],
    queryFn: ({ pageParam }) => get<Found>("/api/v1/logs", { ...q, limit: PAGE, from: r.from, to: r.to, before: pageParam, buckets: pageParam ? 0 : 60 }),
    initialPageParam: "",
    getNextPageParam: (last) => last.next,
    enabled: tab === "search",
  });
  const { hasNextPage, isFetchingNextPage, fetchNextPage } = found;
  const more = useCallback(() => {
    if (hasNextPage && !isFetchingNextPage) void fetchNextPage();
  }, [hasNextPage, isFetchingNextPage, fetchNextPage]);
  const logs = useMemo(() => found.data?.pages.flatMap((p) => p.logs) ?? [], [found.data]);
  return (
    <>
      <h2>Logs</h2>
      <form className="row" onSubmit={submit} aria-label="Search logs">
        {input("q", "Text")}
        {input("service", "Service")}
        <label>
          Min severity
          <select name="severity" value={form.severity} onChange={(e) => setForm({ ...form, severity: e.target.value })}>
            {["", "debug", "info", "warn", "error", "fatal"].map((s) => (
              <option key={s} value={s}>
                {s || "any"}
              </option>
            ))}
          </select>
        </label>
        {input("trace_id", "Trace id")}
        {input("attribute", "Attribute", "key=value")}
        <button type="submit">Search</button>
      </form>
      <Tabs tabs={[["search", "Records"], ["tail", "Live tail"], ["patterns", "Patterns"]]} value={tab} onChange={setTab} />
      {tab === "tail" && <Tail filter={Object.fromEntries(Object.entries({ q: q.q, service: q.service, severity: q.severity }).filter(([, v]) => v))} />}
      {tab === "patterns" && <Patterns />}
      {tab === "search" && (
        <View q={{ ...found, data: found.data?.pages[0] }} isEmpty={(d) => d.logs.length === 0} empty="No records match in this range.">
          {(d) => (
            <>
              <TimeChart kind="bars" height={120} series={[{ label: "records", points: (d.histogram ?? []).map((b) => [Date.parse(b.start), b.count]) }]} />
              <p className="state" role="status">
                {logs.length.toLocaleString()} of {(d.total ?? logs.length).toLocaleString()} records
                {isFetchingNextPage ? ", loading more…" : hasNextPage ? "; scroll for more" : ""}
              </p>
              <div className="split two">
                <List logs={logs} onPick={setPicked} picked={picked} onNearEnd={more} complete={!hasNextPage} />
                {picked !== null && logs[picked] ? <Record l={logs[picked]} /> : <p className="state">Pick a record to see it whole.</p>}
              </div>
            </>
          )}
        </View>
      )}
    </>
  );
}
