// Shared bits of every page: loading, empty and error states, tables,
// tabs, durations and times.
import type { KeyboardEvent, ReactNode } from "react";
import { ApiError } from "./api";

export function Loading() {
  return (
    <p className="state" role="status">
      Loading…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state empty">{children}</p>;
}

export function Failed({ error }: { error: unknown }) {
  const msg = error instanceof ApiError ? error.message : error instanceof Error ? error.message : String(error);
  return (
    <p className="state error" role="alert">
      {error instanceof ApiError && error.status === 403 ? "Your role does not allow this." : msg}
    </p>
  );
}

/** Renders a query's state: loading, error, empty or `children`. */
export function View<T>({
  q,
  empty,
  isEmpty,
  children,
}: {
  q: { isPending: boolean; error: unknown; data: T | undefined };
  empty?: ReactNode;
  isEmpty?: (d: T) => boolean;
  children: (d: T) => ReactNode;
}) {
  if (q.error) return <Failed error={q.error} />;
  if (q.isPending || q.data === undefined) return <Loading />;
  if (isEmpty?.(q.data)) return <Empty>{empty ?? "Nothing here in this range."}</Empty>;
  return <>{children(q.data)}</>;
}

export function Table({ head, rows, testid }: { head: ReactNode[]; rows: ReactNode[][]; testid?: string }) {
  return (
    <div className="table-wrap">
      <table data-testid={testid}>
        <thead>
          <tr>
            {head.map((h, i) => (
              <th key={i} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={i}>
              {r.map((c, j) => (
                <td key={j}>{c}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Tabs<T extends string>({ tabs, value, onChange }: { tabs: [T, string][]; value: T; onChange: (t: T) => void }) {
  return (
    <div className="tabs" role="tablist">
      {tabs.map(([k, l]) => (
        <button key={k} role="tab" aria-selected={k === value} className={k === value ? "on" : ""} onClick={() => onChange(k)}>
          {l}
        </button>
      ))}
    </div>
  );
}

export function dur(ns: number | null | undefined): string {
  if (ns === null || ns === undefined || Number.isNaN(ns)) return "";
  if (ns < 1e3) return `${ns} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

export function time(t: string | number | null | undefined): string {
  if (t === null || t === undefined) return "";
  const d = new Date(typeof t === "number" ? t : t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

export function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? "" : `${(x * 100).toFixed(1)}%`;
}

export function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/**
 * Keyboard for a virtualised list of `count` rows of `row` px in a scroller
 * `height` px tall: ArrowUp/ArrowDown, PageUp/PageDown, Home/End move the
 * selection (`at`, -1 for none) and keep it in view; the caller's `extra`
 * handles other keys (expand, collapse).
 */
export function listKeys(count: number, at: number, row: number, height: number, select: (i: number) => void, extra?: (key: string) => boolean) {
  return (e: KeyboardEvent<HTMLDivElement>) => {
    const page = Math.max(1, Math.floor(height / row) - 1);
    const step: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, Home: -count, End: count };
    if (e.key in step && count > 0) {
      const next = Math.min(count - 1, Math.max(0, (at < 0 ? -1 : at) + step[e.key]));
      select(next);
      const el = e.currentTarget;
      if (next * row < el.scrollTop) el.scrollTop = next * row;
      else if ((next + 1) * row > el.scrollTop + height) el.scrollTop = (next + 1) * row - height;
    } else if (!extra?.(e.key)) return;
    e.preventDefault();
  };
}
