// The Engine: one set of channels (CPU threads now; DSA queues when those backends are open),
// opened once and reused for every batch. copyBatch validates, picks the path by size, splits
// the batch into works and resolves when every work's pending counter reached zero.

import {
  DEFAULT_CPU_NICE,
  DEFAULT_MIN_OFFLOAD_BYTES,
  DEFAULT_TIMEOUT_MS,
  DRAIN_TIMEOUT_MS,
  defaultCpuThreads,
  defaultNonTemporalMinBytes,
  MIN_WORK_BYTES,
  PAGE_FAULT_RETRIES,
  QUARANTINE_AFTER,
} from '../defaults';
import { closedError, DmacopyError, type DmacopyErrorCode, DmacopyRangeError, DmacopyTypeError, invalidArg, outOfRange } from '../errors';
import {
  CopyMode,
  EVENT_FIELDS,
  type NativeDsaConfig,
  type NativeEngine,
  type NativeOpenedQueues,
  type NativePlan,
  type NativeUserQueue,
} from '../native/abi';
import { nativeBinding, nativeLoadError } from '../native/loader';
import { BatchTrace, publishQuarantine, tracing } from '../observe/diagnostics';
import type {
  Backend,
  CloseReport,
  CopyOptions,
  CopyReport,
  CpuPinning,
  CpuPolicy,
  EngineOptions,
  EngineStats,
  ResolvedBackend,
} from '../types';
import { copyThreadCpus, describeOpenResults, dsaAvailable, emulatorQueues, type QueueOpenReport, userQueues } from './backends';
import { ensureEventChannel, nextOpId, inFlight as registryInFlight, track, untrack } from './completions';
import { checkOverlapInJs, copyInJs } from './js-copy';
import { Policy } from './policy';
import { checkAttached, copyPairs, folioPairs, PreparedBatch, type PreparedRunner, type PreparedState } from './prepared';
import { copySmall, forgetSmall, SMALL_MAX_BYTES, type SmallBatch, smallBatch, smallBatchBytes, takeSmallBatch } from './small-copy';
import { boundaryBytes, SPLIT_UNIT, workBounds } from './split';
import {
  type BatchTable,
  checkAttachedAtStart,
  checkIntInRange,
  checkListShape,
  checkNonNegative,
  describe,
  detachedAtStart,
  giveChunkTable,
  giveListViews,
  LIST_CHUNK,
  type ListShape,
  prepareListSlice,
  takeChunkTable,
  takeListViews,
  validateBatch,
} from './validate';
import { clockMs, intrinsicLengthOf } from './view-getters';
import { anyWedged, checkDestinationBuffer, checkTableDestinations, checkViewDestinations, destinationBuffers } from './wedged';
import { addFallbacks, BatchOp, zeroFallbacks } from './work';

const BACKENDS: readonly Backend[] = ['auto', 'cpu', 'emulated', 'dsa'];
const ENGINE_OPTION_KEYS = new Set([
  'backend',
  'channels',
  'cpuThreads',
  'timeoutMs',
  'drainTimeoutMs',
  'minOffloadBytes',
  'nonTemporalMinBytes',
  'emulator',
  'cacheControl',
  'submission',
  'numaNode',
  'cpuShare',
  'spread',
  'cpuNice',
  'cpuPolicy',
  'cpuPinning',
]);

interface ResolvedOptions {
  backend: ResolvedBackend;
  channels: number;
  cpuThreads: number;
  cpuNice: number;
  cpuPolicy: CpuPolicy;
  cpuPinning: CpuPinning;
  timeoutMs: number;
  minOffloadBytes: number;
  nonTemporalMinBytes: number;
  dsa?: NativeDsaConfig;
  /** minOffloadBytes as the caller gave it (undefined: tuned by the policy). */
  fixedMinOffloadBytes?: number;
  cpuShare?: number | 'auto';
  /** Why 'auto' chose what it chose. */
  autoReason?: string;
}

/** How a batch is cut: k works, of which those from cpuWorksFrom on are the CPU's share (cpuShareBytes). */
interface PlanShape {
  k: number;
  cpuWorksFrom: number;
  cpuShareBytes: number;
}

let warnedJsFallback = false;
let nextEngineId = 1;

