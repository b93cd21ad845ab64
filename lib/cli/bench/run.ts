// One bench run: plans the cells, opens the paths, measures every (cell, path, mode) (latency
// cells one task after another; the throughput tasks of a folio size and batch together, their
// repetitions interleaved round by round), fills the ratios (to the Buffer.copy loop of the same
// cell, and x bound: the fraction of the cell's bound, the fastest of memcpy and streaming stores
// on 1..N threads, both measured in this run, taken round by round on throughput cells), evaluates
// the targets, and returns a report that the table, --json and --svg are all made from.
import os from 'node:os';
import { listDevices } from '../../host/discovery';
import { type CellBound, cellBounds } from './bound';
import { type Cell, type Form, type Mode, planCells, type SweepConfig, sweepConfig } from './cells';
import { type HostRecord, hostRecord } from './host';
import {
  FULL_SETTINGS,
  LATENCY_CALLS,
  type MeasureSettings,
  measure,
  measureHarnessNs,
  measureInterleaved,
  QUICK_SETTINGS,
  type Row,
} from './measure';
import { measureMemory } from './memory';
import { type BenchPath, type CellBuffers, closePaths, openPaths, PREPARED_PATH } from './paths';
import { GiB, median, sizeLabel } from './stats';
import { evaluateTargets, type MemoryResult, type TargetResult } from './targets';

export interface BenchOptions {
  quick?: boolean;
  /** Extra folio sizes in bytes (4 KiB, 64 KiB and 2 MiB are always measured). */
  folioSizes?: number[];
  /** The large batch in bytes (default 256 MiB). */
  totalBytes?: number;
  /** Batch sizes in folios (default 1, 8, 64, 512; the large total is always added). */
  batches?: number[];
  forms?: Form[];
  /** Only the paths whose name starts with one of these (Buffer.copy and the bounds are always kept). */
  only?: string[];
  /** CPU engine thread counts 1..maxThreads (default os.availableParallelism()). */
  maxThreads?: number;
  /** Measure peak memory of a large batch in a child process. Default: full runs only. */
  memory?: boolean;
  memoryBytes?: number;
  settings?: Partial<MeasureSettings>;
  /** Replaces the planned cells (scripts measuring one cell). */
  cells?: Cell[];
  /** Replaces the paths the run would open (tests). Buffer.copy should be among them. */
  paths?: BenchPath[];
  /** Added to the opened paths (tests: a deliberately broken path). */
  extraPaths?: BenchPath[];
  /**
   * Called before each latency task, before the warm-up and each round of a group of interleaved
   * throughput tasks (done counts tasks, advancing through a group round by round), and once at
   * the end (done === total).
   */
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface BenchReport {
  tool: 'dmacopy bench';
  /** 2: x bound (fraction of the best of memcpy and streaming stores) replaced vsMemcpyBound. */
  version: 2;
  startedAt: string;
  durationMs: number;
  host: HostRecord;
  /** latencyCallsPerSample: each latency sample is the mean of this many back-to-back calls (LATENCY_CALLS). */
  config: SweepConfig & MeasureSettings & { latencyCallsPerSample?: number; paths: string[]; memory: boolean };
  rows: Row[];
  /** Per measured cell: every bound figure (kind x threads) and the chosen bound. */
  bounds: CellBound[];
  skipped: { name: string; reason: string }[];
  /** engine.stats() of each engine path after the run (the auto policy's decisions among them). */
  engines: Record<string, unknown>;
  targets: TargetResult[];
  memory: MemoryResult | null;
  /**
   * The harness's own cost of one timed latency call (its share of the clock reads, the call,
   * the check of its result), subtracted from latency ratios and fixed costs (measureHarnessNs); 0
   * when no latency cell ran.
   */
  harnessNs: number;
  /** One line per row whose copies did not verify or whose path threw. */
  failures: string[];
  notes: string[];
  /** Every measured copy verified and no path threw. */
  ok: boolean;
}

interface Task {
  cell: Cell;
  path: BenchPath;
  mode: Mode;
}

/** Source pattern: 1 MiB of random bytes tiled, each 4 KiB page stamped with its index, so a copy from the wrong place is caught. */
function fillPattern(src: Buffer): void {
  const tile = Buffer.allocUnsafe(Math.min(src.length, 1 << 20));
  for (let i = 0; i < tile.length; i++) tile[i] = (Math.random() * 255 + 1) | 0;
  for (let o = 0; o < src.length; o += tile.length) tile.copy(src, o, 0, Math.min(tile.length, src.length - o));
  for (let o = 0; o + 4 <= src.length; o += 4096) src.writeUInt32LE(((o / 4096) * 2654435761 + 1) >>> 0, o);
}

export function planTasks(cells: readonly Cell[], paths: readonly BenchPath[], forms: readonly Form[]): Task[] {
  const tasks: Task[] = [];
  for (const cell of cells) {
    for (const path of paths) {
      if (path.formIndependent && cell.form !== forms[0] && !cell.onlyPaths) continue;
      if (cell.onlyPaths && path.kind === 'engine' && !cell.onlyPaths.includes(path.name)) continue;
      for (const mode of path.modes) {
        // copyBatchSync on large batches: for 'auto' only (the others add nothing new there).
        if (path.kind === 'engine' && mode === 'sync' && cell.kind === 'throughput' && path.name !== 'auto' && !path.syncOnLarge) continue;
        tasks.push({ cell, path, mode });
      }
    }
  }
  return tasks;
}

/**
 * x bound of a throughput row from its repetitions: the median over rounds r of (this row's GB/s
 * at r) / (the bound path's GB/s at r) = bound ns at r / row ns at r. Both were measured in the
 * same round (measureInterleaved), a fraction of a second apart, so the machine's bandwidth drift
 * over the run cancels out. Null when the samples do not line up (a latency row, a path that
 * stopped early, different repetition counts): the caller then takes the ratio of the medians.
 */
export function perRepRatio(row: Row, boundRow: Row | undefined): number | null {
  const a = row.samplesNs;
  const b = boundRow?.samplesNs;
  if (row.kind !== 'throughput' || boundRow?.kind !== 'throughput' || !a || !b || a.length === 0 || a.length !== b.length) return null;
  const ratios: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (!(x > 0) || !(y > 0) || !Number.isFinite(x) || !Number.isFinite(y)) return null;
    ratios.push(y / x);
  }
  return median(ratios);
}

