// Hostile input on every path: a list whose element getter detaches a buffer the batch already
// read (a Proxy transferring an earlier view's ArrayBuffer) must give ERR_DMACOPY_DETACHED, never
// a raw V8 TypeError and never a partial copy in silence. Paths: small (TypedArray#set in JS),
// inline (native, calling thread), threaded, chunked (long lists), each sync and async, on the CPU
// and on the software device.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { type DmacopyError, type Engine, openEngine } from '../../lib/index';
import { DIST } from '../helpers';

function detach(buf: ArrayBufferLike): void {
  structuredClone(buf, { transfer: [buf as ArrayBuffer] });
}

/**
 * n folios of `size` bytes, each source on its own ArrayBuffer, the destinations too or (oneDst)
 * in order in one buffer, the small path's usual layout; reading index `at` detaches folio 0's
 * source.
 */
function hostile(
  n: number,
  size: number,
  at: number,
  oneDst = false,
): { dsts: Uint8Array[]; srcs: Uint8Array[]; dstBytes: () => Uint8Array[] } {
  const pool = new Uint8Array(oneDst ? n * size : 0);
  const dsts = Array.from({ length: n }, (_, i) => (oneDst ? pool.subarray(i * size, (i + 1) * size) : new Uint8Array(size)));
  const plain = Array.from({ length: n }, (_, i) => new Uint8Array(size).fill((i % 250) + 1));
  let fired = false;
  const srcs = new Proxy(plain, {
    get(target, key, receiver) {
      if (!fired && key === String(at)) {
        fired = true;
        detach((target[0] as Uint8Array).buffer);
      }
      return Reflect.get(target, key, receiver);
    },
  });
  return { dsts, srcs, dstBytes: () => dsts };
}

const PATHS = [
  { name: 'small', n: 8, size: 4096 },
  { name: 'small, destinations in one buffer', n: 8, size: 4096, oneDst: true },
  { name: 'inline', n: 32, size: 4096 },
  { name: 'threaded', n: 256, size: 4096 },
  { name: 'chunked', n: 9000, size: 64 },
];

async function expectDetached(run: () => Promise<unknown> | unknown): Promise<void> {
  let caught: unknown;
  try {
    await run();
  } catch (err) {
    caught = err;
  }
  // A library error (DmacopyError or its Type/Range siblings) with the stable code, not V8's TypeError.
  expect(caught, String(caught)).toBeInstanceOf(Error);
  expect((caught as DmacopyError).name, String(caught)).toMatch(/^Dmacopy/);
  expect((caught as DmacopyError).code, String(caught)).toBe('ERR_DMACOPY_DETACHED');
}

describe.each(['cpu', 'emulated'] as const)('a buffer detached while the list is read (%s)', (backend) => {
  let engine: Engine;
  const open = async () => {
    engine ??= await openEngine({ backend, timeoutMs: 10_000 });
    return engine;
  };

  for (const p of PATHS) {
    for (const sync of [false, true]) {
      it(`${p.name}, ${sync ? 'copyBatchSync' : 'copyBatch'}: ERR_DMACOPY_DETACHED`, async () => {
        const e = await open();
        const { dsts, srcs } = hostile(p.n, p.size, Math.min(p.n - 1, 5), p.oneDst);
        await expectDetached(() => (sync ? e.copyBatchSync(dsts, srcs) : e.copyBatch(dsts, srcs)));
        // The engine still works afterwards.
        const src = new Uint8Array(4096).fill(7);
        const dst = new Uint8Array(4096);
        await e.copyBatch([dst], [src]);
        expect(dst[4095]).toBe(7);
      });
    }
  }

  it('closes', async () => {
    await (await open()).close();
  });
});

