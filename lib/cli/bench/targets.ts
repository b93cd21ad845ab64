// The targets of issue 5 for a 2-core host without DSA, evaluated from one run's rows. Ratios,
// because machines differ; each target names the row it was read from, so a reader can check.

import type { Form } from './cells';
import type { Row } from './measure';
import { KiB, MiB, sizeLabel } from './stats';

export interface MemoryResult {
  /** Batch size in bytes (1 GiB by default) of 4 KiB folios. */
  bytes: number;
  folioSize: number;
  /** Peak RSS growth above the buffers (and views), per form, in bytes. */
  region: number | null;
  list: number | null;
  /** Both copies were verified after the measurement. */
  verified: boolean;
  /** How the peak was read: VmHWM after clear_refs, or sampled RSS. */
  method: string;
  error?: string;
}

export interface TargetResult {
  id: string;
  description: string;
  /** The measured value (a ratio, or bytes for the memory target); null when not measured. */
  value: number | null;
  comparator: '>=' | '<=';
  threshold: number;
  unit: 'x' | 'MiB';
  /** null: not measured in this run. */
  pass: boolean | null;
  /** Which rows it was read from, or why it was not measured. */
  detail: string;
}

/** The largest (throughput) batch of a folio size and form for a path, mode 'await'. */
function largest(rows: readonly Row[], path: string, folioSize: number, form: Form): Row | undefined {
  let best: Row | undefined;
  for (const r of rows) {
    if (r.path !== path || r.mode !== 'await' || r.folioSize !== folioSize || r.form !== form || r.kind !== 'throughput') continue;
    if (!best || r.bytes > best.bytes) best = r;
  }
  return best;
}

function ratioTarget(
  id: string,
  description: string,
  row: Row | undefined,
  field: 'vsBufferCopy' | 'vsMemcpyBound',
  threshold: number,
): TargetResult {
  const value = row ? row[field] : null;
  if (!row || value === null || !Number.isFinite(value)) {
    return {
      id,
      description,
      value: null,
      comparator: '>=',
      threshold,
      unit: 'x',
      pass: null,
      detail: row ? `no ${field} ratio for the row` : 'cell not measured in this run',
    };
  }
  const against =
    field === 'vsBufferCopy' ? 'the Buffer.copy loop' : `the memcpy bound (best of 1..${row.threads} threads: ${row.boundThreads ?? '?'})`;
  const bad = row.verified ? '' : ' (VERIFICATION FAILED)';
  return {
    id,
    description,
    value,
    comparator: '>=',
    threshold,
    unit: 'x',
    pass: row.verified && value >= threshold,
    detail: `${row.path} ${row.form} form, ${sizeLabel(row.bytes)} in ${row.folios} folios of ${sizeLabel(row.folioSize)}: ${row.gbps.toFixed(2)} GB/s, ${value.toFixed(2)}x ${against}${bad}`,
  };
}

/** p50 of auto (mode) over p50 of the Buffer.copy loop of the same bytes; the worst form counts. */
function latencyTarget(rows: readonly Row[], folios: number, mode: 'await' | 'sync', threshold: number): TargetResult {
  const id = `latency-${folios}-${mode}`;
  const description = `${folios} folio${folios > 1 ? 's' : ''} of 4 KiB via auto, ${mode === 'await' ? 'await copyBatch' : 'copyBatchSync'}: p50 <= ${threshold}x the Buffer.copy loop`;
  const parts: string[] = [];
  let worst: number | null = null;
  let verified = true;
  for (const form of ['region', 'list'] as const) {
    const pick = (path: string, m: string) =>
      rows.find((r) => r.path === path && r.mode === m && r.folioSize === 4 * KiB && r.folios === folios && r.form === form);
    const a = pick('auto', mode);
    const base = pick('Buffer.copy', 'sync');
    if (!a || !base) continue;
    const ratio = a.p50Ns / base.p50Ns;
    verified &&= a.verified && base.verified;
    parts.push(`${form}: ${(a.p50Ns / 1000).toFixed(2)} us vs ${(base.p50Ns / 1000).toFixed(2)} us = ${ratio.toFixed(2)}x`);
    if (worst === null || ratio > worst) worst = ratio;
  }
  if (worst === null)
    return { id, description, value: null, comparator: '<=', threshold, unit: 'x', pass: null, detail: 'cell not measured in this run' };
  return {
    id,
    description,
    value: worst,
    comparator: '<=',
    threshold,
    unit: 'x',
    pass: verified && worst <= threshold,
    detail: parts.join('; ') + (verified ? '' : ' (VERIFICATION FAILED)'),
  };
}

