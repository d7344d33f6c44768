// The copilot: a question in, the answer streamed as it is written, then
// each query it ran with its rows (as a table or a chart), and "add to
// dashboard" when it proposes one.
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { events, raw, send, type Rows } from "../api";
import type { Me } from "../main";
import { navigate } from "../router";
import { Failed, Tabs } from "../ui";
import { Result } from "./panel";

type Query = { sql: string; params: Record<string, unknown>; columns: string[]; rows: unknown[][] };
type Answer = { conversation_id: string; answer: string; queries: Query[]; dashboard?: { title: string; panels: unknown[] } | null; declined: boolean; engine: string };
type Turn = { question: string; text: string; answer?: Answer; error?: string };

/** A copilot query as rows the panel renderer reads (types guessed from values). */
function rows(q: Query): Rows {
  const type = (i: number) => {
    const v = q.rows.find((r) => r[i] !== null)?.[i];
    if (typeof v === "number") return "Float64";
    if (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v)) return "Timestamp";
    return "Utf8";
  };
  return { columns: q.columns.map((name, i) => ({ name, type: type(i) })), rows: q.rows };
}

function QueryView({ q }: { q: Query }) {
  const [view, setView] = useState<"table" | "timeseries">("table");
  return (
    <div className="details">
      <pre className="mono">{q.sql}</pre>
      <Tabs tabs={[["table", "Table"], ["timeseries", "Chart"]]} value={view} onChange={setView} />
      <Result d={rows(q)} chart={view} />
    </div>
  );
}

export default function Copilot({ me }: { me: Me }) {
  const [turns, setTurns] = useState<Turn[]>([]);
  const [message, setMessage] = useState("");
  const conversation = [...turns].reverse().find((t) => t.answer)?.answer?.conversation_id;
  const qc = useQueryClient();
  const ask = async (e: FormEvent) => {
    e.preventDefault();
    const question = message.trim();
    if (!question) return;
    setMessage("");
    const at = turns.length;
    setTurns((t) => [...t, { question, text: "" }]);
    const update = (f: (t: Turn) => Turn) => setTurns((all) => all.map((t, i) => (i === at ? f(t) : t)));
    try {
      const r = await raw("/api/v1/ai/chat", {
        method: "POST",
        headers: { accept: "text/event-stream" },
        body: JSON.stringify(conversation ? { message: question, conversation_id: conversation } : { message: question }),
      });
      await events(r, (kind, data) => {
        if (kind === "delta") update((t) => ({ ...t, text: t.text + data }));
        if (kind === "answer") {
          const a = JSON.parse(data) as Answer;
          update((t) => ({ ...t, text: a.answer, answer: a }));
        }
        if (kind === "error") update((t) => ({ ...t, error: JSON.parse(data)?.error?.message ?? data }));
      });
    } catch (err) {
      update((t) => ({ ...t, error: String(err) }));
    }
  };
  const save = useMutation({
    mutationFn: (d: { title: string; panels: unknown[] }) => send<{ id: number }>("POST", "/api/v1/dashboards", d),
    onSuccess: (v) => {
      qc.invalidateQueries({ queryKey: ["dashboards"] });
      navigate(`/dashboards/${v.id}`);
    },
  });
  return (
    <>
      <h2>Copilot</h2>
      <p className="state">Ask about your telemetry in English or Portuguese; every query it runs is one read-only SELECT on your tenant.</p>
      {turns.map((t, i) => (
        <div key={i} className="card" style={{ marginBottom: 10 }} data-testid="turn">
          <p>
            <b>You:</b> {t.question}
          </p>
          <div aria-live="polite">
            <b>Copilot:</b> <span style={{ whiteSpace: "pre-wrap" }}>{t.text || (t.error ? "" : "…")}</span>
          </div>
          {t.error && <p className="state error">{t.error}</p>}
          {t.answer?.queries.map((q, j) => <QueryView key={j} q={q} />)}
          {t.answer?.dashboard && me.role !== "viewer" && (
            <button onClick={() => save.mutate(t.answer!.dashboard!)}>Add to dashboards</button>
          )}
        </div>
      ))}
      {save.error ? <Failed error={save.error} /> : null}
      <form className="row" onSubmit={ask} aria-label="Ask the copilot">
        <input aria-label="Question" style={{ flex: 1, minWidth: 240 }} value={message} placeholder="error rate of checkout in the last hour" onChange={(e) => setMessage(e.target.value)} />
        <button type="submit">Ask</button>
      </form>
    </>
  );
}
