// The copy loop used when the native addon cannot load on this host (not Linux x86-64, or no
// compiler and no prebuild). Slower than the native engine but correct, so copyBatch still works.
// The native plan checks overlap; a batch it never sees is checked here, by the same rules.

import { DmacopyRangeError } from '../errors';
import { TableForm } from '../native/abi';
import type { BatchTable } from './validate';
import { typedArraySet } from './view-getters';

export function copyInJs(batch: BatchTable): void {
  const t = batch.table;
  const bufs = batch.buffers;
  if (batch.form === TableForm.Region) {
    const dst = bufs[t[0] as number] as Uint8Array;
    const src = bufs[t[2] as number] as Uint8Array;
    typedArraySet(dst, src.subarray(t[3] as number, (t[3] as number) + batch.bytes), t[1] as number);
    return;
  }
  for (let j = 0; j < t.length; j += 5) {
    const len = t[j + 4] as number;
    if (len === 0) continue;
    const dst = bufs[t[j] as number] as Uint8Array;
    const src = bufs[t[j + 2] as number] as Uint8Array;
    typedArraySet(dst, src.subarray(t[j + 3] as number, (t[j + 3] as number) + len), t[j + 1] as number);
  }
}

/** One folio's destination or source bytes: [start, end) of buffer `buf` (an index into BatchTable.buffers). */
interface Span {
  buf: number;
  start: number;
  end: number;
  folio: number;
}

const byPlace = (a: Span, b: Span) => a.buf - b.buf || a.start - b.start;

/**
 * ERR_DMACOPY_OVERLAP, as the native plan raises it (batch_plan.cc: check_overlaps and
 * check_region_overlap), for a batch copied without the addon: destinations that share a byte,
 * or a destination that shares a byte with any source (its own included); empty folios never
 * overlap. The table names buffers by index, one per distinct ArrayBuffer, so bytes of different
 * buffers never overlap here. (The native check compares addresses, so it also sees two
 * SharedArrayBuffer objects over the same memory; without the addon such aliases go unseen.)
 */
export function checkOverlapInJs(batch: BatchTable): void {
  const t = batch.table;
  if (batch.form === TableForm.Region) {
    const total = batch.bytes;
    const d = t[1] as number;
    const s = t[3] as number;
    if (total > 0 && t[0] === t[2] && d < s + total && s < d + total) throw overlap('the destination region overlaps the source region');
    return;
  }
  const dsts: Span[] = [];
  const srcs: Span[] = [];
  for (let j = 0, f = 0; j < t.length; j += 5, f++) {
    const len = t[j + 4] as number;
    if (len === 0) continue;
    dsts.push({ buf: t[j] as number, start: t[j + 1] as number, end: (t[j + 1] as number) + len, folio: f });
    srcs.push({ buf: t[j + 2] as number, start: t[j + 3] as number, end: (t[j + 3] as number) + len, folio: f });
  }
  dsts.sort(byPlace);
  for (let i = 1; i < dsts.length; i++) {
    const a = dsts[i - 1] as Span;
    const b = dsts[i] as Span;
    if (a.buf === b.buf && b.start < a.end) {
      throw overlap(`destinations of folios ${Math.min(a.folio, b.folio)} and ${Math.max(a.folio, b.folio)} overlap`);
    }
  }
  // Destinations are disjoint and sorted now, sources sorted the same way: one merge pass finds
  // any source that shares a byte with a destination.
  srcs.sort(byPlace);
  let j = 0;
  for (const s of srcs) {
    while (j < dsts.length && byPlaceEnd(dsts[j] as Span, s)) j++;
    if (j === dsts.length) break;
    const d = dsts[j] as Span;
    if (d.buf === s.buf && d.start < s.end) throw overlap(`destination of folio ${d.folio} overlaps the source of folio ${s.folio}`);
  }
}

/** True while destination d lies wholly before source s (earlier buffer, or ends at or before its start). */
function byPlaceEnd(d: Span, s: Span): boolean {
  return d.buf < s.buf || (d.buf === s.buf && d.end <= s.start);
}

function overlap(what: string): DmacopyRangeError {
  return new DmacopyRangeError('ERR_DMACOPY_OVERLAP', `${what}: give every folio its own destination bytes`);
}