function resolveOptions(options: unknown): ResolvedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object')
    throw invalidArg('options', `openEngine options must be an object, got ${describe(options)}`);
  const o = options as EngineOptions;
  for (const key of Object.keys(o)) {
    if (!ENGINE_OPTION_KEYS.has(key)) {
      throw invalidArg(`options.${key}`, `unknown engine option '${key}': expected one of ${[...ENGINE_OPTION_KEYS].join(', ')}`);
    }
  }
  const backend = o.backend ?? 'auto';
  if (typeof backend !== 'string' || !BACKENDS.includes(backend as Backend)) {
    throw invalidArg('options.backend', `backend must be one of ${BACKENDS.join(', ')}, got ${describe(backend)}`);
  }
  if (o.emulator !== undefined && backend !== 'emulated') {
    throw invalidArg('options.emulator', "emulator settings apply to backend 'emulated' only");
  }
  if (o.cacheControl !== undefined && typeof o.cacheControl !== 'boolean')
    throw invalidArg('options.cacheControl', 'cacheControl must be a boolean');
  if (o.spread !== undefined && typeof o.spread !== 'boolean')
    throw invalidArg('options.spread', `spread must be a boolean, got ${describe(o.spread)}`);
  if (o.submission !== undefined && !['auto', 'portal', 'write'].includes(o.submission as string)) {
    throw invalidArg('options.submission', `submission must be 'auto', 'portal' or 'write', got ${describe(o.submission)}`);
  }
  const numaNode = o.numaNode === undefined ? undefined : checkIntInRange(o.numaNode, 'options.numaNode', 0, 4096);
  const cpuThreads = o.cpuThreads === undefined ? defaultCpuThreads() : checkIntInRange(o.cpuThreads, 'options.cpuThreads', 1, 256);
  const cpuNice = o.cpuNice === undefined ? DEFAULT_CPU_NICE : checkIntInRange(o.cpuNice, 'options.cpuNice', 0, 19);
  const cpuPolicy = o.cpuPolicy === undefined ? 'normal' : o.cpuPolicy;
  if (cpuPolicy !== 'normal' && cpuPolicy !== 'idle')
    throw invalidArg('options.cpuPolicy', `cpuPolicy must be 'normal' or 'idle', got ${describe(o.cpuPolicy)}`);
  const cpuPinning = o.cpuPinning === undefined ? 'auto' : o.cpuPinning;
  if (cpuPinning !== 'auto' && cpuPinning !== 'on' && cpuPinning !== 'off')
    throw invalidArg('options.cpuPinning', `cpuPinning must be 'auto', 'on' or 'off', got ${describe(o.cpuPinning)}`);
  const requestedChannels = o.channels === undefined ? undefined : checkIntInRange(o.channels, 'options.channels', 1, 1024);
  const timeoutMs = o.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : checkNonNegative(o.timeoutMs, 'options.timeoutMs');
  if (timeoutMs === 0) throw outOfRange('options.timeoutMs', 'timeoutMs must be greater than 0');
  // A work that takes an hour is wedged, not slow; larger values once overflowed the deadline.
  if (timeoutMs > 3_600_000) throw outOfRange('options.timeoutMs', `timeoutMs must be at most 3600000 (one hour), got ${timeoutMs}`);
  const minOffloadBytes =
    o.minOffloadBytes === undefined ? DEFAULT_MIN_OFFLOAD_BYTES : checkNonNegative(o.minOffloadBytes, 'options.minOffloadBytes');
  const nonTemporalMinBytes =
    o.nonTemporalMinBytes === undefined
      ? defaultNonTemporalMinBytes()
      : checkNonNegative(o.nonTemporalMinBytes, 'options.nonTemporalMinBytes');
  let cpuShare: number | 'auto' | undefined;
  if (o.cpuShare !== undefined) {
    if (o.cpuShare === 'auto') cpuShare = 'auto';
    else if (typeof o.cpuShare !== 'number')
      throw invalidArg('options.cpuShare', `cpuShare must be a fraction from 0 to 0.9 or 'auto', got ${describe(o.cpuShare)}`);
    else if (!(o.cpuShare >= 0 && o.cpuShare <= 0.9))
      throw outOfRange('options.cpuShare', `cpuShare must be from 0 to 0.9, got ${o.cpuShare}`);
    else cpuShare = o.cpuShare;
  }
  const common = {
    cpuThreads,
    cpuNice,
    cpuPolicy: cpuPolicy as CpuPolicy,
    cpuPinning: cpuPinning as CpuPinning,
    timeoutMs,
    minOffloadBytes,
    nonTemporalMinBytes,
    fixedMinOffloadBytes: o.minOffloadBytes === undefined ? undefined : minOffloadBytes,
  };
  const drainTimeoutMs =
    o.drainTimeoutMs === undefined ? DRAIN_TIMEOUT_MS : checkIntInRange(o.drainTimeoutMs, 'options.drainTimeoutMs', 1, 600_000);
  const dsaOptions = {
    cacheControl: o.cacheControl ?? false,
    pageFaultRetries: PAGE_FAULT_RETRIES,
    quarantineAfter: QUARANTINE_AFTER,
    drainTimeoutMs,
  };
  if (backend === 'emulated') {
    const queues = emulatorQueues(o.emulator, requestedChannels);
    // The software device already runs on these cores: no CPU share unless asked for.
    return {
      ...common,
      backend: 'emulated',
      channels: queues.length,
      cpuShare: cpuShare ?? 0,
      dsa: { kind: 'emulated', queues, options: dsaOptions },
    };
  }
  if (backend === 'dsa' || (backend === 'auto' && nativeBinding() !== undefined && dsaAvailable())) {
    try {
      const queues = userQueues({ channels: requestedChannels, numaNode, spread: o.spread, submission: o.submission });
      return {
        ...common,
        backend: 'dsa',
        channels: queues.length,
        cpuShare: cpuShare ?? 'auto',
        dsa: { kind: 'user', queues, options: dsaOptions },
      };
    } catch (err) {
      if (backend === 'dsa') throw err;
      return { ...common, backend: 'cpu', channels: requestedChannels ?? cpuThreads, autoReason: (err as Error).message };
    }
  }
  return {
    ...common,
    backend: 'cpu',
    channels: requestedChannels ?? cpuThreads,
    autoReason: backend === 'auto' ? autoCpuReason() : undefined,
  };
}

