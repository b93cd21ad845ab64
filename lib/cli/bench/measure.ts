// Measuring paths on a cell: one path back to back (latency cells), or every path of a
// throughput cell with their repetitions interleaved round by round. Every measured copy is verified outside the timed region:
// the destination is zeroed before each repetition and compared with the source after it. The
// timed region holds only the copy (for 'await', up to the resolution of its promise).
// CPU time is process.cpuUsage() (user + system of every thread, the native ones included)
// over the same timed region.
import type { Cell, Mode } from './cells';
import type { BenchPath, CellBuffers } from './paths';
import { cpuNs, GiB, gbps, median, nowNs, quantile } from './stats';

export interface MeasureSettings {
  /** Throughput cells: timed repetitions after the warm-up (rounds: one repetition of every path of the cell each). */
  reps: number;
  /** Throughput cells: untimed repetitions first. */
  warmup: number;
  /**
   * Latency cells: iterations discarded first. Enough for V8 to optimize the path: with 20,
   * the first cells timed interpreted JavaScript against Buffer.copy's C++, and the small-batch
   * ratios measured the JIT's tiering rather than the path; with 1,000 the first cell (1 folio,
   * region form) still read 1.2-3 us where the same call took 0.7 us in the next cells.
   */
  latencyWarmup: number;
  /** Latency cells: at least this many timed iterations... */
  latencyMinIters: number;
  /** ...and more while the wall time spent on the cell stays below this. */
  latencyBudgetMs: number;
  latencyMaxIters: number;
}

/**
 * Calls per latency sample (runRep): the sample is their mean. Warm-up and budgets count samples;
 * latencyWarmup counts calls (measure() divides).
 */
export const LATENCY_CALLS = 16;

export const QUICK_SETTINGS: MeasureSettings = {
  reps: 5,
  warmup: 1,
  latencyWarmup: 5000,
  latencyMinIters: 60,
  latencyBudgetMs: 25,
  latencyMaxIters: 20000,
};
export const FULL_SETTINGS: MeasureSettings = {
  reps: 7,
  warmup: 1,
  latencyWarmup: 10000,
  latencyMinIters: 300,
  latencyBudgetMs: 200,
  latencyMaxIters: 100000,
};

export interface Row {
  folioSize: number;
  folios: number;
  bytes: number;
  form: Cell['form'];
  kind: Cell['kind'];
  /** A probe cell's row (see Cell.onlyPaths): not charted. */
  probe?: boolean;
  path: string;
  pathKind: BenchPath['kind'];
  mode: Mode;
  threads: number;
  /** Timed repetitions or iterations. */
  iterations: number;
  /** Wall time the measurement took (its repetitions, warm-up, resets and verification included, summed). */
  wallMs: number;
  /** Median time of one batch (= p50). */
  medianNs: number;
  p50Ns: number;
  p99Ns: number;
  minNs: number;
  /** Bytes of the batch over its median time. */
  gbps: number;
  /**
   * Throughput cells: the time of every timed repetition, in the order they ran (repetition r of
   * every path of the cell ran in the same round, see measureInterleaved). Absent on latency cells.
   */
  samplesNs?: number[];
  /** CPU time (user + sys, all threads) per GiB copied, in ns; throughput cells only (NaN on latency cells). */
  cpuNsPerGiB: number;
  /** Buffer.copy loop median / this median, same cell (form included). Filled by the run. */
  vsBufferCopy: number | null;
  /**
   * This row's throughput as a fraction of the cell's bound (the fastest of memcpy and streaming
   * stores on 1..N threads, same bytes, this run). Filled by the run.
   */
  xBound: number | null;
  /**
   * How xBound was taken: 'per-rep', the median over repetitions r of (this row's GB/s at r) /
   * (the bound path's GB/s at r), both measured in round r; or 'medians', this row's median GB/s
   * over the bound's (latency cells, or when the repetitions do not line up).
   */
  xBoundMethod?: 'per-rep' | 'medians';
  /** The bound path the fraction was taken against (e.g. "streaming x2"), and its throughput. */
  boundPath?: string;
  boundGbps?: number;
  /** Bound rows: the copy kind. */
  boundKind?: BenchPath['boundKind'];
  verified: boolean;
  /** Repetitions whose destination differed from the source afterwards. */
  mismatches: number;
  /** First differing byte offset of the first mismatch, when any. */
  firstBadOffset?: number;
  error?: string;
}

