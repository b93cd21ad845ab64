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

function intrinsic(name: 'buffer' | 'byteOffset' | 'length'): (this: ArrayBufferView) => unknown {
  const get = Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTO, name)?.get;
  if (get === undefined) throw new Error(`%TypedArray%.prototype.${name} has no getter`);
  return get as (this: ArrayBufferView) => unknown;
}

const getBuffer = intrinsic('buffer');
const getByteOffset = intrinsic('byteOffset');
const getLength = intrinsic('length');

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
