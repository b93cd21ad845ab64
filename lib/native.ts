// Loads the native addon with node-gyp-build (build/Release, then prebuilds/<platform>-<arch>).
// `bindings` cannot find prebuilds, which is why it is not used. A failed load is remembered,
// not thrown: the CPU path then runs in JavaScript and says so once.
import path from 'node:path';

/** Doubles per completion event (native/addon/event_channel.h EventField). */
export const EVENT_FIELDS = 11;
export const enum EventField {
  Op = 0,
  Work = 1,
  Completed = 2,
  DeviceBytes = 3,
  CpuBytes = 4,
  FallbackTimeout = 5,
  FallbackError = 6,
  FallbackPageFault = 7,
  FallbackSubmit = 8,
  OutOfOrder = 9,
  PageFaultRetries = 10,
}

export const enum CopyMode {
  Inline = 0,
  Sync = 1,
  Async = 2,
}

export const enum TableForm {
  List = 0,
  Region = 1,
}

export interface NativeEngineOptions {
  threads: number;
  nonTemporalMinBytes: number;
  timeoutMs: number;
  dsa?: import('./backends').NativeDsaConfig;
}

/** What opening one /dev/dsa queue gave: codes and numbers only (the native side words nothing). */
export interface NativeQueueOpenResult {
  ok: boolean;
  code: string;
  errno: number;
  path: 'auto' | 'portal' | 'write';
  instruction: string;
  mmapErrno: number;
  probeStatus: number;
  swerrAtOpen: boolean;
}

export interface NativeEngineStats {
  cpuJobs: number;
  cpuRegions: number;
  cpuBytes: number;
  cpuThreads: number;
  inFlightJobs: number;
  dsa?: Record<string, unknown> & { channels: Record<string, unknown>[] };
}

export interface NativeEngine {
  copy(
    mode: CopyMode,
    opId: number,
    buffers: Uint8Array[],
    form: TableForm,
    table: Float64Array,
    bounds: Float64Array,
    /** Synchronous device copies: receives the sum of the op's events (event layout). */
    totals?: Float64Array,
    /** A chunk of a larger batch: overlap is checked against the earlier chunks of opId. */
    chunked?: boolean,
    /** Device engines: works from this index on run on the CPU threads beside the device. */
    cpuWorksFrom?: number,
  ): Uint32Array;
  endBatch(opId: number): void;
  registerSync(opId: number): void;
  waitSync(opId: number, expected: number, totals: Float64Array): void;
  stats(): NativeEngineStats;
  queues(): NativeQueueOpenResult[];
  close(): void;
}

export interface NativeBinding {
  NativeEngine: new (options: NativeEngineOptions) => NativeEngine;
  setEventHandler(handler: (events: Float64Array) => void): void;
  refEvents(): void;
  unrefEvents(): void;
  eventFields: number;
  /** Benchmark yardstick: a plain multi-threaded memcpy of src into dst; returns nanoseconds. */
  memcpyBound(dst: Uint8Array, src: Uint8Array, threads: number, chunk: number): number;
  /** CPUID leaf 7 bits the DSA path needs (after DMACOPY_CPU_FEATURES_MASK), and kernel ENQCMD support. */
  cpuFeatures(): { movdir64b: boolean; enqcmd: boolean; waitpkg: boolean; movdiri: boolean; kernelEnqcmd: boolean };
}

let binding: NativeBinding | undefined;
let loadError: Error | undefined;
let loaded = false;

function load(): void {
  loaded = true;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    // DMACOPY_NATIVE_PATH loads a specific build (the sanitizer build of `npm run test:asan`).
    const override = process.env.DMACOPY_NATIVE_PATH;
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    const mod = (override ? require(path.resolve(override)) : nodeGypBuild(path.join(__dirname, '..'))) as Partial<NativeBinding> & {
      unsupported?: string;
    };
    if (typeof mod.unsupported === 'string') throw new Error(mod.unsupported);
    if (mod.eventFields !== EVENT_FIELDS)
      throw new Error('native addon does not match this version of dmacopy: rebuild it with `npm run build`');
    binding = mod as NativeBinding;
  } catch (err) {
    // The first line only: node-gyp-build appends a multi-line require stack.
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error';
    loadError = new Error(message, { cause: err });
  }
}

/** The native binding, or undefined when it cannot load on this host (see nativeLoadError()). */
export function nativeBinding(): NativeBinding | undefined {
  if (!loaded) load();
  return binding;
}

/** Why the native addon did not load, if it did not. */
export function nativeLoadError(): Error | undefined {
  if (!loaded) load();
  return loadError;
}
