// The copy loop used when the native addon cannot load on this host (not Linux x86-64, or no
// compiler and no prebuild). Slower than the native engine but correct, so copyBatch still works.
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
