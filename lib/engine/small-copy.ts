// Tiny batches (a few folios, a few KiB): validated and copied right here with TypedArray#set,
// V8's memmove. Crossing into native code and building a plan costs more than such a copy, and
// the batch never leaves the calling thread anyway. Anything unusual (shared or resizable
// buffers, detached or empty views, overlap, bad arguments) is left to the full path, which
// validates it and raises the precise error.

/** Most folios and bytes a batch may have to take this path. */
export const SMALL_MAX_FOLIOS = 16;
export const SMALL_MAX_BYTES = 64 * 1024;

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
// getters cost tens of ns each on Node 20), then compared pairwise for overlap.
const bufs: ArrayBufferLike[] = [];
const offs: number[] = [];
const lens: number[] = [];

function pairBytes(dsts: unknown[], srcs: unknown[], n: number): number {
  try {
    return scanPairs(dsts, srcs, n);
  } finally {
    bufs.length = 0; // never keep the caller's buffers alive in the scratch array
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
  }
  // A destination may share bytes with no other destination and no source.
  for (let a = 0; a < 2 * n; a += 2) {
    const la = lens[a >> 1] as number;
    for (let b = 0; b < 2 * n; b++) {
      if (b === a || ((b & 1) === 0 && b < a)) continue;
      if (bufs[a] !== bufs[b]) continue;
      const lb = lens[b >> 1] as number;
      if ((offs[a] as number) < (offs[b] as number) + lb && (offs[b] as number) < (offs[a] as number) + la) {
        bufs.length = 0;
        return -1;
      }
    }
  }
  bufs.length = 0; // do not keep the caller's buffers alive
  return bytes;
}

/** Copies a batch smallBatchBytes() accepted. */
export function copySmall(dsts: unknown, srcs: unknown): void {
  if (ArrayBuffer.isView(dsts)) {
    copyPair(dsts, srcs as View);
    return;
  }
  const d = dsts as View[];
  const s = srcs as View[];
  for (let i = 0; i < d.length; i++) copyPair(d[i] as View, s[i] as View);
}

function copyPair(d: View, s: View): void {
  if (d instanceof Uint8Array && s instanceof Uint8Array) {
    d.set(s);
    return;
  }
  const len = s.byteLength;
  new Uint8Array(d.buffer, d.byteOffset, len).set(new Uint8Array(s.buffer, s.byteOffset, len));
}
