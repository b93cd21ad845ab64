// The shapes of `dmacopy bench --service`: its options, one measured point, the goals and the
// report (what --json prints).
import type { HostRecord } from './host';
import type { LoadResult } from './service-load';
import type { ServiceSetting, Strategy } from './service-settings';

export interface ServiceBenchOptions {
  /** Size of each pool (live and snapshot), MiB. */
  poolMib: number;
  pageSize: number;
  /** Seconds of load per point. */
  durationS: number;
  /** Seconds the copy runs with no HTTP load, per setting (its unloaded throughput). */
  unloadedS: number;
  connections: number;
  /** Overall requests per second, 0 for as fast as the connections go. */
  rate: number;
  /** Upper bound on requests per point. */
  maxRequests: number;
  /** One point per strategy instead of the full sweep. */
  short: boolean;
  /** Times the whole sweep runs, settings interleaved; each point reports the medians. */
  reps: number;
  settings?: ServiceSetting[];
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface ServicePoint {
  setting: string;
  strategy: Strategy;
  cpuThreads: number;
  cpuNice: number;
  cpuPolicy: 'normal' | 'idle';
  /** The CPUs the copy threads were bound to ([]: unbound, cpuPinning). */
  cpuPins: number[];
  gapMs: number;
  request: LoadResult;
  /** Event-loop delay in the service, ms (perf_hooks.monitorEventLoopDelay). */
  eventLoopDelay: { p50: number; p99: number; max: number };
  /** Copy throughput under load, GB/s (0 when the setting does not copy). */
  copyGbps: number;
  /**
   * Cores the copy threads used under load (CPU seconds per second; null where the service cannot
   * tell, or the setting does not copy with dmacopy's threads): copyGbps / copyCores is what each
   * core-second of copying moved.
   */
  copyCores: number | null;
  copies: number;
  /** The same setting copying with no HTTP load (gap 0 points of copying settings). */
  unloadedGbps: number | null;
  /** Cores the copy threads used then (the same points as unloadedGbps). */
  unloadedCopyCores: number | null;
  /** The snapshot equalled the live pool byte for byte after the point (every repetition). */
  verified: boolean;
  /** A copy failed during the point (the service's copy loop stopped): its message. */
  loopError?: string;
  /** Repetitions the medians above are taken over, and each one's request p99 and copy GB/s. */
  reps: number;
  p99s: number[];
  gbpsSamples: number[];
}

export interface ServiceGoal {
  setting: string;
  /** request p99 / idle p99 (goal: <= 2). */
  p99VsIdle: number;
  /** copy GB/s under load / the engine's best unloaded GB/s in this run (goal: >= 0.5). */
  gbpsVsUnloaded: number;
  met: boolean;
}

export interface ServiceReport {
  host: HostRecord;
  config: Omit<ServiceBenchOptions, 'onProgress' | 'settings'>;
  points: ServicePoint[];
  idleP99: number | null;
  /**
   * The best unloaded dmacopy throughput of the run, over every setting but the Buffer.copy loop
   * (copyBatch, copyBatchSync and the worker alike): the reference of gbpsVsUnloaded.
   */
  unloadedReferenceGbps: number | null;
  /** copyBatch-family settings at gap 0, against the goals of issue 14. */
  goals: ServiceGoal[];
  failures: string[];
  ok: boolean;
  durationMs: number;
}
