// A hand-written SVG chart, one panel per form. Top row: throughput of the largest batch of each
// folio size as a fraction of the bound (the fastest of memcpy and streaming stores on 1..N
// threads, same bytes, same run), with the bound drawn as a line at 1. Bottom row: small-batch
// latency (p50) against the batch size. Each path has one colour, used by no other path, in
// every panel, and each line is labelled where it ends (no legend to match colours against).
import type { Row } from './measure';
import { sizeLabel } from './stats';

/** Distinct colours (Tableau 10 and a few dark ones); beyond them, hues on a golden-angle walk. */
const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#bcbd22',
  '#7f7f7f',
  '#393b79',
  '#637939',
  '#843c39',
  '#7b4173',
];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** The opening of a chart: the svg element on a white page, a bold title, grey subtitle lines under it. */
export function svgHeader(W: number, H: number, title: string, subtitles: readonly string[]): string[] {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...subtitles.map((t, i) => `<text x="${W / 2}" y="${44 + 18 * i}" text-anchor="middle" fill="#555">${escapeXml(t)}</text>`),
  ];
}

/** The i-th series colour: never the same string for two indexes. */
export function seriesColor(i: number): string {
  if (i < PALETTE.length) return PALETTE[i] as string;
  const k = i - PALETTE.length;
  const hue = (k * 137.508) % 360;
  // Distinct hue, and lightness stepped by round, so no two indexes give the same string.
  return `hsl(${hue.toFixed(3)},65%,${(38 + (Math.floor(k / 8) % 4) * 6).toFixed(0)}%)`;
}

export interface Series {
  /** Path, plus " (sync)" for an engine's copyBatchSync. */
  label: string;
  points: { x: number; y: number }[];
}

export interface Panel {
  kind: 'throughput' | 'latency';
  form: Row['form'];
  title: string;
  series: Series[];
}

function seriesLabel(r: Row): string {
  return r.pathKind === 'engine' && r.mode === 'sync' ? `${r.path} (sync)` : r.path;
}

function collect(rows: readonly Row[], keep: (r: Row) => boolean, x: (r: Row) => number, y: (r: Row) => number): Series[] {
  const series = new Map<string, Series>();
  for (const r of rows) {
    if (!keep(r) || !r.verified || r.probe) continue;
    const v = y(r);
    if (!Number.isFinite(v)) continue;
    const label = seriesLabel(r);
    let s = series.get(label);
    if (!s) {
      s = { label, points: [] };
      series.set(label, s);
    }
    s.points.push({ x: x(r), y: v });
  }
  for (const s of series.values()) s.points.sort((a, b) => a.x - b.x);
  return [...series.values()];
}

/**
 * The panels of a report's rows. Throughput: per form, the largest batch of each folio size,
 * y = x bound (bound rows are the line at 1, not series). Latency: per form, the small batches
 * of the smallest folio size that has any, y = p50 in microseconds. Empty panels are left out.
 */
export function chartPanels(rows: readonly Row[]): Panel[] {
  const largest = new Map<string, number>();
  for (const r of rows) {
    if (r.kind !== 'throughput') continue;
    const k = `${r.folioSize}/${r.form}`;
    largest.set(k, Math.max(largest.get(k) ?? 0, r.bytes));
  }
  const present = new Set(rows.filter((r) => r.pathKind !== 'bound').map((r) => r.form));
  const forms = (['region', 'list'] as const).filter((f) => present.has(f));
  const panels: Panel[] = [];
  for (const form of forms) {
    const series = collect(
      rows,
      (r) =>
        r.kind === 'throughput' &&
        r.pathKind !== 'bound' &&
        r.form === form &&
        largest.get(`${r.folioSize}/${r.form}`) === r.bytes &&
        r.xBound !== null,
      (r) => r.folioSize,
      (r) => r.xBound as number,
    );
    if (series.length)
      panels.push({ kind: 'throughput', form, title: `${form} form: largest batch per folio size, fraction of the bound`, series });
  }
  const latencyRows = rows.filter((r) => r.kind === 'latency' && r.pathKind !== 'bound');
  const folio = Math.min(...latencyRows.map((r) => r.folioSize));
  for (const form of forms) {
    const series = collect(
      latencyRows,
      (r) => r.form === form && r.folioSize === folio && r.p50Ns > 0,
      (r) => r.folios,
      (r) => r.p50Ns / 1000,
    );
    if (series.length)
      panels.push({ kind: 'latency', form, title: `${form} form: small batches of ${sizeLabel(folio)} folios, p50 latency`, series });
  }
  return panels;
}