/** Why 'auto' chose the CPU backend without trying DSA: the addon did not load, or no queue. */
function autoCpuReason(): string {
  const err = nativeLoadError();
  if (err !== undefined) return `the native addon did not load, so DSA queues cannot be used and copies run in JavaScript (${err.message})`;
  return 'no usable DSA work queue on this host';
}

export class Engine {
  readonly #options: ResolvedOptions;
  readonly #native: NativeEngine | undefined;
  readonly #inFlight = new Set<BatchOp>();
  readonly #policy: Policy;
  /** Identifies this engine in diagnostics_channel messages. */
  readonly id = nextEngineId++;
  #closed = false;
  #closing: Promise<CloseReport> | undefined;
  readonly #totals = {
    batches: 0,
    inlineBatches: 0,
    bytes: 0,
    folios: 0,
    descriptors: 0,
    offloadedBytes: 0,
    cpuBytes: 0,
    fallbacks: zeroFallbacks(),
    outOfOrder: 0,
  };

  /** @internal use openEngine(); `opened`: the dsa backend's queues, opened off this thread */
  constructor(options: ResolvedOptions, opened?: NativeOpenedQueues) {
    this.#options = options;
    this.#policy = new Policy(
      {
        minOffloadBytes: options.fixedMinOffloadBytes,
        defaultMinOffloadBytes: options.minOffloadBytes,
        cpuShare: options.cpuShare,
        device: options.dsa !== undefined,
      },
      options.cpuThreads,
    );
    const binding = nativeBinding();
    if (binding) {
      ensureEventChannel(); // completions (and device engines at open) need this thread's channel
      // The native layer's coded errors (ERR_DMACOPY_RESOURCES when the system refuses threads)
      // get the library's classes.
      this.#native = fromNativeCall(
        () =>
          new binding.NativeEngine({
            threads: options.cpuThreads,
            cpuNice: options.cpuNice,
            cpuIdle: options.cpuPolicy === 'idle',
            pinCpus: copyThreadCpus(options.cpuPinning, options.cpuThreads),
            nonTemporalMinBytes: options.nonTemporalMinBytes,
            timeoutMs: options.timeoutMs,
            dsa: options.dsa && opened ? { ...options.dsa, opened } : options.dsa,
          }),
      );
      if (options.dsa?.kind === 'user') this.#checkOpened(options.dsa);
    } else if (options.dsa) {
      throw new DmacopyError(
        'ERR_DMACOPY_BACKEND_UNAVAILABLE',
        `the '${options.backend}' backend needs the native addon, which did not load: ${nativeLoadError()?.message}`,
      );
    } else if (!warnedJsFallback) {
      warnedJsFallback = true;
      process.emitWarning(
        `dmacopy: the native engine could not load (${nativeLoadError()?.message}); copies run in JavaScript on the calling thread`,
        { code: 'DMACOPY_NO_NATIVE' },
      );
    }
  }

  /** Every /dev/dsa queue failed to open: say why, per queue, and release what was opened. */
  #checkOpened(dsa: NativeDsaConfig): void {
    const results = (this.#native as NativeEngine).queues();
    this.#queueResults = describeOpenResults(dsa.queues as NativeUserQueue[], results);
    if (results.some((r) => r.ok)) return;
    (this.#native as NativeEngine).close();
    const why = this.#queueResults.map((r) => `${r.name}: ${r.reason}${r.remedy ? ` (${r.remedy})` : ''}`).join('; ');
    throw new DmacopyError('ERR_DMACOPY_DEVICE', `no DSA work queue could be opened: ${why}`);
  }

  #queueResults: QueueOpenReport[] = [];

  get backend(): ResolvedBackend {
    return this.#options.backend;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Copies folio i of srcs to folio i of dsts (list form), or one src into one dst region by
   * region with { folioSize } (region form). Resolves when every byte is in place.
   */
  async copyBatch(
    dsts: readonly ArrayBufferView[] | ArrayBufferView,
    srcs: readonly ArrayBufferView[] | ArrayBufferView,
    options?: CopyOptions,
  ): Promise<CopyReport> {
    return this.#route(dsts, srcs, options, false);
  }

  /** The same as copyBatch, blocking the calling thread until the bytes are there. */
  copyBatchSync(
    dsts: readonly ArrayBufferView[] | ArrayBufferView,
    srcs: readonly ArrayBufferView[] | ArrayBufferView,
    options?: CopyOptions,
  ): CopyReport {
    return this.#route(dsts, srcs, options, true) as CopyReport;
  }

  /**
   * The path of one copyBatch (sync false) or copyBatchSync (sync true) call: the small-batch
   * path, a chunked list, inline, or the threads / device.
   */
  #route(dsts: unknown, srcs: unknown, options: CopyOptions | undefined, sync: boolean): CopyReport | Promise<CopyReport> {
    if (this.#closed) throw closedError();
    const small = smallBatchBytes(dsts, srcs, options);
    const smallInline = small < 0 ? undefined : this.#smallInline(small);
    if (smallInline) {
      if (anyWedged()) smallBatch().forEachDestination(checkDestinationBuffer);
      return this.#copySmall(small);
    }
    const list = checkListShape(dsts, srcs, options);
    if (list && list.n > 2 * LIST_CHUNK && this.#native) return this.#copyChunked(list, sync);
    // The table is read by the native layer before this returns (an async copy only queues).
    const table = takeChunkTable();
    try {
      const batch = validateBatch(dsts, srcs, options, table);
      checkTableDestinations(batch);
      if (this.#native === undefined || (smallInline ?? this.#policy.useInline(batch.bytes))) return this.#copyInline(batch);
      const native = this.#native;
      const plan = this.#plan(batch);
      const copy = (mode: CopyMode, id: number, totals?: Float64Array) =>
        native.copy(mode, id, batch.buffers, batch.form, batch.table, plan.bounds, totals, false, plan.cpuWorksFrom);
      if (sync) return this.#runSync(batch, plan, (id, totals) => sum(copy(CopyMode.Sync, id, totals)));
      return this.#runAsync(batch, plan, (id) => copy(CopyMode.Async, id));
    } finally {
      giveChunkTable(table);
    }
  }

  /**
   * Validates, pins and plans a batch once, for copying it again and again (a pool snapshotted
   * every second): the same arguments as copyBatch. The returned handle's copy() and copySync()
   * re-run it; its release() ends it. Throws the errors copyBatchSync throws for bad arguments.
   */
  prepare(
    dsts: readonly ArrayBufferView[] | ArrayBufferView,
    srcs: readonly ArrayBufferView[] | ArrayBufferView,
    options?: CopyOptions,
  ): PreparedBatch {
    if (this.#closed) throw closedError();
    const table = validateBatch(dsts, srcs, options);
    const lengths = table.buffers.map((b) => intrinsicLengthOf(b));
    if (this.#native === undefined) {
      checkOverlapInJs(table); // the native prepare checks it when there is an addon
      const pairs = folioPairs(table);
      const state = {
        table,
        plan: undefined,
        lengths,
        counts: new Uint32Array(1),
        works: 1,
        cpuWorksFrom: 1,
        cpuShareBytes: 0,
        pairs,
        destinations: destinationBuffers(table),
      };
      return new PreparedBatch(state, this.#preparedRunner);
    }
    const plan = this.#plan(table);
    let native: NativePlan;
    try {
      native = this.#native.prepare(table.buffers, table.form, table.table, plan.bounds, plan.cpuWorksFrom);
    } catch (err) {
      throw fromNative(err);
    }
    // The native plan holds the regions: the numeric table is not needed again.
    const pairs = folioPairs(table);
    const kept = { ...table, table: new Float64Array(0) };
    const state: PreparedState = {
      pairs,
      destinations: destinationBuffers(table),
      table: kept,
      plan: native,
      lengths,
      counts: new Uint32Array(plan.k),
      works: plan.k,
      cpuWorksFrom: plan.cpuWorksFrom,
      cpuShareBytes: plan.cpuShareBytes,
    };
    return new PreparedBatch(state, this.#preparedRunner);
  }

  readonly #preparedRunner: PreparedRunner = {
    run: (state, sync) => this.#runPrepared(state, sync),
    release: (state) => {
      if (state.plan !== undefined) this.#native?.releasePrepared(state.plan);
    },
    checkOpen: () => {
      if (this.#closed) throw closedError();
    },
  };

  /** One run of a prepared batch: inline when small (as copyBatch decides), else sync or async. */
  #runPrepared(state: PreparedState, sync: boolean): CopyReport | Promise<CopyReport> {
    checkAttached(state);
    checkViewDestinations(state.destinations);
    const batch = state.table;
    const native = this.#native;
    const plan = state.plan;
    const pairs = state.pairs;
    if (native === undefined || plan === undefined || this.#policy.useInline(batch.bytes)) {
      // Inline: small batches through their JavaScript pairs (no native crossing), others natively.
      if (pairs !== undefined) return this.#inline(batch, () => copyPairs(pairs, batch.folios));
      if (native === undefined || plan === undefined) return this.#inline(batch, () => copyJs(batch));
      return this.#inline(batch, () => fromNativeCall(() => native.runPrepared(plan, CopyMode.Inline, 0, batch.buffers, state.counts)));
    }
    const buffers = batch.buffers;
    const counts = state.counts;
    const p = { k: state.works, cpuWorksFrom: state.cpuWorksFrom, cpuShareBytes: state.cpuShareBytes };
    if (sync) return this.#runSync(batch, p, (id, totals) => native.runPrepared(plan, CopyMode.Sync, id, buffers, counts, totals));
    return this.#runAsync(batch, p, (id) => {
      native.runPrepared(plan, CopyMode.Async, id, buffers, counts);
      return counts;
    });
  }

  /**
   * A batch copied on the calling thread by `copy` (which returns its descriptors), reported
   * and accounted without a BatchOp: the small-batch and prepared inline paths.
   */
  #inline(batch: BatchTable, copy: () => number): CopyReport {
    const { bytes, folios, buffers } = batch;
    // Nothing runs between start and end of an inline batch: no listener now, no trace to build.
    const trace = tracing() ? this.#trace(bytes, folios, true) : undefined;
    const timed = trace !== undefined || this.#timeInline(bytes);
    const t0 = timed ? clockMs() : 0;
    let descriptors: number;
    try {
      // A start subscriber ran after the batch was checked: it may have detached a buffer.
      if (trace !== undefined) checkAttachedAtStart(buffers);
      descriptors = copy();
    } catch (err) {
      trace?.fail(err as Error);
      throw err;
    }
    return this.#inlineReport(bytes, folios, descriptors, timed ? elapsedSince(t0) : 0, trace);
  }

  /**
   * Whether an inline batch nobody observes is timed. Batches above SMALL_MAX_BYTES always are
   * (the clock is a few percent of their copy). Smaller ones only when the policy asks for a
   * sample: on a VM a clock read costs ~50 ns, so the two reads around a 4 KiB copy (~50 ns)
   * tripled its cost, for an elapsedNs nobody read. Metrics and tracing subscribe to the batch
   * channels, so an observed batch is always timed.
   */
  #timeInline(bytes: number): boolean {
    return bytes > SMALL_MAX_BYTES || this.#policy.sampleInline(bytes);
  }

  /**
   * The report of a batch copied inline, accounted. Timed inline batches are timed with
   * performance.now(), the cheapest of Node's clocks (a pair of process.hrtime.bigint() reads
   * costs ~115 ns on Node 20, more than copying 4 KiB); it has sub-microsecond resolution.
   * elapsedNs is 0 for an untimed one (see #timeInline).
   */
  #inlineReport(bytes: number, folios: number, descriptors: number, elapsedNs: number, trace: BatchTrace | undefined): CopyReport {
    const report: CopyReport = {
      backend: this.#options.backend,
      bytes,
      folios,
      descriptors,
      channels: 1,
      offloadedBytes: 0,
      cpuBytes: bytes,
      fallbacks: zeroFallbacks(),
      outOfOrder: 0,
      elapsedNs,
    };
    this.#policy.observeInline(bytes, elapsedNs);
    this.#account(report, true, trace);
    return report;
  }

  /** A synchronous threaded or device copy: `submit` runs it (op id, totals) and returns its descriptors. */
  #runSync(batch: BatchTable, plan: PlanShape, submit: (id: number, totals: Float64Array | undefined) => number): CopyReport {
    // Asked before the start is published: a subscriber may unsubscribe itself in its callback.
    const observed = tracing();
    const trace = this.#trace(batch.bytes, batch.folios, false);
    const op = this.#newOp(batch, plan.k);
    try {
      if (observed) checkAttachedAtStart(batch.buffers); // see #inline
      const dsa = this.#options.dsa !== undefined;
      const totals = dsa ? new Float64Array(EVENT_FIELDS) : undefined;
      op.report.descriptors = submit(dsa ? nextOpId() : 0, totals);
      if (totals) {
        // Device copies: the native layer summed this op's events while the caller waited.
        op.applyTotals(totals);
        op.completeAll(0);
        if (op.failedWith) throw op.failedWith; // wedged: the bytes are there, the device may still write
      } else {
        op.completeAll(batch.bytes);
      }
    } catch (err) {
      const error = fromNative(err);
      op.abort(error);
      this.#noteQuarantines(); // a wedged batch quarantined its queues
      trace.fail(error);
      throw error;
    }
    this.#observe(op, plan);
    this.#account(op.report, false, trace);
    return op.report;
  }

  stats(): EngineStats {
    const t = this.#totals;
    const native = this.#native?.stats();
    return {
      backend: this.#options.backend,
      channels: this.#options.channels,
      cpuThreads: this.#options.cpuThreads,
      cpuNice: this.#options.cpuNice,
      cpuPolicy: this.#options.cpuPolicy,
      cpuPins: native?.cpuPins ?? [],
      batches: t.batches,
      inlineBatches: t.inlineBatches,
      bytes: t.bytes,
      folios: t.folios,
      descriptors: t.descriptors,
      offloadedBytes: t.offloadedBytes,
      cpuBytes: t.cpuBytes,
      fallbacks: { ...t.fallbacks },
      outOfOrder: t.outOfOrder,
      inFlight: this.#inFlight.size,
      prepared: native?.preparedPlans ?? 0,
      jsFallback: this.#native === undefined,
      minOffloadBytes: this.#policy.stats().inlineMaxBytes,
      policy: this.#policy.stats(),
      nonTemporalMinBytes: this.#options.nonTemporalMinBytes,
      autoReason: this.#options.autoReason,
      native,
      queues: this.#queueResults.length ? this.#queueResults : undefined,
    };
  }

  /**
   * Waits for every batch in flight, then stops the engine's threads. Later calls reject with
   * ERR_DMACOPY_CLOSED. Bounded even on a wedged device (about drainTimeoutMs per fence): queues
   * whose Drain never completed are named in the report instead of being waited for.
   */
  close(): Promise<CloseReport> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      await Promise.allSettled([...this.#inFlight].map((op) => op.done));
      this.#native?.close();
      const channels = this.#native?.stats().dsa?.channels ?? [];
      return { wedgedQueues: channels.filter((c) => c.wedged === true).map((c) => String(c.name)) };
    })();
    return this.#closing;
  }

  #worksFor(batch: BatchTable): number {
    const byBytes = Math.max(1, Math.floor(batch.bytes / Math.max(MIN_WORK_BYTES, SPLIT_UNIT)));
    return Math.min(this.#options.channels, byBytes);
  }

  /**
   * How a batch is cut: works per channel, plus (device engines) the CPU's share beside the
   * device, weighted so both sides finish together.
   */
  #plan(batch: BatchTable): PlanShape & { bounds: Float64Array } {
    const kDev = this.#worksFor(batch);
    if (!this.#options.dsa) return { k: kDev, bounds: workBounds(batch, kDev), cpuWorksFrom: kDev, cpuShareBytes: 0 };
    const { cpuWorks, weights } = this.#policy.deviceSplit(batch.bytes, kDev);
    const k = kDev + cpuWorks;
    const starts = cpuWorks > 0 ? boundaryBytes(batch.bytes, k, weights) : [];
    const cpuShareBytes = cpuWorks > 0 ? batch.bytes - (starts[kDev - 1] ?? 0) : 0;
    return { k, bounds: workBounds(batch, k, weights), cpuWorksFrom: kDev, cpuShareBytes };
  }

  /** Feeds what a finished batch measured back into the policy. */
  #observe(op: BatchOp, plan: PlanShape): void {
    const r = op.report;
    if (!this.#options.dsa) {
      this.#policy.observeThreaded(r.bytes, r.elapsedNs);
      return;
    }
    let devNs = 0;
    let cpuNs = 0;
    op.works.forEach((w, i) => {
      if (i < plan.cpuWorksFrom) devNs = Math.max(devNs, w.doneNs);
      else cpuNs = Math.max(cpuNs, w.doneNs);
    });
    if (devNs === 0) devNs = r.elapsedNs;
    this.#policy.observeDevice(r.offloadedBytes, devNs, plan.cpuShareBytes, cpuNs);
    // Quarantines follow timeouts and errors only, so the channel list is read only then.
    if (r.fallbacks.timeout + r.fallbacks.error + r.fallbacks.submit > 0) this.#noteQuarantines();
  }

  readonly #quarantined = new Set<string>();

  /** Publishes the queues quarantined since the last call (device engines; nothing to do on the CPU). */
  #noteQuarantines(): void {
    if (this.#options.dsa === undefined) return;
    const channels = (this.#native?.stats().dsa?.channels ?? []) as { name: string; quarantined: boolean }[];
    for (const c of channels) {
      if (!c.quarantined || this.#quarantined.has(c.name)) continue;
      this.#quarantined.add(c.name);
      publishQuarantine({ engineId: this.id, backend: this.#options.backend, channel: c.name });
    }
  }

  /** A batch finished inside the call (inline or synchronous): it gets no events, so no id. */
  #newOp(batch: BatchTable, k: number): BatchOp {
    const op = new BatchOp(0, this.#options.backend, batch.buffers, batch.bytes, batch.folios, k, () => {});
    op.done.catch(() => {}); // the caller gets the error thrown, not this promise
    return op;
  }

  /**
   * The policy's inline decision for a batch the small-batch path accepted (see small-copy.ts).
   * It is taken once per batch: the policy counts batches and sometimes explores the other path,
   * and asking again would undo that choice.
   */
  #smallInline(bytes: number): boolean {
    const inline = this.#policy.useInline(bytes);
    if (!inline) forgetSmall(); // the full path reads and checks the views itself
    return inline;
  }

  /** The small-batch path: validated and copied in place on the calling thread. */
  #copySmall(bytes: number): CopyReport {
    const folios = smallBatch().folios;
    if (tracing()) return this.#copySmallTraced(takeSmallBatch(), bytes, folios);
    // #inline without its closure: this path is timed in tens of nanoseconds.
    const timed = this.#policy.sampleInline(bytes);
    const t0 = timed ? clockMs() : 0;
    copySmall();
    return this.#inlineReport(bytes, folios, folios, timed ? elapsedSince(t0) : 0, undefined);
  }

  /**
   * The same with a trace. Subscribers to dmacopy:batch:start run before the copy: the batch was
   * taken out of the scratch state, so one that starts batches of its own cannot overwrite it,
   * and one that transferred a buffer of it gets ERR_DMACOPY_DETACHED with nothing copied.
   */
  #copySmallTraced(batch: SmallBatch, bytes: number, folios: number): CopyReport {
    const trace = this.#trace(bytes, folios, true);
    try {
      if (!batch.attached()) {
        batch.drop(batch.pairs);
        throw detachedAtStart();
      }
      const t0 = clockMs();
      batch.copy();
      return this.#inlineReport(bytes, folios, folios, elapsedSince(t0), trace);
    } catch (err) {
      trace.fail(err as Error);
      throw err;
    }
  }

  /** Publishes a batch's start; the trace publishes its one end (see #account and the failure paths). */
  #trace(bytes: number, folios: number, inline: boolean): BatchTrace {
    return new BatchTrace(this.id, this.#options.backend, inline ? 'inline' : this.#options.dsa ? 'device' : 'threads', bytes, folios);
  }

  #copyInline(batch: BatchTable): CopyReport {
    const native = this.#native;
    if (native === undefined) {
      checkOverlapInJs(batch); // the native plan checks it when there is an addon
      return this.#inline(batch, () => copyJs(batch));
    }
    const bounds = new Float64Array([0, 0, batch.folios, 0]);
    return this.#inline(batch, () =>
      sum(fromNativeCall(() => native.copy(CopyMode.Inline, 0, batch.buffers, batch.form, batch.table, bounds))),
    );
  }

  /** An asynchronous threaded or device copy: `submit` queues it under the op id and returns descriptors per work. */
  #runAsync(batch: BatchTable, plan: PlanShape, submit: (id: number) => ArrayLike<number>): Promise<CopyReport> {
    const observed = tracing(); // before the start is published (see #runSync)
    const op = new BatchOp(nextOpId(), this.#options.backend, batch.buffers, batch.bytes, batch.folios, plan.k, (settled) => {
      this.#inFlight.delete(settled);
      untrack(settled);
    });
    // In flight before the start is published: a subscriber that calls close() waits for it.
    this.#inFlight.add(op);
    track(op);
    const trace = this.#trace(batch.bytes, batch.folios, false);
    try {
      if (observed) checkAttachedAtStart(batch.buffers); // see #inline
      op.start(submit(op.id));
    } catch (err) {
      op.abort(fromNative(err)); // settles op.done: the same path as a failure reported later
    }
    return op.done.then(
      (report) => {
        this.#observe(op, plan);
        this.#account(report, false, trace);
        return report;
      },
      (error: Error) => {
        this.#noteQuarantines(); // a wedged batch quarantined its queues
        trace.fail(error);
        throw error;
      },
    );
  }

  /**
   * A large list-form batch: each chunk of views is validated and submitted while the threads
   * (or queues) already copy the chunks before it, so reading thousands of views overlaps the
   * copy instead of preceding it. Overlap is checked natively against every earlier chunk. If a
   * later chunk is refused, nothing more is submitted, the earlier chunks finish, and the batch
   * rejects saying which folios may have been copied.
   */
  #copyChunked(list: ListShape, sync: boolean): Promise<CopyReport> | CopyReport {
    const native = this.#native as NativeEngine;
    const n = list.n; // read once, by checkListShape: a Proxy may answer differently each time
    const own = takeListViews(list);
    const { dsts, srcs } = own;
    const op = new BatchOp(nextOpId(), this.#options.backend, [], 0, n, this.#options.channels, (settled) => {
      this.#inFlight.delete(settled);
      if (!sync) untrack(settled);
    });
    op.sealed = false;
    if (sync) {
      op.done.catch(() => {});
      native.registerSync(op.id);
    } else {
      this.#inFlight.add(op);
      track(op);
    }
    const trace = this.#trace(0, n, false); // bytes are known only once every chunk was read
    let failure: Error | undefined;
    const table = takeChunkTable();
    for (let start = 0; start < n; start += LIST_CHUNK) {
      try {
        const chunk = prepareListSlice(dsts, srcs, start, Math.min(n, start + LIST_CHUNK), table);
        checkTableDestinations(chunk);
        op.pin(chunk.buffers);
        const counts = native.copy(
          CopyMode.Async,
          op.id,
          chunk.buffers,
          chunk.form,
          chunk.table,
          workBounds(chunk, this.#worksFor(chunk)),
          undefined,
          true,
        );
        op.add(counts);
        op.report.bytes += chunk.bytes;
      } catch (err) {
        failure = fromNative(err);
        if (start > 0) failure.message += ` (folios 0 to ${start - 1} were submitted before this and may have been copied)`;
        break;
      }
    }
    giveChunkTable(table);
    giveListViews(own, n);
    native.endBatch(op.id);
    if (sync) {
      const totals = new Float64Array(EVENT_FIELDS);
      native.waitSync(op.id, op.report.descriptors, totals);
      this.#noteQuarantines();
      if (failure) {
        trace.fail(failure);
        throw failure;
      }
      op.applyTotals(totals);
      op.completeAll(0);
      if (op.failedWith) {
        trace.fail(op.failedWith);
        throw op.failedWith;
      }
      this.#account(op.report, false, trace);
      return op.report;
    }
    op.seal(failure);
    return op.done.then(
      (report) => {
        this.#noteQuarantines();
        this.#account(report, false, trace);
        return report;
      },
      (error: Error) => {
        this.#noteQuarantines();
        trace.fail(error);
        throw error;
      },
    );
  }

  #account(r: CopyReport, inline: boolean, trace: BatchTrace | undefined): void {
    trace?.end(r);
    const t = this.#totals;
    t.batches++;
    if (inline) t.inlineBatches++;
    t.bytes += r.bytes;
    t.folios += r.folios;
    t.descriptors += r.descriptors;
    t.offloadedBytes += r.offloadedBytes;
    t.cpuBytes += r.cpuBytes;
    if (inline) return; // no fallbacks, no completions out of order
    addFallbacks(t.fallbacks, r.fallbacks);
    t.outOfOrder += r.outOfOrder;
  }
}

