// Prepared batches (engine.prepare): byte-exact re-runs on every path (JavaScript pairs, native
// inline, threads, the software DSA device; await and sync; list and region form), a property
// test over random layouts, every refusal (released, closed, detached, concurrent) with its code
// and without a write, and the lifetime of the plan and the buffers it pins.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type CopyReport, type Engine, type EngineOptions, openEngine, PreparedBatch } from '../../lib/index';
import { CopyMode, TableForm } from '../../lib/native/abi';
import { nativeBinding } from '../../lib/native/loader';
import { fillPattern, runNode } from '../helpers';

function detach(buf: ArrayBufferLike): void {
  structuredClone(buf, { transfer: [buf as ArrayBuffer] });
}

const opened: Engine[] = [];
async function engine(options: EngineOptions): Promise<Engine> {
  const e = await openEngine(options);
  opened.push(e);
  return e;
}
afterAll(async () => {
  for (const e of opened) await e.close();
});

/** One destination and two sources; folio i of `n` (each `len` bytes) at a stride that leaves gaps. */
function listBatch(n: number, len: number, seed: number) {
  const stride = len + 64;
  const dst = new Uint8Array(n * stride);
  const srcA = new Uint8Array(n * stride);
  const srcB = new Uint8Array(n * stride);
  fillPattern(srcA, seed);
  fillPattern(srcB, seed + 1);
  const dsts: Uint8Array[] = [];
  const srcs: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    dsts.push(dst.subarray(i * stride + 32, i * stride + 32 + len));
    srcs.push((i % 2 ? srcB : srcA).subarray(i * stride, i * stride + len));
  }
  const expectCopied = () => {
    for (let i = 0; i < n; i++) expect(Buffer.compare(dsts[i] as Uint8Array, srcs[i] as Uint8Array)).toBe(0);
  };
  return { dst, srcA, srcB, dsts, srcs, expectCopied };
}

const BACKENDS: [string, EngineOptions][] = [
  ['cpu, threads', { backend: 'cpu', cpuThreads: 2, minOffloadBytes: 0 }],
  ['cpu, inline', { backend: 'cpu', cpuThreads: 2, minOffloadBytes: 1 << 30 }],
  ['emulated', { backend: 'emulated', minOffloadBytes: 0, emulator: { queues: 2, engines: 2, jitterUs: 20 } }],
];

