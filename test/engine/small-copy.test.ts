// The small-batch path (lib/engine/small-copy.ts): batches of a few folios are read, checked and
// copied in JavaScript on the calling thread. Its one-pass overlap check (destinations in one
// buffer at increasing offsets, no source in that buffer) and its pairwise fallback must agree
// with the full path's verdict on every layout, and it must keep no buffer alive.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Engine, openEngine } from '../../lib/index';
import { fillPattern, runNode } from '../helpers';

let engine: Engine;
beforeAll(async () => {
  engine = await openEngine({ backend: 'cpu' });
});
afterAll(async () => {
  await engine.close();
});

function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
}

describe('small-batch path', () => {
  it('property: any layout of up to 16 folios in one shared buffer copies exactly or is refused as overlap, like the full path', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ d: fc.integer({ min: 0, max: 600 }), s: fc.integer({ min: 0, max: 600 }), len: fc.integer({ min: 1, max: 100 }) }),
          { minLength: 1, maxLength: 16 },
        ),
        fc.boolean(),
        (folios, sharedSrc) => {
          const buf = new Uint8Array(800);
          const other = new Uint8Array(800);
          fillPattern(buf, 1);
          fillPattern(other, 2);
          const dsts = folios.map((f) => buf.subarray(f.d, f.d + f.len));
          const srcs = folios.map((f) => (sharedSrc ? buf : other).subarray(f.s, f.s + f.len));
          const overlap = folios.some((a, i) =>
            folios.some(
              (b, j) => (i !== j && a.d < b.d + b.len && b.d < a.d + a.len) || (sharedSrc && a.d < b.s + b.len && b.s < a.d + a.len),
            ),
          );
          const expected = folios.map((f) => Buffer.from((sharedSrc ? buf : other).subarray(f.s, f.s + f.len)));
          const got = outcome(() => engine.copyBatchSync(dsts, srcs));
          if (overlap) return got === 'ERR_DMACOPY_OVERLAP';
          return got === 'ok' && folios.every((f, i) => Buffer.compare(buf.subarray(f.d, f.d + f.len), expected[i] as Buffer) === 0);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('destinations out of order and sources in the destination buffer are still checked', () => {
    const buf = new Uint8Array(64 * 1024);
    fillPattern(buf, 3);
    const a = buf.subarray(8192, 12288);
    const b = buf.subarray(0, 4096);
    // Out of order, disjoint: copies.
    expect(outcome(() => engine.copyBatchSync([a, b], [buf.subarray(16384, 20480), buf.subarray(20480, 24576)]))).toBe('ok');
    expect(Buffer.compare(a, buf.subarray(16384, 20480))).toBe(0);
    // Out of order, overlapping destinations.
    expect(
      outcome(() => engine.copyBatchSync([a, buf.subarray(10000, 11000)], [buf.subarray(30000, 34096), buf.subarray(40000, 41000)])),
    ).toBe('ERR_DMACOPY_OVERLAP');
    // In order, but a later source overlaps an earlier destination.
    expect(outcome(() => engine.copyBatchSync([b, a], [buf.subarray(30000, 34096), buf.subarray(100, 4196)]))).toBe('ERR_DMACOPY_OVERLAP');
  });

  it('keeps no buffer alive after the copy (--expose-gc)', () => {
    const script = `
      const { openEngine } = require(process.env.DMACOPY_DIST);
      (async () => {
        const e = await openEngine({ backend: 'cpu' });
        let collected = 0;
        const reg = new FinalizationRegistry(() => collected++);
        for (let i = 0; i < 20; i++) {
          const d = new Uint8Array(4096), s = new Uint8Array(4096);
          reg.register(d.buffer, i); reg.register(s.buffer, i);
          e.copyBatchSync([d.subarray(0, 2048), d.subarray(2048)], [s.subarray(0, 2048), s.subarray(2048)]);
          await e.copyBatch(d, s);
        }
        for (let i = 0; i < 10 && collected < 40; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)); }
        console.log(collected);
        await e.close();
      })();
    `;
    const r = runNode(script);
    expect(r.stderr).toBe('');
    expect(Number(r.stdout.trim())).toBeGreaterThanOrEqual(38); // the last batch's buffers may sit in registers
  });

  it('keeps no buffer alive after an element getter threw (--expose-gc)', () => {
    const script = `
      const { openEngine } = require(process.env.DMACOPY_DIST);
      (async () => {
        const e = await openEngine({ backend: 'cpu' });
        let collected = 0;
        const reg = new FinalizationRegistry(() => collected++);
        let thrown = 0;
        (() => {
          const b = Array.from({ length: 4 }, () => new Uint8Array(4096));
          for (const x of b) reg.register(x.buffer, 0);
          const dsts = [b[0], b[1], null];
          Object.defineProperty(dsts, 2, { get() { throw new Error('boom'); } });
          try { e.copyBatchSync(dsts, [b[2], b[3], new Uint8Array(1)]); } catch (err) { if (err.message === 'boom') thrown++; }
        })();
        // Smaller batches after it reuse only the first slots of the scratch state.
        for (let i = 0; i < 5; i++) e.copyBatchSync([new Uint8Array(64)], [new Uint8Array(64)]);
        for (let i = 0; i < 10 && collected < 4; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)); }
        console.log(thrown, collected);
        await e.close();
      })();
    `;
    const r = runNode(script);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1 4');
  });
});

