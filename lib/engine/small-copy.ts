// Tiny batches (a few folios, a few KiB): validated and copied right here with TypedArray#set,
// V8's memmove. Crossing into native code and building a plan costs more than such a copy, and
// the batch never leaves the calling thread anyway. Anything unusual (shared or resizable
// buffers, detached or empty views, overlap, bad arguments) is left to the full path, which
// validates it and raises the precise error.

/** Most folios and bytes a batch may have to take this path. */
export const SMALL_MAX_FOLIOS = 16;
export const SMALL_MAX_BYTES = 64 * 1024;

import { DmacopyTypeError } from '../errors';
import { bufferOf, byteOffsetOf, lengthOf } from './view-getters';

type View = ArrayBufferView;

function plainBuffer(ab: ArrayBufferLike): boolean {
  return ab instanceof ArrayBuffer && (ab as ArrayBuffer & { resizable?: boolean }).resizable !== true;
}

/**
 * Bytes of a list- or region-form call if it qualifies for the small path, else -1. Region form
 * qualifies without folioSize only (one folio), or with it (folios are slices of one copy).
 */
export function smallBatchBytes(dsts: unknown, srcs: unknown, options: unknown): number {
  if (options !== undefined) {
    if (options === null || typeof options !== 'object') return -1;
    for (const k in options) if (k !== 'folioSize') return -1;
  }
  if (ArrayBuffer.isView(dsts)) {
    if (!ArrayBuffer.isView(srcs)) return -1;
    const folio = (options as { folioSize?: unknown } | undefined)?.folioSize;
    if (folio !== undefined && (typeof folio !== 'number' || !Number.isSafeInteger(folio) || folio < 1)) return -1;
    oneDst[0] = dsts;
    oneSrc[0] = srcs;
    try {
      return batchBytes(oneDst, oneSrc, 1);
    } finally {
      oneDst[0] = undefined;
      oneSrc[0] = undefined;
    }
  }
  if (!Array.isArray(dsts) || !Array.isArray(srcs) || dsts.length !== srcs.length || dsts.length > SMALL_MAX_FOLIOS) return -1;
  if ((options as { folioSize?: unknown } | undefined)?.folioSize !== undefined) return -1;
  return batchBytes(dsts, srcs, dsts.length);
}

/** A region-form pair as a one-folio list, without allocating one per call. */
const oneDst: unknown[] = [undefined];
const oneSrc: unknown[] = [undefined];

/** The usual layout through its fast scan, anything else through the general one. */
function batchBytes(dsts: unknown[], srcs: unknown[], n: number): number {
  const bytes = scanUsual(dsts, srcs, n);
  return bytes === NOT_USUAL ? pairBytes(dsts, srcs, n) : bytes;
}

// Scratch arrays reused across calls (never shrunk: setting .length is a runtime call), cleared
// slot by slot after each batch so the caller's buffers are never kept alive here. Each view's
// buffer and offset are read once (the getters cost tens of ns each on Node 20). The views
// themselves are kept until copySmall() or forgetSmall(): the copy uses exactly the views that
// were checked, never a second read of the list (a Proxy could answer differently).
const bufs: (ArrayBufferLike | undefined)[] = []; // 2i: destination of folio i, 2i+1: its source
const offs: number[] = [];
const lens: number[] = [];
const views: (View | undefined)[] = []; // 2i: destination of folio i, 2i+1: its source
/** The distinct buffers of the batch (each checked once: plain, and still attached at the end). */
const distinct: (ArrayBufferLike | undefined)[] = [];
let nDistinct = 0;
let pairs = 0;
/** Every view of the accepted batch is a Uint8Array (Buffers included): copy with set() as is. */
let allU8 = false;

