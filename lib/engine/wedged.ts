// Memory a DSA device may still write: the buffers of batches that ended wedged (a queue's Drain
// did not complete within drainTimeoutMs, so its descriptors may still complete at any time,
// writing their destinations with the source bytes of back then). They stay referenced for the
// life of the process, so their memory is never freed and reused under a late write, and no
// later batch may write into them: its bytes could be overwritten by that late write after it
// resolved. Checking costs nothing until the first wedge.
import { DmacopyError } from '../errors';
import { TableForm } from '../native/abi';
import type { BatchTable } from './validate';
import { intrinsicBufferOf } from './view-getters';

const kept: Uint8Array[][] = [];
const marked = new WeakSet<ArrayBufferLike>();
let batches = 0;

/** Keeps a wedged batch's buffers (every buffer it pinned, sources included) for good. */
export function keepWedged(pins: readonly Uint8Array[]): void {
  kept.push(pins.slice());
  for (const b of pins) marked.add(intrinsicBufferOf(b));
  batches++;
}

/** Buffers kept for batches that ended wedged (tests and stats). */
export function wedgedBuffersKept(): number {
  return kept.reduce((n, b) => n + b.length, 0);
}

function refuse(): never {
  throw new DmacopyError(
    'ERR_DMACOPY_DEVICE_WEDGED',
    'A destination of this batch lies in memory of an earlier batch that a wedged DSA queue may still write (that ' +
      'batch rejected with ERR_DMACOPY_DEVICE_WEDGED): a late device write could overwrite these bytes after this ' +
      'batch resolved. Copy into other memory; reset the device or restart the process to use this memory again.',
  );
}

/** The distinct buffers a batch writes (prepared batches keep them: their table is dropped). */
export function destinationBuffers(batch: BatchTable): Uint8Array[] {
  const t = batch.table;
  const step = batch.form === TableForm.Region ? Math.max(1, t.length) : 5; // region: one row; list: 5 doubles a folio
  const out = new Set<Uint8Array>();
  for (let j = 0; j < t.length; j += step) {
    const b = batch.buffers[t[j] as number];
    if (b !== undefined) out.add(b);
  }
  return [...out];
}

/** Throws ERR_DMACOPY_DEVICE_WEDGED when a destination of the batch lies in wedged memory. */
export function checkTableDestinations(batch: BatchTable): void {
  if (batches === 0) return;
  const t = batch.table;
  const step = batch.form === TableForm.Region ? Math.max(1, t.length) : 5;
  for (let j = 0; j < t.length; j += step) {
    const b = batch.buffers[t[j] as number];
    if (b !== undefined && marked.has(intrinsicBufferOf(b))) refuse();
  }
}

/** The same for a prepared batch's destination buffers (views the library made at prepare()). */
export function checkViewDestinations(dsts: readonly Uint8Array[]): void {
  if (batches === 0) return;
  for (const d of dsts) if (marked.has(intrinsicBufferOf(d))) refuse();
}

/** True once any batch ended wedged (until then no destination needs checking). */
export function anyWedged(): boolean {
  return batches > 0;
}

/** The same for one destination buffer the small-batch path read (see SmallBatch.forEachDestination). */
export function checkDestinationBuffer(ab: ArrayBufferLike): void {
  if (marked.has(ab)) refuse();
}
