// Works and their pending counters. A batch (one copyBatch call) is split into works, one per
// channel; each work's pending counter starts at the number of descriptors submitted for it and
// reaches zero only through completion events (device success or a CPU copy of what the device
// did not do). The batch resolves when every work reached zero: never earlier, whatever order
// completions arrive in.
import { DmacopyError } from '../errors';
import { EVENT_FIELDS, EventField } from '../native/abi';
import type { CopyReport, FallbackCounts, ResolvedBackend } from '../types';
import { keepWedged } from './wedged';

function wedgedError(id: number, pieces: number, bytes: number): DmacopyError {
  return new DmacopyError(
    'ERR_DMACOPY_DEVICE_WEDGED',
    `Every byte of the batch (engine op ${id}) is in place (the CPU copied ${pieces} descriptor${pieces === 1 ? '' : 's'} of it), but a DSA ` +
      'queue did not confirm within drainTimeoutMs that it stopped working on them: the device may still write those ' +
      `destinations (with the same source bytes) at any time. dmacopy keeps the batch's ${bytes} bytes of buffers ` +
      'referenced for the life of the process and has quarantined the queue. Do not put other data in these ' +
      'destinations or free them; check the device (dmesg, `dmacopy info`), and restart the process or reset the ' +
      'device to end it.',
  );
}

export class Work {
  /** Descriptors not yet completed. */
  pending = 0;
  /** When the pending counter last reached zero, in ns since the batch started (0: not yet). */
  doneNs = 0;
  constructor(
    readonly index: number,
    readonly channel: number,
  ) {}
}

export function zeroFallbacks(): FallbackCounts {
  return { timeout: 0, error: 0, pageFault: 0, submit: 0 };
}

/** Adds one set of fallback counts into another (reports into totals). */
export function addFallbacks(into: FallbackCounts, from: FallbackCounts): void {
  into.timeout += from.timeout;
  into.error += from.error;
  into.pageFault += from.pageFault;
  into.submit += from.submit;
}

export class BatchOp {
  readonly works: Work[] = [];
  /** Works whose pending counter is still above zero. */
  remaining = 0;
  readonly report: CopyReport;
  readonly started: bigint;
  readonly done: Promise<CopyReport>;
  private settle!: (r: CopyReport) => void;
  private fail!: (e: Error) => void;
  settled = false;
  /** False while a chunked batch is still being submitted: it cannot finish before that. */
  sealed = true;
  /** Set when a later chunk failed: the batch rejects with it once submitted work drained. */
  private failure: Error | undefined;
  /** Descriptors the CPU finished while the device may still write them (EventField.Wedged). */
  wedged = 0;
  /** The error the batch rejected with (sync callers throw it). */
  failedWith: Error | undefined;

  constructor(
    readonly id: number,
    backend: ResolvedBackend,
    /** Pins every buffer of the batch until it settles, even if the caller drops them. */
    private readonly pins: Uint8Array[],
    bytes: number,
    folios: number,
    channels: number,
    private readonly onSettled: (op: BatchOp) => void,
  ) {
    this.started = process.hrtime.bigint();
    this.report = {
      backend,
      bytes,
      folios,
      descriptors: 0,
      channels,
      offloadedBytes: 0,
      cpuBytes: 0,
      fallbacks: zeroFallbacks(),
      outOfOrder: 0,
      elapsedNs: 0,
    };
    this.done = new Promise<CopyReport>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    for (let w = 0; w < channels; w++) this.works.push(new Work(w, w));
  }

  /** Pins the buffers of one more chunk until the batch settles. */
  pin(buffers: readonly Uint8Array[]): void {
    for (const b of buffers) this.pins.push(b);
  }

  /** Sets each work's pending counter from what was submitted; resolves at once if nothing was. */
  start(descriptorsPerWork: ArrayLike<number>): void {
    this.add(descriptorsPerWork);
    if (this.remaining === 0) this.finish();
  }

  /** Adds the descriptors of one more submitted chunk to the works' pending counters. */
  add(descriptorsPerWork: ArrayLike<number>): void {
    for (let w = 0; w < this.works.length; w++) {
      const n = descriptorsPerWork[w] ?? 0;
      if (n === 0) continue;
      const work = this.works[w] as Work;
      if (work.pending === 0) this.remaining++;
      work.pending += n;
      this.report.descriptors += n;
    }
  }

  /** Every chunk is submitted: the batch may now finish (or fail, if a chunk was refused). */
  seal(failure?: Error): void {
    this.sealed = true;
    this.failure = failure;
    if (this.remaining === 0) this.finish();
  }

  /** Applies one completion event (fields at offset o of a native event array). */
  apply(ev: Float64Array, o: number): void {
    if (this.settled) return;
    const work = this.works[ev[o + EventField.Work] as number];
    const completed = ev[o + EventField.Completed] as number;
    if (work === undefined || completed > work.pending) {
      this.abort(new DmacopyError('ERR_DMACOPY_INTERNAL', `completion count for batch ${this.id} went below zero: please report this`));
      return;
    }
    this.#addCounts(ev, o);
    if (completed === 0) return;
    work.pending -= completed;
    if (work.pending === 0) {
      work.doneNs = Number(process.hrtime.bigint() - this.started);
      if (--this.remaining === 0 && this.sealed) this.finish();
    }
  }

  /** Applies the summed events of a synchronous device copy (event layout, op and work ignored). */
  applyTotals(t: Float64Array): void {
    this.#addCounts(t, 0);
  }

  /** Adds the byte, fallback and ordering counts of the event at offset o to the report. */
  #addCounts(ev: Float64Array, o: number): void {
    const r = this.report;
    r.offloadedBytes += ev[o + EventField.DeviceBytes] as number;
    r.cpuBytes += ev[o + EventField.CpuBytes] as number;
    r.fallbacks.timeout += ev[o + EventField.FallbackTimeout] as number;
    r.fallbacks.error += ev[o + EventField.FallbackError] as number;
    r.fallbacks.pageFault += ev[o + EventField.FallbackPageFault] as number;
    r.fallbacks.submit += ev[o + EventField.FallbackSubmit] as number;
    r.outOfOrder += ev[o + EventField.OutOfOrder] as number;
    this.wedged += ev[o + EventField.Wedged] as number;
  }

  /** Marks every descriptor done at once (synchronous and inline copies). */
  completeAll(cpuBytes: number): void {
    for (const w of this.works) w.pending = 0;
    this.remaining = 0;
    this.report.cpuBytes += cpuBytes;
    this.finish();
  }

  abort(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.failedWith = err;
    this.onSettled(this);
    this.fail(err);
  }

  private finish(): void {
    if (this.settled) return;
    if (this.failure) {
      this.abort(this.failure);
      return;
    }
    if (this.wedged > 0) {
      // Never resolve while a device write into this memory is possible: keep it, and say so.
      keepWedged(this.pins);
      const bytes = this.pins.reduce((n, b) => n + b.byteLength, 0);
      this.abort(wedgedError(this.id, this.wedged, bytes));
      return;
    }
    this.settled = true;
    this.report.elapsedNs = Number(process.hrtime.bigint() - this.started);
    this.onSettled(this);
    this.settle(this.report);
  }
}

/** Routes a native event array to the batches it names. */
export function dispatchEvents(events: Float64Array, ops: Map<number, BatchOp>): void {
  for (let o = 0; o + EVENT_FIELDS <= events.length; o += EVENT_FIELDS) {
    const op = ops.get(events[o + EventField.Op] as number);
    if (op !== undefined) op.apply(events, o);
  }
}
