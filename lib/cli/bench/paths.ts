// The copy paths a bench compares: what a Node user has (a Buffer.copy loop, a TypedArray.set
// loop), the CPU engine with 1..N threads, the software DSA device, real DSA queues when this
// host has usable ones, and 'auto' (default engine options) — plus the native bound: a plain
// multi-threaded copy of the same bytes (each thread's share in one run), with memcpy and with
// the engine's streaming-store kernel, each on 1..N threads. The fastest of those is the bound.
import { type Engine, openEngine } from '../../engine/engine';
import type { PreparedBatch } from '../../engine/prepared';
import { BoundKind } from '../../native/abi';
import { nativeBinding } from '../../native/loader';
import type { EngineOptions } from '../../types';
import type { Form, Mode } from './cells';

/** The buffers of one cell: dst/src are the cell's bytes; the views exist in list form. */
export interface CellBuffers {
  form: Form;
  folioSize: number;
  folios: number;
  dst: Buffer;
  src: Buffer;
  dstViews: Buffer[];
  srcViews: Buffer[];
}

export type PathKind = 'baseline' | 'engine' | 'bound';
/** The name of the prepared re-run path (engine.prepare on default options), which the targets read. */
export const PREPARED_PATH = 'auto prepared';
/** How a bound path copies: the C library's memcpy, or the engine's streaming-store kernel. */
export type BoundCopyKind = 'memcpy' | 'streaming';
export const BOUND_COPY_KINDS: readonly BoundCopyKind[] = ['memcpy', 'streaming'];

export interface BenchPath {
  name: string;
  kind: PathKind;
  /** Threads the path copies with (the memcpy bound it is compared with uses as many). */
  threads: number;
  /** Modes measured: baselines and the bound are plain synchronous calls ('sync'). */
  modes: Mode[];
  /**
   * Copies the cell's src into dst. May return a promise (awaited inside the timed region) or
   * the number of nanoseconds the copy took when the path times itself (the memcpy bound).
   */
  run(b: CellBuffers, mode: Mode): Promise<unknown> | number | undefined;
  close?(): Promise<void>;
  stats?(): unknown;
  /** copyBatchSync on throughput cells too (by default only 'auto' is measured there). */
  syncOnLarge?: boolean;
  /** Measured once per (folio size, batch): it has no list form. */
  formIndependent?: boolean;
  /** Bound paths: the copy kind. */
  boundKind?: BoundCopyKind;
}

export function bufferCopyPath(): BenchPath {
  return {
    name: 'Buffer.copy',
    kind: 'baseline',
    threads: 1,
    modes: ['sync'],
    run(b) {
      if (b.form === 'list') {
        const d = b.dstViews;
        const s = b.srcViews;
        for (let i = 0; i < s.length; i++) (s[i] as Buffer).copy(d[i] as Buffer);
      } else {
        const f = b.folioSize;
        const end = b.src.length;
        for (let o = 0; o < end; o += f) b.src.copy(b.dst, o, o, Math.min(o + f, end));
      }
      return undefined;
    },
  };
}

export function typedArraySetPath(): BenchPath {
  return {
    name: 'TypedArray.set',
    kind: 'baseline',
    threads: 1,
    modes: ['sync'],
    run(b) {
      if (b.form === 'list') {
        const d = b.dstViews;
        const s = b.srcViews;
        for (let i = 0; i < s.length; i++) (d[i] as Buffer).set(s[i] as Buffer);
      } else {
        const f = b.folioSize;
        const end = b.src.length;
        for (let o = 0; o < end; o += f) b.dst.set(b.src.subarray(o, Math.min(o + f, end)), o);
      }
      return undefined;
    },
  };
}

/** The name of the bound path of a kind and thread count: "memcpy x2", "streaming x1". */
export function boundPathName(kind: BoundCopyKind, threads: number): string {
  return `${kind} x${threads}`;
}

/** The native bound: `threads` threads copy the cell's bytes (each its share in one run) with memcpy or streaming stores. */
export function memcpyBoundPath(threads: number, kind: BoundCopyKind = 'memcpy'): BenchPath {
  const binding = nativeBinding();
  if (!binding) throw new Error('the native addon did not load: no memcpy bound');
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) throw new RangeError('bound threads must be an integer from 1 to 1024');
  const native = kind === 'streaming' ? BoundKind.Streaming : BoundKind.Memcpy;
  return {
    name: boundPathName(kind, threads),
    kind: 'bound',
    threads,
    modes: ['sync'],
    formIndependent: true,
    boundKind: kind,
    run(b) {
      // Each thread's share in one run, not folio by folio: the machine's limit for these bytes.
      // The engine copies contiguous folios (a region, views in order) as one run too, so a
      // folio-chunked yardstick was one the engine could beat (by 10-17% on 4 KiB folios).
      return binding.memcpyBound(b.dst, b.src, threads, Math.max(1, Math.min(b.dst.length, 0xffffffff)), native);
    },
  };
}

/** An engine path: copyBatch ('await') and copyBatchSync ('sync') in the cell's form. */
export function enginePath(name: string, engine: Engine, threads: number, modes: Mode[] = ['await', 'sync']): BenchPath {
  return {
    name,
    kind: 'engine',
    threads,
    modes,
    run(b, mode) {
      const list = b.form === 'list';
      if (mode === 'sync') {
        if (list) engine.copyBatchSync(b.dstViews, b.srcViews);
        else engine.copyBatchSync(b.dst, b.src, { folioSize: b.folioSize });
        return undefined;
      }
      return list ? engine.copyBatch(b.dstViews, b.srcViews) : engine.copyBatch(b.dst, b.src, { folioSize: b.folioSize });
    },
    close: async () => {
      await engine.close();
    },
    stats: () => engine.stats(),
  };
}

