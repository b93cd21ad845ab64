// The three typed-array getters read once per view of a batch, each the version that is
// fastest on the running V8.
//
// V8 11 (Node 20) does not inline `view.buffer` and `view.byteOffset` on a Buffer (a subclass of
// Uint8Array): each goes through a generic load and a C++ builtin. Calling the intrinsic getter
// itself (captured here, as Node's own primordials do) is inlined. From V8 12 (Node 22) on, the
// plain properties are as fast, so they are used there (and validate.ts keeps its plain loop).
// `node scripts/bench-view-read.js` under each Node: 58 -> 39 ns a folio on Node 20, 28 either
// way on Node 22 and 24.
//
// The captured getters also cannot be replaced by a script that redefines them on
// %TypedArray%.prototype. They throw V8's TypeError on anything but a typed array: callers pass
// Uint8Arrays only (validate.ts checks `instanceof Uint8Array`; small-copy.ts catches the throw
// of an object that merely inherits from Uint8Array.prototype).

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

const V8_MAJOR = Number.parseInt(process.versions.v8, 10);
/** True where the intrinsic getters are the faster way (V8 11, Node 20). */
export const viaIntrinsics = V8_MAJOR < 12;

/** A typed array's (not a DataView's) ArrayBuffer. */
export const bufferOf: (view: ArrayBufferView) => ArrayBufferLike = viaIntrinsics
  ? (view) => getBuffer.call(view) as ArrayBufferLike
  : (view) => view.buffer;

/** A typed array's (not a DataView's) byte offset. */
export const byteOffsetOf: (view: ArrayBufferView) => number = viaIntrinsics
  ? (view) => getByteOffset.call(view) as number
  : (view) => view.byteOffset;

/** A Uint8Array's length (its bytes). */
export const lengthOf: (view: Uint8Array) => number = viaIntrinsics ? (view) => getLength.call(view) as number : (view) => view.length;

// The small-batch scan (small-copy.ts) calls the intrinsics on every Node: between its reads and
// its copy no user code may run, and a plain `view.buffer` could reach a getter a script defined
// on the view or its prototype. They cost the same as the plain reads on Node 22 and 24. Each is
// bound to Function.prototype.call at load (Node's primordials do the same), so a script that
// replaces `call` later cannot intercept them either.

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
const abResizable = abResizableGetter && (uncurry(abResizableGetter as () => boolean) as (ab: ArrayBufferLike) => boolean);
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

/** %TypedArray%.prototype.set as a function of (target, source, offset), captured at load. */
export const typedArraySet = uncurry(
  (TYPED_ARRAY_PROTO as { set: (this: Uint8Array, src: ArrayLike<number>, offset?: number) => void }).set as (
    src: ArrayLike<number>,
    offset?: number,
  ) => void,
) as (target: Uint8Array, src: ArrayLike<number>, offset?: number) => void;

/** performance.now, captured at load: the engine reads the clock between a check and its copy. */
export const clockMs: () => number = performance.now.bind(performance);