/**
 * Fills vsBufferCopy (Buffer.copy loop of the same cell and form) and xBound (this row's
 * throughput over the cell's bound: the fastest verified bound figure of the same bytes, any
 * kind, any thread count, by median) of every row. On throughput cells xBound is
 * the median of the per-repetition ratios to the bound path measured in the same round
 * (perRepRatio); otherwise, and when the repetitions do not line up, the ratio of the medians.
 * Returns the bounds it used.
 */
export function fillRatios(rows: Row[], harnessNs = 0): CellBound[] {
  const base = new Map<string, Row>();
  for (const r of rows) if (r.path === 'Buffer.copy' && r.verified) base.set(`${r.folioSize}/${r.folios}/${r.form}`, r);
  const bounds = cellBounds(rows);
  const byCell = new Map(bounds.map((c) => [`${c.folioSize}/${c.folios}`, c]));
  const boundRows = new Map<string, Row>();
  for (const r of rows) if (r.pathKind === 'bound') boundRows.set(`${r.folioSize}/${r.folios}/${r.path}`, r);
  for (const r of rows) {
    const b = base.get(`${r.folioSize}/${r.folios}/${r.form}`);
    const bound = byCell.get(`${r.folioSize}/${r.folios}`)?.bound ?? null;
    // Latency rows: the harness's own cost off both sides (measureHarnessNs); a bound row times
    // itself natively and never paid it. Throughput rows take milliseconds: it is nothing there.
    const latency = r.kind === 'latency' && r.pathKind !== 'bound';
    const own = latency ? r.medianNs - harnessNs : r.medianNs;
    const baseNs = b && r.kind === 'latency' ? b.medianNs - harnessNs : b?.medianNs;
    r.vsBufferCopy = baseNs !== undefined && Number.isFinite(own) && own > 0 ? baseNs / own : null;
    r.xBound = null;
    delete r.xBoundMethod;
    if (bound && Number.isFinite(r.gbps) && (!latency || own > 0)) {
      const perRep = latency ? null : perRepRatio(r, boundRows.get(`${r.folioSize}/${r.folios}/${bound.path}`));
      r.xBound = perRep ?? (latency ? r.bytes / own : r.gbps) / bound.gbps;
      r.xBoundMethod = perRep === null ? 'medians' : 'per-rep';
    }
    if (bound) {
      r.boundPath = bound.path;
      r.boundGbps = bound.gbps;
    }
  }
  return bounds;
}

