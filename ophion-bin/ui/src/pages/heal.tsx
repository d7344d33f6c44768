// Auto-healing: runs (newest first; those awaiting approval can be
// approved or rejected by editors), one run's steps with exactly what ran,
// its timing and output, and the playbooks.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, send } from "../api";
import type { Me } from "../main";
import { Link, setParams, useRoute } from "../router";
import { Failed, Table, Tabs, View, time } from "../ui";

type Run = { id: number; playbook: string; version: number; target: string; mode: string; state: string; reason: string; created_at: string; decided_by: string | null; trigger: { source: string; labels: Record<string, string> } };
type Step = { phase: string; position: number; kind: string; input: unknown; state: string; started_at: string; duration_ms: number | null; output: string; error: string | null };
type Playbook = { name: string; version: number; mode: string; enabled: boolean; description: string; steps: unknown[]; rollback: unknown[]; updated_by: string };

const tone = (state: string) => (["succeeded", "dry_run"].includes(state) ? "good" : ["failed", "rolled_back", "refused", "interrupted"].includes(state) ? "bad" : "warn");

function Decide({ run }: { run: Run }) {
  const qc = useQueryClient();
  const decide = useMutation({
    mutationFn: (verb: "approve" | "reject") => send("POST", `/api/v1/heal/runs/${run.id}/${verb}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["heal"] }),
  });
  return (
    <>
      <button onClick={() => decide.mutate("approve")} disabled={decide.isPending}>
        Approve
      </button>{" "}
      <button onClick={() => decide.mutate("reject")} disabled={decide.isPending}>
        Reject
      </button>
      {decide.error ? <Failed error={decide.error} /> : null}
    </>
  );
}

function Runs({ me }: { me: Me }) {
  const q = useQuery({ queryKey: ["heal", "runs"], queryFn: () => get<{ runs: Run[] }>("/api/v1/heal/runs"), refetchInterval: 5_000 });
  return (
    <View q={q} isEmpty={(d) => d.runs.length === 0} empty="No healing runs yet.">
      {(d) => (
        <Table
          testid="heal-runs"
          head={["Run", "Playbook", "Target", "Mode", "State", "Trigger", "Started", ""]}
          rows={d.runs.map((r) => [
            <Link to={`/heal/runs/${r.id}`}>#{r.id}</Link>,
            `${r.playbook} v${r.version}`,
            r.target,
            r.mode,
            <span className={tone(r.state)} title={r.reason}>
              {r.state.replaceAll("_", " ")}
            </span>,
            r.trigger.source,
            time(r.created_at),
            r.state === "awaiting_approval" && me.role !== "viewer" ? <Decide run={r} /> : r.reason,
          ])}
        />
      )}
    </View>
  );
}

function OneRun({ id, me }: { id: number; me: Me }) {
  const q = useQuery({ queryKey: ["heal", "run", id], queryFn: () => get<Run & { steps: Step[] }>(`/api/v1/heal/runs/${id}`), refetchInterval: 2_000 });
  return (
    <View q={q}>
      {(r) => (
        <>
          <h3>
            Run #{r.id}: {r.playbook} v{r.version} on {r.target || "—"} · <span className={tone(r.state)}>{r.state.replaceAll("_", " ")}</span>
          </h3>
          <p className="state">
            {r.mode} · {r.trigger.source}
            {r.decided_by ? ` · decided by ${r.decided_by}` : ""}
            {r.reason ? ` · ${r.reason}` : ""}
          </p>
          {r.state === "awaiting_approval" && me.role !== "viewer" && <Decide run={r} />}
          <ol className="steps" data-testid="heal-steps">
            {r.steps.map((s, i) => (
              <li key={i}>
                <b>
                  {s.phase} {s.position} · {s.kind}
                </b>{" "}
                <span className={tone(s.state)}>{s.state.replaceAll("_", " ")}</span>
                {s.duration_ms !== null ? ` · ${s.duration_ms.toFixed(0)} ms` : ""}
                <pre className="mono">{JSON.stringify(s.input, null, 1)}</pre>
                {s.output && <pre className="mono">{s.output}</pre>}
                {s.error && <p className="bad">{s.error}</p>}
              </li>
            ))}
          </ol>
          <Link to="/heal">All runs</Link>
        </>
      )}
    </View>
  );
}

function Playbooks() {
  const q = useQuery({ queryKey: ["heal", "playbooks"], queryFn: () => get<{ playbooks: Playbook[] }>("/api/v1/playbooks") });
  return (
    <View q={q} isEmpty={(d) => d.playbooks.length === 0} empty="No playbooks: add one with the API or `ophion heal playbooks --apply FILE`.">
      {(d) => (
        <Table
          testid="playbooks"
          head={["Name", "Version", "Mode", "Enabled", "Steps", "Rollback", "By"]}
          rows={d.playbooks.map((p) => [p.name, p.version, p.mode, p.enabled ? "yes" : "no", p.steps.length, p.rollback?.length ?? 0, p.updated_by])}
        />
      )}
    </View>
  );
}

export default function Heal({ me }: { me: Me }) {
  const { path, params } = useRoute();
  const id = Number(path.split("/")[3]);
  const tab = (params.get("tab") ?? "runs") as "runs" | "playbooks";
  return (
    <>
      <h2>Auto-healing</h2>
      {id ? (
        <OneRun id={id} me={me} />
      ) : (
        <>
          <Tabs tabs={[["runs", "Runs"], ["playbooks", "Playbooks"]]} value={tab} onChange={(t) => setParams({ tab: t })} />
          {tab === "runs" ? <Runs me={me} /> : <Playbooks />}
        </>
      )}
    </>
  );
}
