// The per-view getters of the list-form loop (lib/engine/view-getters.ts): whichever version the
// running V8 gets, they read what the properties say, on Buffers, plain and other typed arrays.
import { describe, expect, it } from 'vitest';
import { bufferOf, byteOffsetOf, lengthOf } from '../../lib/engine/view-getters';

describe('view getters', () => {
  it('read the buffer, byte offset and length of any typed array view', () => {
    const ab = new ArrayBuffer(4096);
    const views: ArrayBufferView[] = [
      Buffer.alloc(64),
      Buffer.from(ab, 100, 50),
      new Uint8Array(ab, 8, 16),
      new Float64Array(ab, 64, 4),
      new Uint8Array(0),
      Buffer.allocUnsafe(10), // from Node's shared pool: a non-zero offset into a larger buffer
    ];
    for (const v of views) {
      expect(bufferOf(v)).toBe(v.buffer);
      expect(byteOffsetOf(v)).toBe(v.byteOffset);
      if (v instanceof Uint8Array) expect(lengthOf(v)).toBe(v.length);
    }
  });

  it('see a detached view as empty, like the properties', () => {
    const ab = new ArrayBuffer(64);
    const v = new Uint8Array(ab, 16, 16);
    structuredClone(ab, { transfer: [ab] });
    expect(lengthOf(v)).toBe(v.length);
    expect(lengthOf(v)).toBe(0);
    expect(byteOffsetOf(v)).toBe(v.byteOffset);
    expect(bufferOf(v)).toBe(v.buffer);
  });
});
