// The chart of `dmacopy bench --service`: request p99 (log scale) against copy throughput, one
// line per setting through its points (the gaps between copies trace each setting's trade-off),
// with the goals drawn in: 2x the idle p99 (horizontal) and half the unloaded throughput
// (vertical). A setting meets both where its line enters the lower-right corner.
import { hostLine } from './host';
import type { ServicePoint, ServiceReport } from './service-types';
import { directLabels, escapeXml, type Label, seriesColor, svgHeader } from './svg';

const W = 1010;
const H = 520;
const M = { left: 70, top: 88, right: 260, bottom: 60 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

interface Line {
  label: string;
  points: ServicePoint[];
}

/** Points grouped by setting, in order of first appearance, each sorted by copy throughput. */
export function serviceLines(points: readonly ServicePoint[]): Line[] {
  const lines = new Map<string, Line>();
  for (const p of points) {
    if (!(p.request.p99 > 0)) continue;
    let l = lines.get(p.setting);
    if (!l) {
      l = { label: p.setting, points: [] };
      lines.set(p.setting, l);
    }
    l.points.push(p);
  }
  for (const l of lines.values()) l.points.sort((a, b) => a.copyGbps - b.copyGbps);
  return [...lines.values()];
}

export function renderServiceSvg(r: ServiceReport, title: string): string {
  const lines = serviceLines(r.points);
  const all = lines.flatMap((l) => l.points);
  const ys = all.map((p) => p.request.p99);
  if (r.idleP99) ys.push(2 * r.idleP99);
  const xMax = Math.max(1, Math.ceil(Math.max(0, r.unloadedReferenceGbps ?? 0, ...all.map((p) => p.copyGbps))));
  const lo = Math.floor(Math.log10(Math.min(...ys, 1)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...ys, 1))));
  const px = (x: number) => M.left + (x / xMax) * PW;
  const py = (y: number) => M.top + PH - ((Math.log10(y) - lo) / (hi - lo)) * PH;
  const c = r.config;
  const reps = c.reps > 1 ? `, medians of ${c.reps} runs` : '';
  const out = svgHeader(W, H, title, [
    `request p99 against copy throughput while ${c.poolMib} MiB of ${c.pageSize}-byte pages copy back to back (gaps 0 to 100 ms)`,
    `${hostLine(r.host)}; ${c.connections} connections, ${c.rate > 0 ? `${c.rate} req/s offered` : 'unthrottled'}, ${c.durationS} s per point${reps}`,
  ]);
  out.push(`<g stroke="#e2e2e2" stroke-width="1">`);
  const yTicks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of [1, 2, 5]) if (m * 10 ** e <= 10 ** hi) yTicks.push(m * 10 ** e);
  for (const t of yTicks) out.push(`<line x1="${M.left}" y1="${py(t).toFixed(1)}" x2="${M.left + PW}" y2="${py(t).toFixed(1)}"/>`);
  const xStep = xMax > 10 ? 2 : 1;
  for (let x = 0; x <= xMax; x += xStep)
    out.push(`<line x1="${px(x).toFixed(1)}" y1="${M.top}" x2="${px(x).toFixed(1)}" y2="${M.top + PH}"/>`);
  out.push(`</g>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="none" stroke="black"/>`);
  out.push(`<g text-anchor="end">`);
  for (const t of yTicks) out.push(`<text x="${M.left - 6}" y="${(py(t) + 4).toFixed(1)}">${t >= 1 ? t : t.toFixed(1)}</text>`);
  out.push(`</g><g text-anchor="middle">`);
  for (let x = 0; x <= xMax; x += xStep) out.push(`<text x="${px(x).toFixed(1)}" y="${M.top + PH + 16}">${x}</text>`);
  out.push(`</g>`);
  out.push(`<text x="${M.left + PW / 2}" y="${M.top + PH + 36}" text-anchor="middle">copy throughput under load (GB/s)</text>`);
  const cy = M.top + PH / 2;
  out.push(
    `<text x="${M.left - 46}" y="${cy}" text-anchor="middle" transform="rotate(-90 ${M.left - 46} ${cy})">request p99 (ms, log scale)</text>`,
  );
  const goal = (x1: number, y1: number, x2: number, y2: number, text: string, tx: number, ty: number, anchor: string) =>
    out.push(
      `<line class="goal" x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="black" stroke-width="1.5" stroke-dasharray="6 4"/>`,
      `<text x="${tx.toFixed(1)}" y="${ty.toFixed(1)}" text-anchor="${anchor}" fill="#333">${escapeXml(text)}</text>`,
    );
  if (r.idleP99) {
    const y = py(2 * r.idleP99);
    goal(M.left, y, M.left + PW, y, `2x idle p99 = ${(2 * r.idleP99).toFixed(2)} ms`, M.left + 4, y - 4, 'start');
  }
  if (r.unloadedReferenceGbps) {
    const x = px(r.unloadedReferenceGbps / 2);
    goal(x, M.top, x, M.top + PH, `half of unloaded = ${(r.unloadedReferenceGbps / 2).toFixed(2)} GB/s`, x + 4, M.top + 14, 'start');
  }
  const labels: Label[] = [];
  lines.forEach((l, i) => {
    const color = seriesColor(i);
    const pts = l.points.map((p) => `${px(p.copyGbps).toFixed(1)},${py(p.request.p99).toFixed(1)}`).join(' ');
    out.push(
      `<polyline class="series" data-series="${escapeXml(l.label)}" fill="none" stroke="${color}" stroke-width="2" points="${pts}"><title>${escapeXml(l.label)}</title></polyline>`,
    );
    for (const p of l.points)
      out.push(
        `<circle cx="${px(p.copyGbps).toFixed(1)}" cy="${py(p.request.p99).toFixed(1)}" r="3.5" fill="${color}"><title>${escapeXml(`${l.label}, gap ${p.gapMs} ms: p99 ${p.request.p99.toFixed(2)} ms, ${p.copyGbps.toFixed(2)} GB/s`)}</title></circle>`,
      );
    const end = l.points[l.points.length - 1] as ServicePoint;
    labels.push({ text: l.label, color, y: py(end.request.p99), anchorX: px(end.copyGbps), anchorY: py(end.request.p99) });
  });
  out.push(...directLabels(labels, M.left + PW + 8, M.top + PH + 20));
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}
