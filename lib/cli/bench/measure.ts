// Measuring one path on one cell. Every measured copy is verified outside the timed region:
// the destination is zeroed before each repetition and compared with the source after it. The
// timed region holds only the copy (for 'await', up to the resolution of its promise).
// CPU time is process.cpuUsage() (user + system of every thread, the native ones included)
// over the same timed region.
import type { Cell, Mode } from './cells';
import type { BenchPath, CellBuffers } from './paths';
import { cpuNs, GiB, gbps, median, nowNs, quantile } from './stats';

export interface MeasureSettings {
  /** Throughput cells: timed repetitions after the warm-up. */
  reps: number;
  /** Throughput cells: untimed repetitions first. */
  warmup: number;
  /**
   * Latency cells: iterations discarded first. Enough for V8 to optimize the path (a few
   * hundred calls): with 20, the first cells timed interpreted JavaScript against Buffer.copy's
   * C++, and the small-batch ratios measured the JIT's tiering rather than the path.
   */
  latencyWarmup: number;
  /** Latency cells: at least this many timed iterations... */
  latencyMinIters: number;
  /** ...and more while the wall time spent on the cell stays below this. */
  latencyBudgetMs: number;
  latencyMaxIters: number;
}

export const QUICK_SETTINGS: MeasureSettings = {
  reps: 3,
  warmup: 1,
  latencyWarmup: 1000,
  latencyMinIters: 60,
  latencyBudgetMs: 25,
  latencyMaxIters: 20000,
};
export const FULL_SETTINGS: MeasureSettings = {
  reps: 5,
  warmup: 1,
  latencyWarmup: 2000,
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
  /** Wall time the measurement took, verification and resets included. */
  wallMs: number;
  /** Median time of one batch (= p50). */
  medianNs: number;
  p50Ns: number;
  p99Ns: number;
  minNs: number;
  /** Bytes of the batch over its median time. */
  gbps: number;
  /** CPU time (user + sys, all threads) per GiB copied, in ns; throughput cells only (NaN on latency cells). */
  cpuNsPerGiB: number;
  /** Buffer.copy loop median / this median, same cell (form included). Filled by the run. */
  vsBufferCopy: number | null;
  /**
   * This row's throughput as a fraction of the cell's bound (the fastest of memcpy and streaming
   * stores on 1..N threads, same bytes and chunking, this run). Filled by the run.
   */
  xBound: number | null;
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

export async function measure(path: BenchPath, mode: Mode, cell: Cell, b: CellBuffers, s: MeasureSettings): Promise<Row> {
  const times: number[] = [];
  let cpu = 0;
  let mismatches = 0;
  let firstBadOffset: number | undefined;
  let error: string | undefined;
  const latency = cell.kind === 'latency';
  const warm = latency ? s.latencyWarmup : s.warmup;
  const start = nowNs();
  const budgetNs = s.latencyBudgetMs * 1e6;
  for (let it = 0; ; it++) {
    b.dst.fill(0);
    let ns: number;
    let c: number;
    try {
      // CPU time on throughput cells only: a getrusage() pair around every small batch costs
      // more than the batch and disturbs the microseconds being timed (caches, TLB).
      const c0 = latency ? 0 : cpuNs();
      const t0 = nowNs();
      let r: unknown = path.run(b, mode);
      if (r instanceof Promise) r = await r;
      const t1 = nowNs();
      c = latency ? 0 : cpuNs() - c0;
      ns = typeof r === 'number' ? r : t1 - t0;
    } catch (err) {
      error = (err as Error).message;
      break;
    }
    if (!b.dst.equals(b.src)) {
      mismatches++;
      if (firstBadOffset === undefined) firstBadOffset = firstDifference(b.dst, b.src);
    }
    if (it >= warm) {
      times.push(ns);
      cpu += c;
    }
    const n = times.length;
    if (!latency && n >= s.reps) break;
    if (latency && (n >= s.latencyMaxIters || (n >= s.latencyMinIters && nowNs() - start > budgetNs))) break;
  }
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
    wallMs: Math.round((nowNs() - start) / 1e4) / 100,
    medianNs: med,
    p50Ns: quantile(times, 0.5),
    p99Ns: quantile(times, 0.99),
    minNs: times.length === 0 ? Number.NaN : times.reduce((m, x) => Math.min(m, x), Number.POSITIVE_INFINITY),
    gbps: gbps(cell.bytes, med),
    cpuNsPerGiB: times.length && !latency ? (cpu / (times.length * cell.bytes)) * GiB : Number.NaN,
    vsBufferCopy: null,
    xBound: null,
    ...(path.boundKind !== undefined ? { boundKind: path.boundKind } : {}),
    verified: error === undefined && mismatches === 0 && times.length > 0,
    mismatches,
    ...(firstBadOffset !== undefined ? { firstBadOffset } : {}),
    ...(error !== undefined ? { error } : {}),
  };
}
