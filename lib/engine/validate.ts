// Argument validation and the numeric batch table handed to the native layer. Runs on every call,
// so the list-form loop touches each view once, groups views by their ArrayBuffer (usually a
// handful of buffers for thousands of folios) and allocates nothing per folio.
import { isProxy } from 'node:util/types';
import { DmacopyRangeError, DmacopyTypeError, invalidArg, outOfRange } from '../errors';
import { TableForm } from '../native/abi';
import type { CopyOptions } from '../types';
import {
  bufferShape,
  intrinsicBufferOf,
  intrinsicByteLengthOf,
  intrinsicLengthOf,
  typedArrayKind,
  viewBufferOf,
  viewByteLengthOf,
  viewByteOffsetOf,
} from './view-getters';

export interface BatchTable {
  form: TableForm;
  /** One full-length Uint8Array per distinct ArrayBuffer; holding it keeps the memory alive. */
  buffers: Uint8Array[];
  /** List form: 5 doubles per folio (dst buffer, dst offset, src buffer, src offset, length).
   *  Region form: 6 doubles (dst buffer, dst offset, src buffer, src offset, total, folio size). */
  table: Float64Array;
  folios: number;
  bytes: number;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Builds the per-call buffer list: index of each distinct ArrayBuffer, with its checks done once. */
class BufferTable {
  readonly views: Uint8Array[] = [];
  /** Where each buffer was first seen (for the error that names it). */
  private readonly firstUse: string[] = [];
  private readonly index = new Map<ArrayBufferLike, number>();

  /** The index of `ab`, a view's buffer as the caller read it through V8's getter. */
  indexOf(ab: ArrayBufferLike, where: string): number {
    const known = this.index.get(ab);
    if (known !== undefined) return known;
    const shape = bufferShape(ab);
    checkBuffer(ab, shape, where);
    const i = this.views.length;
    // A Uint8Array over the whole buffer, always made here: the native layer reads its real base
    // and length, and later readers of the pin (prepared pairs, the JavaScript copy, the wedged
    // and detachment checks) never touch an object of the caller's, which could carry its own
    // `buffer`, `byteOffset` or `subarray`.
    this.views.push(new Uint8Array(ab));
    this.firstUse.push(where);
    this.index.set(ab, i);
    return i;
  }

  /**
   * Once every view was read: a getter of the list (a Proxy, an accessor) may have detached a
   * buffer read earlier. Its whole-buffer view then has length 0; say so with the right code
   * instead of letting the native re-check call it out of range.
   */
  checkStillAttached(): void {
    for (let i = 0; i < this.views.length; i++) {
      const v = this.views[i] as Uint8Array;
      if (intrinsicLengthOf(v) === 0 && isDetached(intrinsicBufferOf(v))) {
        const where = this.firstUse[i] as string;
        throw new DmacopyTypeError(
          'ERR_DMACOPY_DETACHED',
          `${where}'s ArrayBuffer was detached (transferred) while the batch was being read: nothing was copied; pass buffers this thread keeps`,
          { argument: where },
        );
      }
    }
  }
}

function checkBuffer(ab: ArrayBufferLike, shape: { byteLength: number; resizable: boolean }, where: string): void {
  if (shape.resizable) {
    throw new DmacopyTypeError(
      'ERR_DMACOPY_RESIZABLE',
      `${where} is a view over a resizable ArrayBuffer or growable SharedArrayBuffer, which could shrink under an in-flight copy: copy from or into a fixed-length buffer`,
      { argument: where },
    );
  }
  if (shape.byteLength === 0 && isDetached(ab)) {
    throw new DmacopyTypeError(
      'ERR_DMACOPY_DETACHED',
      `${where} is a view over a detached ArrayBuffer (it was transferred): pass a buffer this thread still owns`,
      { argument: where },
    );
  }
}

/**
 * ERR_DMACOPY_DETACHED if a buffer of a checked batch was detached since: only code the engine
 * itself ran between the check and the copy can have done it, a dmacopy:batch:start subscriber
 * (so the engine calls this only while someone subscribes). `buffers` are the batch's full-length
 * views (BatchTable.buffers).
 */
export function checkAttachedAtStart(buffers: readonly Uint8Array[]): void {
  for (let i = 0; i < buffers.length; i++) {
    const v = buffers[i] as Uint8Array;
    if (intrinsicLengthOf(v) === 0 && isDetached(intrinsicBufferOf(v))) throw detachedAtStart();
  }
}

/** The error of a batch whose buffer a dmacopy:batch:start subscriber detached: nothing was copied. */
export function detachedAtStart(): DmacopyTypeError {
  return new DmacopyTypeError(
    'ERR_DMACOPY_DETACHED',
    'an ArrayBuffer of the batch was detached (transferred) while the batch started: nothing was copied; pass buffers this thread keeps',
  );
}

function isDetached(ab: ArrayBufferLike): boolean {
  // Node 20 has no ArrayBuffer.prototype.detached; constructing a view is the portable test.
  try {
    new Uint8Array(ab, 0, 0);
    return false;
  } catch {
    return true;
  }
}

function checkView(v: unknown, where: string): ArrayBufferView {
  if (!ArrayBuffer.isView(v)) {
    throw invalidArg(where, `${where} must be a Buffer, TypedArray or DataView, got ${describe(v)}`);
  }
  return v;
}

/**
 * A value in a few words, for messages, without running the caller's code (no getter, no
 * toString, no Proxy trap): a chunked list describes a bad view while earlier chunks are being
 * copied, and code run then could detach their buffers.
 */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'object') {
    if (isProxy(v)) return 'a Proxy';
    if (Array.isArray(v)) return 'an array';
    return `an instance of ${constructorName(v) ?? 'Object'}`;
  }
  return `${typeof v} ${String(v).slice(0, 40)}`; // a primitive: String() runs no user code
}

