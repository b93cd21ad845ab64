// Typed errors with stable `code`s. Every error dmacopy throws or rejects with comes from here,
// so the list of codes in the README stays complete. Messages say what to do, not only what failed.

export type DmacopyErrorCode =
  | 'ERR_DMACOPY_INVALID_ARG' // wrong type or shape of an argument (TypeError)
  | 'ERR_DMACOPY_OUT_OF_RANGE' // a number outside its allowed range (RangeError)
  | 'ERR_DMACOPY_LENGTH_MISMATCH' // lists of different lengths, or a destination shorter than its source
  | 'ERR_DMACOPY_DETACHED' // a view over a detached (transferred) ArrayBuffer
  | 'ERR_DMACOPY_RESIZABLE' // a view over a resizable ArrayBuffer or growable SharedArrayBuffer
  | 'ERR_DMACOPY_OVERLAP' // destinations overlap each other or a source
  | 'ERR_DMACOPY_CLOSED' // the engine was closed
  | 'ERR_DMACOPY_RELEASED' // a prepared batch was used after release()
  | 'ERR_DMACOPY_BUSY' // a prepared batch was run while its previous run was still in flight
  | 'ERR_DMACOPY_BACKEND_UNAVAILABLE' // the requested backend cannot run on this host
  | 'ERR_DMACOPY_SYSFS' // a sysfs or /dev root given for discovery cannot be used
  | 'ERR_DMACOPY_DEVICE' // a device or queue could not be opened or used
  | 'ERR_DMACOPY_PERMISSION' // the operation needs privileges the process lacks
  | 'ERR_DMACOPY_DEVICE_WEDGED' // the bytes are in place, but a DSA queue did not confirm it stopped writing them
  | 'ERR_DMACOPY_MISSING_PEER' // an optional peer dependency (prom-client for enableMetrics) is not installed
  | 'ERR_DMACOPY_RESOURCES' // the system refused the engine a resource it needs (threads, at a task limit)
  | 'ERR_DMACOPY_INTERNAL'; // a bug: please report it

export interface DmacopyErrorDetails {
  /** errno name from a failed system call, e.g. 'EPERM'. */
  errno?: string;
  /** The system call that failed, e.g. 'open'. */
  syscall?: string;
  /** The file the failure is about. */
  path?: string;
  /** The argument (or option) the error is about. */
  argument?: string;
  cause?: unknown;
}

function attach(err: Error & { code: string }, code: string, details?: DmacopyErrorDetails): void {
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  if (details) {
    for (const key of ['errno', 'syscall', 'path', 'argument'] as const) {
      if (details[key] !== undefined) (err as unknown as Record<string, unknown>)[key] = details[key];
    }
    if (details.cause !== undefined) (err as { cause?: unknown }).cause = details.cause;
  }
}

/** Any failure that is not a bad argument: device, backend, lifecycle. */
export class DmacopyError extends Error {
  declare readonly code: DmacopyErrorCode;
  declare readonly errno?: string;
  declare readonly syscall?: string;
  declare readonly path?: string;
  constructor(code: DmacopyErrorCode, message: string, details?: DmacopyErrorDetails) {
    super(message);
    this.name = 'DmacopyError';
    attach(this, code, details);
  }
}

/** An argument of the wrong type or shape. */
export class DmacopyTypeError extends TypeError {
  declare readonly code: DmacopyErrorCode;
  declare readonly argument?: string;
  constructor(code: DmacopyErrorCode, message: string, details?: DmacopyErrorDetails) {
    super(message);
    this.name = 'DmacopyTypeError';
    attach(this, code, details);
  }
}

/** A number or length outside what is allowed. */
export class DmacopyRangeError extends RangeError {
  declare readonly code: DmacopyErrorCode;
  declare readonly argument?: string;
  constructor(code: DmacopyErrorCode, message: string, details?: DmacopyErrorDetails) {
    super(message);
    this.name = 'DmacopyRangeError';
    attach(this, code, details);
  }
}

export function invalidArg(argument: string, message: string): DmacopyTypeError {
  return new DmacopyTypeError('ERR_DMACOPY_INVALID_ARG', message, { argument });
}

export function outOfRange(argument: string, message: string): DmacopyRangeError {
  return new DmacopyRangeError('ERR_DMACOPY_OUT_OF_RANGE', message, { argument });
}

export function closedError(): DmacopyError {
  return new DmacopyError('ERR_DMACOPY_CLOSED', 'The engine is closed: open a new one with openEngine().');
}
