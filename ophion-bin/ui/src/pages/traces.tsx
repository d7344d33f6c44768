// Trace search: a form kept in the URL, a duration scatter and results.
import { useQuery } from "@tanstack/react-query";
import { get } from "../api";
import { TimeChart } from "../chart";
import { Link } from "../router";
import { useUrlForm } from "../form";
import { useRange } from "../time";
import { Table, View, dur, time } from "../ui";

type Found = { trace_id: string; root_service: string; root_name: string; start_time: string; duration_ns: number; span_count: number; error_count: number; services: string[] };
const FIELDS = ["service", "operation", "attribute", "min_duration", "max_duration", "status", "limit"] as const;

export default function Traces() {
  const r = useRange();
  const { q, form, setForm, submit, input } = useUrlForm(FIELDS);
  const found = useQuery({
    queryKey: ["traces", r.from, r.to, r.tick, ...FIELDS.map((k) => q[k])],
    queryFn: () => get<{ traces: Found[] }>("/api/v1/traces", { ...q, limit: q.limit || 100, from: r.from, to: r.to }),
  });
  return (
    <>
      <h2>Traces</h2>
      <form className="row" onSubmit={submit} aria-label="Search traces">
        {input("service", "Service")}
        {input("operation", "Operation")}
        {input("attribute", "Attribute", "key=value")}
        {input("min_duration", "Min duration", "250ms")}
        {input("max_duration", "Max duration", "2s")}
        <label>
          Status
          <select name="status" value={form.status} onChange={(e) => setForm({ ...form, status: e.target.value })}>
            <option value="">any</option>
            <option value="error">error</option>
            <option value="ok">ok</option>
            <option value="unset">unset</option>
          </select>
        </label>
        {input("limit", "Limit", "100")}
        <button type="submit">Search</button>
      </form>
      <View q={found} isEmpty={(d) => d.traces.length === 0} empty="No traces match in this range.">
        {(d) => (
          <>
            <TimeChart
              kind="points"
              height={160}
              series={[{ label: "duration (ms)", points: d.traces.map((t) => [Date.parse(t.start_time), t.duration_ns / 1e6]) }]}
            />
            <Table
              testid="traces"
              head={["Trace", "Root", "Start", "Duration", "Spans", "Errors", "Services"]}
              rows={d.traces.map((t) => [
                <Link className="mono" to={`/traces/${t.trace_id}`}>{t.trace_id.slice(0, 16)}</Link>,
                `${t.root_service}: ${t.root_name}`,
                time(t.start_time),
                dur(t.duration_ns),
                t.span_count,
                t.error_count ? <span className="bad">{t.error_count}</span> : 0,
                t.services.join(", "),
              ])}
            />
          </>
        )}
      </View>
    </>
  );
}
