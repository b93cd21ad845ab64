// The getters every view is read through (lib/engine/view-getters.ts): V8's own, bound at load.
// They read what the properties say on honest views of every kind, and the truth on views that
// lie about themselves.
import { describe, expect, it } from 'vitest';
import { bufferShape, typedArrayKind, viewBufferOf, viewByteLengthOf, viewByteOffsetOf } from '../../lib/engine/view-getters';

describe('view getters', () => {
  it('read the buffer, byte offset and byte length of any view', () => {
    const ab = new ArrayBuffer(4096);
    const views: ArrayBufferView[] = [
      Buffer.alloc(64),
      Buffer.from(ab, 100, 50),
      new Uint8Array(ab, 8, 16),
      new Float64Array(ab, 64, 4),
      new DataView(ab, 12, 40),
      new Uint8Array(0),
      Buffer.allocUnsafe(10), // from Node's shared pool: a non-zero offset into a larger buffer
    ];
    for (const v of views) {
      const k = typedArrayKind(v);
      expect(k).toBe(v instanceof DataView ? undefined : (v as Uint8Array)[Symbol.toStringTag]);
      expect(viewBufferOf(v, k)).toBe(v.buffer);
      expect(viewByteOffsetOf(v, k)).toBe(v.byteOffset);
      expect(viewByteLengthOf(v, k)).toBe(v.byteLength);
    }
    expect(typedArrayKind(Buffer.alloc(1))).toBe('Uint8Array');
    expect(typedArrayKind({})).toBe(undefined);
  });

  it('see a detached view as empty, like the properties', () => {
    const ab = new ArrayBuffer(64);
    const v = new Uint8Array(ab, 16, 16);
    structuredClone(ab, { transfer: [ab] });
    expect(viewByteLengthOf(v, 'Uint8Array')).toBe(0);
    expect(viewBufferOf(v, 'Uint8Array')).toBe(v.buffer);
    expect(bufferShape(ab)).toEqual({ byteLength: 0, resizable: false });
  });

  it('read the truth of views that lie, and of every kind of buffer', () => {
    const f = new Float32Array(1024);
    Object.setPrototypeOf(f, Uint8Array.prototype);
    expect(typedArrayKind(f)).toBe('Float32Array');
    expect(viewByteLengthOf(f as unknown as ArrayBufferView, 'Float32Array')).toBe(4096);
    const u = new Uint8Array(64).subarray(8);
    Object.defineProperty(u, 'buffer', { value: new ArrayBuffer(1) });
    Object.defineProperty(u, 'byteOffset', { value: 0 });
    expect(viewBufferOf(u, 'Uint8Array').byteLength).toBe(64);
    expect(viewByteOffsetOf(u, 'Uint8Array')).toBe(8);
    expect(bufferShape(new ArrayBuffer(8, { maxByteLength: 16 }))).toEqual({ byteLength: 8, resizable: true });
    expect(bufferShape(new SharedArrayBuffer(8))).toEqual({ byteLength: 8, resizable: false });
  });
});
