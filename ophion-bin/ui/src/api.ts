// The API client: the session (access and refresh tokens in
// localStorage), JSON calls with the bearer token, one refresh on 401.

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    /** The API's error code (`error.code`), when it gave one. */
    public code?: string,
  ) {
    super(message);
  }
}

export type Session = { token: string; refresh: string; user?: string };

const KEY = "ophion.session";

export function session(): Session | null {
  try {
    const s = localStorage.getItem(KEY);
    return s ? (JSON.parse(s) as Session) : null;
  } catch {
    return null;
  }
}

function save(s: Session | null) {
  if (s) localStorage.setItem(KEY, JSON.stringify(s));
  else localStorage.removeItem(KEY);
  window.dispatchEvent(new Event("ophion-session"));
}

async function readError(r: Response): Promise<ApiError> {
  let message = `${r.status} ${r.statusText}`;
  let code: string | undefined;
  try {
    const v = await r.json();
    message = v?.error?.message ?? message;
    code = v?.error?.code;
  } catch {
    /* not JSON */
  }
  return new ApiError(r.status, message, code);
}

export async function login(username: string, password: string, tenant?: string) {
  const r = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(tenant ? { username, password, tenant } : { username, password }),
  });
  if (!r.ok) throw await readError(r);
  const v = await r.json();
  save({ token: v.token, refresh: v.refresh_token, user: username });
}

/** Requests sent with the session's token and not answered yet. */
const pending = new Set<Promise<Response>>();

/** Signs out: here at once (the pages give way to the sign-in form and
 * send nothing more), then on the server, once the requests already sent
 * with the token are answered (for at most 2 s), so that none of them is
 * refused for a token revoked under it. */
export async function logout() {
  const s = session();
  save(null);
  if (s) {
    const answered = Promise.allSettled([...pending]);
    await Promise.race([answered, new Promise((done) => setTimeout(done, 2000))]);
    await fetch("/api/v1/auth/logout", {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: s.refresh }),
    }).catch(() => undefined);
  }
}

let refreshing: Promise<boolean> | null = null;

async function refresh(): Promise<boolean> {
  const s = session();
  if (!s) return false;
  refreshing ??= (async () => {
    const r = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: s.refresh }),
    });
    if (!r.ok) {
      save(null);
      return false;
    }
    const v = await r.json();
    save({ token: v.token, refresh: v.refresh_token, user: s.user });
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

export type Query = Record<string, string | number | undefined | null>;

/** A response of the API with the bearer token; refreshes once on 401. */
export async function raw(path: string, init: RequestInit = {}, again = true): Promise<Response> {
  const s = session();
  // Signed out: what asks is on its way out; the server would refuse it.
  if (!s) throw new ApiError(401, "Signed out");
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${s.token}`);
  if (init.body && !headers.has("content-type")) headers.set("content-type", "application/json");
  const sent = fetch(path, { ...init, headers });
  pending.add(sent);
  const r = await sent.finally(() => pending.delete(sent));
  if (r.status === 401 && again && (await refresh())) return raw(path, init, false);
  if (r.status === 401) save(null);
  if (!r.ok) throw await readError(r);
  return r;
}

export function url(path: string, q: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const qs = p.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function get<T>(path: string, q: Query = {}): Promise<T> {
  return (await raw(url(path, q))).json() as Promise<T>;
}

export async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await raw(path, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  return r.status === 204 ? (undefined as T) : ((await r.json()) as T);
}

export type Rows = { columns: { name: string; type: string }[]; rows: unknown[][]; stats?: { elapsed_ms: number; rows: number; truncated: boolean } };

/** One read-only SQL query; `$from`/`$to` replaced by the range. */
export function sql(text: string, range?: { from: string; to: string }): Promise<Rows> {
  let s = text;
  if (range) {
    s = s.replaceAll("$from", `'${toIso(range.from)}'`).replaceAll("$to", `'${toIso(range.to)}'`);
  }
  return send<Rows>("POST", "/api/v1/query", { sql: s });
}

/** `rollups`, a query of the per-minute rollups; where they do not cover
 * the range (turned off, or on a cluster's query node, which ingests
 * nothing of its own), `spans`, the same over the spans. */
export async function sqlOr(rollups: string, spans: string, range?: { from: string; to: string }): Promise<Rows> {
  try {
    return await sql(rollups, range);
  } catch (e) {
    if (e instanceof ApiError && e.code === "not_covered") return sql(spans, range);
    throw e;
  }
}

/** Requests of a service: what the rollups count as `entry`. */
export const ENTRY_SPANS = "(kind IN ('server', 'consumer') OR parent_span_id IS NULL)";

/** `now`, `now-15m` or an absolute time, as an RFC 3339 timestamp. */
export function toIso(t: string): string {
  return new Date(toMs(t)).toISOString();
}

export function toMs(t: string): number {
  if (t === "now") return Date.now();
  const m = /^now-(\d+)(s|m|h|d)$/.exec(t);
  if (m) {
    const unit = { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[m[2] as "s" | "m" | "h" | "d"];
    return Date.now() - Number(m[1]) * unit;
  }
  const n = Date.parse(t);
  return Number.isNaN(n) ? Date.now() : n;
}

/** Reads a server-sent event stream to its end, calling `on` with each
 * event's name and data (data lines joined, one leading space dropped). */
export async function events(r: Response, on: (kind: string | undefined, data: string) => void): Promise<void> {
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const kind = /^event: ?(.*)$/m.exec(ev)?.[1];
      const data = ev.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      on(kind, data);
    }
  }
}
