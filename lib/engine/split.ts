// Splits a batch into per-channel works, as evenly as the kernel's folios_copy_dma() splits
// folios across DMA channels (share i = n*(i+1)/k - n*i/k), but over 4 KiB units of bytes
// rather than whole folios, so one 2 MiB folio still spreads over every channel. Weighted splits
// (a CPU share beside a device) cut the same units in proportion to the weights.
import { TableForm } from '../native/abi';
import type { BatchTable } from './validate';

/** Work boundaries fall on multiples of this many bytes of the batch (one base page). */
export const SPLIT_UNIT = 4096;

/** Start of share i of n units split k ways: floor(n*i/k) without overflowing 2^53. */
export function shareBegin(n: number, i: number, k: number): number {
  return Math.floor(n / k) * i + Math.floor(((n % k) * i) / k);
}

/** Byte offsets in the batch where works 1..k-1 start (even split, or by weights). */
export function boundaryBytes(bytes: number, k: number, weights?: readonly number[]): number[] {
  const units = Math.ceil(bytes / SPLIT_UNIT);
  const out: number[] = [];
  let total = 0;
  let cum = 0;
  if (weights) for (const x of weights) total += x;
  for (let w = 1; w < k; w++) {
    let unit: number;
    if (weights && total > 0) {
      cum += weights[w - 1] ?? 0;
      unit = Math.round((units * cum) / total);
    } else {
      unit = shareBegin(units, w, k);
    }
    out.push(Math.min(bytes, unit * SPLIT_UNIT));
  }
  return out;
}

/**
 * The k+1 boundaries of k works as (folio index, byte offset in folio) pairs, the form the native
 * layer cuts pieces from. Work w covers bytes [start(w), start(w+1)) of the batch.
 */
export function workBounds(batch: BatchTable, k: number, weights?: readonly number[]): Float64Array {
  const out = new Float64Array(2 * (k + 1));
  const starts = boundaryBytes(batch.bytes, k, weights);
  const t = batch.table;
  if (batch.form === TableForm.Region) {
    const folio = t[5] as number;
    starts.forEach((b, i) => {
      const w = i + 1;
      if (b >= batch.bytes) {
        out[2 * w] = batch.folios;
        out[2 * w + 1] = 0;
      } else {
        out[2 * w] = Math.floor(b / folio);
        out[2 * w + 1] = b % folio;
      }
    });
  } else {
    // One pass over the folio lengths; boundaries only move forward.
    let f = 0;
    let cum = 0;
    const n = batch.folios;
    starts.forEach((b, i) => {
      const w = i + 1;
      while (f < n && cum + (t[5 * f + 4] as number) <= b) {
        cum += t[5 * f + 4] as number;
        f++;
      }
      out[2 * w] = f;
      out[2 * w + 1] = f < n ? b - cum : 0;
    });
  }
  out[2 * k] = batch.folios;
  out[2 * k + 1] = 0;
  return out;
}
