// Tiny batches (a few folios, a few KiB): validated and copied right here with TypedArray#set,
// V8's memmove. Crossing into native code and building a plan costs more than such a copy, and
// the batch never leaves the calling thread anyway. Anything unusual (shared, resizable or
// detached buffers, DataViews, empty views, overlap, bad arguments) is left to the full path,
// which validates it and raises the precise error.
//
// A batch is read in two passes. Pass 1 takes the views out of the caller's arrays: reading an
// element may run the caller's code (an index getter, a Proxy), which may detach or transfer a
// buffer. Pass 2 reads everything else about the views through V8's own getters, captured at
// load (view-getters.ts), which run no user code: what it reads stays true until the copy, which
// copies exactly the views it checked. A `buffer` or `byteOffset` a script defined on a view, or
// a typed array whose prototype was swapped, therefore cannot misdirect the check or the copy.
//
// The caller's code may also start batches of its own: from an element getter during pass 1
// (that batch takes the full path, see `scanning`), or from a diagnostics_channel subscriber
// between the check and the copy (the engine takes the checked batch out of the scratch state
// first, see takeSmallBatch()).

import {
  intrinsicBufferOf,
  intrinsicByteLengthOf,
  intrinsicByteOffsetOf,
  intrinsicLengthOf,
  isFixedArrayBuffer,
  typedArrayKind,
  typedArraySet,
} from './view-getters';

/** Most folios and bytes a batch may have to take this path. */
export const SMALL_MAX_FOLIOS = 16;
export const SMALL_MAX_BYTES = 64 * 1024;

/** One small batch: its views as pass 1 took them, and what pass 2 read of them. */
export class SmallBatch {
  // Reused across batches (never shrunk: setting .length is a runtime call), cleared slot by slot
  // once the batch is copied or refused, so the caller's buffers are never kept alive here.
  /** Slot 2i: the destination of folio i, 2i+1: its source. */
  readonly views: unknown[] = [];
  /** The general scan's reads: the copy of views that are not all Uint8Arrays and the destination check use them. */
  readonly bufs: (ArrayBufferLike | undefined)[] = [];
  readonly offs: number[] = [];
  readonly lens: number[] = [];
  pairs = 0;
  folios = 0;
  /** Every view is a Uint8Array (Buffers included): copy with set() as is. */
  allU8 = false;
  /** The usual layout's one destination buffer. */
  usualDst: ArrayBufferLike | undefined = undefined;

  /** Drops the views and reads of the first n pairs. */
  drop(n: number): void {
    for (let i = 0; i < 2 * n; i++) {
      this.views[i] = undefined;
      this.bufs[i] = undefined;
    }
    this.usualDst = undefined;
    this.pairs = 0;
  }

  /**
   * Copies the accepted batch, from the views and reads pass 2 checked, then drops it. Copies of
   * Uint8Arrays go straight through set(); other typed arrays are copied as bytes (set() between
   * two kinds would convert element values), over the buffers and offsets pass 2 read.
   */
  copy(): void {
    const { views, bufs, offs, lens, pairs } = this;
    try {
      if (this.allU8) for (let i = 0; i < pairs; i++) typedArraySet(views[2 * i] as Uint8Array, views[2 * i + 1] as Uint8Array);
      else {
        for (let i = 0; i < pairs; i++) {
          const len = lens[i] as number;
          const d = new Uint8Array(bufs[2 * i] as ArrayBuffer, offs[2 * i] as number, len);
          typedArraySet(d, new Uint8Array(bufs[2 * i + 1] as ArrayBuffer, offs[2 * i + 1] as number, len));
        }
      }
    } finally {
      this.drop(pairs);
    }
  }

  /**
   * False if a buffer of the batch was detached since pass 2 read it: only code the engine ran
   * between the check and the copy can have done it (a diagnostics_channel subscriber). Intrinsic
   * reads: runs no user code itself.
   */
  attached(): boolean {
    for (let i = 0; i < 2 * this.pairs; i++) if (intrinsicByteLengthOf(this.views[i] as ArrayBufferView) === 0) return false;
    return true;
  }

  /** Calls visit with every destination buffer, as pass 2 read it; drops the batch if visit throws. */
  forEachDestination(visit: (ab: ArrayBufferLike) => void): void {
    try {
      if (this.usualDst !== undefined) visit(this.usualDst);
      else for (let i = 0; i < this.pairs; i++) visit(this.bufs[2 * i] as ArrayBufferLike);
    } catch (err) {
      this.drop(this.pairs);
      throw err;
    }
  }
}

/** The batch smallBatchBytes() fills. */
let scratch = new SmallBatch();
/** Pass 1 is reading the caller's arrays: a batch their code starts takes the full path. */
let scanning = false;