function pairBytes(dsts: unknown[], srcs: unknown[], n: number): number {
  let bytes = -1;
  try {
    bytes = scanPairs(dsts, srcs, n);
    return bytes;
  } finally {
    for (let i = 0; i < 2 * n; i++) bufs[i] = undefined;
    for (let i = 0; i < nDistinct; i++) distinct[i] = undefined;
    nDistinct = 0;
    if (bytes < 0) {
      for (let i = 0; i < 2 * n; i++) views[i] = undefined;
      pairs = 0;
    }
  }
}

/** Index of ab among the distinct buffers, adding it (after the plain-buffer check) if new; -1: not plain. */
function noteBuffer(ab: ArrayBufferLike): number {
  for (let k = 0; k < nDistinct; k++) if (distinct[k] === ab) return k;
  if (!plainBuffer(ab)) return -1;
  distinct[nDistinct] = ab;
  return nDistinct++;
}

function scanPairs(dsts: unknown[], srcs: unknown[], n: number): number {
  let bytes = 0;
  let u8 = true;
  // Destinations all in one buffer, at increasing offsets, and no source in that buffer: the
  // overlap check is then one pass (the usual layout); anything else takes the pairwise check.
  let ordered = true;
  let dstBuf: ArrayBufferLike | undefined;
  let lastDb: ArrayBufferLike | undefined;
  let lastSb: ArrayBufferLike | undefined;
  for (let i = 0; i < n; i++) {
    const d = dsts[i];
    const s = srcs[i];
    if (!ArrayBuffer.isView(d) || !ArrayBuffer.isView(s)) return -1;
    const du8 = d instanceof Uint8Array;
    const su8 = s instanceof Uint8Array;
    const len = su8 ? s.length : s.byteLength;
    if (len === 0 || (du8 ? d.length : d.byteLength) < len) return -1;
    bytes += len;
    if (bytes > SMALL_MAX_BYTES) return -1;
    u8 = u8 && du8 && su8;
    // Each getter is read once: .buffer and .byteOffset cost tens of ns each on Node 20.
    const db = d.buffer;
    const sb = s.buffer;
    if (db !== lastDb) {
      if (noteBuffer(db) < 0) return -1;
      lastDb = db;
    }
    if (sb !== lastSb) {
      if (noteBuffer(sb) < 0) return -1;
      lastSb = sb;
    }
    const doff = d.byteOffset;
    if (i === 0) dstBuf = db;
    else if (db !== dstBuf || doff < (offs[2 * i - 2] as number) + (lens[i - 1] as number)) ordered = false;
    if (sb === dstBuf) ordered = false;
    // Slot 2i: the destination, 2i+1: the source.
    bufs[2 * i] = db;
    offs[2 * i] = doff;
    bufs[2 * i + 1] = sb;
    offs[2 * i + 1] = s.byteOffset;
    lens[i] = len;
    views[2 * i] = d;
    views[2 * i + 1] = s;
  }
  pairs = n;
  allU8 = u8;
  if (!ordered && overlaps(n)) return -1;
  // Every getter has run now: one of them may have detached a buffer read before it. A detached
  // buffer has no bytes, and every view of the batch had some.
  for (let k = 0; k < nDistinct; k++) {
    if ((distinct[k] as ArrayBufferLike).byteLength === 0) {
      const i = bufs.indexOf(distinct[k]);
      forgetSmall();
      const where = `${i & 1 ? 'srcs' : 'dsts'}[${i >> 1}]`;
      throw new DmacopyTypeError(
        'ERR_DMACOPY_DETACHED',
        `${where}'s ArrayBuffer was detached (transferred) while the batch was being read: nothing was copied; pass buffers this thread keeps`,
        { argument: where },
      );
    }
  }
  return bytes;
}

const NOT_USUAL = -2;