describe('engine.prepare', () => {
  for (const [name, options] of BACKENDS) {
    it(`${name}: re-runs copy the current bytes, both forms, await and sync`, async () => {
      const e = await engine(options);
      for (const n of [1, 8, 17, 300]) {
        const b = listBatch(n, 4096 + 7, n);
        const list = e.prepare(b.dsts, b.srcs);
        expect(list).toBeInstanceOf(PreparedBatch);
        expect([list.folios, list.bytes, list.form]).toEqual([n, n * 4103, 'list']);
        const src = new Uint8Array(n * 4096 + 100);
        const dst = new Uint8Array(src.length);
        const region = e.prepare(dst, src, { folioSize: 4096 });
        expect(region.form).toBe('region');
        for (let run = 0; run < 4; run++) {
          fillPattern(b.srcA, 100 + run);
          fillPattern(b.srcB, 200 + run);
          fillPattern(src, 300 + run);
          const sync = run % 2 === 1;
          const r1: CopyReport = sync ? list.copySync() : await list.copy();
          b.expectCopied();
          expect(r1.bytes).toBe(n * 4103);
          expect(r1.folios).toBe(n);
          const r2: CopyReport = sync ? region.copySync() : await region.copy();
          expect(Buffer.compare(dst, src)).toBe(0);
          expect(r2.cpuBytes + r2.offloadedBytes).toBe(src.length);
        }
        // Bytes outside the folios were never written.
        for (let i = 0; i < n; i++) expect(b.dst.subarray(i * 4167, i * 4167 + 32).every((x) => x === 0)).toBe(true);
        list.release();
        region.release();
      }
      expect(e.stats().prepared).toBe(0);
    });
  }

  it('runs are accounted like batches, and the device path offloads', async () => {
    const e = await engine({ backend: 'emulated', minOffloadBytes: 0 });
    const src = new Uint8Array(1 << 20);
    fillPattern(src, 5);
    const dst = new Uint8Array(1 << 20);
    const p = e.prepare(dst, src, { folioSize: 4096 });
    expect(e.stats().prepared).toBe(1);
    const before = e.stats().batches;
    const r = await p.copy();
    const s = p.copySync();
    expect(Buffer.compare(dst, src)).toBe(0);
    expect(r.offloadedBytes).toBe(1 << 20);
    expect(s.offloadedBytes).toBe(1 << 20);
    expect(r.descriptors).toBe(256);
    expect(e.stats().batches).toBe(before + 2);
    p.release();
    expect(e.stats().prepared).toBe(0);
  });

  it('on a device the descriptors are built once: every run submits them as prepared', async () => {
    // Issue 13: a re-run only takes fresh completion records. prebuiltDescriptors counts the
    // descriptors the poller submitted as prepare() built them (none for an unprepared batch).
    const e = await engine({ backend: 'emulated', minOffloadBytes: 0, emulator: { queues: 2, maxTransferSize: 8192 } });
    const prebuilt = () => (e.stats().native as { dsa: { prebuiltDescriptors: number } }).dsa.prebuiltDescriptors;
    const { dsts, srcs, expectCopied, srcA, srcB } = listBatch(96, 20000, 9);
    await e.copyBatch(dsts, srcs);
    expect(prebuilt()).toBe(0);
    const p = e.prepare(dsts, srcs);
    let want = 0;
    for (let run = 0; run < 4; run++) {
      fillPattern(srcA, 100 + run); // new bytes, the same views
      fillPattern(srcB, 200 + run);
      const r = run % 2 ? p.copySync() : await p.copy();
      expectCopied();
      expect(r.offloadedBytes).toBe(96 * 20000);
      want += r.descriptors;
      expect(prebuilt()).toBe(want);
    }
    // 20000 B at 8192 B a descriptor: 3 a folio, and one more where a work boundary cuts a folio.
    expect(want).toBeGreaterThanOrEqual(4 * 96 * 3);
    expect(want).toBeLessThanOrEqual(4 * (96 * 3 + 1));
    p.release();
  });

  it('property: random layouts, modes and byte changes copy exactly', async () => {
    const cpu = await engine({ backend: 'cpu', cpuThreads: 2, minOffloadBytes: 64 * 1024 });
    const emu = await engine({ backend: 'emulated', minOffloadBytes: 16 * 1024, emulator: { queues: 2, maxTransferSize: 8192 } });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ len: fc.integer({ min: 0, max: 20_000 }), gap: fc.integer({ min: 0, max: 100 }) }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.array(fc.constantFrom('await', 'sync'), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 1e6 }),
        async (folios, runs, onEmu, seed) => {
          const e = onEmu ? emu : cpu;
          let size = 0;
          const offs = folios.map((f) => {
            const o = size + f.gap;
            size = o + f.len;
            return o;
          });
          const src = new Uint8Array(size);
          const dst = new Uint8Array(size + 16);
          const dsts = folios.map((f, i) => dst.subarray((offs[i] as number) + 16, (offs[i] as number) + 16 + f.len));
          const srcs = folios.map((f, i) => src.subarray(offs[i] as number, (offs[i] as number) + f.len));
          const p = e.prepare(dsts, srcs);
          try {
            for (let k = 0; k < runs.length; k++) {
              fillPattern(src, seed + k);
              if (runs[k] === 'sync') p.copySync();
              else await p.copy();
              for (let i = 0; i < folios.length; i++) {
                if (Buffer.compare(dsts[i] as Uint8Array, srcs[i] as Uint8Array) !== 0) return false;
              }
            }
          } finally {
            p.release();
          }
          return true;
        },
      ),
      { numRuns: 60 },
    );
  });

  it('bad arguments are refused at prepare() with the codes copyBatch uses', async () => {
    const e = await engine({ backend: 'cpu' });
    const a = new Uint8Array(8192);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as { code?: string }).code;
      }
      return 'no error';
    };
    expect(code(() => e.prepare([a.subarray(0, 4096)], [a.subarray(100, 4196)]))).toBe('ERR_DMACOPY_OVERLAP');
    expect(code(() => e.prepare([a.subarray(0, 10)], [new Uint8Array(20)]))).toBe('ERR_DMACOPY_LENGTH_MISMATCH');
    expect(code(() => e.prepare([a], []))).toBe('ERR_DMACOPY_LENGTH_MISMATCH');
    expect(code(() => e.prepare(a, new Uint8Array(10), { folioSize: 0 }))).toBe('ERR_DMACOPY_OUT_OF_RANGE');
    expect(code(() => e.prepare([a], [1 as unknown as Uint8Array]))).toBe('ERR_DMACOPY_INVALID_ARG');
    expect(e.stats().prepared).toBe(0);
  });

  for (const [name, options] of BACKENDS) {
    it(`${name}: refusals carry codes and write nothing (released, closed, detached, concurrent)`, async () => {
      const e = await openEngine(options);
      // Released.
      const r = listBatch(20, 4096, 1);
      const p1 = e.prepare(r.dsts, r.srcs);
      p1.release();
      p1.release(); // idempotent
      expect(p1.released).toBe(true);
      expect(() => p1.copySync()).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_RELEASED' }));
      await expect(p1.copy()).rejects.toMatchObject({ code: 'ERR_DMACOPY_RELEASED' });
      expect(r.dst.every((x) => x === 0)).toBe(true);

      // Detached: a source buffer, then (on a fresh batch) one of two destination buffers.
      for (const small of [true, false]) {
        const n = small ? 4 : 40;
        const b = listBatch(n, 4096, 2);
        const p = e.prepare(b.dsts, b.srcs);
        detach(b.srcB.buffer);
        expect(() => p.copySync()).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_DETACHED' }));
        await expect(p.copy()).rejects.toMatchObject({ code: 'ERR_DMACOPY_DETACHED' });
        expect(b.dst.every((x) => x === 0)).toBe(true);
        p.release();
        const d1 = new Uint8Array(n * 4096);
        const d2 = new Uint8Array(n * 4096);
        const src = new Uint8Array(2 * n * 4096);
        fillPattern(src, 3);
        const dsts = Array.from({ length: n }, (_, i) => (i % 2 ? d2 : d1).subarray(i * 4096, (i + 1) * 4096));
        const srcs = Array.from({ length: n }, (_, i) => src.subarray(i * 4096, (i + 1) * 4096));
        const q = e.prepare(dsts, srcs);
        detach(d2.buffer);
        expect(() => q.copySync()).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_DETACHED' }));
        await expect(q.copy()).rejects.toMatchObject({ code: 'ERR_DMACOPY_DETACHED' });
        expect(d1.every((x) => x === 0)).toBe(true);
        q.release();
      }

      // Concurrent: a second run while copy() is in flight is refused; the first completes.
      const big = new Uint8Array(8 << 20);
      fillPattern(big, 4);
      const bigDst = new Uint8Array(8 << 20);
      const p2 = e.prepare(bigDst, big, { folioSize: 4096 });
      const first = p2.copy();
      if (options.minOffloadBytes === 0) expect(p2.running).toBe(true);
      if (p2.running) {
        expect(() => p2.copySync()).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_BUSY' }));
        await expect(p2.copy()).rejects.toMatchObject({ code: 'ERR_DMACOPY_BUSY' });
        // A refusal leaves the run in flight marked: the next run is refused too.
        expect(p2.running).toBe(true);
        await expect(p2.copy()).rejects.toMatchObject({ code: 'ERR_DMACOPY_BUSY' });
      }
      await first;
      expect(p2.running).toBe(false);
      expect(Buffer.compare(bigDst, big)).toBe(0);

      // Released while in flight: the run still completes, later runs are refused.
      bigDst.fill(0);
      const inFlight = p2.copy();
      p2.release();
      await inFlight;
      expect(Buffer.compare(bigDst, big)).toBe(0);
      expect(() => p2.copySync()).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_RELEASED' }));

      // Closed: runs and prepare() are refused.
      const c = listBatch(3, 4096, 5);
      const p3 = e.prepare(c.dsts, c.srcs);
      await e.close();
      expect(() => p3.copySync()).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_CLOSED' }));
      await expect(p3.copy()).rejects.toMatchObject({ code: 'ERR_DMACOPY_CLOSED' });
      expect(() => e.prepare(c.dsts, c.srcs)).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_CLOSED' }));
      expect(c.dst.every((x) => x === 0)).toBe(true);
      p3.release(); // still allowed after close
    });
  }

  it('the addon re-checks each run natively: a detached buffer, a released plan, a foreign plan', () => {
    const b = nativeBinding();
    if (!b) return;
    const ne = new b.NativeEngine({ threads: 1, nonTemporalMinBytes: 1e12, timeoutMs: 1000 });
    const dst = new Uint8Array(8192);
    const src = new Uint8Array(8192).fill(3);
    const bufs = [dst, src];
    const plan = ne.prepare(bufs, TableForm.Region, new Float64Array([0, 0, 1, 0, 8192, 4096]), new Float64Array([0, 0, 2, 0]));
    const counts = new Uint32Array(1);
    expect(ne.runPrepared(plan, CopyMode.Inline, 0, bufs, counts)).toBe(2);
    expect(dst[8191]).toBe(3);
    dst.fill(0);
    detach(src.buffer);
    expect(() => ne.runPrepared(plan, CopyMode.Sync, 0, bufs, counts)).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_DETACHED' }));
    expect(dst.every((x) => x === 0)).toBe(true);
    expect(() => ne.runPrepared({} as never, CopyMode.Inline, 0, bufs, counts)).toThrow(
      expect.objectContaining({ code: 'ERR_DMACOPY_INVALID_ARG' }),
    );
    ne.releasePrepared(plan);
    expect(() => ne.runPrepared(plan, CopyMode.Inline, 0, bufs, counts)).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_RELEASED' }));
    expect(ne.stats().preparedPlans).toBe(0);
    ne.close();
  });

  it('a run in flight is waited for by close()', async () => {
    const e = await openEngine({ backend: 'emulated', minOffloadBytes: 0, emulator: { latencyUs: 200 } });
    const src = new Uint8Array(4 << 20);
    fillPattern(src, 9);
    const dst = new Uint8Array(4 << 20);
    const p = e.prepare(dst, src, { folioSize: 4096 });
    const run = p.copy();
    await e.close();
    expect(Buffer.compare(dst, src)).toBe(0);
    await run;
  });

  it('the handle pins its buffers; a dropped handle frees its native plan (--expose-gc)', () => {
    const script = `
      const { openEngine } = require(process.env.DMACOPY_DIST);
      (async () => {
        const e = await openEngine({ backend: 'cpu', minOffloadBytes: 0 });
        let p;
        {
          const src = new Uint8Array(1 << 20).fill(7);
          const dst = new Uint8Array(1 << 20);
          p = e.prepare([dst.subarray(0, 1 << 19), dst.subarray(1 << 19)], [src.subarray(0, 1 << 19), src.subarray(1 << 19)]);
        }
        for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
        await p.copy();
        p.copySync();
        const live = e.stats().prepared;
        const handles = [];
        for (let i = 0; i < 50; i++) handles.push(e.prepare(new Uint8Array(4096), new Uint8Array(4096)));
        const withMore = e.stats().prepared;
        handles.length = 0;
        p = undefined;
        for (let i = 0; i < 20 && e.stats().prepared > 0; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)); }
        console.log(JSON.stringify({ live, withMore, after: e.stats().prepared }));
        await e.close();
      })();
    `;
    const r = runNode(script);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim())).toEqual({ live: 1, withMore: 51, after: 0 });
  });
});
