// The shared time range: relative (`now-1h`) or absolute, with an
// auto-refresh interval, kept in the URL (`from`, `to`, `refresh`).
import { useEffect, useState } from "react";
import { setParams, useRoute } from "./router";

const PRESETS = [
  ["now-5m", "Last 5 minutes"],
  ["now-15m", "Last 15 minutes"],
  ["now-1h", "Last hour"],
  ["now-6h", "Last 6 hours"],
  ["now-24h", "Last 24 hours"],
  ["now-7d", "Last 7 days"],
];
const REFRESH = [
  ["", "Off"],
  ["10s", "10 s"],
  ["30s", "30 s"],
  ["1m", "1 min"],
  ["5m", "5 min"],
];

export type Range = { from: string; to: string; refreshMs: number; tick: number };

function ms(r: string): number {
  const m = /^(\d+)(s|m)$/.exec(r);
  return m ? Number(m[1]) * (m[2] === "s" ? 1e3 : 6e4) : 0;
}

/** The range of the URL; `tick` changes on each auto-refresh. */
export function useRange(): Range {
  const { params } = useRoute();
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  const refreshMs = ms(params.get("refresh") ?? "");
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!refreshMs) return;
    const t = window.setInterval(() => setTick((n) => n + 1), refreshMs);
    return () => window.clearInterval(t);
  }, [refreshMs]);
  return { from, to, refreshMs, tick };
}

function local(t: string): string {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return "";
  const off = d.getTimezoneOffset() * 6e4;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

export function TimePicker() {
  const { params } = useRoute();
  const from = params.get("from") ?? "now-1h";
  const to = params.get("to") ?? "now";
  const preset = to === "now" && PRESETS.some(([v]) => v === from) ? from : "custom";
  const [custom, setCustom] = useState({ from: local(from), to: local(to) });
  return (
    <div className="timepicker" role="group" aria-label="Time range">
      <select
        aria-label="Range"
        value={preset}
        onChange={(e) => e.target.value !== "custom" && setParams({ from: e.target.value, to: undefined })}
      >
        {PRESETS.map(([v, l]) => (
          <option key={v} value={v}>
            {l}
          </option>
        ))}
        <option value="custom">Absolute…</option>
      </select>
      {preset === "custom" && (
        <>
          <input
            aria-label="From"
            type="datetime-local"
            value={custom.from}
            onChange={(e) => setCustom({ ...custom, from: e.target.value })}
          />
          <input
            aria-label="To"
            type="datetime-local"
            value={custom.to}
            onChange={(e) => setCustom({ ...custom, to: e.target.value })}
          />
          <button
            onClick={() =>
              custom.from &&
              custom.to &&
              setParams({ from: new Date(custom.from).toISOString(), to: new Date(custom.to).toISOString() })
            }
          >
            Apply
          </button>
        </>
      )}
      <select
        aria-label="Auto-refresh"
        value={params.get("refresh") ?? ""}
        onChange={(e) => setParams({ refresh: e.target.value || undefined })}
      >
        {REFRESH.map(([v, l]) => (
          <option key={v} value={v}>
            ↻ {l}
          </option>
        ))}
      </select>
    </div>
  );
}