/** One colour per series label across every panel, in order of first appearance. */
export function seriesColors(panels: readonly Panel[]): Map<string, string> {
  const colors = new Map<string, string>();
  for (const p of panels) for (const s of p.series) if (!colors.has(s.label)) colors.set(s.label, seriesColor(colors.size));
  return colors;
}

const PANEL_W = 470;
const PANEL_H = 260;
const LABEL_W = 120; // right of each plot: the direct labels
const M = { left: 70, top: 70, colGap: 40, rowGap: 80, bottom: 56 };

export function renderSvg(rows: readonly Row[], title: string): string {
  const panels = chartPanels(rows);
  const colors = seriesColors(panels);
  const hasLatency = panels.some((p) => p.kind === 'latency');
  const cols = Math.max(1, ...['throughput', 'latency'].map((k) => panels.filter((p) => p.kind === k).length));
  const W = M.left + cols * (PANEL_W + LABEL_W) + (cols - 1) * M.colGap + 20;
  const H = M.top + PANEL_H + (hasLatency ? M.rowGap + PANEL_H : 0) + M.bottom;
  const out = svgHeader(W, H, title, [
    'Throughput as a fraction of the bound (best of memcpy and streaming stores, 1..N threads, same run; medians) and small-batch latency',
  ]);
  if (panels.length === 0) out.push(`<text x="${W / 2}" y="${M.top + 40}" text-anchor="middle">nothing to chart</text>`);
  for (const kind of ['throughput', 'latency'] as const) {
    const row = kind === 'throughput' ? 0 : 1;
    panels
      .filter((p) => p.kind === kind)
      .forEach((p, col) => {
        const x0 = M.left + col * (PANEL_W + LABEL_W + M.colGap);
        const y0 = M.top + row * (PANEL_H + M.rowGap);
        out.push(...renderPanel(p, x0, y0, colors));
      });
  }
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}

/** A direct label: its text and colour, where it goes (y) and the line end it names. */
export interface Label {
  text: string;
  color: string;
  y: number;
  anchorX: number;
  anchorY: number;
}

