/**
 * A time series chart with uPlot, in the chunk of the pages that draw one. uPlot sizes and places
 * its elements through the CSSOM (element.style), which the CSP's style-src does not govern; its
 * stylesheet is bundled, not inline.
 */
import type { JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: number[];
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Times in ms; each series one value per time. The figure is described by `label` for screen readers. */
export function TimeChart({ times, series, label, height = 240 }: { times: number[]; series: Series[]; label: string; height?: number }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const colors = [cssVar('--accent', '#1f6feb'), cssVar('--accent-2', '#d97706')];
    const axis = { stroke: cssVar('--muted', '#666'), grid: { stroke: cssVar('--border', '#ddd'), width: 1 }, ticks: { stroke: cssVar('--border', '#ddd') } };
    const opts: uPlot.Options = {
      width: Math.max(el.clientWidth, 280),
      height,
      scales: { x: { time: true } },
      axes: [axis, axis],
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, fill: i === 0 ? `${colors[0]}22` : undefined }))],
    };
    const plot = new uPlot(opts, [times.map((t) => t / 1000), ...series.map((s) => s.values)], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 280), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [times, series, height]);
  return <div class="chart" ref={box} role="img" aria-label={label} />;
}