describe('views dressed as another kind (full path)', () => {
  it('a typed array whose prototype was swapped to Uint8Array.prototype is copied by its bytes, not its elements', async () => {
    const engine = await openEngine({ backend: 'cpu' });
    try {
      // 64 folios of 32 KiB, each the first half of its own 64 KiB buffer: above the small path.
      const srcs: Uint8Array[] = [];
      const dsts: Uint8Array[] = [];
      for (let i = 0; i < 64; i++) {
        const s = new Float32Array(new ArrayBuffer(65536), 0, 8192).fill(i + 0.25);
        const d = new Float32Array(new ArrayBuffer(65536), 0, 8192);
        Object.setPrototypeOf(s, Uint8Array.prototype);
        Object.setPrototypeOf(d, Uint8Array.prototype);
        srcs.push(s as unknown as Uint8Array);
        dsts.push(d as unknown as Uint8Array);
      }
      for (const sync of [true, false]) {
        for (const d of dsts) new Uint8Array(d.buffer).fill(0);
        const r = sync ? engine.copyBatchSync(dsts, srcs) : await engine.copyBatch(dsts, srcs);
        expect(r.bytes).toBe(64 * 32768);
        for (let i = 0; i < 64; i++) {
          const want = Buffer.from((srcs[i] as Uint8Array).buffer, 0, 32768);
          expect(Buffer.compare(Buffer.from((dsts[i] as Uint8Array).buffer, 0, 32768), want)).toBe(0);
          expect(new Uint8Array((dsts[i] as Uint8Array).buffer, 32768).every((b) => b === 0)).toBe(true);
        }
      }
      // Region form, one 2 MiB dressed Float64Array.
      const src = new Float64Array(262144).fill(1.5);
      const dst = new Float64Array(262144);
      Object.setPrototypeOf(src, Uint8Array.prototype);
      Object.setPrototypeOf(dst, Uint8Array.prototype);
      const r = engine.copyBatchSync(dst as unknown as Uint8Array, src as unknown as Uint8Array, { folioSize: 4096 });
      expect(r.bytes).toBe(2 * 1024 * 1024);
      expect(Buffer.compare(Buffer.from(dst.buffer), Buffer.from(src.buffer))).toBe(0);
    } finally {
      await engine.close();
    }
  });
});

