// The dashboard's shell: session, navigation, theme and the page of the
// current path (each page loaded on demand).
import { StrictMode, Suspense, lazy, useEffect, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { ApiError, get, login, logout, session } from "./api";
import { Link, navigate, useRoute } from "./router";
import { TimePicker } from "./time";
import { Failed, Loading } from "./ui";
import "./styles.css";

const Services = lazy(() => import("./pages/services"));
const Traces = lazy(() => import("./pages/traces"));
const Trace = lazy(() => import("./pages/trace"));
const Logs = lazy(() => import("./pages/logs"));
const Metrics = lazy(() => import("./pages/metrics"));
const Dashboards = lazy(() => import("./pages/dashboards"));
const Insights = lazy(() => import("./pages/insights"));
const Sql = lazy(() => import("./pages/sql"));
const Alerts = lazy(() => import("./pages/alerts"));
const Heal = lazy(() => import("./pages/heal"));
const Copilot = lazy(() => import("./pages/copilot"));
const Settings = lazy(() => import("./pages/settings"));

/** Navigation: path, label, whether the time range applies. */
const NAV: [string, string, boolean][] = [
  ["/services", "Services", true],
  ["/traces", "Traces", true],
  ["/logs", "Logs", true],
  // Not /metrics: the server's Prometheus endpoint lives there.
  ["/explore", "Metrics", true],
  ["/dashboards", "Dashboards", true],
  ["/insights", "Insights", false],
  ["/alerts", "Alerts", false],
  ["/heal", "Healing", false],
  ["/copilot", "Copilot", false],
  ["/sql", "SQL", true],
  ["/settings", "Settings", false],
];

const client = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (n, e) => !(e instanceof ApiError && e.status < 500) && n < 2,
      refetchOnWindowFocus: false,
      staleTime: 5_000,
    },
  },
});

export type Me = { id: number; username: string; tenant: string; role: string };

function useTheme(): [string, () => void] {
  const [theme, setTheme] = useState(
    () => localStorage.getItem("ophion.theme") ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"),
  );
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("ophion.theme", theme);
  }, [theme]);
  return [theme, () => setTheme(theme === "dark" ? "light" : "dark")];
}

function Login() {
  const [f, setF] = useState({ username: "", password: "", tenant: "" });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(f.username, f.password, f.tenant || undefined);
      client.clear();
      if (window.location.pathname === "/login" || window.location.pathname === "/") navigate("/services", true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="login">
      <form onSubmit={submit} aria-label="Sign in">
        <h1>Ophion</h1>
        <label>
          User name
          <input name="username" autoComplete="username" required value={f.username} onChange={(e) => setF({ ...f, username: e.target.value })} />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required value={f.password} onChange={(e) => setF({ ...f, password: e.target.value })} />
        </label>
        <label>
          Tenant <small>(if not the default)</small>
          <input name="tenant" value={f.tenant} onChange={(e) => setF({ ...f, tenant: e.target.value })} />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error ? <Failed error={error} /> : null}
      </form>
    </main>
  );
}

function Page({ path, me }: { path: string; me: Me }) {
  if (path.startsWith("/traces/")) return <Trace id={decodeURIComponent(path.slice("/traces/".length))} />;
  if (path.startsWith("/dashboards")) return <Dashboards me={me} />;
  if (path.startsWith("/heal")) return <Heal me={me} />;
  switch (path) {
    case "/traces":
      return <Traces />;
    case "/logs":
      return <Logs />;
    case "/explore":
      return <Metrics me={me} />;
    case "/insights":
      return <Insights />;
    case "/sql":
      return <Sql />;
    case "/alerts":
      return <Alerts me={me} />;
    case "/copilot":
      return <Copilot me={me} />;
    case "/settings":
      return <Settings me={me} />;
    default:
      return <Services />;
  }
}

function Shell() {
  const { path } = useRoute();
  const [theme, toggle] = useTheme();
  const [menu, setMenu] = useState(false);
  const me = useQuery({ queryKey: ["me"], queryFn: () => get<Me>("/api/v1/auth/me") });
  useEffect(() => {
    if (path === "/" || path === "/login") navigate("/services", true);
  }, [path]);
  const ranged = NAV.find(([p]) => path.startsWith(p))?.[2] ?? path.startsWith("/traces");
  return (
    <div className="shell">
      <header>
        <button className="menu" aria-label="Menu" aria-expanded={menu} onClick={() => setMenu(!menu)}>
          ☰
        </button>
        <Link to="/services" className="brand">
          Ophion
        </Link>
        <nav className={menu ? "open" : ""} aria-label="Main">
          {NAV.map(([p, label]) => (
            <Link key={p} to={p} aria-current={path.startsWith(p) ? "page" : undefined} onClick={() => setMenu(false)}>
              {label}
            </Link>
          ))}
        </nav>
        <div className="right">
          {ranged && <TimePicker />}
          <button aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`} onClick={toggle}>
            {theme === "dark" ? "☀" : "☾"}
          </button>
          <span className="who">{me.data ? `${me.data.username} (${me.data.role})` : ""}</span>
          <button
            onClick={async () => {
              await logout();
              client.clear();
              navigate("/login", true);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main>
        {me.error ? (
          <Failed error={me.error} />
        ) : (
          // The page starts loading at once; until the user is known it
          // offers only what a viewer may do.
          <Suspense fallback={<Loading />}>
            <Page path={path} me={me.data ?? { id: 0, username: "", tenant: "", role: "viewer" }} />
          </Suspense>
        )}
      </main>
    </div>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(() => session() !== null);
  useTheme();
  useEffect(() => {
    const on = () => setSignedIn(session() !== null);
    window.addEventListener("ophion-session", on);
    window.addEventListener("storage", on);
    return () => {
      window.removeEventListener("ophion-session", on);
      window.removeEventListener("storage", on);
    };
  }, []);
  return signedIn ? <Shell /> : <Login />;
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={client}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
);
