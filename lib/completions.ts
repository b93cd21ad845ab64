// The per-thread registry of batches in flight. The native layer delivers completion events for
// all engines of this thread through one callback; this module routes them to their batches and
// keeps the event loop alive exactly while batches are in flight.
import { type NativeBinding, nativeBinding } from './native';
import { type BatchOp, dispatchEvents } from './work';

const ops = new Map<number, BatchOp>();
let nextId = 1;
let installed = false;

function binding(): NativeBinding {
  const b = nativeBinding();
  if (b === undefined) throw new Error('completion registry used without the native addon');
  if (!installed) {
    b.setEventHandler((events) => dispatchEvents(events, ops));
    installed = true;
  }
  return b;
}

export function nextOpId(): number {
  // Op ids travel as doubles; wrapping far below 2^53 keeps them exact.
  const id = nextId;
  nextId = nextId >= 2 ** 52 ? 1 : nextId + 1;
  return id;
}

/** Registers a batch before its first descriptor is submitted. */
export function track(op: BatchOp): void {
  const b = binding();
  if (ops.size === 0) b.refEvents();
  ops.set(op.id, op);
}

/** Called once when a batch settles (resolved or rejected). */
export function untrack(op: BatchOp): void {
  if (!ops.delete(op.id)) return;
  if (ops.size === 0) nativeBinding()?.unrefEvents();
}

export function inFlight(): number {
  return ops.size;
}