/** Cells where a bound kind came out slower on its most threads than on fewer: say so. */
export function boundNotes(bounds: readonly CellBound[]): string[] {
  const notes: string[] = [];
  for (const c of bounds) {
    if (c.kind !== 'throughput') continue;
    for (const kind of ['memcpy', 'streaming'] as const) {
      const list = c.figures.filter((f) => f.kind === kind && f.verified);
      const top = list[list.length - 1];
      const best = list.reduce<typeof top>((a, f) => (!a || f.gbps > a.gbps ? f : a), undefined);
      if (top && best && best !== top && best.gbps > top.gbps * 1.1) {
        notes.push(
          `${sizeLabel(c.bytes)} of ${sizeLabel(c.folioSize)}: ${top.path} (${top.gbps.toFixed(2)} GB/s) was slower than ${best.path} (${best.gbps.toFixed(2)} GB/s); the bound is the fastest figure`,
        );
      }
    }
  }
  return notes;
}

/**
 * Before anything is timed: each path and mode of the first latency cell of each form runs
 * `calls` times, untimed. The first cells measured otherwise carried the whole process's warm-up
 * (code optimized in the background while they ran), and the region form, measured first, came
 * out several times slower than the same code on the list form.
 */
async function warmUp(tasks: readonly Task[], buffersOf: (c: Cell) => CellBuffers, calls: number): Promise<void> {
  const firsts = new Map<string, Cell>();
  for (const t of tasks) if (t.cell.kind === 'latency' && !firsts.has(t.cell.form)) firsts.set(t.cell.form, t.cell);
  for (const cell of firsts.values()) {
    const b = buffersOf(cell);
    for (const t of tasks) {
      if (t.cell !== cell) continue;
      try {
        for (let i = 0; i < calls; i++) {
          const r = t.path.run(b, t.mode);
          if (r instanceof Promise) await r;
        }
      } catch {
        // measure() reports the path's failure on its own run
      }
    }
  }
}