/** The name of an object's constructor, read from data properties only (undefined otherwise). */
function constructorName(o: object): string | undefined {
  const proto = Object.getPrototypeOf(o) as object | null;
  // A Proxy prototype would run its getOwnPropertyDescriptor trap below.
  if (proto === null || isProxy(proto)) return undefined;
  const ctor = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value as unknown;
  if (typeof ctor !== 'function' || isProxy(ctor)) return undefined;
  const name = Object.getOwnPropertyDescriptor(ctor, 'name')?.value as unknown;
  return typeof name === 'string' ? name : undefined;
}

function checkCopyOptions(options: unknown): CopyOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw invalidArg('options', `options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (key !== 'folioSize') throw invalidArg(`options.${key}`, `unknown copy option '${key}': the only option is folioSize`);
  }
  return options as CopyOptions;
}

/**
 * Validates a list-form or region-form call and builds its table. Throws typed errors. A list's
 * table is written into `into` when it fits (the caller's scratch: read before it is reused).
 */
export function validateBatch(dsts: unknown, srcs: unknown, options: unknown, into?: Float64Array): BatchTable {
  const opts = checkCopyOptions(options);
  if (Array.isArray(dsts)) {
    if (!Array.isArray(srcs)) throw invalidArg('srcs', `srcs must be an array of views like dsts, got ${describe(srcs)}`);
    if (opts.folioSize !== undefined)
      throw invalidArg('options.folioSize', 'folioSize applies to the region form (one dst and one src view), not to lists');
    return prepareList(dsts, srcs, into);
  }
  if (ArrayBuffer.isView(dsts)) {
    if (!ArrayBuffer.isView(srcs)) throw invalidArg('src', `src must be a Buffer, TypedArray or DataView like dst, got ${describe(srcs)}`);
    return prepareRegion(dsts, srcs, opts.folioSize);
  }
  throw invalidArg('dsts', `dsts must be an array of views (list form) or one view (region form), got ${describe(dsts)}`);
}

/** Folios per chunk when a large list-form batch is validated and submitted piece by piece. */
export const LIST_CHUNK = 4096;

// One table (320 KiB: an unchunked list of up to 2 x LIST_CHUNK folios, or one chunk) reused by
// the list-form batches of this thread: the native layer reads a table before copy() returns,
// and a fresh one per batch or chunk cost page faults each time (freshly mapped memory, 40 pages
// per 4,096 folios). A batch that starts while it is taken (a getter of one batch's list running
// another) gets its own.
let chunkTable: Float64Array | undefined;
let chunkTableTaken = false;

/** The shared chunk table if free (hand it back with giveChunkTable), else a new one. */
export function takeChunkTable(): Float64Array {
  if (chunkTableTaken) return new Float64Array(2 * LIST_CHUNK * 5);
  chunkTableTaken = true;
  chunkTable ??= new Float64Array(2 * LIST_CHUNK * 5);
  return chunkTable;
}

export function giveChunkTable(table: Float64Array): void {
  if (table === chunkTable) chunkTableTaken = false;
}

/** Checks the shape of a list-form call without reading the views (that happens per chunk). */
export function checkListShape(dsts: unknown, srcs: unknown, options: unknown): ListShape | undefined {
  if (!Array.isArray(dsts)) return undefined;
  const opts = checkCopyOptions(options);
  if (!Array.isArray(srcs)) throw invalidArg('srcs', `srcs must be an array of views like dsts, got ${describe(srcs)}`);
  if (opts.folioSize !== undefined)
    throw invalidArg('options.folioSize', 'folioSize applies to the region form (one dst and one src view), not to lists');
  return { dsts, srcs, n: listLength(dsts, srcs) };
}

/** A list-form call's arrays and its folios, as checkListShape read them (once). */
export interface ListShape {
  dsts: unknown[];
  srcs: unknown[];
  n: number;
}

/**
 * Pass 1 of a chunked list: every element taken out of the caller's arrays into arrays of our
 * own before any chunk is submitted. Reading an element may run the caller's code (an index
 * getter, a Proxy, a getter on Array.prototype behind a hole): here it runs while nothing is
 * being copied. Once chunks are in flight, validating the next one reads only these arrays (no
 * holes: every index is assigned) and V8's own getters, so no caller code can detach or transfer
 * a buffer the copy threads are writing (before, a getter in chunk 3 could, and the threads then
 * wrote freed memory). The arrays are reused from batch to batch (a fresh 512 KiB array a list
 * cost ~8 ns a folio in allocation; reused, ~3 ns), so hand them back with giveListViews().
 */
export function takeListViews(list: ListShape): OwnListViews {
  const { dsts, srcs, n } = list;
  if (n > MAX_LIST_FOLIOS) {
    throw outOfRange(
      'dsts',
      `a list may have at most ${MAX_LIST_FOLIOS} folios, got ${n}: split the batch, or use the region form (one view and a folioSize)`,
    );
  }
  const own = listScratch ?? { dsts: [], srcs: [] };
  listScratch = undefined; // a batch started from an element getter below gets arrays of its own
  const dv = own.dsts;
  const sv = own.srcs;
  try {
    for (let i = 0; i < n; i++) {
      const d = dsts[i];
      const s = srcs[i];
      dv[i] = d;
      sv[i] = s;
      // A hole (or a missing view) ends the copy here, cheaply (no view is touched): the chunk
      // holding it refuses it, and nothing past it is read. A sparse list claiming a huge length
      // was otherwise copied hole by hole until V8 ran out of array and aborted the process.
      if (d === undefined || s === undefined || d === null || s === null) break;
    }
  } catch (err) {
    giveListViews(own, n);
    throw err;
  }
  return own;
}

/** The arrays of takeListViews(). */
export interface OwnListViews {
  dsts: unknown[];
  srcs: unknown[];
}

/**
 * Most folios of a list: far beyond any list of views that fits in memory (2^26 views are ~7 GiB
 * of objects), and below V8's largest array, which pass 1 must never reach.
 */
const MAX_LIST_FOLIOS = 2 ** 26;

/** Arrays kept for the next chunked list, while no list holds them. */
let listScratch: OwnListViews | undefined;
/** Larger lists get arrays that are not kept: 2^18 folios keep 4 MiB of pointers at most. */
const KEEP_LIST_VIEWS = 1 << 18;

/** Hands back takeListViews()'s arrays once the chunks are submitted, emptied: no caller's view stays alive in them. */
export function giveListViews(own: OwnListViews, n: number): void {
  own.dsts.fill(undefined, 0, n);
  own.srcs.fill(undefined, 0, n);
  if (own.dsts.length <= KEEP_LIST_VIEWS) listScratch = own;
}

/**
 * The folios of a list-form call: both lengths read once, each a whole number (a Proxy can
 * answer anything), and equal. Throws typed errors.
 */
function listLength(dsts: unknown[], srcs: unknown[]): number {
  const n = dsts.length;
  const m = srcs.length;
  if (!Number.isSafeInteger(n) || n < 0) throw invalidArg('dsts', `dsts.length must be a whole number of folios, got ${String(n)}`);
  if (!Number.isSafeInteger(m) || m < 0) throw invalidArg('srcs', `srcs.length must be a whole number of folios, got ${String(m)}`);
  if (m !== n) {
    throw new DmacopyRangeError('ERR_DMACOPY_LENGTH_MISMATCH', `dsts has ${n} folios but srcs has ${m}: pass one destination per source`);
  }
  return n;
}

function prepareList(dsts: unknown[], srcs: unknown[], into?: Float64Array): BatchTable {
  const n = listLength(dsts, srcs);
  return prepareListSlice(dsts, srcs, 0, n, into && into.length >= n * 5 ? into : undefined);
}

/**
 * Validates folios [start, end) of a list-form call and builds their table (buffer indexes local
 * to the slice), in `into` when given (at least 5 doubles per folio; see takeChunkTable).
 */
export function prepareListSlice(dsts: unknown[], srcs: unknown[], start: number, end: number, into?: Float64Array): BatchTable {
  const n = end - start;
  const buffers = new BufferTable();
  const table = into ? into.subarray(0, n * 5) : new Float64Array(n * 5);
  const bytes = readList(dsts, srcs, start, end, table, buffers);
  buffers.checkStillAttached();
  return { form: TableForm.List, buffers: buffers.views, table, folios: n, bytes };
}

/**
 * The per-folio loop. Every fact about a view comes from V8's own getters (view-getters.ts), on
 * every Node: a `buffer`, `byteOffset` or `byteLength` a script defined on a view or a subclass
 * cannot misdirect the table (it could name another buffer than the one the native layer pins,
 * or bytes outside the view), and a typed array whose prototype was swapped is measured by its
 * real kind. On Node 22+ the plain properties were faster (26-27 against 38-39 ns a folio, `node
 * scripts/bench-view-read.js`) but let a view that names a fixed buffer while sitting on a
 * resizable one through the resizable check, and the process crashed when that buffer shrank
 * under the copy. Returns the batch's bytes.
 */
function readList(dsts: unknown[], srcs: unknown[], start: number, end: number, table: Float64Array, buffers: BufferTable): number {
  let bytes = 0;
  // Consecutive folios usually share their buffers: remember the last ones to skip the Map.
  let lastDstAb: ArrayBufferLike | undefined;
  let lastDstIdx = -1;
  let lastSrcAb: ArrayBufferLike | undefined;
  let lastSrcIdx = -1;
  for (let i = start, j = 0; i < end; i++, j += 5) {
    const d = dsts[i];
    const s = srcs[i];
    if (!ArrayBuffer.isView(d)) checkView(d, `dsts[${i}]`);
    if (!ArrayBuffer.isView(s)) checkView(s, `srcs[${i}]`);
    const dv = d as ArrayBufferView;
    const sv = s as ArrayBufferView;
    const dk = typedArrayKind(dv);
    const sk = typedArrayKind(sv);
    const len = sk !== undefined ? intrinsicByteLengthOf(sv) : dataViewBytes(sv, `srcs[${i}]`);
    const dlen = dk !== undefined ? intrinsicByteLengthOf(dv) : dataViewBytes(dv, `dsts[${i}]`);
    const dab = viewBufferOf(dv, dk);
    if (dlen < len) throw shortDestination(dab, `dsts[${i}]`, lengthMismatch(i, dlen, len));
    if (dab !== lastDstAb) {
      lastDstIdx = buffers.indexOf(dab, `dsts[${i}]`);
      lastDstAb = dab;
    }
    const sab = viewBufferOf(sv, sk);
    if (sab !== lastSrcAb) {
      lastSrcIdx = buffers.indexOf(sab, `srcs[${i}]`);
      lastSrcAb = sab;
    }
    table[j] = lastDstIdx;
    table[j + 1] = viewByteOffsetOf(dv, dk);
    table[j + 2] = lastSrcIdx;
    table[j + 3] = viewByteOffsetOf(sv, sk);
    table[j + 4] = len;
    bytes += len;
  }
  return bytes;
}

/**
 * A DataView's byte length. Its getter throws where a typed array's reads 0: over a detached
 * buffer, or a resizable one shrunk below its range. Say which, with the library's codes.
 */
function dataViewBytes(view: ArrayBufferView, where: string): number {
  try {
    return viewByteLengthOf(view, undefined);
  } catch {
    const ab = viewBufferOf(view, undefined); // never throws
    checkBuffer(ab, bufferShape(ab), where);
    throw invalidArg(where, `${where} is a DataView whose range no longer fits its buffer: pass views over fixed-length buffers`);
  }
}

/**
 * The error for a destination shorter than its source. A typed array over a detached buffer, or
 * over a resizable one shrunk below it, reads as short: then its buffer's own error
 * (ERR_DMACOPY_DETACHED, ERR_DMACOPY_RESIZABLE) says what to do, not the length mismatch.
 */
function shortDestination(ab: ArrayBufferLike, where: string, mismatch: DmacopyRangeError): Error {
  checkBuffer(ab, bufferShape(ab), where);
  return mismatch;
}

function lengthMismatch(i: number, dstBytes: number, len: number): DmacopyRangeError {
  return new DmacopyRangeError(
    'ERR_DMACOPY_LENGTH_MISMATCH',
    `dsts[${i}] has ${dstBytes} bytes but srcs[${i}] has ${len}: each destination must be at least as long as its source`,
    { argument: `dsts[${i}]` },
  );
}

/** Most folios one batch may have: completions are counted per folio in 32-bit counters. */
export const MAX_FOLIOS = 0xffffffff;

function prepareRegion(dst: ArrayBufferView, src: ArrayBufferView, folioSize: unknown): BatchTable {
  const dk = typedArrayKind(dst);
  const sk = typedArrayKind(src);
  const bytes = sk !== undefined ? intrinsicByteLengthOf(src) : dataViewBytes(src, 'src');
  const dstBytes = dk !== undefined ? intrinsicByteLengthOf(dst) : dataViewBytes(dst, 'dst');
  if (dstBytes < bytes) {
    throw shortDestination(
      viewBufferOf(dst, dk),
      'dst',
      new DmacopyRangeError(
        'ERR_DMACOPY_LENGTH_MISMATCH',
        `dst has ${dstBytes} bytes but src has ${bytes}: the destination must be at least as long as the source`,
        { argument: 'dst' },
      ),
    );
  }
  let folio = bytes;
  if (folioSize !== undefined) {
    if (typeof folioSize !== 'number')
      throw invalidArg('options.folioSize', `folioSize must be a number of bytes, got ${describe(folioSize)}`);
    if (!Number.isSafeInteger(folioSize) || folioSize < 1) {
      throw outOfRange('options.folioSize', `folioSize must be a positive integer number of bytes (e.g. 4096), got ${folioSize}`);
    }
    folio = folioSize;
  }
  const buffers = new BufferTable();
  const di = buffers.indexOf(viewBufferOf(dst, dk), 'dst');
  const si = buffers.indexOf(viewBufferOf(src, sk), 'src');
  const table = new Float64Array([di, viewByteOffsetOf(dst, dk), si, viewByteOffsetOf(src, sk), bytes, Math.max(folio, 1)]);
  const folios = bytes === 0 ? 0 : Math.ceil(bytes / Math.max(folio, 1));
  // Completions are counted per folio in 32 bits (lib/ and the native layer alike).
  if (folios > MAX_FOLIOS) {
    throw outOfRange(
      'options.folioSize',
      `${bytes} bytes in folios of ${folio} make ${folios} folios, more than the ${MAX_FOLIOS} a batch may have: use a larger folioSize`,
    );
  }
  return { form: TableForm.Region, buffers: buffers.views, table, folios, bytes };
}

/** An integer from min to max inclusive (min may be 0 or negative: the name says range, not sign). */
export function checkIntInRange(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArg(name, `${name} must be a number, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export function checkNonNegative(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArg(name, `${name} must be a number, got ${describe(value)}`);
  if (!(value >= 0) || value > MAX_SAFE) throw outOfRange(name, `${name} must be a non-negative number, got ${value}`);
  return value;
}
