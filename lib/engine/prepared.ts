// Prepared batches (engine.prepare): a batch validated, pinned and planned once, then copied
// again and again (a pool snapshotted every second). The views are read and checked once; the
// native plan (regions, overlap check, the split into works) is built once and kept by the
// addon; a run re-checks only that every buffer is still attached, then hands the kept plan
// over. This module holds the handle and its state rules; engine.ts runs it.
import { DmacopyError, DmacopyTypeError } from '../errors';
import { type NativePlan, TableForm } from '../native/abi';
import type { CopyReport } from '../types';
import type { BatchTable } from './validate';
import { intrinsicLengthOf, typedArraySet } from './view-getters';

/** What a prepared batch keeps between runs (engine.ts reads and runs it). */
export interface PreparedState {
  readonly table: BatchTable;
  /** The native plan; undefined when the addon did not load (runs copy in JavaScript). */
  readonly plan: NativePlan | undefined;
  /** Each buffer's length when it was prepared: 0 later means it was detached. */
  readonly lengths: number[];
  /** Descriptors per work of the last run (reused: one run at a time). */
  readonly counts: Uint32Array;
  /** Works of the plan; from cpuWorksFrom on, the CPU's share beside a device. */
  readonly works: number;
  readonly cpuWorksFrom: number;
  readonly cpuShareBytes: number;
  /**
   * Small batches: the folios as Uint8Array pairs (2i destination, 2i+1 source) over the same
   * memory, for an inline run without crossing into native code. Undefined for larger lists.
   */
  readonly pairs: Uint8Array[] | undefined;
  /** The buffers the batch writes (checked against memory a wedged device may still write). */
  readonly destinations: Uint8Array[];
}

/** Lists of at most this many folios keep JavaScript pairs for inline runs (the region form always does). */
export const PAIRS_MAX_FOLIOS = 16;

/** The folio pairs of a small batch (see PreparedState.pairs), or undefined. Reads only the table. */
export function folioPairs(table: BatchTable): Uint8Array[] | undefined {
  const t = table.table;
  const bufs = table.buffers;
  const view = (b: number, off: number, len: number) => {
    const whole = bufs[b] as Uint8Array;
    return new Uint8Array(whole.buffer, whole.byteOffset + off, len);
  };
  if (table.form === TableForm.Region) {
    return table.bytes === 0 ? [] : [view(t[0] as number, t[1] as number, table.bytes), view(t[2] as number, t[3] as number, table.bytes)];
  }
  if (table.folios > PAIRS_MAX_FOLIOS) return undefined;
  const pairs: Uint8Array[] = [];
  for (let j = 0; j < t.length; j += 5) {
    const len = t[j + 4] as number;
    if (len > 0) pairs.push(view(t[j] as number, t[j + 1] as number, len), view(t[j + 2] as number, t[j + 3] as number, len));
  }
  return pairs;
}

/** Copies the pairs of folioPairs() on this thread; returns the folios. */
export function copyPairs(pairs: readonly Uint8Array[], folios: number): number {
  for (let i = 0; i < pairs.length; i += 2) typedArraySet(pairs[i] as Uint8Array, pairs[i + 1] as Uint8Array);
  return folios;
}

/** Runs a prepared state once (engine.ts); `sync` blocks, else the promise settles when every byte is there. */
export interface PreparedRunner {
  run(state: PreparedState, sync: boolean): CopyReport | Promise<CopyReport>;
  release(state: PreparedState): void;
  /** Throws ERR_DMACOPY_CLOSED once the engine is closed (or closing). */
  checkOpen(): void;
}

/** Throws ERR_DMACOPY_DETACHED if a buffer of the batch was detached (transferred) since it was prepared. */
export function checkAttached(state: PreparedState): void {
  const bufs = state.table.buffers;
  const lengths = state.lengths;
  for (let i = 0; i < bufs.length; i++) {
    if (intrinsicLengthOf(bufs[i] as Uint8Array) !== lengths[i]) {
      throw new DmacopyTypeError(
        'ERR_DMACOPY_DETACHED',
        `buffer ${i} of this prepared batch was detached (transferred) after it was prepared: nothing was copied; prepare the batch again over buffers this thread keeps`,
        { argument: `buffers[${i}]` },
      );
    }
  }
}

