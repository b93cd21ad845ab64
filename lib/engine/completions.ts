// The per-thread registry of batches in flight. The native layer delivers completion events for
// all engines of this thread through one callback; this module routes them to their batches and
// keeps the event loop alive exactly while batches are in flight. The registry hangs off the
// binding object, so two copies of this module loaded in one thread (say lib/ and dist/) share it.
import { isMainThread } from 'node:worker_threads';
import type { NativeBinding } from '../native/abi';
import { nativeBinding } from '../native/loader';
import { type BatchOp, dispatchEvents } from './work';

interface Registry {
  ops: Map<number, BatchOp>;
  nextId: number;
}

const REGISTRY = Symbol.for('dmacopy.completionRegistry');

function registry(): { b: NativeBinding; r: Registry } {
  const b = nativeBinding();
  if (b === undefined) throw new Error('completion registry used without the native addon');
  const holder = b as unknown as { [REGISTRY]?: Registry };
  let r = holder[REGISTRY];
  if (r === undefined) {
    const created: Registry = { ops: new Map(), nextId: 1 };
    b.setEventHandler((events) => dispatchEvents(events, created.ops), isMainThread);
    holder[REGISTRY] = created;
    r = created;
  }
  return { b, r };
}

/** Installs this thread's event handler (device engines need it before they open). */
export function ensureEventChannel(): void {
  registry();
}

export function nextOpId(): number {
  const { r } = registry();
  // Op ids travel as doubles; wrapping far below 2^53 keeps them exact.
  const id = r.nextId;
  r.nextId = id >= 2 ** 52 ? 1 : id + 1;
  return id;
}

/** Registers a batch before its first descriptor is submitted. */
export function track(op: BatchOp): void {
  const { b, r } = registry();
  if (r.ops.size === 0) b.refEvents();
  r.ops.set(op.id, op);
}

/** Called once when a batch settles (resolved or rejected). */
export function untrack(op: BatchOp): void {
  const { b, r } = registry();
  if (!r.ops.delete(op.id)) return;
  if (r.ops.size === 0) b.unrefEvents();
}

export function inFlight(): number {
  return nativeBinding() ? registry().r.ops.size : 0;
}
