// Splits a batch into per-channel works, as evenly as the kernel's folios_copy_dma() splits
// folios across DMA channels (share i = n*(i+1)/k - n*i/k), but over 4 KiB units of bytes
// rather than whole folios, so one 2 MiB folio still spreads over every channel.
import { TableForm } from './native';
import type { PreparedBatch } from './validate';

/** Work boundaries fall on multiples of this many bytes of the batch (one base page). */
export const SPLIT_UNIT = 4096;

/** Start of share i of n units split k ways: floor(n*i/k) without overflowing 2^53. */
export function shareBegin(n: number, i: number, k: number): number {
  return Math.floor(n / k) * i + Math.floor(((n % k) * i) / k);
}

/**
 * The k+1 boundaries of k works as (folio index, byte offset in folio) pairs, the form the native
 * layer cuts pieces from. Work w covers bytes [start(w), start(w+1)) of the batch.
 */
export function workBounds(batch: PreparedBatch, k: number): Float64Array {
  const out = new Float64Array(2 * (k + 1));
  const units = Math.ceil(batch.bytes / SPLIT_UNIT);
  const t = batch.table;
  if (batch.form === TableForm.Region) {
    const folio = t[5] as number;
    for (let w = 1; w < k; w++) {
      const b = shareBegin(units, w, k) * SPLIT_UNIT;
      if (b >= batch.bytes) {
        out[2 * w] = batch.folios;
        out[2 * w + 1] = 0;
      } else {
        out[2 * w] = Math.floor(b / folio);
        out[2 * w + 1] = b % folio;
      }
    }
  } else {
    // One pass over the folio lengths; boundaries only move forward.
    let f = 0;
    let cum = 0;
    const n = batch.folios;
    for (let w = 1; w < k; w++) {
      const b = Math.min(batch.bytes, shareBegin(units, w, k) * SPLIT_UNIT);
      while (f < n && cum + (t[5 * f + 4] as number) <= b) {
        cum += t[5 * f + 4] as number;
        f++;
      }
      out[2 * w] = f;
      out[2 * w + 1] = f < n ? b - cum : 0;
    }
  }
  out[2 * k] = batch.folios;
  out[2 * k + 1] = 0;
  return out;
}
