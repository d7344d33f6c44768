// SQL console: one read-only query on the tenant, as a table or a chart.
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";
import { sql } from "../api";
import { setParams, useRoute } from "../router";
import { useRange } from "../time";
import { Failed, Tabs } from "../ui";
import { Result } from "./panel";

export default function Sql() {
  const r = useRange();
  const { params } = useRoute();
  const [text, setText] = useState(params.get("q") ?? "SELECT service_name, count(*) AS spans FROM spans WHERE start_time >= $from AND start_time < $to GROUP BY 1 ORDER BY 2 DESC");
  const [view, setView] = useState<"table" | "timeseries" | "bar">("table");
  const run = useMutation({ mutationFn: () => sql(text, r) });
  return (
    <>
      <h2>SQL</h2>
      <p className="state">One read-only query on your tenant; <code>$from</code> and <code>$to</code> are the time range. Tables: spans, logs, metrics, span_minutes, service_minutes, service_edges.</p>
      <textarea aria-label="SQL" className="mono" rows={6} style={{ width: "100%" }} value={text} onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => { if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { setParams({ q: text }); run.mutate(); } }} />
      <div className="row">
        <button onClick={() => { setParams({ q: text }); run.mutate(); }} disabled={run.isPending}>
          {run.isPending ? "Running…" : "Run (Ctrl+Enter)"}
        </button>
        <Tabs tabs={[["table", "Table"], ["timeseries", "Lines"], ["bar", "Bars"]]} value={view} onChange={setView} />
      </div>
      {run.error ? <Failed error={run.error} /> : null}
      {run.data && (
        <>
          <p className="state">
            {run.data.rows.length} rows in {run.data.stats?.elapsed_ms.toFixed(1)} ms{run.data.stats?.truncated ? " (truncated)" : ""}
          </p>
          <Result d={run.data} chart={view} />
        </>
      )}
    </>
  );
}
