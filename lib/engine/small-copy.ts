// Tiny batches (a few folios, a few KiB): validated and copied right here with TypedArray#set,
// V8's memmove. Crossing into native code and building a plan costs more than such a copy, and
// the batch never leaves the calling thread anyway. Anything unusual (shared or resizable
// buffers, detached or empty views, overlap, bad arguments) is left to the full path, which
// validates it and raises the precise error.

/** Most folios and bytes a batch may have to take this path. */
export const SMALL_MAX_FOLIOS = 16;
export const SMALL_MAX_BYTES = 64 * 1024;

import { DmacopyTypeError } from '../errors';

type View = ArrayBufferView;

function plainBuffer(ab: ArrayBufferLike): boolean {
  return ab instanceof ArrayBuffer && (ab as ArrayBuffer & { resizable?: boolean }).resizable !== true;
}

function viewLength(v: View): number {
  return v instanceof Uint8Array ? v.length : v.byteLength;
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
    return pairBytes([dsts], [srcs], 1);
  }
  if (!Array.isArray(dsts) || !Array.isArray(srcs) || dsts.length !== srcs.length || dsts.length > SMALL_MAX_FOLIOS) return -1;
  if ((options as { folioSize?: unknown } | undefined)?.folioSize !== undefined) return -1;
  return pairBytes(dsts, srcs, dsts.length);
}

// Scratch arrays reused across calls: each view's buffer and offsets are read once (the
// getters cost tens of ns each on Node 20), then compared pairwise for overlap. The views
// themselves are kept until copySmall() or forgetSmall(): the copy uses exactly the views that
// were checked, never a second read of the list (a Proxy could answer differently).
const bufs: ArrayBufferLike[] = [];
const offs: number[] = [];
const lens: number[] = [];
const views: View[] = []; // 2i: destination of folio i, 2i+1: its source
let pairs = 0;

function pairBytes(dsts: unknown[], srcs: unknown[], n: number): number {
  let bytes = -1;
  try {
    bytes = scanPairs(dsts, srcs, n);
    return bytes;
  } finally {
    bufs.length = 0; // never keep the caller's buffers alive in the scratch array
    if (bytes < 0) forgetSmall();
  }
}

function scanPairs(dsts: unknown[], srcs: unknown[], n: number): number {
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const d = dsts[i];
    const s = srcs[i];
    if (!ArrayBuffer.isView(d) || !ArrayBuffer.isView(s)) return -1;
    const len = viewLength(s);
    // Each getter is read once: .buffer costs tens of ns on Node 20.
    const db = d.buffer;
    const sb = s.buffer;
    if (len === 0 || viewLength(d) < len || !plainBuffer(db) || !plainBuffer(sb)) return -1;
    bytes += len;
    if (bytes > SMALL_MAX_BYTES) return -1;
    // Slot 2i: the destination, 2i+1: the source.
    bufs[2 * i] = db;
    offs[2 * i] = d.byteOffset;
    bufs[2 * i + 1] = sb;
    offs[2 * i + 1] = s.byteOffset;
    lens[i] = len;
    views[2 * i] = d;
    views[2 * i + 1] = s;
  }
  pairs = n;
  // A destination may share bytes with no other destination and no source.
  for (let a = 0; a < 2 * n; a += 2) {
    const la = lens[a >> 1] as number;
    for (let b = 0; b < 2 * n; b++) {
      if (b === a || ((b & 1) === 0 && b < a)) continue;
      if (bufs[a] !== bufs[b]) continue;
      const lb = lens[b >> 1] as number;
      if ((offs[a] as number) < (offs[b] as number) + lb && (offs[b] as number) < (offs[a] as number) + la) return -1;
    }
  }
  // Every getter has run now: one of them may have detached a buffer read before it.
  for (let i = 0; i < 2 * n; i++) {
    const v = views[i] as View;
    if (viewLength(v) < (lens[i >> 1] as number)) {
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

/** Drops the views smallBatchBytes() kept, when the batch takes another path. */
export function forgetSmall(): void {
  views.length = 0;
  pairs = 0;
}

/** Copies the batch smallBatchBytes() just accepted, from the views it checked. */
export function copySmall(): void {
  try {
    for (let i = 0; i < pairs; i++) copyPair(views[2 * i] as View, views[2 * i + 1] as View);
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