/**
 * Bytes of a list- or region-form call if it qualifies for the small path, else -1. Region form
 * qualifies without folioSize only (one folio), or with it (folios are slices of one copy).
 * When it qualifies, the batch is held for copySmall() (or dropped by forgetSmall()).
 */
export function smallBatchBytes(dsts: unknown, srcs: unknown, options: unknown): number {
  if (scanning) return NOT_SMALL;
  scanning = true;
  try {
    return scan(scratch, dsts, srcs, options);
  } finally {
    scanning = false;
  }
}

function scan(b: SmallBatch, dsts: unknown, srcs: unknown, options: unknown): number {
  if (options !== undefined) {
    if (options === null || typeof options !== 'object') return NOT_SMALL;
    for (const k in options) if (k !== 'folioSize') return NOT_SMALL;
  }
  const views = b.views;
  let n: number;
  let folio: unknown;
  if (ArrayBuffer.isView(dsts)) {
    if (!ArrayBuffer.isView(srcs)) return NOT_SMALL;
    folio = (options as { folioSize?: unknown } | undefined)?.folioSize;
    if (folio !== undefined && (typeof folio !== 'number' || !Number.isSafeInteger(folio) || folio < 1)) return NOT_SMALL;
    views[0] = dsts;
    views[1] = srcs;
    n = 1;
  } else {
    if (!Array.isArray(dsts) || !Array.isArray(srcs)) return NOT_SMALL;
    n = dsts.length;
    // A Proxy's length can be anything: only a whole number of folios takes this path.
    if (!Number.isInteger(n) || n < 1 || n > SMALL_MAX_FOLIOS || n !== srcs.length) return NOT_SMALL;
    if ((options as { folioSize?: unknown } | undefined)?.folioSize !== undefined) return NOT_SMALL;
    // Pass 1: the elements only (see the top of this file). A getter that throws leaves nothing here.
    try {
      for (let i = 0; i < n; i++) {
        views[2 * i] = dsts[i];
        views[2 * i + 1] = srcs[i];
      }
    } catch (err) {
      b.drop(n);
      throw err;
    }
  }
  let bytes = NOT_SMALL;
  try {
    bytes = usualBytes(b, n);
    if (bytes === NOT_USUAL) bytes = generalBytes(b, n);
  } catch {
    // A getter refused a value that is not a typed array (a Proxy, an object that only claims a
    // typed array's prototype) or a buffer that is not an ArrayBuffer: the full path decides.
    bytes = NOT_SMALL;
  }
  if (bytes < 0) {
    b.drop(n);
    return NOT_SMALL;
  }
  b.pairs = n;
  b.folios = folio === undefined ? n : Math.ceil(bytes / (folio as number));
  return bytes;
}

/** The batch smallBatchBytes() just accepted. */
export function smallBatch(): SmallBatch {
  return scratch;
}

/**
 * The batch smallBatchBytes() just accepted, taken out of the scratch state, which a fresh
 * instance replaces: batches started before this one is copied (from a diagnostics_channel
 * subscriber) then cannot overwrite it. Allocates; the engine calls it only while tracing.
 */
export function takeSmallBatch(): SmallBatch {
  const b = scratch;
  scratch = new SmallBatch();
  return b;
}

/** Drops the batch smallBatchBytes() accepted, when it takes another path. */
export function forgetSmall(): void {
  scratch.drop(scratch.pairs);
}

/** Copies the batch smallBatchBytes() just accepted. */
export function copySmall(): void {
  scratch.copy();
}

// MAPS_FOR_V8: pass 2 reads element 0 of each view once it knows the view is a typed array, and
// drops the value. The element load's feedback gives V8's optimizing compiler the views' maps,
// and with them it inlines the intrinsic `length` and `byteOffset` getters that follow as field
// loads, ~1 ns instead of ~5-6 ns a read (`buffer` is a C++ builtin it never inlines; `node
// scripts/bench-view-read.js --getters`). Each function reads its own views so that its feedback
// stays monomorphic or polymorphic. Safe in pass 2: a typed array's element read never consults
// its prototype chain, so it runs no user code, even out of bounds or detached (it gives undefined).

const NOT_SMALL = -1;
const NOT_USUAL = -2;

/**
 * Pass 2, the usual layout: every view a Uint8Array (Buffers included), destinations in one
 * buffer at increasing offsets, no source in that buffer, every buffer a fixed-length
 * ArrayBuffer. No overlap is then possible, and the general scan's bookkeeping (offsets, lengths
 * and buffers of every view, the pairwise check) is not needed. Returns the bytes, or NOT_USUAL
 * for any other batch, which generalBytes() then reads. A buffer detached in pass 1 reads as
 * length 0 here and is refused.
 *
 * Nearly all of its time is its seven reads a folio, most of it the two `buffer` reads
 * (docs/benchmarks.md).
 */