/**
 * A batch validated, pinned and planned once by engine.prepare(dsts, srcs, options); copy() and
 * copySync() copy it again (the bytes may change between runs, the views may not). It keeps
 * every buffer it copies referenced until release(). One run at a time: a run while the previous
 * copy() is in flight is refused with ERR_DMACOPY_BUSY. After release() or engine.close(), runs
 * are refused with ERR_DMACOPY_RELEASED or ERR_DMACOPY_CLOSED; a run over a buffer detached
 * since prepare() with ERR_DMACOPY_DETACHED. Refused runs write nothing. On a DSA backend the
 * device descriptors are built at prepare() as well (64 bytes each, held until release()): a run
 * submits them as built, each with a fresh completion record.
 */
export class PreparedBatch {
  /** Bytes one run copies. */
  readonly bytes: number;
  /** Folios one run copies. */
  readonly folios: number;
  /** 'list' (arrays of views) or 'region' (one dst and one src view cut into folios). */
  readonly form: 'list' | 'region';
  #state: PreparedState | undefined;
  readonly #runner: PreparedRunner;
  #running = false;
  readonly #settled = (): void => {
    this.#running = false;
  };

  /** @internal use engine.prepare() */
  constructor(state: PreparedState, runner: PreparedRunner) {
    this.#state = state;
    this.#runner = runner;
    this.bytes = state.table.bytes;
    this.folios = state.table.folios;
    this.form = state.table.form === TableForm.Region ? 'region' : 'list';
  }

  /** True after release(). */
  get released(): boolean {
    return this.#state === undefined;
  }

  /** True while a copy() is in flight. */
  get running(): boolean {
    return this.#running;
  }

  /** The state of a run about to start, after the checks every run makes (in this order). */
  #begin(): PreparedState {
    const state = this.#state;
    if (state === undefined) {
      throw new DmacopyError('ERR_DMACOPY_RELEASED', 'This prepared batch was released: prepare the batch again with engine.prepare().');
    }
    this.#runner.checkOpen();
    if (this.#running) {
      throw new DmacopyError(
        'ERR_DMACOPY_BUSY',
        'This prepared batch is still running: await its copy() before running it again (or prepare a second batch).',
      );
    }
    return state;
  }

  /** Copies the batch again; resolves with its report when every byte is in place. */
  copy(): Promise<CopyReport> {
    let out: CopyReport | Promise<CopyReport>;
    let state: PreparedState;
    try {
      state = this.#begin();
    } catch (err) {
      // Refused (ERR_DMACOPY_BUSY among others): a run in flight keeps its flag.
      return Promise.reject(err);
    }
    try {
      this.#running = true;
      out = this.#runner.run(state, false);
    } catch (err) {
      this.#running = false;
      return Promise.reject(err);
    }
    if (!(out instanceof Promise)) {
      this.#running = false;
      return Promise.resolve(out);
    }
    out.then(this.#settled, this.#settled);
    return out;
  }

  /** Copies the batch again, blocking the calling thread until the bytes are there. */
  copySync(): CopyReport {
    const state = this.#begin();
    this.#running = true; // a diagnostics subscriber running this handle again meanwhile is refused
    try {
      return this.#runner.run(state, true) as CopyReport;
    } finally {
      this.#running = false;
    }
  }

  /**
   * Ends the batch: frees its plan and drops its buffers. Idempotent. A copy() in flight still
   * finishes (it keeps what it uses); later runs are refused with ERR_DMACOPY_RELEASED.
   */
  release(): void {
    const state = this.#state;
    if (state === undefined) return;
    this.#state = undefined;
    this.#runner.release(state);
  }
}