/**
 * The fast scan of the usual layout: every view a Uint8Array (Buffers included), destinations in
 * one buffer at increasing offsets, no source in that buffer, every buffer a plain ArrayBuffer.
 * No overlap is then possible, and the general scan's bookkeeping (offsets, lengths and buffers
 * of every view, the pairwise check) is not needed: it reads 8 getters a pair where that one
 * reads 10, and keeps only the views. Returns the bytes, or NOT_USUAL for any other batch (which
 * the general scan then reads afresh, raising the precise error if it is bad); a getter that
 * throws (an object that only claims Uint8Array.prototype) is NOT_USUAL too.
 */
function scanUsual(dsts: unknown[], srcs: unknown[], n: number): number {
  let ok = false;
  try {
    let bytes = 0;
    let end = 0;
    let dstBuf: ArrayBufferLike | undefined;
    let lastSb: ArrayBufferLike | undefined;
    for (let i = 0; i < n; i++) {
      const d = dsts[i];
      const s = srcs[i];
      if (!(d instanceof Uint8Array) || !(s instanceof Uint8Array)) return NOT_USUAL;
      const len = lengthOf(s);
      if (len === 0 || lengthOf(d) < len) return NOT_USUAL;
      bytes += len;
      if (bytes > SMALL_MAX_BYTES) return NOT_USUAL;
      const db = bufferOf(d);
      const off = byteOffsetOf(d);
      if (i === 0) {
        if (!plainBuffer(db)) return NOT_USUAL;
        dstBuf = db;
      } else if (db !== dstBuf || off < end) return NOT_USUAL;
      end = off + len;
      const sb = bufferOf(s);
      if (sb !== lastSb) {
        if (sb === dstBuf || !plainBuffer(sb)) return NOT_USUAL;
        distinct[nDistinct++] = sb; // checked for detachment below (repeats are harmless)
        lastSb = sb;
      }
      views[2 * i] = d;
      views[2 * i + 1] = s;
    }
    // Every getter has run: one of them may have detached a buffer read before it (see scanPairs).
    if ((dstBuf as ArrayBufferLike).byteLength === 0) return NOT_USUAL;
    for (let k = 0; k < nDistinct; k++) if ((distinct[k] as ArrayBufferLike).byteLength === 0) return NOT_USUAL;
    ok = true;
    pairs = n;
    allU8 = true;
    return bytes;
  } catch {
    return NOT_USUAL;
  } finally {
    for (let k = 0; k < nDistinct; k++) distinct[k] = undefined;
    nDistinct = 0;
    if (!ok) for (let i = 0; i < 2 * n; i++) views[i] = undefined;
  }
}

/** The pairwise check: does a destination share bytes with another destination or any source? */
function overlaps(n: number): boolean {
  for (let a = 0; a < 2 * n; a += 2) {
    const la = lens[a >> 1] as number;
    for (let b = 0; b < 2 * n; b++) {
      if (b === a || ((b & 1) === 0 && b < a)) continue;
      if (bufs[a] !== bufs[b]) continue;
      const lb = lens[b >> 1] as number;
      if ((offs[a] as number) < (offs[b] as number) + lb && (offs[b] as number) < (offs[a] as number) + la) return true;
    }
  }
  return false;
}

/** Drops the views smallBatchBytes() kept, when the batch takes another path. */
export function forgetSmall(): void {
  for (let i = 0; i < 2 * pairs; i++) views[i] = undefined;
  pairs = 0;
}

/** Copies the batch smallBatchBytes() just accepted, from the views it checked. */
export function copySmall(): void {
  try {
    if (allU8) for (let i = 0; i < pairs; i++) (views[2 * i] as Uint8Array).set(views[2 * i + 1] as Uint8Array);
    else for (let i = 0; i < pairs; i++) copyPair(views[2 * i] as View, views[2 * i + 1] as View);
  } finally {
    forgetSmall();
  }
}

function copyPair(d: View, s: View): void {
  if (d instanceof Uint8Array && s instanceof Uint8Array) {
    d.set(s);
    return;
  }
  const len = s.byteLength;
  new Uint8Array(d.buffer, d.byteOffset, len).set(new Uint8Array(s.buffer, s.byteOffset, len));
}