/** Nanoseconds since a performance.now() reading, at least 1 (0 means untimed in a report). */
function elapsedSince(t0: number): number {
  return Math.max(1, Math.round((clockMs() - t0) * 1e6));
}

/** Native re-checks throw plain TypeError/RangeError with a code; give them the library's classes. */
function fromNative(err: unknown): Error {
  if (!(err instanceof Error)) return new DmacopyError('ERR_DMACOPY_INTERNAL', String(err));
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('ERR_DMACOPY_') || err instanceof DmacopyError) return err;
  if (err instanceof DmacopyTypeError || err instanceof DmacopyRangeError) return err;
  const Cls = err instanceof RangeError ? DmacopyRangeError : err instanceof TypeError ? DmacopyTypeError : DmacopyError;
  return new Cls(code as DmacopyErrorCode, err.message);
}

/** Runs a native call, giving what it throws the library's classes. */
function fromNativeCall<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw fromNative(err);
  }
}

/** The copy without the addon: in JavaScript on this thread; returns the descriptors (folios). */
function copyJs(batch: BatchTable): number {
  copyInJs(batch);
  return batch.folios;
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] as number;
  return s;
}

/**
 * Opens an engine. Channels (threads, queues) are opened once here and reused by every batch. On
 * `dsa` each queue is opened and proven with a NOOP probe off the event loop (a libuv pool thread,
 * the probes side by side): a device that does not answer costs one probe timeout (500 ms) in all.
 */
