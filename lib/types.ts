// Public types. Field names are part of the API: later backends fill the fields that are 0 today.

export type Backend = 'auto' | 'cpu' | 'emulated' | 'dsa';
export type ResolvedBackend = 'cpu' | 'emulated' | 'dsa';

export interface EngineOptions {
  /** Where copies run. 'auto' picks DSA when usable queues exist, else the CPU engine. Default 'auto'. */
  backend?: Backend;
  /** Works per batch (one per channel). Default: one per CPU thread (CPU) or per queue (DSA). */
  channels?: number;
  /** Native copy threads. Default os.availableParallelism(). */
  cpuThreads?: number;
  /** Deadline for one work on a device before the CPU finishes it, in ms (scaled up with work size). */
  timeoutMs?: number;
  /** Batches smaller than this are copied inline on the calling thread (no thread hop). */
  minOffloadBytes?: number;
  /** Batches at least this large use non-temporal (cache-bypassing) stores on the CPU path. */
  nonTemporalMinBytes?: number;
}

export interface CopyOptions {
  /** Region form only: split one large dst/src pair into folios of this many bytes. */
  folioSize?: number;
}

export interface FallbackCounts {
  /** Descriptors finished by the CPU because their work passed its deadline. */
  timeout: number;
  /** Descriptors finished by the CPU after a device error status. */
  error: number;
  /** Descriptors whose remainder the CPU finished after repeated page faults. */
  pageFault: number;
  /** Descriptors the device refused at submission (queue full past the retry bound, disabled). */
  submit: number;
}

export interface CopyReport {
  backend: ResolvedBackend;
  /** Bytes copied (the sum of the source lengths). */
  bytes: number;
  folios: number;
  /** Descriptors (device) or regions (CPU) the batch was cut into. */
  descriptors: number;
  /** Works the batch was split into, one per channel used. */
  channels: number;
  offloadedBytes: number;
  cpuBytes: number;
  fallbacks: FallbackCounts;
  /** Completions observed before an earlier-submitted descriptor of the same queue. */
  outOfOrder: number;
  elapsedNs: number;
}

export interface EngineStats {
  backend: ResolvedBackend;
  channels: number;
  cpuThreads: number;
  batches: number;
  /** Batches copied inline on the calling thread (below minOffloadBytes). */
  inlineBatches: number;
  bytes: number;
  folios: number;
  descriptors: number;
  offloadedBytes: number;
  cpuBytes: number;
  fallbacks: FallbackCounts;
  outOfOrder: number;
  /** Batches accepted but not yet finished. */
  inFlight: number;
  /** True when the native addon is not available and copies run in JavaScript. */
  jsFallback: boolean;
  minOffloadBytes: number;
  nonTemporalMinBytes: number;
}