function firstDifference(a: Buffer, b: Buffer): number {
  // Coarse then fine: compare 64 KiB blocks, then bytes inside the first bad block.
  const block = 65536;
  for (let o = 0; o < a.length; o += block) {
    const e = Math.min(o + block, a.length);
    if (a.compare(b, o, e, o, e) !== 0) {
      for (let i = o; i < e; i++) if (a[i] !== b[i]) return i;
    }
  }
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}

/** One (cell, path, mode) being measured: what its repetitions have gathered so far. */
export interface MeasureTask {
  path: BenchPath;
  mode: Mode;
  cell: Cell;
  b: CellBuffers;
}

interface TaskState extends MeasureTask {
  /** Timed repetitions or iterations, in the order they ran. */
  times: number[];
  cpu: number;
  mismatches: number;
  firstBadOffset?: number;
  error?: string;
  /** Repetitions run so far, warm-up included. */
  runs: number;
  /** Wall time of every repetition (reset, copy, verification), summed. */
  wallNs: number;
}

function newState(t: MeasureTask): TaskState {
  return { ...t, times: [], cpu: 0, mismatches: 0, runs: 0, wallNs: 0 };
}

/**
 * One repetition of one task, shared by the back-to-back and the interleaved measurement: the
 * destination zeroed, the copy timed (CPU time too on throughput cells), the destination compared
 * with the source outside the timed region. Repetitions past `warm` are kept. Returns false when
 * the path threw (the task then stops being measured; its error is recorded).
 */
async function runRep(st: TaskState, warm: number): Promise<boolean> {
  const { b, path, mode } = st;
  const latency = st.cell.kind === 'latency';
  // A latency sample is the mean of LATENCY_CALLS back-to-back calls: one call of a small batch
  // takes a few clock ticks (~10 ns steps here), and the clock pair costs more than a 4 KiB copy.
  const calls = latency ? LATENCY_CALLS : 1;
  const w0 = nowNs();
  b.dst.fill(0);
  let ns: number;
  let c: number;
  try {
    // CPU time on throughput cells only: a getrusage() pair around every small batch costs
    // more than the batch and disturbs the microseconds being timed (caches, TLB).
    const c0 = latency ? 0 : cpuNs();
    let self = 0;
    let timesItself = false;
    const t0 = nowNs();
    for (let k = 0; k < calls; k++) {
      let r: unknown = path.run(b, mode);
      if (r instanceof Promise) r = await r;
      if (typeof r === 'number') {
        self += r; // a bound path times itself
        timesItself = true;
      }
    }
    const t1 = nowNs();
    c = latency ? 0 : cpuNs() - c0;
    ns = (timesItself ? self : t1 - t0) / calls;
  } catch (err) {
    st.error = (err as Error).message;
    st.wallNs += nowNs() - w0;
    return false;
  }
  if (!b.dst.equals(b.src)) {
    st.mismatches++;
    if (st.firstBadOffset === undefined) st.firstBadOffset = firstDifference(b.dst, b.src);
  }
  if (st.runs >= warm) {
    st.times.push(ns);
    st.cpu += c;
  }
  st.runs++;
  st.wallNs += nowNs() - w0;
  return true;
}

function toRow(st: TaskState): Row {
  const { cell, path, mode, times } = st;
  const latency = cell.kind === 'latency';
  const med = median(times);
  return {
    folioSize: cell.folioSize,
    folios: cell.folios,
    bytes: cell.bytes,
    form: cell.form,
    kind: cell.kind,
    ...(cell.onlyPaths ? { probe: true } : {}),
    path: path.name,
    pathKind: path.kind,
    mode,
    threads: path.threads,
    iterations: times.length,
    wallMs: Math.round(st.wallNs / 1e4) / 100,
    medianNs: med,
    p50Ns: quantile(times, 0.5),
    p99Ns: quantile(times, 0.99),
    minNs: times.length === 0 ? Number.NaN : times.reduce((m, x) => Math.min(m, x), Number.POSITIVE_INFINITY),
    gbps: gbps(cell.bytes, med),
    cpuNsPerGiB: times.length && !latency ? (st.cpu / (times.length * cell.bytes)) * GiB : Number.NaN,
    // Throughput cells only: a latency cell runs up to latencyMaxIters iterations.
    ...(latency ? {} : { samplesNs: [...times] }),
    vsBufferCopy: null,
    xBound: null,
    ...(path.boundKind !== undefined ? { boundKind: path.boundKind } : {}),
    verified: st.error === undefined && st.mismatches === 0 && times.length > 0,
    mismatches: st.mismatches,
    ...(st.firstBadOffset !== undefined ? { firstBadOffset: st.firstBadOffset } : {}),
    ...(st.error !== undefined ? { error: st.error } : {}),
  };
}