function renderPanel(p: Panel, x0: number, y0: number, colors: Map<string, string>): string[] {
  const out: string[] = [];
  const xs = [...new Set(p.series.flatMap((s) => s.points.map((q) => q.x)))].sort((a, b) => a - b);
  const ys = p.series.flatMap((s) => s.points.map((q) => q.y));
  const lx0 = Math.log2(xs[0] ?? 1);
  const span = Math.log2(xs[xs.length - 1] ?? 1) - lx0 || 1;
  const pad = 16; // keeps end points off the frame
  const px = (x: number): number =>
    x0 + pad + (xs.length <= 1 ? (PANEL_W - 2 * pad) / 2 : ((Math.log2(x) - lx0) / span) * (PANEL_W - 2 * pad));
  let py: (y: number) => number;
  const ticks: number[] = [];
  let yLabel: string;
  if (p.kind === 'throughput') {
    const top = Math.max(1.2, Math.ceil((Math.max(...ys) + 0.05) * 5) / 5);
    py = (y) => y0 + PANEL_H - (y / top) * PANEL_H;
    const step = top > 2 ? 0.5 : 0.2;
    for (let i = 0; i * step <= top + 1e-9; i++) ticks.push(Math.round(i * step * 10) / 10);
    yLabel = 'fraction of the bound';
  } else {
    // Log scale in decades: latencies of different paths differ by orders of magnitude.
    const lo = Math.floor(Math.log10(Math.min(...ys)));
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...ys))));
    py = (y) => y0 + PANEL_H - ((Math.log10(y) - lo) / (hi - lo)) * PANEL_H;
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    yLabel = 'p50 (us, log scale)';
  }
  out.push(`<g class="panel" data-kind="${p.kind}" data-form="${p.form}">`);
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 - 10}" text-anchor="middle" font-weight="bold">${escapeXml(p.title)}</text>`);
  out.push(`<g stroke="#e2e2e2" stroke-width="1">`);
  for (const t of ticks) out.push(`<line x1="${x0}" y1="${py(t).toFixed(1)}" x2="${x0 + PANEL_W}" y2="${py(t).toFixed(1)}"/>`);
  for (const x of xs) out.push(`<line x1="${px(x).toFixed(1)}" y1="${y0}" x2="${px(x).toFixed(1)}" y2="${y0 + PANEL_H}"/>`);
  out.push(`</g>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="black" stroke-width="1"/>`);
  out.push(`<g text-anchor="end">`);
  for (const t of ticks) out.push(`<text x="${x0 - 6}" y="${(py(t) + 4).toFixed(1)}">${fmtNum(t)}</text>`);
  out.push(`</g>`);
  out.push(`<g text-anchor="middle">`);
  for (const x of xs) {
    const text = p.kind === 'throughput' ? sizeLabel(x) : String(x);
    out.push(`<text x="${px(x).toFixed(1)}" y="${y0 + PANEL_H + 16}">${escapeXml(text)}</text>`);
  }
  out.push(`</g>`);
  const xLabel = p.kind === 'throughput' ? 'folio size (log scale)' : 'folios in the batch (log scale)';
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 + PANEL_H + 34}" text-anchor="middle">${xLabel}</text>`);
  const cy = y0 + PANEL_H / 2;
  out.push(`<text x="${x0 - 46}" y="${cy}" text-anchor="middle" transform="rotate(-90 ${x0 - 46} ${cy})">${yLabel}</text>`);
  const labels: Label[] = [];
  if (p.kind === 'throughput') {
    const by = py(1).toFixed(1);
    out.push(
      `<line class="bound" x1="${x0}" y1="${by}" x2="${x0 + PANEL_W}" y2="${by}" stroke="black" stroke-width="2" stroke-dasharray="8 4"><title>the bound</title></line>`,
    );
    labels.push({ text: 'bound = 1', color: 'black', y: py(1), anchorX: x0 + PANEL_W, anchorY: py(1) });
  }
  for (const s of p.series) {
    const color = colors.get(s.label) as string;
    const pts = s.points.map((q) => `${px(q.x).toFixed(1)},${py(q.y).toFixed(1)}`).join(' ');
    out.push(
      `<polyline class="series" data-series="${escapeXml(s.label)}" fill="none" stroke="${color}" stroke-width="2" points="${pts}"><title>${escapeXml(s.label)}</title></polyline>`,
    );
    for (const q of s.points) out.push(`<circle cx="${px(q.x).toFixed(1)}" cy="${py(q.y).toFixed(1)}" r="3" fill="${color}"/>`);
    const last = s.points[s.points.length - 1];
    if (last) labels.push({ text: s.label, color, y: py(last.y), anchorX: px(last.x), anchorY: py(last.y) });
  }
  out.push(...directLabels(labels, x0 + PANEL_W + 8, y0 + PANEL_H + 20));
  out.push(`</g>`);
  return out;
}

/**
 * Direct labels right of a plot (at x = lx), in the order of the line ends, pushed apart to stay
 * legible and kept above yBottom, each joined to its line's end by a thin leader in its colour.
 */
export function directLabels(labels: Label[], lx: number, yBottom: number): string[] {
  const out: string[] = [];
  labels.sort((a, b) => a.y - b.y);
  const gap = 13;
  for (let i = 1; i < labels.length; i++) {
    const prev = labels[i - 1] as Label;
    const cur = labels[i] as Label;
    if (cur.y < prev.y + gap) cur.y = prev.y + gap;
  }
  const overflow = (labels[labels.length - 1]?.y ?? 0) - yBottom;
  if (overflow > 0) for (const l of labels) l.y -= overflow;
  for (const l of labels) {
    out.push(
      `<line x1="${l.anchorX.toFixed(1)}" y1="${l.anchorY.toFixed(1)}" x2="${lx.toFixed(1)}" y2="${l.y.toFixed(1)}" stroke="${l.color}" stroke-width="0.6" stroke-opacity="0.6"/>`,
    );
    out.push(`<text class="label" x="${lx + 3}" y="${(l.y + 4).toFixed(1)}" fill="${l.color}">${escapeXml(l.text)}</text>`);
  }
  return out;
}

function fmtNum(y: number): string {
  if (y >= 1) return Number.isInteger(y) ? String(y) : y.toFixed(1);
  return String(Math.round(y * 1000) / 1000);
}