function usualBytes(b: SmallBatch, n: number): number {
  const views = b.views;
  let bytes = 0;
  let end = 0;
  let dstBuf: ArrayBufferLike | undefined;
  let lastSb: ArrayBufferLike | undefined;
  for (let i = 0; i < n; i++) {
    const d = views[2 * i] as Uint8Array;
    const s = views[2 * i + 1] as Uint8Array;
    if (typedArrayKind(d) !== 'Uint8Array' || typedArrayKind(s) !== 'Uint8Array') return NOT_USUAL;
    // For V8 only: see MAPS_FOR_V8.
    void d[0];
    void s[0];
    const len = intrinsicLengthOf(s);
    if (len === 0 || intrinsicLengthOf(d) < len) return NOT_USUAL;
    bytes += len;
    if (bytes > SMALL_MAX_BYTES) return NOT_SMALL;
    const db = intrinsicBufferOf(d);
    const off = intrinsicByteOffsetOf(d);
    if (i === 0) {
      if (!isFixedArrayBuffer(db)) return NOT_SMALL;
      dstBuf = db;
    } else if (db !== dstBuf || off < end) return NOT_USUAL;
    end = off + len;
    const sb = intrinsicBufferOf(s);
    if (sb !== lastSb) {
      if (sb === dstBuf) return NOT_USUAL;
      if (!isFixedArrayBuffer(sb)) return NOT_SMALL;
      lastSb = sb;
    }
  }
  b.allU8 = true;
  b.usualDst = dstBuf;
  return bytes;
}

/**
 * Pass 2, any layout of typed arrays (DataViews are left to the full path): each view's buffer,
 * offset and byte length, then the pairwise overlap check unless the destinations are in order
 * in one buffer that holds no source. Returns the bytes, or NOT_SMALL.
 */
function generalBytes(b: SmallBatch, n: number): number {
  const { views, bufs, offs, lens } = b;
  let bytes = 0;
  let u8 = true;
  let ordered = true;
  let dstBuf: ArrayBufferLike | undefined;
  for (let i = 0; i < n; i++) {
    const d = views[2 * i] as ArrayBufferView;
    const s = views[2 * i + 1] as ArrayBufferView;
    const dKind = typedArrayKind(d);
    const sKind = typedArrayKind(s);
    if (dKind === undefined || sKind === undefined) return NOT_SMALL;
    // For V8 only: see MAPS_FOR_V8.
    void (d as Uint8Array)[0];
    void (s as Uint8Array)[0];
    u8 = u8 && dKind === 'Uint8Array' && sKind === 'Uint8Array';
    const len = intrinsicByteLengthOf(s);
    if (len === 0 || intrinsicByteLengthOf(d) < len) return NOT_SMALL;
    bytes += len;
    if (bytes > SMALL_MAX_BYTES) return NOT_SMALL;
    const db = intrinsicBufferOf(d);
    const sb = intrinsicBufferOf(s);
    if (!isFixedArrayBuffer(db) || !isFixedArrayBuffer(sb)) return NOT_SMALL;
    const doff = intrinsicByteOffsetOf(d);
    if (i === 0) dstBuf = db;
    else if (db !== dstBuf || doff < (offs[2 * i - 2] as number) + (lens[i - 1] as number)) ordered = false;
    if (sb === dstBuf) ordered = false;
    bufs[2 * i] = db;
    offs[2 * i] = doff;
    bufs[2 * i + 1] = sb;
    offs[2 * i + 1] = intrinsicByteOffsetOf(s);
    lens[i] = len;
  }
  if (!ordered && overlaps(b, n)) return NOT_SMALL;
  b.allU8 = u8;
  b.usualDst = undefined;
  return bytes;
}

/** The pairwise check: does a destination share bytes with another destination or any source? */
function overlaps(b: SmallBatch, n: number): boolean {
  const { bufs, offs, lens } = b;
  for (let a = 0; a < 2 * n; a += 2) {
    const la = lens[a >> 1] as number;
    for (let c = 0; c < 2 * n; c++) {
      if (c === a || ((c & 1) === 0 && c < a)) continue;
      if (bufs[a] !== bufs[c]) continue;
      const lc = lens[c >> 1] as number;
      if ((offs[a] as number) < (offs[c] as number) + lc && (offs[c] as number) < (offs[a] as number) + la) return true;
    }
  }
  return false;
}