/** One task measured back to back: its warm-up, then its timed repetitions (or, on a latency cell, iterations). */
export async function measure(path: BenchPath, mode: Mode, cell: Cell, b: CellBuffers, s: MeasureSettings): Promise<Row> {
  const st = newState({ path, mode, cell, b });
  const latency = cell.kind === 'latency';
  const warm = latency ? Math.ceil(s.latencyWarmup / LATENCY_CALLS) : s.warmup;
  // The budget is for timed iterations: started after the warm-up, which once spent all of it, so
  // that every path slower than budget / warm-up got latencyMinIters samples (its p99 their max).
  let start = warm === 0 ? nowNs() : Number.NaN;
  const budgetNs = s.latencyBudgetMs * 1e6;
  for (;;) {
    if (!(await runRep(st, warm))) break;
    if (Number.isNaN(start) && st.runs >= warm) start = nowNs();
    const n = st.times.length;
    if (!latency && n >= s.reps) break;
    if (latency && (n >= s.latencyMaxIters || (n >= s.latencyMinIters && nowNs() - start > budgetNs))) break;
  }
  return toRow(st);
}

/**
 * What the harness itself adds to a latency call's time: its share of the sample's two clock
 * reads, the call of the path and the check of what it returned, measured through runRep with a
 * path that does nothing (median of `iterations` samples, after as many untimed). ~24 ns on the
 * 2-core VM, against ~50 ns for a 4 KiB Buffer.copy: a constant both sides of a latency ratio
 * share pulls the ratio toward 1, so the latency ratios and the fixed costs subtract it
 * (fillRatios, targets.ts). The native bound times itself and never pays it.
 */
export async function measureHarnessNs(cell: Cell, b: CellBuffers, iterations = 4000): Promise<number> {
  const nothing: BenchPath = { name: 'harness', kind: 'baseline', threads: 1, modes: ['sync'], run: () => undefined };
  const st = newState({ path: nothing, mode: 'sync', cell, b });
  while (st.times.length < iterations) await runRep(st, iterations); // copies nothing: its "mismatches" are not reported
  return median(st.times);
}

/**
 * Throughput tasks measured together, repetitions interleaved: first each task's warm-up
 * (s.warmup untimed repetitions, task after task), then s.reps rounds, each running one timed
 * repetition of every task in turn. Round r (0-based) starts at task r mod n, so no path is
 * always the first one after a reset or always next to the same neighbour. Memory bandwidth on a
 * shared machine drifts over seconds: this way every path's repetition r, the bound's included,
 * is measured within one round of a fraction of a second, and fillRatios() compares them round
 * by round. A task whose path throws stops there; the others go on. `onRound(r)` is called
 * before round r (0-based; r === s.reps once done). Rows come back in the order of `tasks`.
 */
export async function measureInterleaved(
  tasks: readonly MeasureTask[],
  s: MeasureSettings,
  onRound?: (round: number) => void,
): Promise<Row[]> {
  const states = tasks.map(newState);
  for (const st of states) {
    for (let i = 0; i < s.warmup; i++) if (!(await runRep(st, s.warmup))) break;
  }
  const n = states.length;
  for (let r = 0; r < s.reps; r++) {
    onRound?.(r);
    for (let k = 0; k < n; k++) {
      const st = states[(r + k) % n] as TaskState;
      if (st.error === undefined) await runRep(st, s.warmup);
    }
  }
  onRound?.(s.reps);
  return states.map(toRow);
}
