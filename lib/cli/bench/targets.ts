// The targets, evaluated from one run's rows. Throughput targets (issue 13) are fractions of the
// bound measured in the same run (the fastest of memcpy and streaming stores on 1..N threads):
// machines differ, the bound moves with them. Small-batch latency and memory (issue 5) are
// stated against the Buffer.copy loop and in MiB. Each target names the row it was read from,
// so a reader can check.

import { type Form, type Mode, PER_FOLIO_PROBE } from './cells';
import type { Row } from './measure';
import { PREPARED_PATH } from './paths';
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
  unit: 'x' | 'MiB' | 'us' | 'ns';
  /** null: not measured in this run. */
  pass: boolean | null;
  /** Which rows it was read from, or why it was not measured. */
  detail: string;
}

/** The largest (throughput) batch of a folio size and form for a path and mode. */
function largest(rows: readonly Row[], path: string, folioSize: number, form: Form, mode: Mode = 'await'): Row | undefined {
  let best: Row | undefined;
  for (const r of rows) {
    if (r.path !== path || r.mode !== mode || r.folioSize !== folioSize || r.form !== form || r.kind !== 'throughput') continue;
    if (!best || r.bytes > best.bytes) best = r;
  }
  return best;
}

/** A throughput target: the row's x bound (its GB/s over the cell's bound) >= threshold. */
function boundTarget(id: string, description: string, row: Row | undefined, threshold: number): TargetResult {
  const value = row ? row.xBound : null;
  if (!row || value === null || !Number.isFinite(value)) {
    return {
      id,
      description,
      value: null,
      comparator: '>=',
      threshold,
      unit: 'x',
      pass: null,
      detail: row ? 'no bound was measured for the cell' : 'cell not measured in this run',
    };
  }
  const bad = row.verified ? '' : ' (VERIFICATION FAILED)';
  const sync = row.mode === 'sync';
  const how = row.path === PREPARED_PATH ? (sync ? 'copySync()' : 'await copy()') : sync ? 'copyBatchSync' : 'await copyBatch';
  return {
    id,
    description,
    value,
    comparator: '>=',
    threshold,
    unit: 'x',
    pass: row.verified && value >= threshold,
    detail: `${row.path} ${how}, ${row.form} form, ${sizeLabel(row.bytes)} in ${row.folios} folios of ${sizeLabel(row.folioSize)}: ${row.gbps.toFixed(2)} GB/s = ${value.toFixed(2)} x the bound (${row.boundPath ?? '?'}: ${row.boundGbps?.toFixed(2) ?? '?'} GB/s)${bad}`,
  };
}