export async function openEngine(options?: EngineOptions): Promise<Engine> {
  const resolved = resolveOptions(options);
  try {
    const opened = await openQueues(resolved.dsa);
    try {
      return new Engine(resolved, opened);
    } catch (err) {
      // Queues no engine took would stay open (a dedicated one busy) until the handle is collected.
      if (opened) nativeBinding()?.releaseOpenedQueues(opened);
      throw err;
    }
  } catch (err) {
    // 'auto' found queues but none opened (permissions, probe): the CPU engine, saying why.
    if ((options?.backend ?? 'auto') !== 'auto' || resolved.backend !== 'dsa') throw err;
    const { dsa: _dsa, cpuShare: _share, ...rest } = resolved;
    return new Engine({ ...rest, backend: 'cpu', channels: options?.channels ?? resolved.cpuThreads, autoReason: (err as Error).message });
  }
}

/**
 * The dsa backend's /dev/dsa queues, opened and probed on a pool thread: a probe waits for the
 * device up to its timeout, on a device that does not answer, which must not block the event loop.
 */
async function openQueues(dsa: NativeDsaConfig | undefined): Promise<NativeOpenedQueues | undefined> {
  const binding = nativeBinding();
  if (dsa?.kind !== 'user' || binding === undefined) return undefined; // no addon: the constructor says why
  try {
    return await binding.openUserQueues(dsa.queues as NativeUserQueue[]);
  } catch (err) {
    throw fromNative(err);
  }
}

/** @internal for tests: batches in flight across all engines of this thread. */
export function batchesInFlight(): number {
  return registryInFlight();
}
