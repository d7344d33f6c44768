// Time-series charts with uPlot: lines, bars or points, an optional
// expected band and marked points (anomalies).
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export type Series = { label: string; points: [number, number | null][] };

const COLORS = ["#3b82f6", "#f97316", "#10b981", "#a855f7", "#ef4444", "#eab308", "#06b6d4", "#ec4899"];

export function TimeChart({
  series,
  height = 220,
  kind = "line",
  band,
  marks,
  title,
}: {
  series: Series[];
  height?: number;
  kind?: "line" | "bars" | "points";
  /** Expected low and high per time, drawn as a band. */
  band?: { t: number; low: number; high: number }[];
  /** Points drawn in red on top (time ms, value). */
  marks?: [number, number][];
  title?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    // One x axis: the union of every series' times (seconds).
    const xs = new Set<number>();
    for (const s of series) for (const [t] of s.points) xs.add(t / 1e3);
    for (const b of band ?? []) xs.add(b.t / 1e3);
    for (const [t] of marks ?? []) xs.add(t / 1e3);
    const x = [...xs].sort((a, b) => a - b);
    const at = new Map(x.map((v, i) => [v, i]));
    const col = (pts: [number, number | null][]) => {
      const out: (number | null)[] = new Array(x.length).fill(null);
      for (const [t, v] of pts) out[at.get(t / 1e3)!] = v;
      return out;
    };
    const data: (number | null)[][] = [x];
    const opts: uPlot.Series[] = [{}];
    const bars = kind === "bars" ? uPlot.paths.bars!({ size: [0.8, 40] }) : undefined;
    series.forEach((s, i) => {
      data.push(col(s.points));
      const c = COLORS[i % COLORS.length];
      opts.push({
        label: s.label,
        stroke: c,
        width: kind === "points" ? 0 : 1.5,
        fill: kind === "bars" ? c + "99" : undefined,
        paths: kind === "bars" ? bars : kind === "points" ? () => null : undefined,
        points: kind === "points" ? { show: true, size: 5, fill: c } : { show: false },
        spanGaps: true,
      });
    });
    const bands: uPlot.Band[] = [];
    if (band?.length) {
      const hi = data.length;
      data.push(col(band.map((b) => [b.t, b.high])));
      data.push(col(band.map((b) => [b.t, b.low])));
      opts.push({ label: "expected high", stroke: "#9ca3af", dash: [4, 4], width: 1, spanGaps: true, points: { show: false } });
      opts.push({ label: "expected low", stroke: "#9ca3af", dash: [4, 4], width: 1, spanGaps: true, points: { show: false } });
      bands.push({ series: [hi, hi + 1], fill: "rgba(156,163,175,0.25)" });
    }
    if (marks?.length) {
      data.push(col(marks));
      opts.push({ label: "anomaly", stroke: "#dc2626", width: 0, paths: () => null, points: { show: true, size: 10, fill: "#dc2626", stroke: "#dc2626" } });
    }
    const plot = new uPlot(
      {
        width: el.clientWidth || 600,
        height,
        title,
        series: opts,
        bands,
        legend: { show: series.length > 1 || !!band || !!marks },
        axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 60 }],
        // One point alone would stretch the axis over years: half an hour each side.
        scales: { x: { time: true, range: (_u, min, max) => (min === max ? [min - 1800, max + 1800] : [min, max]) } },
      },
      data as uPlot.AlignedData,
      el,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: el.clientWidth || 600, height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [series, height, kind, band, marks, title]);
  return <div className="chart" ref={box} data-testid="chart" />;
}

/** A tiny line without axes, for tables. */
export function Sparkline({ values, width = 120, height = 28 }: { values: number[]; width?: number; height?: number }) {
  if (values.length < 2) return <svg width={width} height={height} aria-hidden="true" />;
  const max = Math.max(...values, 1e-9);
  const step = width / (values.length - 1);
  const d = values.map((v, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join("");
  return (
    <svg width={width} height={height} className="spark" aria-hidden="true">
      <path d={d} fill="none" stroke="currentColor" strokeWidth="1.5" />
    </svg>
  );
}
