// What the library reads of a caller's views and buffers, through V8's own getters only: the
// %TypedArray%, DataView, ArrayBuffer and SharedArrayBuffer prototypes' getters and
// %TypedArray%.prototype.set, captured at load and bound to Function.prototype.call then (Node's
// primordials do the same). No user code runs in them: a `buffer`, `byteOffset` or `length` a
// script defines on a view or its prototype, a typed array whose prototype was swapped, or a
// replaced `call` or `set` cannot change what a batch reads, checks or copies.
//
// `buffer` costs ~7-7.6 ns a read on Node 20 to 26: V8 implements it as a C++ builtin, which
// its optimizing compiler never inlines. The kind, `length` and `byteOffset` are builtins it
// inlines, the last two only when it knows the view's map (see MAPS_FOR_V8 in small-copy.ts):
// ~1 ns then, ~3 ns otherwise (`node scripts/bench-view-read.js --getters`). From Node 22 the
// plain properties of a Buffer are inlined in a hot loop, so reading a list this way costs 38-39
// against 26-27 ns a folio there (`node scripts/bench-view-read.js`), the price of views that
// cannot lie. The typed-array getters throw on anything but a typed array; typedArrayKind()
// says which a value is without throwing.

const TYPED_ARRAY_PROTO = Object.getPrototypeOf(Uint8Array.prototype) as object;

function intrinsic(
  name: 'buffer' | 'byteOffset' | 'length' | 'byteLength' | typeof Symbol.toStringTag,
): (this: ArrayBufferView) => unknown {
  const get = Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTO, name)?.get;
  if (get === undefined) throw new Error(`%TypedArray%.prototype.${String(name)} has no getter`);
  return get as (this: ArrayBufferView) => unknown;
}

const getBuffer = intrinsic('buffer');
const getByteOffset = intrinsic('byteOffset');
const getLength = intrinsic('length');
const getByteLength = intrinsic('byteLength');
const getTag = intrinsic(Symbol.toStringTag);

const uncurry = Function.prototype.bind.bind(Function.prototype.call) as <A extends unknown[], R>(
  fn: (this: never, ...args: A) => R,
) => (self: unknown, ...args: A) => R;

/** A typed array's ArrayBuffer, through the intrinsic getter (throws on anything else). */
export const intrinsicBufferOf = uncurry(getBuffer as () => ArrayBufferLike) as (view: ArrayBufferView) => ArrayBufferLike;
/** A typed array's byte offset, through the intrinsic getter (throws on anything else). */
export const intrinsicByteOffsetOf = uncurry(getByteOffset as () => number) as (view: ArrayBufferView) => number;
/** A typed array's length in elements, through the intrinsic getter (0 once detached; throws on anything else). */
export const intrinsicLengthOf = uncurry(getLength as () => number) as (view: ArrayBufferView) => number;
/** A typed array's length in bytes, through the intrinsic getter (0 once detached; throws on anything else). */
export const intrinsicByteLengthOf = uncurry(getByteLength as () => number) as (view: ArrayBufferView) => number;
/**
 * What a value really is: 'Uint8Array' for a Uint8Array or Buffer, the kind of any other typed
 * array, undefined for anything else (a DataView, a Proxy, a plain object). Unlike instanceof it
 * runs no user code and cannot be fooled by a typed array whose prototype was swapped.
 */
export const typedArrayKind = uncurry(getTag as () => string | undefined) as (value: unknown) => string | undefined;

const abResizableGetter = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get;
const abResizable = abResizableGetter ? (uncurry(abResizableGetter as () => boolean) as (ab: ArrayBufferLike) => boolean) : undefined;
const abByteLength = uncurry(Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')?.get as () => number) as (
  ab: ArrayBufferLike,
) => number;

/**
 * True for a fixed-length ArrayBuffer, false for a resizable one; throws on anything else (a
 * SharedArrayBuffer included). Runs no user code: ArrayBuffer.prototype's own getter.
 */
export const isFixedArrayBuffer = (ab: ArrayBufferLike): boolean => {
  if (abResizable === undefined) {
    abByteLength(ab); // throws unless an ArrayBuffer; none is resizable without the getter
    return true;
  }
  return abResizable(ab) === false;
};

const dvGetter = (name: 'buffer' | 'byteOffset' | 'byteLength') =>
  uncurry(Object.getOwnPropertyDescriptor(DataView.prototype, name)?.get as () => unknown);
const dvBuffer = dvGetter('buffer') as (view: ArrayBufferView) => ArrayBufferLike;
const dvByteOffset = dvGetter('byteOffset') as (view: ArrayBufferView) => number;
const dvByteLength = dvGetter('byteLength') as (view: ArrayBufferView) => number;

/**
 * A view's buffer, byte offset and byte length through V8's own getters, whatever it is: `kind`
 * is typedArrayKind(view), undefined for a DataView. No user code runs, and a typed array whose
 * prototype was swapped is measured by its real kind.
 */
export const viewBufferOf = (view: ArrayBufferView, kind: string | undefined): ArrayBufferLike =>
  kind !== undefined ? intrinsicBufferOf(view) : dvBuffer(view);
export const viewByteOffsetOf = (view: ArrayBufferView, kind: string | undefined): number =>
  kind !== undefined ? intrinsicByteOffsetOf(view) : dvByteOffset(view);
export const viewByteLengthOf = (view: ArrayBufferView, kind: string | undefined): number =>
  kind !== undefined ? intrinsicByteLengthOf(view) : dvByteLength(view);

const sabGrowableGetter =
  typeof SharedArrayBuffer === 'function' ? Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'growable')?.get : undefined;
const sabGrowable = sabGrowableGetter ? (uncurry(sabGrowableGetter as () => boolean) as (ab: ArrayBufferLike) => boolean) : undefined;
const sabByteLength =
  typeof SharedArrayBuffer === 'function'
    ? (uncurry(Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, 'byteLength')?.get as () => number) as (
        ab: ArrayBufferLike,
      ) => number)
    : undefined;

/** A buffer's byte length and whether it can change size, read with its own class's getters (no user code). */
export function bufferShape(ab: ArrayBufferLike): { byteLength: number; resizable: boolean } {
  try {
    return { byteLength: abByteLength(ab), resizable: abResizable?.(ab) === true };
  } catch {
    // Not an ArrayBuffer: a SharedArrayBuffer (what else a view can sit on).
    return { byteLength: (sabByteLength as (ab: ArrayBufferLike) => number)(ab), resizable: sabGrowable?.(ab) === true };
  }
}

/** %TypedArray%.prototype.set as a function of (target, source, offset), captured at load. */
export const typedArraySet = uncurry(
  (TYPED_ARRAY_PROTO as { set: (this: Uint8Array, src: ArrayLike<number>, offset?: number) => void }).set as (
    src: ArrayLike<number>,
    offset?: number,
  ) => void,
) as (target: Uint8Array, src: ArrayLike<number>, offset?: number) => void;

/** performance.now, captured at load: the engine reads the clock between a check and its copy. */
export const clockMs: () => number = performance.now.bind(performance);