export async function runBench(o: BenchOptions = {}): Promise<BenchReport> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const quick = o.quick ?? false;
  const settings: MeasureSettings = { ...(quick ? QUICK_SETTINGS : FULL_SETTINGS), ...o.settings };
  const cfg = sweepConfig({ quick, folioSizes: o.folioSizes, totalBytes: o.totalBytes, batches: o.batches, forms: o.forms });
  const host = hostRecord();
  const notes: string[] = [];
  const maxThreads = o.maxThreads ?? os.availableParallelism();
  let opened: { paths: BenchPath[]; skipped: { name: string; reason: string }[] };
  if (o.paths) {
    opened = { paths: [...o.paths], skipped: [] };
  } else {
    let dsa = false;
    try {
      dsa = listDevices().some((d) => d.queues.some((q) => q.usable));
    } catch {
      dsa = false;
    }
    opened = await openPaths({ cpuThreads: Array.from({ length: maxThreads }, (_, i) => i + 1), dsa, only: o.only });
  }
  const paths = [...opened.paths, ...(o.extraPaths ?? [])];
  const rows: Row[] = [];
  const engines: Record<string, unknown> = {};
  let memory: MemoryResult | null = null;
  let harnessNs = 0;
  const memoryWanted = o.memory ?? !quick;
  try {
    const cells = o.cells ?? planCells(cfg, paths.some((p) => p.name === PREPARED_PATH) ? [PREPARED_PATH] : []);
    const tasks = planTasks(cells, paths, cfg.forms);
    const maxBytes = Math.max(0, ...cells.map((c) => c.bytes));
    const src = Buffer.allocUnsafeSlow(maxBytes);
    const dst = Buffer.allocUnsafeSlow(maxBytes);
    fillPattern(src);
    dst.fill(0);
    const buffersOf = (c: Cell): CellBuffers => {
      const cd = dst.subarray(0, c.bytes);
      const cs = src.subarray(0, c.bytes);
      const dstViews: Buffer[] = [];
      const srcViews: Buffer[] = [];
      if (c.form === 'list') {
        for (let k = 0; k < c.folios; k++) {
          dstViews.push(cd.subarray(k * c.folioSize, (k + 1) * c.folioSize));
          srcViews.push(cs.subarray(k * c.folioSize, (k + 1) * c.folioSize));
        }
      }
      return { form: c.form, folioSize: c.folioSize, folios: c.folios, dst: cd, src: cs, dstViews, srcViews };
    };
    await warmUp(tasks, buffersOf, settings.latencyWarmup);
    const label = (t: Task) =>
      `${sizeLabel(t.cell.folioSize)} x ${t.cell.folios} ${t.cell.form} ${t.path.name}${t.path.kind === 'engine' ? ` ${t.mode}` : ''}`;
    // Consecutive throughput tasks of the same folio size and batch (both forms: they share the
    // bound) are measured together, their repetitions interleaved; latency tasks one at a time.
    const groupKey = (t: Task) => (t.cell.kind === 'throughput' ? `${t.cell.folioSize}/${t.cell.folios}` : null);
    const buffers = new Map<Cell, CellBuffers>();
    const buffersFor = (c: Cell): CellBuffers => {
      let b = buffers.get(c);
      if (!b) {
        buffers.clear(); // only the cells of the current group are kept (list views are many)
        b = buffersOf(c);
        buffers.set(c, b);
      }
      return b;
    };
    for (let i = 0; i < tasks.length; ) {
      const first = tasks[i] as Task;
      const key = groupKey(first);
      if (key === null) {
        o.onProgress?.(i, tasks.length, label(first));
        rows.push(await measure(first.path, first.mode, first.cell, buffersFor(first.cell), settings));
        i++;
        continue;
      }
      let j = i + 1;
      while (j < tasks.length && groupKey(tasks[j] as Task) === key) j++;
      const group = tasks.slice(i, j);
      const groupBuffers = new Map<Cell, CellBuffers>();
      for (const t of group) if (!groupBuffers.has(t.cell)) groupBuffers.set(t.cell, buffersOf(t.cell));
      buffers.clear();
      const i0 = i;
      const n = group.length;
      const what = `${sizeLabel(first.cell.folioSize)} x ${first.cell.folios}, ${n} paths`;
      o.onProgress?.(i0, tasks.length, `${what}, warm-up`);
      const measured = await measureInterleaved(
        group.map((t) => ({ path: t.path, mode: t.mode, cell: t.cell, b: groupBuffers.get(t.cell) as CellBuffers })),
        settings,
        (r) => {
          if (r < settings.reps)
            o.onProgress?.(i0 + Math.floor((n * r) / settings.reps), tasks.length, `${what}, round ${r + 1}/${settings.reps}`);
        },
      );
      rows.push(...measured);
      i = j;
    }
    // Measured last, through the same runRep the latency cells ran, now optimized: measured
    // first, it timed the harness before V8 had compiled it (~20 ns against ~4 ns a call).
    const latencyCell = tasks.find((t) => t.cell.kind === 'latency')?.cell;
    if (latencyCell) harnessNs = await measureHarnessNs(latencyCell, buffersOf(latencyCell));
    o.onProgress?.(tasks.length, tasks.length, 'done');
    for (const p of paths) if (p.stats) engines[p.name] = p.stats();
  } finally {
    await closePaths(paths);
  }
  if (memoryWanted) memory = await measureMemory(o.memoryBytes ?? GiB);
  const bounds = fillRatios(rows, harnessNs);
  if (harnessNs > 0)
    notes.push(
      `latency ratios and fixed costs subtract the harness's own ${Math.round(harnessNs)} ns a call (the call and its share of the clock reads, measured with a path that does nothing); the p50 columns do not`,
    );
  const failures = rows
    .filter((r) => !r.verified)
    .map(
      (r) =>
        `${r.path} ${r.mode} ${r.form} ${sizeLabel(r.folioSize)} x ${r.folios}: ${r.error ?? `${r.mismatches} of the measured copies differ from the source (first at byte ${r.firstBadOffset})`}`,
    );
  notes.push(...boundNotes(bounds));
  const auto = engines.auto as { autoReason?: string; backend?: string } | undefined;
  if (auto) notes.push(`auto chose backend '${auto.backend}'${auto.autoReason ? `: ${auto.autoReason}` : ''}`);
  if (host.loadAverage[0] !== undefined && host.loadAverage[0] > host.cores * 0.5) {
    notes.push(`the host was busy when the run started (1-minute load ${host.loadAverage[0]} on ${host.cores} cores): figures are noisy`);
  }
  return {
    tool: 'dmacopy bench',
    version: 2,
    startedAt,
    durationMs: Date.now() - t0,
    host,
    config: { ...cfg, ...settings, latencyCallsPerSample: LATENCY_CALLS, paths: paths.map((p) => p.name), memory: memoryWanted },
    rows,
    bounds,
    skipped: opened.skipped,
    engines,
    targets: evaluateTargets(rows, memory, harnessNs),
    harnessNs,
    memory,
    failures,
    notes,
    ok: failures.length === 0 && (memory === null || memory.error !== undefined || memory.verified),
  };
}