/**
 * Prepared re-runs (engine.prepare): the cell's batch is prepared once, on its first (warm-up)
 * run, then copy() ('await') and copySync() ('sync') re-run it.
 */
export function preparedPath(name: string, engine: Engine, threads: number): BenchPath {
  // One handle per cell, kept while the cell is measured: throughput repetitions are interleaved
  // across the region and list cells of a size, and re-preparing on every switch timed prepare()
  // instead of the re-runs. The oldest handles are released beyond a few.
  const handles = new Map<CellBuffers, PreparedBatch>();
  const KEEP = 4;
  const prepared = (b: CellBuffers): PreparedBatch => {
    let handle = handles.get(b);
    if (handle === undefined) {
      handle = b.form === 'list' ? engine.prepare(b.dstViews, b.srcViews) : engine.prepare(b.dst, b.src, { folioSize: b.folioSize });
      handles.set(b, handle);
      for (const [old, h] of handles) {
        if (handles.size <= KEEP) break;
        h.release();
        handles.delete(old);
      }
    }
    return handle;
  };
  return {
    name,
    kind: 'engine',
    threads,
    modes: ['await', 'sync'],
    syncOnLarge: true,
    run(b, mode) {
      const h = prepared(b);
      if (mode === 'sync') {
        h.copySync();
        return undefined;
      }
      return h.copy();
    },
    close: async () => {
      for (const h of handles.values()) h.release();
      handles.clear();
      await engine.close();
    },
    stats: () => engine.stats(),
  };
}

export interface OpenedPaths {
  paths: BenchPath[];
  /** Paths that could not be opened, and why (e.g. DSA queues that did not open). */
  skipped: { name: string; reason: string }[];
}

export interface PathSelection {
  /** CPU engine thread counts (default 1..availableParallelism). */
  cpuThreads: number[];
  /** Open a 'dsa' path (usable queues were found). */
  dsa: boolean;
  /** Only paths whose name starts with one of these (e.g. ['auto', 'Buffer.copy']); default all. */
  only?: string[];
}

/** Every path name --paths can select, for an engine of up to maxThreads copy threads. */
export function pathNames(maxThreads: number): string[] {
  return [
    'Buffer.copy',
    'TypedArray.set',
    ...Array.from({ length: maxThreads }, (_, i) => `cpu x${i + 1}`),
    'emulated',
    'dsa',
    'auto',
    PREPARED_PATH,
  ];
}

function wanted(name: string, only: string[] | undefined): boolean {
  return only === undefined || only.some((p) => name === p || name.startsWith(p));
}

/** Opens every selected path. Baselines first: every ratio is taken against them. */
export async function openPaths(sel: PathSelection): Promise<OpenedPaths> {
  const paths: BenchPath[] = [bufferCopyPath()];
  const skipped: { name: string; reason: string }[] = [];
  if (wanted('TypedArray.set', sel.only)) paths.push(typedArraySetPath());
  const native = nativeBinding() !== undefined;
  const tryOpen = async (name: string, options: EngineOptions, threads: number, modes?: Mode[]) => {
    if (!wanted(name, sel.only)) return;
    try {
      const engine = await openEngine(options);
      paths.push(enginePath(name, engine, threads, modes));
    } catch (err) {
      skipped.push({ name, reason: (err as Error).message });
    }
  };
  if (native) {
    for (const k of sel.cpuThreads) await tryOpen(`cpu x${k}`, { backend: 'cpu', cpuThreads: k, minOffloadBytes: 0 }, k);
    // The software device: latency 0, no faults; its engines are threads on these same cores.
    await tryOpen('emulated', { backend: 'emulated', minOffloadBytes: 0, emulator: { latencyUs: 0 } }, Math.max(...sel.cpuThreads));
    if (sel.dsa) await tryOpen('dsa', { backend: 'dsa', minOffloadBytes: 0 }, Math.max(...sel.cpuThreads));
    else if (wanted('dsa', sel.only)) skipped.push({ name: 'dsa', reason: 'no usable DSA work queue on this host' });
  } else {
    skipped.push({ name: 'cpu/emulated/dsa', reason: 'the native addon did not load' });
  }
  if (wanted('auto', sel.only) || wanted(PREPARED_PATH, sel.only)) {
    try {
      if (wanted('auto', sel.only)) {
        const engine = await openEngine();
        paths.push(enginePath('auto', engine, engine.stats().cpuThreads));
      }
      // Prepared re-runs on an engine of their own, so neither path's policy learns from the other.
      if (wanted(PREPARED_PATH, sel.only)) {
        const own = await openEngine();
        paths.push(preparedPath(PREPARED_PATH, own, own.stats().cpuThreads));
      }
    } catch (err) {
      skipped.push({ name: 'auto', reason: (err as Error).message });
    }
  }
  if (native) {
    // Both kinds on every thread count 1..N (N: the most threads any path or --threads uses).
    const n = Math.max(1, ...sel.cpuThreads, ...paths.map((p) => p.threads));
    for (const kind of BOUND_COPY_KINDS) for (let k = 1; k <= n; k++) paths.push(memcpyBoundPath(k, kind));
  }
  return { paths, skipped };
}

export async function closePaths(paths: readonly BenchPath[]): Promise<void> {
  for (const p of paths) await p.close?.();
}
