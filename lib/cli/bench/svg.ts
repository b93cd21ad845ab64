// A hand-written SVG chart: throughput of the largest batch of each folio size against the folio
// size (log x axis), one polyline per path and form, a legend, and the host in the title.
import type { Row } from './measure';
import { sizeLabel } from './stats';

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
  '#393b79',
  '#637939',
];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

export interface Series {
  label: string;
  dashed: boolean;
  points: { x: number; y: number }[];
}

/** Await-mode rows of the largest batch per (folio size, form): one series per path and form. */
export function chartSeries(rows: readonly Row[]): Series[] {
  const largest = new Map<string, number>();
  for (const r of rows) {
    if (r.kind !== 'throughput') continue;
    const k = `${r.folioSize}/${r.form}`;
    largest.set(k, Math.max(largest.get(k) ?? 0, r.bytes));
  }
  const series = new Map<string, Series>();
  for (const r of rows) {
    if (r.kind !== 'throughput' || (r.mode === 'sync' && r.pathKind === 'engine') || !r.verified || !Number.isFinite(r.gbps)) continue;
    if (largest.get(`${r.folioSize}/${r.form}`) !== r.bytes) continue;
    const label = r.pathKind === 'bound' ? r.path : `${r.path} (${r.form})`;
    let s = series.get(label);
    if (!s) {
      s = { label, dashed: r.form === 'list' && r.pathKind !== 'bound', points: [] };
      series.set(label, s);
    }
    s.points.push({ x: r.folioSize, y: r.gbps });
  }
  for (const s of series.values()) s.points.sort((a, b) => a.x - b.x);
  return [...series.values()];
}

export function renderSvg(rows: readonly Row[], title: string): string {
  const series = chartSeries(rows);
  const W = 960;
  const H = 560;
  const m = { left: 70, right: 290, top: 60, bottom: 60 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const maxY = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.y)));
  // A round top for the y axis.
  const step = niceStep(maxY / 5);
  const top = Math.ceil(maxY / step) * step;
  const lx0 = Math.log2(xs[0] ?? 4096);
  const lx1 = Math.log2(xs[xs.length - 1] ?? 2 * 1024 * 1024);
  const span = lx1 - lx0 || 1;
  const px = (x: number): number => m.left + (xs.length <= 1 ? pw / 2 : ((Math.log2(x) - lx0) / span) * pw);
  const py = (y: number): number => m.top + ph - (y / top) * ph;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(
    `<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">Throughput of the largest batch per folio size (await; median)</text>`,
  );
  // Axes and grid.
  out.push(`<g stroke="#ccc" stroke-width="1">`);
  for (let y = 0; y <= top + 1e-9; y += step)
    out.push(`<line x1="${m.left}" y1="${py(y).toFixed(1)}" x2="${m.left + pw}" y2="${py(y).toFixed(1)}"/>`);
  for (const x of xs) out.push(`<line x1="${px(x).toFixed(1)}" y1="${m.top}" x2="${px(x).toFixed(1)}" y2="${m.top + ph}"/>`);
  out.push(`</g>`);
  out.push(
    `<g stroke="black" stroke-width="1"><line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}"/><line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}"/></g>`,
  );
  out.push(`<g text-anchor="end">`);
  for (let y = 0; y <= top + 1e-9; y += step) out.push(`<text x="${m.left - 6}" y="${(py(y) + 4).toFixed(1)}">${fmtNum(y)}</text>`);
  out.push(`</g>`);
  out.push(`<g text-anchor="middle">`);
  for (const x of xs) out.push(`<text x="${px(x).toFixed(1)}" y="${m.top + ph + 18}">${escapeXml(sizeLabel(x))}</text>`);
  out.push(`</g>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 16}" text-anchor="middle">folio size (log scale)</text>`);
  out.push(`<text x="18" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${m.top + ph / 2})">GB/s</text>`);
  // Series and legend.
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const pts = s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : s.label.startsWith('memcpy') ? ' stroke-dasharray="2 3"' : '';
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts}"><title>${escapeXml(s.label)}</title></polyline>`,
    );
    for (const p of s.points) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
    const ly = m.top + 10 + i * 20;
    const lx = m.left + pw + 20;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 36}" y="${ly + 4}">${escapeXml(s.label)}</text>`);
  });
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function fmtNum(y: number): string {
  return Number.isInteger(y) ? String(y) : y.toFixed(1);
}
