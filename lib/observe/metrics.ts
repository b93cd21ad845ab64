// Prometheus metrics for prom-client users, in one call: enableMetrics() subscribes to dmacopy's
// diagnostics_channel events (lib/observe/diagnostics.ts) and turns them into counters and a latency
// histogram. prom-client is an optional peer dependency: it is required here, lazily, and only
// when enableMetrics() is called, so users who never call it never need it installed.
import dc from 'node:diagnostics_channel';
import { DmacopyError, invalidArg } from '../errors';
import type { FallbackCounts, ResolvedBackend } from '../types';
import type { BatchEndMessage } from './diagnostics';

/** The subset of a prom-client `Registry` enableMetrics() uses (typed here so prom-client stays optional). */
export interface MetricsRegistry {
  registerMetric(metric: unknown): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
}

/** The subset of the prom-client module enableMetrics() uses. */
export interface PromClientModule {
  register: MetricsRegistry;
  Counter: new (config: Record<string, unknown>) => unknown;
  Histogram: new (config: Record<string, unknown>) => unknown;
}

export interface MetricsOptions {
  /** Registry the metrics are registered in. Default: prom-client's global `register`. */
  register?: MetricsRegistry;
  /** Prefix of every metric name. Default 'dmacopy_'. */
  prefix?: string;
  /** Upper bounds (seconds) of the batch latency histogram. Default: 10 us to 1 s, 1-2.5-5 steps. */
  buckets?: readonly number[];
  /**
   * The prom-client module to use instead of `require('prom-client')` from dmacopy's own location
   * (for bundlers, or a workspace where dmacopy cannot resolve the application's prom-client).
   */
  promClient?: PromClientModule;
}

/** The metrics enableMetrics() registered, by short name, for tests and custom collectors. */
export interface MetricsHandle {
  /** Full metric names, e.g. { bytes: 'dmacopy_bytes_total', ... }. */
  readonly names: Readonly<Record<MetricKey, string>>;
  /** Unsubscribes from the channels and removes the metrics from the registry. Idempotent. */
  disable(): void;
}

export type MetricKey = 'bytes' | 'batches' | 'folios' | 'descriptors' | 'fallbacks' | 'quarantines' | 'outOfOrder' | 'duration';

/** 10 us to 1 s in 1 - 2.5 - 5 steps. */
export const DEFAULT_LATENCY_BUCKETS: readonly number[] = [
  1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1,
];

interface Counter {
  inc(labels: Record<string, string>, value?: number): void;
}
interface Histogram {
  observe(labels: Record<string, string>, value: number): void;
}

const FALLBACK_REASONS: readonly [keyof FallbackCounts, string][] = [
  ['timeout', 'timeout'],
  ['error', 'error'],
  ['pageFault', 'page_fault'],
  ['submit', 'submit'],
];

function loadPromClient(): PromClientModule {
  try {
    // Lazy on purpose: prom-client is an optional peer dependency.
    return require('prom-client') as PromClientModule;
  } catch (err) {
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
    throw new DmacopyError(
      'ERR_DMACOPY_MISSING_PEER',
      'enableMetrics() needs the optional peer dependency prom-client: run `npm install prom-client` (14 or 15), or pass { promClient }',
      { cause: err },
    );
  }
}

/**
 * Exports dmacopy's batches as Prometheus metrics through prom-client. One call per registry;
 * every engine of this thread is covered, also engines opened later.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `dmacopy_bytes_total` | counter | backend, path (inline, threads, device), copied_by (device, cpu) |
 * | `dmacopy_batches_total` | counter | backend, path, result (ok, error) |
 * | `dmacopy_folios_total` | counter | backend, path |
 * | `dmacopy_descriptors_total` | counter | backend, path |
 * | `dmacopy_fallbacks_total` | counter | backend, reason (timeout, error, page_fault, submit) |
 * | `dmacopy_queue_quarantines_total` | counter | backend, channel |
 * | `dmacopy_out_of_order_completions_total` | counter | backend |
 * | `dmacopy_batch_duration_seconds` | histogram | backend, path |
 *
 * @throws DmacopyError ERR_DMACOPY_MISSING_PEER when prom-client is not installed.
 * @throws DmacopyTypeError ERR_DMACOPY_INVALID_ARG on a bad option, or when a metric of the same name is already registered.
 */