describe('list tables (one per thread, reused)', () => {
  for (const n of [9000, 100]) {
    it(`a batch started from a getter of another (${n > 8192 ? 'chunked' : 'unchunked'}) gets its own table: both copy exactly`, () => {
      nested(n);
    });
  }

  function nested(n: number): void {
    const make = (seed: number) => {
      const src = new Uint8Array(n * 64);
      fillPattern(src, seed);
      const dst = new Uint8Array(n * 64);
      const dsts = Array.from({ length: n }, (_, i) => dst.subarray(i * 64, (i + 1) * 64));
      const srcs = Array.from({ length: n }, (_, i) => src.subarray(i * 64, (i + 1) * 64));
      return { src, dst, dsts, srcs };
    };
    const inner = make(7);
    const outer = make(8);
    let ran = false;
    const hostile = new Proxy(outer.dsts, {
      get(target, key, receiver) {
        if (key === String(Math.floor(n / 2) + 5) && !ran) {
          ran = true;
          engine.copyBatchSync(inner.dsts, inner.srcs);
        }
        return Reflect.get(target, key, receiver);
      },
    });
    engine.copyBatchSync(hostile, outer.srcs);
    expect(ran).toBe(true);
    expect(Buffer.compare(inner.dst, inner.src)).toBe(0);
    expect(Buffer.compare(outer.dst, outer.src)).toBe(0);
  }
});

