// The ABI between lib/ and the native addon: event layout, copy modes, table forms and the shapes
// of what crosses (options, queue configurations, results). native/addon mirrors each of these;
// a change here is a change there.
import type { EmulatorFaults, NativeStats } from '../types';

/** Doubles per completion event (native/addon/event_channel.h EventField). */
export const EVENT_FIELDS = 12;

/**
 * The calling convention between this file and the addon (kAbiVersion in native/addon/addon.cc):
 * bumped whenever both change together. 2: queues are opened by openUserQueues, off the thread.
 */
export const ABI_VERSION = 2;
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
  /** Descriptors the CPU finished while the device may still write them (a Drain timed out). */
  Wedged = 11,
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

/** The copy kind of memcpyBound (native/addon/diagnostic_hooks.cc; dmacopy::StoreKind). */
export const enum BoundKind {
  /** The C library's memcpy: cached stores. */
  Memcpy = 0,
  /** The engine's streaming-store kernel (StoreKind::NonTemporal; regions under 4 KiB stay cached). */
  Streaming = 1,
}

export interface NativeEngineOptions {
  threads: number;
  /** Nice value (0..19) of each copy thread; 0 or absent leaves them at the process's priority. */
  cpuNice?: number;
  /** SCHED_IDLE copy threads (cpuNice is then unused); absent: false. */
  cpuIdle?: boolean;
  /** CPUs to bind the copy threads to (thread i to entry i, rotating per engine); absent or []: unbound. */
  pinCpus?: number[];
  nonTemporalMinBytes: number;
  timeoutMs: number;
  dsa?: NativeDsaConfig;
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

/** /dev/dsa queues opened and probed by openUserQueues (an opaque, type-tagged External). */
export interface NativeOpenedQueues {
  readonly __nativeOpenedQueues: never;
}

/** A plan kept by the addon for a prepared batch (an opaque, type-tagged External). */
export interface NativePlan {
  readonly __nativePlan: never;
}

/** The engine's native counters (public as NativeStats in lib/types.ts). */
export type NativeEngineStats = NativeStats;

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
  /**
   * Validates, overlap-checks and splits a batch once (engine.prepare): the plan is kept natively
   * and run again by runPrepared. Throws the same coded errors as copy().
   */
  prepare(buffers: Uint8Array[], form: TableForm, table: Float64Array, bounds: Float64Array, cpuWorksFrom?: number): NativePlan;
  /**
   * Runs a prepared plan once over `buffers` (the very memory it was prepared on, re-checked:
   * a detached buffer throws ERR_DMACOPY_DETACHED). counts receives each work's descriptors;
   * returns their sum. totals as in copy().
   */
  runPrepared(plan: NativePlan, mode: CopyMode, opId: number, buffers: Uint8Array[], counts: Uint32Array, totals?: Float64Array): number;
  /** Frees a plan now (a run in flight keeps what it uses); later runs throw ERR_DMACOPY_RELEASED. */
  releasePrepared(plan: NativePlan): void;
  endBatch(opId: number): void;
  registerSync(opId: number): void;
  waitSync(opId: number, expected: number, totals: Float64Array): void;
  stats(): NativeEngineStats;
  queues(): NativeQueueOpenResult[];
  close(): void;
}

export interface NativeBinding {
  NativeEngine: new (options: NativeEngineOptions) => NativeEngine;
  /**
   * Opens and probes /dev/dsa queues on a pool thread, every probe side by side: a probe waits
   * for the device up to its timeout, which must not block the event loop. Resolves with a handle
   * for NativeEngine's dsa.opened, taken once; queues no engine took are released when the
   * handle is collected. Rejects only when the system refused memory or threads.
   */
  openUserQueues(queues: NativeUserQueue[]): Promise<NativeOpenedQueues>;
  /** Releases the queues of a handle no engine took (each on a thread of its own); idempotent. */
  releaseOpenedQueues(handle: NativeOpenedQueues): void;
  abiVersion: number;
  /**
   * Once per thread. isMainThread: a worker's teardown waits for the queue releases its engines
   * left running (wedged queues), since its buffers are freed with it; the main thread's does not.
   */
  setEventHandler(handler: (events: Float64Array) => void, isMainThread: boolean): void;
  refEvents(): void;
  unrefEvents(): void;
  eventFields: number;
  /**
   * Benchmark yardstick: a plain multi-threaded copy of src into dst, `chunk` bytes per copy call,
   * with memcpy or streaming stores (kind); returns nanoseconds. threads 1..1024, chunk >= 1, kind
   * 0 or 1, dst at least as long as src and not overlapping it: the addon re-checks each.
   */
  memcpyBound(dst: Uint8Array, src: Uint8Array, threads: number, chunk: number, kind: BoundKind): number;
  /** CPUID leaf 7 bits the DSA path needs (after DMACOPY_CPU_FEATURES_MASK), and kernel ENQCMD support. */
  cpuFeatures(): { movdir64b: boolean; enqcmd: boolean; waitpkg: boolean; movdiri: boolean; kernelEnqcmd: boolean };
}

export interface NativeSoftQueue {
  /** The emulated device: queues with the same device share its software-error latch. */
  device: string;
  name: string;
  engines: number;
  wqSize: number;
  mode: 'dedicated' | 'shared';
  maxTransferSize: number;
  seed: number;
  latencyUs: number;
  jitterUs: number;
  faults: Required<EmulatorFaults>;
}

export interface NativeUserQueue {
  name: string;
  devicePath: string;
  mode: 'dedicated' | 'shared';
  size: number;
  maxTransferSize: number;
  cacheControl: boolean;
  wqStatePath: string;
  deviceStatePath: string;
  deviceErrorsPath: string;
  submission: 'auto' | 'portal' | 'write';
}

export interface NativeDsaConfig {
  kind: 'emulated' | 'user';
  queues: NativeSoftQueue[] | NativeUserQueue[];
  /** kind 'user': the queues openUserQueues opened (required there; NativeEngine takes them). */
  opened?: NativeOpenedQueues;
  options: { cacheControl: boolean; pageFaultRetries: number; quarantineAfter: number; drainTimeoutMs: number };
}
