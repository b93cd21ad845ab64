// The plain-text report: the bound table (copy kind x threads per cell, and which figure is the
// bound), the table of every measured row with its fraction of the bound, the targets, notes.

import type { CellBound } from './bound';
import { hostLine } from './host';
import type { Row } from './measure';
import type { BenchReport } from './run';
import { sizeLabel } from './stats';
import type { TargetResult } from './targets';

export function formatTime(ns: number): string {
  if (!Number.isFinite(ns)) return '-';
  if (ns < 1e4) return `${(ns / 1e3).toFixed(2)} us`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} us`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

const ratio = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}x`);
const fraction = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(2));

/** Rows as aligned text columns (two spaces apart), right-aligned where asked. */
export function grid(rows: string[][], rightAlign: boolean[]): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows.map((r) =>
    r
      .map((c, i) => (rightAlign[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatRows(rows: readonly Row[]): string {
  const header = [
    'folio',
    'batch',
    'form',
    'path',
    'mode',
    'thr',
    'GB/s',
    'p50',
    'p99',
    'CPU ms/GiB',
    'x Buffer.copy',
    'x bound',
    'verified',
  ];
  const right = [true, true, false, false, false, true, true, true, true, true, true, true, false];
  const out: string[][] = [header];
  let last = '';
  for (const r of rows) {
    const key = `${r.folioSize}/${r.folios}`;
    if (last !== '' && key !== last) out.push([]);
    last = key;
    out.push([
      sizeLabel(r.folioSize),
      `${r.folios} (${sizeLabel(r.bytes)})`,
      r.pathKind === 'bound' ? '-' : r.form,
      r.path,
      r.pathKind === 'engine' ? r.mode : '-',
      String(r.threads),
      Number.isFinite(r.gbps) ? r.gbps.toFixed(2) : '-',
      formatTime(r.p50Ns),
      r.kind === 'latency' ? formatTime(r.p99Ns) : '-',
      Number.isFinite(r.cpuNsPerGiB) ? (r.cpuNsPerGiB / 1e6).toFixed(0) : '-',
      ratio(r.vsBufferCopy),
      fraction(r.xBound),
      r.verified ? 'ok' : r.error ? `ERROR ${r.error}` : `MISMATCH x${r.mismatches} @${r.firstBadOffset}`,
    ]);
  }
  return `${grid(out, right).join('\n')}\n`;
}

/**
 * The bound table: one line per throughput cell, GB/s of every copy kind x thread count measured
 * on it, and the bound (the fastest). Latency cells have bounds too (the x bound of their rows),
 * but they are not the machine's limit: only throughput cells are listed.
 */
export function formatBounds(bounds: readonly CellBound[]): string {
  const cells = bounds.filter((c) => c.kind === 'throughput');
  if (cells.length === 0) return 'bound: not measured (the native addon did not load, or no throughput cell)\n';
  const columns: string[] = [];
  for (const c of cells) for (const f of c.figures) if (!columns.includes(f.path)) columns.push(f.path);
  const out: string[][] = [['cell', ...columns.map((p) => `${p} GB/s`), 'bound']];
  for (const c of cells) {
    const line = [`${sizeLabel(c.bytes)} of ${sizeLabel(c.folioSize)}`];
    for (const p of columns) {
      const f = c.figures.find((x) => x.path === p);
      line.push(!f ? '-' : !f.verified ? 'BAD' : Number.isFinite(f.gbps) ? f.gbps.toFixed(2) : '-');
    }
    line.push(c.bound ? `${c.bound.path} = ${c.bound.gbps.toFixed(2)} GB/s` : 'none verified');
    out.push(line);
  }
  const right = [false, ...columns.map(() => true), false];
  return `${grid(out, right).join('\n')}\n`;
}

function withUnit(v: number, unit: TargetResult['unit']): string {
  return unit === 'x' ? `${v}x` : `${v} ${unit}`;
}

function targetValue(t: TargetResult): string {
  if (t.value === null) return '-';
  if (t.unit === 'x') return `${t.value.toFixed(2)}x`;
  return `${t.value.toFixed(t.unit === 'MiB' ? 1 : 2)} ${t.unit}`;
}

export function formatTargets(targets: readonly TargetResult[]): string {
  const lines: string[] = [];
  for (const t of targets) {
    const mark = t.pass === null ? 'n/a    ' : t.pass ? 'MET    ' : 'NOT MET';
    lines.push(`  [${mark}] ${t.description}: ${targetValue(t)} (${t.comparator} ${withUnit(t.threshold, t.unit)})`);
    lines.push(`         ${t.detail}`);
  }
  const met = targets.filter((t) => t.pass === true).length;
  const failed = targets.filter((t) => t.pass === false).length;
  const na = targets.length - met - failed;
  lines.push(`  ${met} met, ${failed} not met, ${na} not measured`);
  return `${lines.join('\n')}\n`;
}

export function formatReport(r: BenchReport): string {
  const parts: string[] = [];
  parts.push(`dmacopy bench${r.config.quick ? ' --quick' : ''}: ${hostLine(r.host)}`);
  parts.push(
    `load average at start ${r.host.loadAverage.join(' ')}; ${r.config.reps} reps after ${r.config.warmup} warm-up (throughput), p50/p99 of >= ${r.config.latencyMinIters} samples, each the mean of ${r.config.latencyCallsPerSample ?? 1} back-to-back calls (latency), throughput reps interleaved round by round; medians; x bound: median of per-rep ratios to the bound measured in the same round; ${(r.durationMs / 1000).toFixed(1)} s`,
  );
  parts.push('');
  parts.push(
    `bound (per cell: the same bytes copied natively, each thread its share in one run, with memcpy and with streaming stores on 1..N threads; the fastest figure is the bound, "x bound" below is a fraction of it):`,
  );
  parts.push(formatBounds(r.bounds));
  parts.push(formatRows(r.rows));
  if (r.skipped.length) parts.push(`not measured: ${r.skipped.map((s) => `${s.name} (${s.reason})`).join('; ')}\n`);
  if (r.host.cores !== 2) parts.push(`note: the targets are stated for a 2-core host without DSA; this host has ${r.host.cores} cores.\n`);
  parts.push(
    `targets (throughput against the bound, prepared re-runs and small batches, issue 13; memory, issue 5):\n${formatTargets(r.targets)}`,
  );
  if (r.failures.length) parts.push(`VERIFICATION FAILURES:\n${r.failures.map((f) => `  ${f}`).join('\n')}\n`);
  for (const n of r.notes) parts.push(`note: ${n}`);
  return `${parts.join('\n')}\n`;
}