export function evaluateTargets(rows: readonly Row[], memory?: MemoryResult | null): TargetResult[] {
  const f4k = 4 * KiB;
  const out: TargetResult[] = [
    ratioTarget(
      '4k-region-vs-buffer',
      '256 MiB of 4 KiB folios via auto, region form: >= 1.8x the Buffer.copy loop',
      largest(rows, 'auto', f4k, 'region'),
      'vsBufferCopy',
      1.8,
    ),
    ratioTarget(
      '4k-region-vs-bound',
      '256 MiB of 4 KiB folios via auto, region form: >= 0.9x the native memcpy bound',
      largest(rows, 'auto', f4k, 'region'),
      'vsMemcpyBound',
      0.9,
    ),
    ratioTarget(
      '4k-list-vs-buffer',
      '256 MiB of 4 KiB folios via auto, list form: >= 1.4x the Buffer.copy loop',
      largest(rows, 'auto', f4k, 'list'),
      'vsBufferCopy',
      1.4,
    ),
    ratioTarget(
      '64k-list-vs-buffer',
      '64 KiB folios via auto, list form: >= 1.6x the Buffer.copy loop',
      largest(rows, 'auto', 64 * KiB, 'list'),
      'vsBufferCopy',
      1.6,
    ),
    ratioTarget(
      '2m-region-vs-bound',
      '2 MiB folios via auto, region form: >= 0.9x the native memcpy bound',
      largest(rows, 'auto', 2 * MiB, 'region'),
      'vsMemcpyBound',
      0.9,
    ),
    ratioTarget(
      '2m-list-vs-bound',
      '2 MiB folios via auto, list form: >= 0.9x the native memcpy bound',
      largest(rows, 'auto', 2 * MiB, 'list'),
      'vsMemcpyBound',
      0.9,
    ),
    latencyTarget(rows, 1, 'await', 2),
    latencyTarget(rows, 8, 'await', 2),
    latencyTarget(rows, 1, 'sync', 1.3),
    latencyTarget(rows, 8, 'sync', 1.3),
  ];
  const memDesc = 'peak memory for a 1 GiB batch of 4 KiB folios via auto: <= 64 MiB above the buffers';
  if (!memory) {
    out.push({
      id: 'memory-1g',
      description: memDesc,
      value: null,
      comparator: '<=',
      threshold: 64,
      unit: 'MiB',
      pass: null,
      detail: 'not measured (full run or --memory)',
    });
  } else if (memory.error !== undefined || (memory.region === null && memory.list === null)) {
    out.push({
      id: 'memory-1g',
      description: memDesc,
      value: null,
      comparator: '<=',
      threshold: 64,
      unit: 'MiB',
      pass: false,
      detail: `measurement failed: ${memory.error ?? 'no figure'}`,
    });
  } else {
    const worst = Math.max(memory.region ?? 0, memory.list ?? 0) / MiB;
    const fmt = (x: number | null) => (x === null ? 'n/a' : `${(x / MiB).toFixed(1)} MiB`);
    out.push({
      id: 'memory-1g',
      description: memDesc,
      value: worst,
      comparator: '<=',
      threshold: 64,
      unit: 'MiB',
      pass: memory.verified && worst <= 64,
      detail: `${sizeLabel(memory.bytes)} batch: region ${fmt(memory.region)}, list ${fmt(memory.list)} above the buffers and views (${memory.method})${memory.verified ? '' : ' (VERIFICATION FAILED)'}`,
    });
  }
  return out;
}
