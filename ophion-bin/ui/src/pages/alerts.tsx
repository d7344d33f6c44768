// Alerts: firing alerts, incidents (with impact and priority), rules,
// silences and history.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { get, send } from "../api";
import type { Me } from "../main";
import { setParams, useRoute } from "../router";
import { Failed, Table, Tabs, View, cell, time } from "../ui";

type Alert = { fingerprint: string; labels: Record<string, string>; annotations: Record<string, string>; state: string; value: number; active_since: string; incident_id: number };
type Incident = { id: number; status: string; opened_at: string; priority: { score: number } | number; services: string[]; root_cause: string; alerts: { fingerprint: string; labels: Record<string, string>; state: string }[] };
type Matcher = { name: string; value: string; isRegex?: boolean; isEqual?: boolean };
type Silence = { id: number; matchers: Matcher[]; startsAt: string; endsAt: string; comment: string; every?: string };

const labelText = (l: Record<string, string>) => Object.entries(l).filter(([k]) => k !== "alertname").map(([k, v]) => `${k}=${v}`).join(", ");

function Impact({ id }: { id: number }) {
  const q = useQuery({ queryKey: ["incident", id], queryFn: () => get<{ impact: { requests: number; errors: number; users: number | null; users_with_errors: number | null; endpoints: { service: string; endpoint: string; requests: number; errors: number }[] } }>(`/api/v1/incidents/${id}`) });
  return (
    <View q={q}>
      {(d) => (
        <div className="details" data-testid="impact">
          <p>
            {d.impact.requests} requests, <span className="bad">{d.impact.errors} errors</span>
            {d.impact.users !== null ? `, ${d.impact.users} users (${d.impact.users_with_errors} met an error)` : ""}
          </p>
          <Table head={["Service", "Endpoint", "Requests", "Errors"]} rows={d.impact.endpoints.map((e) => [e.service, e.endpoint, e.requests, e.errors])} />
        </div>
      )}
    </View>
  );
}

function Incidents() {
  const q = useQuery({ queryKey: ["incidents"], queryFn: () => get<{ incidents: Incident[] }>("/api/v1/incidents"), refetchInterval: 15_000 });
  const [open, setOpen] = useState<number | null>(null);
  return (
    <View q={q} isEmpty={(d) => d.incidents.length === 0} empty="No incidents.">
      {(d) => (
        <>
          {d.incidents.map((i) => (
            <div key={i.id} className="card" style={{ marginBottom: 8 }}>
              <b>#{i.id}</b> <span className={i.status === "open" ? "bad" : "good"}>{i.status}</span> · priority {typeof i.priority === "number" ? i.priority : i.priority.score} · {i.services.join(", ")} · since {time(i.opened_at)}{" "}
              <button onClick={() => setOpen(open === i.id ? null : i.id)}>{open === i.id ? "Hide impact" : "Impact"}</button>
              <ol>
                {i.alerts.map((a) => (
                  <li key={a.fingerprint}>
                    {a.fingerprint === i.root_cause ? <b>probable root cause: </b> : null}
                    {a.labels.alertname} <span className="mono">{labelText(a.labels)}</span> ({a.state})
                  </li>
                ))}
              </ol>
              {open === i.id && <Impact id={i.id} />}
            </div>
          ))}
        </>
      )}
    </View>
  );
}