export function enableMetrics(options: MetricsOptions = {}): MetricsHandle {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'enableMetrics options must be an object');
  const prefix = options.prefix ?? 'dmacopy_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(prefix)) {
    throw invalidArg('options.prefix', `prefix must be a valid Prometheus metric name prefix, got ${JSON.stringify(prefix)}`);
  }
  const given = options.buckets ?? DEFAULT_LATENCY_BUCKETS;
  if (!Array.isArray(given) || given.length === 0 || given.some((b) => typeof b !== 'number' || !(b > 0) || !Number.isFinite(b))) {
    throw invalidArg('options.buckets', 'buckets must be a non-empty array of positive, finite numbers (seconds; +Inf is always added)');
  }
  // prom-client files a value under the first bound at or above it, in the order given: unsorted
  // bounds exported a 31 ms batch as le="1e-7", and a repeated bound as two series of one name.
  const buckets = [...new Set(given as number[])].sort((a, b) => a - b);
  const prom = options.promClient ?? loadPromClient();
  const register = options.register ?? prom.register;
  if (!register || typeof register.registerMetric !== 'function') {
    throw invalidArg('options.register', 'register must be a prom-client Registry');
  }

  const names: Record<MetricKey, string> = {
    bytes: `${prefix}bytes_total`,
    batches: `${prefix}batches_total`,
    folios: `${prefix}folios_total`,
    descriptors: `${prefix}descriptors_total`,
    fallbacks: `${prefix}fallbacks_total`,
    quarantines: `${prefix}queue_quarantines_total`,
    outOfOrder: `${prefix}out_of_order_completions_total`,
    duration: `${prefix}batch_duration_seconds`,
  };
  for (const name of Object.values(names)) {
    if (register.getSingleMetric(name)) {
      throw invalidArg(
        'options.register',
        `metric ${name} is already registered: disable() the earlier handle, or pass another prefix or register`,
      );
    }
  }
  const registers = [register];
  const counter = (name: string, help: string, labelNames: string[]) => new prom.Counter({ name, help, labelNames, registers }) as Counter;
  const bytes = counter(names.bytes, 'Bytes copied, by the path the batch took and by who copied them (device or CPU)', [
    'backend',
    'path',
    'copied_by',
  ]);
  const batches = counter(names.batches, 'Batches settled', ['backend', 'path', 'result']);
  const folios = counter(names.folios, 'Folios copied', ['backend', 'path']);
  const descriptors = counter(names.descriptors, 'Descriptors (device) or regions (CPU) the batches were cut into', ['backend', 'path']);
  const fallbacks = counter(names.fallbacks, 'Device descriptors the CPU finished, by reason', ['backend', 'reason']);
  const quarantines = counter(names.quarantines, 'Device queues (channels) taken out of service after repeated failures', [
    'backend',
    'channel',
  ]);
  const outOfOrder = counter(names.outOfOrder, 'Completions observed before an earlier-submitted descriptor of the same queue', [
    'backend',
  ]);
  const duration = new prom.Histogram({
    name: names.duration,
    help: 'Time from submission to the last byte in place, per batch',
    labelNames: ['backend', 'path'],
    buckets: [...buckets],
    registers,
  }) as Histogram;

  const onEnd = (message: unknown): void => {
    const m = message as BatchEndMessage;
    const base = { backend: m.backend, path: m.path };
    const r = m.report;
    if (!r) {
      batches.inc({ ...base, result: 'error' });
      return;
    }
    batches.inc({ ...base, result: 'ok' });
    if (r.offloadedBytes > 0) bytes.inc({ ...base, copied_by: 'device' }, r.offloadedBytes);
    if (r.cpuBytes > 0) bytes.inc({ ...base, copied_by: 'cpu' }, r.cpuBytes);
    if (r.folios > 0) folios.inc(base, r.folios);
    if (r.descriptors > 0) descriptors.inc(base, r.descriptors);
    if (r.outOfOrder > 0) outOfOrder.inc({ backend: m.backend }, r.outOfOrder);
    duration.observe(base, r.elapsedNs / 1e9);
  };
  const onFallback = (message: unknown): void => {
    const m = message as { backend: ResolvedBackend; fallbacks: FallbackCounts };
    for (const [field, reason] of FALLBACK_REASONS) {
      const n = m.fallbacks[field];
      if (n > 0) fallbacks.inc({ backend: m.backend, reason }, n);
    }
  };
  const onQuarantine = (message: unknown): void => {
    const m = message as { backend: ResolvedBackend; channel: string };
    quarantines.inc({ backend: m.backend, channel: m.channel });
  };
  const subscriptions: [string, (message: unknown) => void][] = [
    ['dmacopy:batch:end', onEnd],
    ['dmacopy:batch:fallback', onFallback],
    ['dmacopy:queue:quarantine', onQuarantine],
  ];
  for (const [channel, fn] of subscriptions) dc.subscribe(channel, fn);

  let enabled = true;
  return {
    names,
    disable(): void {
      if (!enabled) return;
      enabled = false;
      for (const [channel, fn] of subscriptions) dc.unsubscribe(channel, fn);
      for (const name of Object.values(names)) register.removeSingleMetric(name);
    },
  };
}
