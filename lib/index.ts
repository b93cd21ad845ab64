// dmacopy: batch memory-folio copies through Intel DSA work queues, or a multi-threaded native
// CPU copy everywhere else. See README.md for the API and docs/architecture.md for the design.
import { type Engine, openEngine } from './engine/engine';
import type { CopyOptions, CopyReport } from './types';

export { Engine, openEngine } from './engine/engine';
export { PreparedBatch } from './engine/prepared';
export type { DmacopyErrorCode } from './errors';
export { DmacopyError, DmacopyRangeError, DmacopyTypeError } from './errors';
// Discovery: what DSA devices, queues and dmaengine channels this host has, and why a queue is unusable.
export {
  type DeviceState,
  type DiscoveryOptions,
  type DsaDevice,
  type DsaQueue,
  listDevices,
  type QueueMode,
  type QueueProblem,
  type QueueProblemCode,
  type QueueState,
  type QueueType,
  type SelectQueuesOptions,
  selectQueues,
} from './host/discovery';
export { type DmaChannel, listDmaChannels } from './host/dma-channels';
export { nativeLoadError } from './native/loader';
export {
  DEFAULT_LATENCY_BUCKETS,
  enableMetrics,
  type MetricKey,
  type MetricsHandle,
  type MetricsOptions,
  type MetricsRegistry,
  type PromClientModule,
} from './observe/metrics';
export type {
  Backend,
  CloseReport,
  CopyOptions,
  CopyReport,
  CpuPinning,
  CpuPolicy,
  EmulatorOptions,
  EngineOptions,
  EngineStats,
  FallbackCounts,
  NativeStats,
  PolicyStats,
  ResolvedBackend,
} from './types';

let defaultEngine: Promise<Engine> | undefined;

/** The engine behind the module-level copyBatch(): opened on first use with backend 'auto'. */
export function getDefaultEngine(): Promise<Engine> {
  if (!defaultEngine) {
    defaultEngine = openEngine({ backend: 'auto' });
    defaultEngine.catch(() => {
      defaultEngine = undefined; // let a later call try again
    });
  }
  return defaultEngine;
}

/** Copies a batch with the default engine. See Engine.copyBatch. */
export async function copyBatch(
  dsts: readonly ArrayBufferView[] | ArrayBufferView,
  srcs: readonly ArrayBufferView[] | ArrayBufferView,
  options?: CopyOptions,
): Promise<CopyReport> {
  const engine = await getDefaultEngine();
  return engine.copyBatch(dsts, srcs, options);
}