function Silences({ me }: { me: Me }) {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["silences"], queryFn: () => get<{ silences: Silence[] }>("/api/v1/silences") });
  const [f, setF] = useState({ matchers: "", duration: "2h", comment: "" });
  const create = useMutation({
    mutationFn: () => {
      const matchers = f.matchers.split(",").map((m) => m.trim()).filter(Boolean).map((m) => {
        const op = ["!~", "=~", "!=", "="].find((o) => m.includes(o))!;
        const [name, value] = m.split(op);
        return { name: name.trim(), value: value.trim(), isRegex: op.includes("~"), isEqual: !op.startsWith("!") };
      });
      return send("POST", "/api/v1/silences", { matchers, startsAt: "now", endsAt: `now+${f.duration}`, comment: f.comment });
    },
    onSuccess: () => qc.invalidateQueries({ queryKey: ["silences"] }),
  });
  const del = useMutation({ mutationFn: (id: number) => send("DELETE", `/api/v1/silences/${id}`), onSuccess: () => qc.invalidateQueries({ queryKey: ["silences"] }) });
  return (
    <>
      {me.role !== "viewer" && (
        <div className="row">
          <label>
            Matchers
            <input aria-label="Matchers" placeholder="service=checkout, alertname=~High.*" value={f.matchers} onChange={(e) => setF({ ...f, matchers: e.target.value })} />
          </label>
          <label>
            For
            <input aria-label="Duration" value={f.duration} onChange={(e) => setF({ ...f, duration: e.target.value })} />
          </label>
          <label>
            Comment
            <input aria-label="Comment" value={f.comment} onChange={(e) => setF({ ...f, comment: e.target.value })} />
          </label>
          <button onClick={() => create.mutate()} disabled={!f.matchers.includes("=")}>
            Silence
          </button>
        </div>
      )}
      {create.error ? <Failed error={create.error} /> : null}
      <View q={q} isEmpty={(d) => d.silences.length === 0} empty="No silences.">
        {(d) => (
          <Table
            head={["Matchers", "From", "Until", "Every", "Comment", ""]}
            rows={d.silences.map((s) => [
              <span className="mono">{s.matchers.map((m) => `${m.name}${m.isEqual === false ? "!" : "="}${m.isRegex ? "~" : ""}${m.value}`).join(", ")}</span>,
              time(s.startsAt), time(s.endsAt), s.every ?? "", s.comment,
              me.role !== "viewer" ? <button onClick={() => del.mutate(s.id)}>Expire</button> : "",
            ])}
          />
        )}
      </View>
    </>
  );
}

export default function Alerts({ me }: { me: Me }) {
  const { params } = useRoute();
  const tab = (params.get("tab") ?? "alerts") as "alerts" | "incidents" | "rules" | "silences" | "history";
  const alerts = useQuery({ queryKey: ["alerts"], queryFn: () => get<{ alerts: Alert[] }>("/api/v1/alerts"), refetchInterval: 15_000, enabled: tab === "alerts" });
  const rules = useQuery({ queryKey: ["rules"], queryFn: () => get<{ rules: Record<string, unknown>[] }>("/api/v1/alerts/rules"), enabled: tab === "rules" });
  const history = useQuery({ queryKey: ["history"], queryFn: () => get<{ history: { at: string; from: string; to: string; labels: Record<string, string>; value: number }[] }>("/api/v1/alerts/history"), enabled: tab === "history" });
  return (
    <>
      <h2>Alerts</h2>
      <Tabs tabs={[["alerts", "Firing"], ["incidents", "Incidents"], ["rules", "Rules"], ["silences", "Silences"], ["history", "History"]]} value={tab} onChange={(t) => setParams({ tab: t })} />
      {tab === "alerts" && (
        <View q={alerts} isEmpty={(d) => d.alerts.length === 0} empty="No alerts pending or firing.">
          {(d) => <Table testid="alerts" head={["State", "Alert", "Labels", "Value", "Since", "Summary"]} rows={d.alerts.map((a) => [<span className={a.state === "firing" ? "bad" : "warn"}>{a.state}</span>, a.labels.alertname, <span className="mono">{labelText(a.labels)}</span>, a.value, time(a.active_since), a.annotations.summary ?? ""])} />}
        </View>
      )}
      {tab === "incidents" && <Incidents />}
      {tab === "rules" && (
        <View q={rules} isEmpty={(d) => d.rules.length === 0} empty="No rules: create them with the API or `ophion alerts apply FILE`.">
          {(d) => <Table head={["Name", "Kind", "Severity", "Every", "Health", "Error"]} rows={d.rules.map((r) => [cell(r.name), cell(r.kind), cell(r.severity), cell(r.interval), cell(r.health), cell(r.last_error)])} />}
        </View>
      )}
      {tab === "silences" && <Silences me={me} />}
      {tab === "history" && (
        <View q={history} isEmpty={(d) => d.history.length === 0} empty="No changes yet.">
          {(d) => <Table head={["At", "Change", "Alert", "Labels", "Value"]} rows={d.history.map((h) => [time(h.at), `${h.from} → ${h.to}`, h.labels.alertname, <span className="mono">{labelText(h.labels)}</span>, h.value])} />}
        </View>
      )}
    </>
  );
}