describe('small-batch path, views of every kind', () => {
  const KINDS = [Uint8Array, Uint16Array, Int32Array, Float64Array, Uint8ClampedArray, BigInt64Array] as const;
  it('property: typed arrays of any kinds, DataViews and Buffers copy as bytes, exactly', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            dk: fc.integer({ min: 0, max: KINDS.length + 1 }),
            sk: fc.integer({ min: 0, max: KINDS.length + 1 }),
            words: fc.integer({ min: 1, max: 64 }),
            spare: fc.integer({ min: 0, max: 2 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        (folios) => {
          // Lengths in multiples of 8 bytes, so every kind can view them; destinations may be longer.
          const view = (k: number, ab: ArrayBuffer): ArrayBufferView => {
            if (k === KINDS.length) return new DataView(ab);
            if (k === KINDS.length + 1) return Buffer.from(ab);
            const C = KINDS[k] as (typeof KINDS)[number];
            return new C(ab);
          };
          const pairs = folios.map((f, i) => {
            const sab = new ArrayBuffer(f.words * 8);
            fillPattern(new Uint8Array(sab), 20 + i);
            const dab = new ArrayBuffer((f.words + f.spare) * 8);
            return { s: view(f.sk, sab), d: view(f.dk, dab), sab, dab };
          });
          const r = engine.copyBatchSync(
            pairs.map((p) => p.d),
            pairs.map((p) => p.s),
          );
          expect(r.bytes).toBe(folios.reduce((n, f) => n + f.words * 8, 0));
          for (const p of pairs) {
            expect(Buffer.compare(Buffer.from(p.dab, 0, p.sab.byteLength), Buffer.from(p.sab))).toBe(0);
            expect(new Uint8Array(p.dab, p.sab.byteLength).every((b) => b === 0)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('small-batch path against scripts that lie or interfere', () => {
  const TYPED_ARRAY_PROTO = Object.getPrototypeOf(Uint8Array.prototype) as { set: unknown };

  it('a `buffer` or `byteOffset` a script defines on a view cannot hide an overlap', () => {
    for (const form of ['list', 'region'] as const) {
      const buf = new Uint8Array(8192);
      fillPattern(buf, 4);
      const before = Buffer.from(buf);
      const d = buf.subarray(0, 4096);
      const s = buf.subarray(2048, 6144);
      Object.defineProperty(d, 'buffer', { get: () => new ArrayBuffer(4096) });
      Object.defineProperty(d, 'byteOffset', { get: () => 0 });
      expect(outcome(() => (form === 'list' ? engine.copyBatchSync([d], [s]) : engine.copyBatchSync(d, s)))).toBe('ERR_DMACOPY_OVERLAP');
      expect(Buffer.compare(buf, before)).toBe(0);
    }
  });

  it('a typed array dressed as a Uint8Array (prototype swapped) is copied by its real bytes', () => {
    const src = new Float32Array(1024);
    for (let i = 0; i < src.length; i++) src[i] = i + 0.5;
    const dst = new Float32Array(1024);
    Object.setPrototypeOf(src, Uint8Array.prototype);
    Object.setPrototypeOf(dst, Uint8Array.prototype);
    const r = engine.copyBatchSync([dst as unknown as Uint8Array], [src as unknown as Uint8Array]);
    expect(r.bytes).toBe(4096);
    expect(Buffer.compare(Buffer.from(dst.buffer), Buffer.from(src.buffer))).toBe(0);
  });

  it('replacing %TypedArray%.prototype.set after load changes no copy', () => {
    const original = TYPED_ARRAY_PROTO.set;
    const src = new Uint8Array(4096).fill(9);
    const dst = new Uint8Array(4096);
    TYPED_ARRAY_PROTO.set = () => {};
    try {
      engine.copyBatchSync([dst], [src]);
    } finally {
      TYPED_ARRAY_PROTO.set = original;
    }
    expect(dst.every((b) => b === 9)).toBe(true);
  });

  it('replacing Function.prototype.call after load changes no read and no copy', () => {
    const call = Function.prototype.call;
    const src = new Uint8Array(4096).fill(6);
    const dst = new Uint8Array(4096);
    // A call that does nothing: every `getter.call(view)` the engine made would return undefined.
    Function.prototype.call = (() => undefined) as typeof call;
    let r: { bytes: number } | undefined;
    try {
      r = engine.copyBatchSync([dst], [src]);
    } finally {
      Function.prototype.call = call;
    }
    expect(r?.bytes).toBe(4096);
    expect(dst.every((b) => b === 6)).toBe(true);
  });

  it('a performance.now a script replaced cannot run between the check and the copy', () => {
    const now = performance.now;
    const inner = { src: new Uint8Array(64).fill(1), dst: new Uint8Array(64) };
    const outer = { src: new Uint8Array(32 * 1024).fill(2), dst: new Uint8Array(32 * 1024) };
    let ran = 0;
    performance.now = () => {
      ran++;
      engine.copyBatchSync([inner.dst], [inner.src]);
      return now.call(performance);
    };
    try {
      // 32 KiB: the policy samples its time (every batch until it has a rate, then one in 8).
      for (let i = 0; i < 16; i++) {
        outer.dst.fill(0);
        engine.copyBatchSync([outer.dst], [outer.src]);
        expect(outer.dst.every((b) => b === 2)).toBe(true);
      }
    } finally {
      performance.now = now;
    }
    expect(ran).toBe(0);
  });

  it('a Proxy list whose length is not a whole number of folios is refused as a bad argument', () => {
    for (const length of [-1, 1.5, '2', Number.NaN, 2 ** 53]) {
      const lying = (views: Uint8Array[]) => new Proxy(views, { get: (t, k, r) => (k === 'length' ? length : Reflect.get(t, k, r)) });
      const dsts = lying([new Uint8Array(16), new Uint8Array(16)]);
      const srcs = lying([new Uint8Array(16).fill(1), new Uint8Array(16).fill(1)]);
      expect(
        outcome(() => engine.copyBatchSync(dsts, srcs)),
        String(length),
      ).toBe('ERR_DMACOPY_INVALID_ARG');
    }
  });

  it('a batch started from an element getter while the list is read: both copy exactly', () => {
    const make = (seed: number) => {
      const src = new Uint8Array(8 * 512);
      fillPattern(src, seed);
      const dst = new Uint8Array(8 * 512);
      const dsts = Array.from({ length: 8 }, (_, i) => dst.subarray(i * 512, (i + 1) * 512));
      const srcs = Array.from({ length: 8 }, (_, i) => src.subarray(i * 512, (i + 1) * 512));
      return { src, dst, dsts, srcs };
    };
    const inner = make(11);
    const outer = make(12);
    let ran = false;
    const hostile = new Proxy(outer.srcs, {
      get(target, key, receiver) {
        if (key === '5' && !ran) {
          ran = true;
          engine.copyBatchSync(inner.dsts, inner.srcs);
        }
        return Reflect.get(target, key, receiver);
      },
    });
    engine.copyBatchSync(outer.dsts, hostile);
    expect(ran).toBe(true);
    expect(Buffer.compare(inner.dst, inner.src)).toBe(0);
    expect(Buffer.compare(outer.dst, outer.src)).toBe(0);
  });

  it('a dmacopy:batch:start subscriber that starts its own batch, or transfers a buffer of this one', async () => {
    const dc = await import('node:diagnostics_channel');
    const inner = { src: new Uint8Array(4096).fill(3), dst: new Uint8Array(4096) };
    const outer = { src: new Uint8Array(4096).fill(4), dst: new Uint8Array(4096) };
    let mode: 'nest' | 'detach' | 'off' = 'nest';
    const onStart = () => {
      if (mode === 'nest') {
        mode = 'off';
        engine.copyBatchSync([inner.dst], [inner.src]);
      } else if (mode === 'detach') {
        mode = 'off';
        structuredClone(outer.src.buffer, { transfer: [outer.src.buffer] });
      }
    };
    dc.subscribe('dmacopy:batch:start', onStart);
    try {
      // The subscriber's own batch does not overwrite the one that started it.
      engine.copyBatchSync([outer.dst], [outer.src]);
      expect(inner.dst.every((b) => b === 3)).toBe(true);
      expect(outer.dst.every((b) => b === 4)).toBe(true);
      // A transferred source: refused with the library's error, the destination untouched.
      outer.dst.fill(0);
      mode = 'detach';
      expect(outcome(() => engine.copyBatchSync([outer.dst], [outer.src]))).toBe('ERR_DMACOPY_DETACHED');
      expect(outer.dst.every((b) => b === 0)).toBe(true);
    } finally {
      dc.unsubscribe('dmacopy:batch:start', onStart);
    }
  });
});

describe('elapsedNs of small batches', () => {
  it('is 0 for small batches nobody observes, measured while a subscriber listens and for larger inline batches', async () => {
    const dc = await import('node:diagnostics_channel');
    const src = new Uint8Array(4096).fill(1);
    const dst = new Uint8Array(4096);
    expect(engine.copyBatchSync([dst], [src]).elapsedNs).toBe(0);
    expect((await engine.copyBatch(dst, src)).elapsedNs).toBe(0);
    const onEnd = () => {};
    dc.subscribe('dmacopy:batch:end', onEnd);
    try {
      expect(engine.copyBatchSync([dst], [src]).elapsedNs).toBeGreaterThan(0);
    } finally {
      dc.unsubscribe('dmacopy:batch:end', onEnd);
    }
    // Above the small path's 64 KiB: timed (inline or threaded).
    const big = new Uint8Array(128 * 1024).fill(2);
    expect(engine.copyBatchSync(new Uint8Array(big.length), big, { folioSize: 4096 }).elapsedNs).toBeGreaterThan(0);
  });
});