describe('views that lie about themselves (full path, every Node)', () => {
  const MB = 1 << 20;
  let engine: Engine;
  const open = async () => {
    engine ??= await openEngine({ backend: 'cpu' });
    return engine;
  };
  const code = (f: () => unknown): string => {
    try {
      f();
      return 'ok';
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
  };

  it('a view over a resizable buffer that names a fixed one as its `buffer` is refused as resizable', async () => {
    const e = await open();
    const rab = new ArrayBuffer(MB, { maxByteLength: 2 * MB });
    const s = new Uint8Array(rab);
    Object.defineProperty(s, 'buffer', { value: new ArrayBuffer(MB) });
    expect(code(() => e.copyBatchSync([new Uint8Array(MB)], [s]))).toBe('ERR_DMACOPY_RESIZABLE');
    expect(code(() => e.copyBatchSync(new Uint8Array(MB), s))).toBe('ERR_DMACOPY_RESIZABLE');
  });

  it('an own `byteOffset` or a subclass `byteLength` changes neither where nor how much is copied', async () => {
    const e = await open();
    const ab = new ArrayBuffer(2 * MB);
    const d = new Uint8Array(ab, MB, MB);
    Object.defineProperty(d, 'byteOffset', { value: 0 });
    const r = e.copyBatchSync([d], [new Uint8Array(MB).fill(7)]);
    expect(r.bytes).toBe(MB);
    expect(new Uint8Array(ab, 0, MB).every((b) => b === 0)).toBe(true);
    expect(new Uint8Array(ab, MB).every((b) => b === 7)).toBe(true);
    class Short extends Uint8Array {
      override get byteLength(): number {
        return 4096;
      }
    }
    const src = new Short(MB).fill(5);
    const dst = new Uint8Array(MB);
    expect(e.copyBatchSync([dst], [src]).bytes).toBe(MB);
    expect(dst.every((b) => b === 5)).toBe(true);
  });

  it('a DataView dressed as a Uint8Array, and the reverse, copy exactly', async () => {
    const e = await open();
    const sab = new ArrayBuffer(MB);
    new Uint8Array(sab).fill(3);
    const dv = new DataView(sab);
    Object.setPrototypeOf(dv, Uint8Array.prototype);
    const u8 = new Uint8Array(MB).fill(4);
    Object.setPrototypeOf(u8, DataView.prototype);
    for (const [src, want] of [
      [dv, 3],
      [u8, 4],
    ] as const) {
      const d1 = new Uint8Array(MB);
      e.copyBatchSync([d1], [src as unknown as Uint8Array]);
      expect(d1.every((b) => b === want)).toBe(true);
      const d2 = new Uint8Array(MB);
      e.copyBatchSync(d2, src as unknown as Uint8Array);
      expect(d2.every((b) => b === want)).toBe(true);
    }
  });

  it('a DataView over a detached buffer is ERR_DMACOPY_DETACHED, not V8 TypeError', async () => {
    const e = await open();
    const ab = new ArrayBuffer(MB);
    const s = new DataView(ab);
    structuredClone(ab, { transfer: [ab] });
    expect(code(() => e.copyBatchSync([new Uint8Array(MB)], [s]))).toBe('ERR_DMACOPY_DETACHED');
    expect(code(() => e.copyBatchSync(new Uint8Array(MB), s))).toBe('ERR_DMACOPY_DETACHED');
    await e.close();
  });
});

describe('prepared batches and the JavaScript copy over views that lie', () => {
  it('an own `buffer`, `byteOffset` or `subarray` on a whole-buffer view steers no prepared run', async () => {
    const engine = await openEngine({ backend: 'cpu' });
    try {
      // Whole-buffer views: the kind the pin table once kept as they were.
      const ab = new ArrayBuffer(4096);
      const d = new Uint8Array(ab);
      const decoy = new ArrayBuffer(4096);
      Object.defineProperty(d, 'buffer', { value: decoy });
      Object.defineProperty(d, 'byteOffset', { value: 100 });
      Object.defineProperty(d, 'subarray', { value: () => new Uint8Array(1) });
      const s = new Uint8Array(4096).fill(7);
      Object.defineProperty(s, 'buffer', { value: {} });
      Object.defineProperty(s, 'subarray', { value: () => new Uint8Array(4096) });
      for (const h of [engine.prepare([d], [s]), engine.prepare(d, s)]) {
        new Uint8Array(ab).fill(0);
        expect(h.copySync().bytes).toBe(4096);
        expect(new Uint8Array(ab).every((b) => b === 7)).toBe(true);
        expect(new Uint8Array(decoy).every((b) => b === 0)).toBe(true);
        h.release();
      }
    } finally {
      await engine.close();
    }
  });
});

describe('a dmacopy:batch:start subscriber that transfers a buffer of the batch (every path)', () => {
  // The subscriber runs after the batch was checked and before it is copied: every path
  // re-checks then, and refuses with the library's error, writing nothing.
  const CASES = [
    { name: 'small, inline', size: 4096, sync: true },
    { name: 'inline (128 KiB)', size: 128 << 10, sync: true },
    { name: 'threads, copyBatchSync', size: 4 << 20, sync: true },
    { name: 'threads, copyBatch', size: 4 << 20, sync: false },
    { name: 'prepared, inline pairs', size: 4096, sync: true, prepared: true },
    { name: 'prepared, inline native (128 KiB)', size: 128 << 10, sync: true, prepared: true },
    { name: 'prepared, threads, copy()', size: 4 << 20, sync: false, prepared: true },
    { name: 'prepared, threads, copySync()', size: 4 << 20, sync: true, prepared: true },
  ];
  for (const backend of ['cpu', 'emulated'] as const) {
    it(`${backend}: ERR_DMACOPY_DETACHED and nothing written, on ${CASES.length} paths`, async () => {
      const dc = await import('node:diagnostics_channel');
      const engine = await openEngine({ backend, minOffloadBytes: 0, timeoutMs: 10_000 });
      let victim: ArrayBuffer | undefined;
      const onStart = () => {
        if (victim) detach(victim);
        victim = undefined;
      };
      dc.subscribe('dmacopy:batch:start', onStart);
      try {
        for (const c of CASES) {
          const src = new Uint8Array(c.size).fill(9);
          const dst = new Uint8Array(c.size);
          const handle = c.prepared ? engine.prepare(dst, src) : undefined;
          victim = src.buffer;
          const run = () => {
            if (handle) return c.sync ? handle.copySync() : handle.copy();
            return c.sync ? engine.copyBatchSync(dst, src) : engine.copyBatch(dst, src);
          };
          await expectDetached(run);
          expect(victim, c.name).toBeUndefined(); // the subscriber ran
          expect(
            dst.some((b) => b !== 0),
            `${c.name}: bytes written`,
          ).toBe(false);
          handle?.release();
        }
      } finally {
        dc.unsubscribe('dmacopy:batch:start', onStart);
        await engine.close();
      }
    });
  }
});

describe('a one-shot dmacopy:batch:start subscriber that transfers a buffer and unsubscribes', () => {
  it('still gets ERR_DMACOPY_DETACHED (the re-check was once skipped once nobody listened any more)', async () => {
    const dc = await import('node:diagnostics_channel');
    for (const backend of ['cpu', 'emulated'] as const) {
      const engine = await openEngine({ backend, minOffloadBytes: 0, timeoutMs: 10_000 });
      try {
        for (const sync of [true, false]) {
          const src = new Uint8Array(4 << 20).fill(5);
          const dst = new Uint8Array(4 << 20);
          const once = () => {
            dc.unsubscribe('dmacopy:batch:start', once);
            detach(src.buffer);
          };
          dc.subscribe('dmacopy:batch:start', once);
          await expectDetached(() => (sync ? engine.copyBatchSync(dst, src) : engine.copyBatch(dst, src)));
          expect(
            dst.some((b) => b !== 0),
            `${backend} ${sync}`,
          ).toBe(false);
        }
      } finally {
        await engine.close();
      }
    }
  });
});

describe('chunked lists (more than 8192 folios) against scripts', () => {
  it('an element getter of a later chunk that transfers an earlier chunk`s buffer cannot crash the process: every element is read before a chunk is submitted', () => {
    // Before, chunk 3's elements were read while the threads copied chunks 1-2 into `big`: the
    // getter transferred it, the new owner was collected, and the threads wrote freed memory
    // (SIGSEGV). A child process, so that a regression fails this test instead of the runner.
    const script = `
      const { openEngine } = require(${JSON.stringify(DIST)});
      (async () => {
        const e = await openEngine({ backend: 'cpu', cpuThreads: 2 });
        const F = 32 << 10;
        const big = new ArrayBuffer(8192 * F);
        const src = new Uint8Array(F).fill(7);
        const dsts = [], srcs = [];
        for (let i = 0; i < 8192; i++) { dsts.push(new Uint8Array(big, i * F, F)); srcs.push(src); }
        const last = new Uint8Array(F);
        Object.defineProperty(dsts, 8192, { get() { structuredClone(big, { transfer: [big] }); global.gc(); return last; } });
        srcs.push(src);
        let code = 'resolved';
        try { await e.copyBatch(dsts, srcs); } catch (err) { code = err.code; }
        console.log(JSON.stringify({ code, lastWritten: last.some((b) => b !== 0) }));
        await e.close();
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ code: 'ERR_DMACOPY_DETACHED', lastWritten: false });
  });

  it('a sparse list claiming a huge length is refused at its first hole, quickly, without aborting the process', () => {
    // Pass 1 once copied 2e8 holes until V8 could not grow its array any more (a fatal error).
    const script = `
      const { openEngine } = require(${JSON.stringify(DIST)});
      (async () => {
        const e = await openEngine({ backend: 'cpu' });
        const out = {};
        for (const len of [2e8, 5e6]) {
          const d = [new Uint8Array(8)];
          d.length = len;
          const s = [new Uint8Array(8)];
          s.length = len;
          const t0 = Date.now();
          try { e.copyBatchSync(d, s); out[len] = 'copied'; } catch (err) { out[len] = err.code + ' ' + (Date.now() - t0 < 5000); }
        }
        const huge = []; huge.length = 2 ** 26 + 1;
        try { e.copyBatchSync(huge, huge); } catch (err) { out.cap = err.code; }
        console.log(JSON.stringify(out));
        await e.close();
      })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      '5000000': 'ERR_DMACOPY_INVALID_ARG true',
      '200000000': 'ERR_DMACOPY_OUT_OF_RANGE true',
      cap: 'ERR_DMACOPY_OUT_OF_RANGE',
    });
  });

  it('a Proxy list whose length changes between reads: refused with nothing copied, or every checked folio copied', async () => {
    // Before, the chunked path read the length once more, unchecked: NaN copied nothing and
    // resolved (stats().folios became NaN for good), 100 copied 100 of 9000 folios and resolved.
    const engine = await openEngine({ backend: 'cpu' });
    try {
      const N = 9000;
      const F = 64;
      const src = new Uint8Array(N * F).map((_, i) => (i % 251) + 1);
      const dst = new Uint8Array(N * F);
      const d = Array.from({ length: N }, (_, i) => dst.subarray(i * F, (i + 1) * F));
      const s = Array.from({ length: N }, (_, i) => src.subarray(i * F, (i + 1) * F));
      let copied = 0;
      for (const later of [Number.NaN, 100]) {
        for (let honest = 1; honest <= 6; honest++) {
          for (const sync of [false, true]) {
            dst.fill(0);
            let reads = 0;
            // The first `honest` reads of the length say N, every later one lies.
            const dsts = new Proxy(d, { get: (t, k, r) => (k === 'length' ? (++reads <= honest ? N : later) : Reflect.get(t, k, r)) });
            const what = `lie from read ${honest + 1} (${later}), ${sync ? 'sync' : 'async'}`;
            let report: { folios: number; bytes: number } | undefined;
            let code: string | undefined;
            try {
              report = sync ? engine.copyBatchSync(dsts, s) : await engine.copyBatch(dsts, s);
            } catch (err) {
              code = (err as DmacopyError).code;
            }
            if (report) {
              expect(report, what).toMatchObject({ folios: N, bytes: N * F });
              expect(Buffer.from(dst).equals(Buffer.from(src)), what).toBe(true);
              copied++;
            } else {
              expect(['ERR_DMACOPY_INVALID_ARG', 'ERR_DMACOPY_LENGTH_MISMATCH'], what).toContain(code);
              expect(
                dst.some((b) => b !== 0),
                what,
              ).toBe(false);
            }
          }
        }
      }
      expect(copied).toBeGreaterThan(0); // some lies came after the checked read
      expect(engine.stats().folios).toBe(copied * N);
    } finally {
      await engine.close();
    }
  });

  it('a non-view in a later chunk: typed error naming it and the folios submitted before, no caller code run while they copy', async () => {
    const engine = await openEngine({ backend: 'cpu' });
    try {
      const N = 9000;
      const F = 64;
      const pool = new Uint8Array(N * F);
      const src = new Uint8Array(N * F).fill(3);
      const dsts: unknown[] = Array.from({ length: N }, (_, i) => pool.subarray(i * F, (i + 1) * F));
      // Describing the bad element must not run its code: chunks 1-2 are being copied then.
      let ran = false;
      const bad = {};
      Object.defineProperty(bad, 'constructor', {
        get() {
          ran = true;
          return Object;
        },
      });
      // And an object whose prototype is a Proxy: describing it must not run the Proxy's traps.
      const proxied = Object.create(
        new Proxy(
          {},
          {
            getOwnPropertyDescriptor() {
              ran = true;
              return undefined;
            },
          },
        ),
      );
      const srcs = Array.from({ length: N }, (_, i) => src.subarray(i * F, (i + 1) * F));
      for (const [what, value] of [
        ['a constructor getter', bad],
        ['a Proxy prototype', proxied],
      ] as const) {
        dsts[8500] = value;
        for (const sync of [true, false]) {
          pool.fill(0);
          let err: DmacopyError | undefined;
          try {
            if (sync) engine.copyBatchSync(dsts as Uint8Array[], srcs);
            else await engine.copyBatch(dsts as Uint8Array[], srcs);
          } catch (e) {
            err = e as DmacopyError;
          }
          expect(err?.code, what).toBe('ERR_DMACOPY_INVALID_ARG');
          expect(err?.message).toMatch(/dsts\[8500\] must be a Buffer, TypedArray or DataView, got an instance of Object/);
          expect(err?.message).toMatch(/folios 0 to 8191 were submitted before this and may have been copied/);
          expect(ran, what).toBe(false);
          // What was submitted finished before the call settled: chunks 1-2 exact.
          expect(pool.subarray(0, 8192 * F).every((b) => b === 3)).toBe(true);
        }
        expect(outcomeOf(() => engine.prepare(dsts as Uint8Array[], srcs))).toBe('ERR_DMACOPY_INVALID_ARG');
        expect(ran, what).toBe(false);
      }
    } finally {
      await engine.close();
    }
  });
});

function outcomeOf<T>(run: () => T): T extends Promise<unknown> ? Promise<string> : string {
  const codeOf = (err: unknown) => String((err as DmacopyError).code);
  try {
    const r = run();
    if (r instanceof Promise) return r.then(() => 'ok', codeOf) as never;
    return 'ok' as never;
  } catch (err) {
    return codeOf(err) as never;
  }
}
