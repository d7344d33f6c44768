// Settings for admins: users and roles, ingest keys, tenants.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { get, send } from "../api";
import type { Me } from "../main";
import { Failed, Table, View, time } from "../ui";

type User = { id: number; username: string; role: string; disabled: boolean };
type Key = { id: number; name: string; created_at?: string; created_by?: string };

function Users() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["users"], queryFn: () => get<{ users: User[] }>("/api/v1/users") });
  const [f, setF] = useState({ username: "", password: "", role: "viewer" });
  const add = useMutation({ mutationFn: () => send("POST", "/api/v1/users", f), onSuccess: () => { setF({ username: "", password: "", role: "viewer" }); qc.invalidateQueries({ queryKey: ["users"] }); } });
  const patch = useMutation({ mutationFn: ({ id, body }: { id: number; body: object }) => send("PATCH", `/api/v1/users/${id}`, body), onSuccess: () => qc.invalidateQueries({ queryKey: ["users"] }) });
  return (
    <>
      <h3>Users</h3>
      <View q={q}>
        {(d) => (
          <Table
            testid="users"
            head={["User", "Role", "State"]}
            rows={d.users.map((u) => [
              u.username,
              <select aria-label={`Role of ${u.username}`} value={u.role} onChange={(e) => patch.mutate({ id: u.id, body: { role: e.target.value } })}>
                {["viewer", "editor", "admin"].map((r) => <option key={r}>{r}</option>)}
              </select>,
              <button onClick={() => patch.mutate({ id: u.id, body: { disabled: !u.disabled } })}>{u.disabled ? "Enable" : "Disable"}</button>,
            ])}
          />
        )}
      </View>
      <div className="row">
        <label>User name<input aria-label="New user name" value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} /></label>
        <label>Password<input aria-label="New user password" type="password" value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} /></label>
        <label>Role<select aria-label="New user role" value={f.role} onChange={(e) => setF({ ...f, role: e.target.value })}>{["viewer", "editor", "admin"].map((r) => <option key={r}>{r}</option>)}</select></label>
        <button onClick={() => add.mutate()} disabled={!f.username || !f.password}>Add user</button>
      </div>
      {add.error ? <Failed error={add.error} /> : null}
      {patch.error ? <Failed error={patch.error} /> : null}
    </>
  );
}

function Keys() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: ["keys"], queryFn: () => get<{ keys: Key[] }>("/api/v1/keys") });
  const [name, setName] = useState("");
  const [made, setMade] = useState<string | null>(null);
  const add = useMutation({ mutationFn: () => send<{ key: string }>("POST", "/api/v1/keys", { name }), onSuccess: (v) => { setMade(v.key); setName(""); qc.invalidateQueries({ queryKey: ["keys"] }); } });
  const del = useMutation({ mutationFn: (id: number) => send("DELETE", `/api/v1/keys/${id}`), onSuccess: () => qc.invalidateQueries({ queryKey: ["keys"] }) });
  return (
    <>
      <h3>Ingest keys</h3>
      <View q={q} isEmpty={(d) => d.keys.length === 0} empty="No ingest keys.">
        {(d) => <Table head={["Name", "Created", ""]} rows={d.keys.map((k) => [k.name, time(k.created_at), <button onClick={() => del.mutate(k.id)}>Revoke</button>])} />}
      </View>
      <div className="row">
        <label>Name<input aria-label="Key name" value={name} onChange={(e) => setName(e.target.value)} /></label>
        <button onClick={() => add.mutate()} disabled={!name}>Create key</button>
      </div>
      {made && <p>New key (shown once): <code className="mono">{made}</code></p>}
      {add.error ? <Failed error={add.error} /> : null}
    </>
  );
}

function Tenants() {
  const [f, setF] = useState({ id: "", name: "", admin_username: "", admin_password: "" });
  const add = useMutation({ mutationFn: () => send("POST", "/api/v1/tenants", f) });
  return (
    <>
      <h3>Tenants</h3>
      <div className="row">
        {(["id", "name", "admin_username", "admin_password"] as const).map((k) => (
          <label key={k}>
            {k.replace("_", " ")}
            <input aria-label={`Tenant ${k}`} type={k === "admin_password" ? "password" : "text"} value={f[k]} onChange={(e) => setF({ ...f, [k]: e.target.value })} />
          </label>
        ))}
        <button onClick={() => add.mutate()}>Create tenant</button>
      </div>
      {add.isSuccess && <p className="good">Tenant created.</p>}
      {add.error ? <Failed error={add.error} /> : null}
    </>
  );
}

export default function Settings({ me }: { me: Me }) {
  if (me.role !== "admin") return <p className="state">Settings are for admins. You are signed in as {me.username} ({me.role}).</p>;
  return (
    <>
      <h2>Settings</h2>
      <Users />
      <Keys />
      {me.tenant === "default" && <Tenants />}
    </>
  );
}