/** p50 of auto (mode) over p50 of the Buffer.copy loop of the same bytes; the worst form counts. */
function latencyTarget(rows: readonly Row[], folios: number, mode: 'await' | 'sync', threshold: number, harnessNs: number): TargetResult {
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
    // Both p50s less the harness's own cost (measureHarnessNs), which would pull the ratio toward 1.
    const ratio = (a.p50Ns - harnessNs) / (base.p50Ns - harnessNs);
    verified &&= a.verified && base.verified;
    const h = harnessNs > 0 ? ` - ${(harnessNs / 1000).toFixed(2)}` : '';
    parts.push(`${form}: (${(a.p50Ns / 1000).toFixed(2)}${h}) us vs (${(base.p50Ns / 1000).toFixed(2)}${h}) us = ${ratio.toFixed(2)}x`);
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

const FORMS = ['region', 'list'] as const;

/** A target no row was found for. */
function notMeasured(
  id: string,
  description: string,
  comparator: '>=' | '<=',
  threshold: number,
  unit: TargetResult['unit'],
): TargetResult {
  return { id, description, value: null, comparator, threshold, unit, pass: null, detail: 'cell not measured in this run' };
}

/** Prepared re-runs of the largest 4 KiB batch against the bound: the worse form counts. */
function preparedBoundTarget(rows: readonly Row[], mode: Mode, threshold: number): TargetResult {
  const how = mode === 'sync' ? 'copySync()' : 'await copy()';
  const id = `prepared-4k-${mode}-vs-bound`;
  const description = `prepared 256 MiB of 4 KiB folios (65,536 in list form), ${how} re-runs: >= ${threshold} x the bound`;
  const each = FORMS.map((form) => boundTarget(id, description, largest(rows, PREPARED_PATH, 4 * KiB, form, mode), threshold));
  const measured = each.filter((t) => t.value !== null);
  if (measured.length === 0) return notMeasured(id, description, '>=', threshold, 'x');
  const worst = measured.reduce((a, t) => ((t.value as number) < (a.value as number) ? t : a));
  return { ...worst, pass: measured.every((t) => t.pass === true), detail: measured.map((t) => t.detail).join('; ') };
}

/** Nanoseconds a row took beyond copying its bytes at the cell's bound and beyond the harness's own cost (the engine's own cost). */
function overheadNs(r: Row, harnessNs: number): number | null {
  if (!r.boundGbps || !Number.isFinite(r.p50Ns)) return null;
  return r.p50Ns - harnessNs - r.bytes / r.boundGbps;
}

/**
 * The fixed cost of a prepared re-run: p50 of one 4 KiB folio minus the time the bound takes for
 * those bytes; the worst of forms and modes counts.
 */
function preparedFixedTarget(rows: readonly Row[], harnessNs: number): TargetResult {
  const id = 'prepared-fixed-cost';
  const description =
    'prepared re-run of 1 folio of 4 KiB, fixed cost (p50 beyond the bound time of its bytes), copy() and copySync(): <= 2 us';
  const parts: string[] = [];
  let worst: number | null = null;
  let verified = true;
  for (const form of FORMS) {
    for (const mode of ['await', 'sync'] as const) {
      const r = rows.find(
        (x) => x.path === PREPARED_PATH && x.mode === mode && x.folioSize === 4 * KiB && x.folios === 1 && x.form === form,
      );
      const o = r ? overheadNs(r, harnessNs) : null;
      if (!r || o === null) continue;
      verified &&= r.verified;
      parts.push(
        `${form} ${mode}: ${(r.p50Ns / 1000).toFixed(2)} us - ${(r.bytes / (r.boundGbps as number) / 1000).toFixed(2)} us${harnessNs > 0 ? ` - ${(harnessNs / 1000).toFixed(2)} us harness` : ''} = ${(o / 1000).toFixed(2)} us`,
      );
      if (worst === null || o > worst) worst = o;
    }
  }
  if (worst === null) return notMeasured(id, description, '<=', 2, 'us');
  const value = worst / 1000;
  return {
    id,
    description,
    value,
    comparator: '<=',
    threshold: 2,
    unit: 'us',
    pass: verified && value <= 2,
    detail: parts.join('; ') + (verified ? '' : ' (VERIFICATION FAILED)'),
  };
}

/**
 * The cost per folio of a prepared re-run, from the per-folio probe (PER_FOLIO_PROBE: 65,536
 * folios of 64 bytes, where copying the bytes takes little): its copySync() overhead (p50 beyond
 * the bound's 64-byte copies) minus the fixed cost (the 1-folio overhead, list form, copySync()),
 * per folio.
 */
function preparedPerFolioTarget(rows: readonly Row[], harnessNs: number): TargetResult {
  const id = 'prepared-per-folio';
  const description = `prepared copySync() re-runs, cost per folio beyond the bound and the fixed cost (${PER_FOLIO_PROBE.folios} folios of ${PER_FOLIO_PROBE.folioSize} B): <= 5 ns`;
  const probe = rows.find(
    (x) =>
      x.path === PREPARED_PATH && x.mode === 'sync' && x.folioSize === PER_FOLIO_PROBE.folioSize && x.folios === PER_FOLIO_PROBE.folios,
  );
  const one = rows.find(
    (x) => x.path === PREPARED_PATH && x.mode === 'sync' && x.folioSize === 4 * KiB && x.folios === 1 && x.form === 'list',
  );
  const op = probe ? overheadNs(probe, harnessNs) : null;
  const o1 = one ? overheadNs(one, harnessNs) : null;
  if (!probe || !one || op === null || o1 === null) return notMeasured(id, description, '<=', 5, 'ns');
  const per = Math.max(0, op - o1) / (probe.folios - 1);
  const verified = probe.verified && one.verified;
  return {
    id,
    description,
    value: per,
    comparator: '<=',
    threshold: 5,
    unit: 'ns',
    pass: verified && per <= 5,
    detail: `(${(probe.p50Ns / 1000).toFixed(1)} us - ${(probe.bytes / (probe.boundGbps as number) / 1000).toFixed(1)} us at the bound (${probe.boundPath}) - ${(o1 / 1000).toFixed(2)} us fixed) / ${probe.folios - 1} folios = ${per.toFixed(2)} ns${verified ? '' : ' (VERIFICATION FAILED)'}`,
  };
}

/**
 * Every target of the run. `harnessNs`: the harness's own cost of a timed call
 * (measureHarnessNs), taken off latency figures before they are compared.
 */
export function evaluateTargets(rows: readonly Row[], memory?: MemoryResult | null, harnessNs = 0): TargetResult[] {
  const f4k = 4 * KiB;
  const out: TargetResult[] = [
    boundTarget(
      '4k-region-await-vs-bound',
      '256 MiB of 4 KiB folios via auto, region form, await copyBatch: >= 0.9 x the bound',
      largest(rows, 'auto', f4k, 'region', 'await'),
      0.9,
    ),
    boundTarget(
      '4k-region-sync-vs-bound',
      '256 MiB of 4 KiB folios via auto, region form, copyBatchSync: >= 0.9 x the bound',
      largest(rows, 'auto', f4k, 'region', 'sync'),
      0.9,
    ),
    boundTarget(
      '2m-region-vs-bound',
      '2 MiB folios via auto, region form, await copyBatch: >= 0.9 x the bound',
      largest(rows, 'auto', 2 * MiB, 'region'),
      0.9,
    ),
    boundTarget(
      '4k-list-vs-bound',
      '65,536 views of 4 KiB via auto, list form, await copyBatch: >= 0.8 x the bound',
      largest(rows, 'auto', f4k, 'list'),
      0.8,
    ),
    boundTarget(
      '64k-list-vs-bound',
      '64 KiB folios via auto, list form, await copyBatch: >= 0.9 x the bound',
      largest(rows, 'auto', 64 * KiB, 'list'),
      0.9,
    ),
    latencyTarget(rows, 1, 'await', 2, harnessNs),
    latencyTarget(rows, 8, 'await', 2, harnessNs),
    latencyTarget(rows, 1, 'sync', 1.3, harnessNs),
    latencyTarget(rows, 8, 'sync', 1.3, harnessNs),
    preparedBoundTarget(rows, 'await', 0.9),
    preparedBoundTarget(rows, 'sync', 0.9),
    preparedFixedTarget(rows, harnessNs),
    preparedPerFolioTarget(rows, harnessNs),
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
