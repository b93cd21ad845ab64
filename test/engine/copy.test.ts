// Byte-exact copies for many sizes, offsets, alignments and view types, on every path
// (inline, threaded async, threaded sync, non-temporal), checked against Buffer.copy.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyBatch, type Engine, openEngine } from '../../lib/index';
import { bytesOf, fillPattern } from '../helpers';

type ViewKind = 'u8' | 'buffer' | 'dataview' | 'u16' | 'f64';

function makeView(ab: ArrayBufferLike, offset: number, length: number, kind: ViewKind): ArrayBufferView {
  if (kind === 'u16' && offset % 2 === 0 && length % 2 === 0) return new Uint16Array(ab, offset, length / 2);
  if (kind === 'f64' && offset % 8 === 0 && length % 8 === 0) return new Float64Array(ab, offset, length / 8);
  if (kind === 'dataview') return new DataView(ab, offset, length);
  if (kind === 'buffer') return Buffer.from(ab, offset, length);
  return new Uint8Array(ab, offset, length);
}

const folioArb = fc.record({
  len: fc.oneof(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom(1, 63, 64, 4095, 4096, 4097, 65536)),
  dstGap: fc.integer({ min: 0, max: 130 }),
  srcGap: fc.integer({ min: 0, max: 130 }),
  extraDst: fc.integer({ min: 0, max: 9 }),
  kind: fc.constantFrom<ViewKind>('u8', 'buffer', 'dataview', 'u16', 'f64'),
  srcInB: fc.boolean(),
});

/** Lays folios out in two source buffers and one destination buffer, non-overlapping, with gaps. */
function buildBatch(folios: fc.infer<typeof folioArb>[], seed: number, shared: boolean) {
  let dstSize = 0;
  const srcSize = [0, 0];
  const place = folios.map((f) => {
    const d = dstSize + f.dstGap;
    dstSize = d + f.len + f.extraDst;
    const which = f.srcInB ? 1 : 0;
    const s = (srcSize[which] as number) + f.srcGap;
    srcSize[which] = s + f.len;
    return { d, s, which };
  });
  const srcBufs = [
    new Uint8Array(srcSize[0] as number),
    shared ? new Uint8Array(new SharedArrayBuffer(srcSize[1] as number)) : new Uint8Array(srcSize[1] as number),
  ];
  srcBufs.forEach((b, i) => {
    fillPattern(b, seed + i);
  });
  const dst = new Uint8Array(dstSize);
  fillPattern(dst, seed + 7);
  const expected = Buffer.from(dst);
  const dsts: ArrayBufferView[] = [];
  const srcs: ArrayBufferView[] = [];
  folios.forEach((f, i) => {
    const p = place[i] as { d: number; s: number; which: number };
    const sb = srcBufs[p.which] as Uint8Array;
    srcs.push(makeView(sb.buffer, p.s, f.len, f.kind));
    dsts.push(makeView(dst.buffer, p.d, f.len + f.extraDst, f.kind));
    Buffer.from(sb.buffer, p.s, f.len).copy(expected, p.d);
  });
  return { dst, expected, dsts, srcs };
}

describe('copyBatch copies byte-exact', () => {
  let threaded: Engine;
  let inline: Engine;
  let streaming: Engine;
  beforeAll(async () => {
    threaded = await openEngine({ backend: 'cpu', minOffloadBytes: 0, cpuThreads: 3, channels: 5 });
    inline = await openEngine({ backend: 'cpu' });
    streaming = await openEngine({ backend: 'cpu', minOffloadBytes: 0, nonTemporalMinBytes: 0 });
  });
  afterAll(async () => {
    await Promise.all([threaded.close(), inline.close(), streaming.close()]);
  });

  it('list form, every engine and call style (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(folioArb, { maxLength: 40 }),
        fc.integer(),
        fc.boolean(),
        fc.integer({ min: 0, max: 5 }),
        async (folios, seed, shared, pick) => {
          const { dst, expected, dsts, srcs } = buildBatch(folios, seed, shared);
          const engine = [threaded, inline, streaming][pick % 3] as Engine;
          const report = pick >= 3 ? engine.copyBatchSync(dsts, srcs) : await engine.copyBatch(dsts, srcs);
          expect(Buffer.compare(Buffer.from(dst), expected)).toBe(0);
          const total = folios.reduce((a, f) => a + f.len, 0);
          expect(report.bytes).toBe(total);
          expect(report.cpuBytes).toBe(total);
          expect(report.folios).toBe(folios.length);
          expect(report.offloadedBytes).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('region form with any folio size and offsets (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 600_000 }),
        fc.integer({ min: 1, max: 300_000 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 5 }),
        async (total, folioSize, dOff, sOff, pick) => {
          const src = new Uint8Array(total + sOff + 5);
          fillPattern(src, total);
          const dst = new Uint8Array(total + dOff + 5);
          fillPattern(dst, folioSize);
          const expected = Buffer.from(dst);
          Buffer.from(src.buffer, sOff, total).copy(expected, dOff);
          const d = dst.subarray(dOff, dOff + total);
          const s = src.subarray(sOff, sOff + total);
          const engine = [threaded, inline, streaming][pick % 3] as Engine;
          const report = pick >= 3 ? engine.copyBatchSync(d, s, { folioSize }) : await engine.copyBatch(d, s, { folioSize });
          expect(Buffer.compare(Buffer.from(dst), expected)).toBe(0);
          expect(report.folios).toBe(total === 0 ? 0 : Math.ceil(total / folioSize));
        },
      ),
      { numRuns: 120 },
    );
  });

  it('a 64 MiB batch of 4 KiB folios through threads with streaming stores', async () => {
    const size = 64 << 20;
    const src = Buffer.allocUnsafe(size);
    fillPattern(src.subarray(0, 1 << 20), 3);
    for (let o = 1 << 20; o < size; o <<= 1) src.copy(src, o, 0, Math.min(o, size - o));
    src.writeUInt32LE(0xdeadbeef, size - 4);
    const dst = Buffer.alloc(size + 64, 0xaa);
    const r = await streaming.copyBatch(dst.subarray(32, 32 + size), src, { folioSize: 4096 });
    expect(dst.subarray(32, 32 + size).equals(src)).toBe(true);
    expect(dst.subarray(0, 32).every((b) => b === 0xaa)).toBe(true);
    expect(dst.subarray(32 + size).every((b) => b === 0xaa)).toBe(true);
    expect(r.descriptors).toBe(size / 4096);
    expect(r.channels).toBe(2);
  });

  it('one large folio is spread over every channel', async () => {
    const src = new Uint8Array(8 << 20);
    fillPattern(src, 11);
    const dst = new Uint8Array(8 << 20);
    const r = await threaded.copyBatch([dst], [src]);
    expect(r.channels).toBe(5);
    expect(r.descriptors).toBe(5);
    expect(Buffer.compare(dst, src)).toBe(0);
  });

  it('the module-level copyBatch uses a default engine', async () => {
    const src = Buffer.from('hello dmacopy');
    const dst = Buffer.alloc(src.length);
    const r = await copyBatch([dst], [src]);
    expect(dst.toString()).toBe('hello dmacopy');
    expect(r.backend).toBe('cpu');
  });

  it('stats accumulate every batch', async () => {
    const e = await openEngine({ backend: 'cpu', minOffloadBytes: 1000 });
    const a = new Uint8Array(4000);
    const b = new Uint8Array(4000).fill(1);
    await e.copyBatch([a.subarray(0, 10)], [b.subarray(0, 10)]);
    await e.copyBatch(a, b, { folioSize: 1000 });
    e.copyBatchSync([a], [b]);
    const s = e.stats();
    expect(s.batches).toBe(3);
    expect(s.inlineBatches).toBe(1);
    expect(s.bytes).toBe(8010);
    expect(s.folios).toBe(6);
    expect(s.inFlight).toBe(0);
    expect(bytesOf(a).every((x) => x === 1)).toBe(true);
    await e.close();
  });
});

describe('large list-form batches are validated and submitted in chunks', () => {
  const N = 20_000; // several chunks

  function lists(folio: number) {
    const src = new Uint8Array(N * folio);
    fillPattern(src, 77);
    const dst = new Uint8Array(N * folio + 64).fill(0xab);
    const srcs = Array.from({ length: N }, (_, i) => src.subarray(i * folio, (i + 1) * folio));
    const dsts = Array.from({ length: N }, (_, i) => dst.subarray(32 + i * folio, 32 + (i + 1) * folio));
    return { src, dst, srcs, dsts };
  }

  for (const backend of ['cpu', 'emulated'] as const) {
    it(`${backend}: async and sync copies are byte-exact and counted once`, async () => {
      const engine = await openEngine({
        backend,
        minOffloadBytes: 0,
        ...(backend === 'emulated' ? { emulator: { seed: 4, jitterUs: 5 } } : {}),
      });
      for (const sync of [false, true]) {
        const { src, dst, srcs, dsts } = lists(256);
        const r = sync ? engine.copyBatchSync(dsts, srcs) : await engine.copyBatch(dsts, srcs);
        expect(Buffer.compare(dst.subarray(32, 32 + src.length), src)).toBe(0);
        expect(dst.subarray(0, 32).every((b) => b === 0xab)).toBe(true);
        expect(dst.subarray(32 + src.length).every((b) => b === 0xab)).toBe(true);
        expect(r.folios).toBe(N);
        expect(r.bytes).toBe(src.length);
        expect(r.offloadedBytes + r.cpuBytes).toBe(src.length);
        if (backend === 'emulated') expect(r.offloadedBytes).toBeGreaterThan(0);
      }
      await engine.close();
    });
  }

  it('an overlap between chunks is found; the error says which folios may have been copied', async () => {
    const engine = await openEngine({ backend: 'cpu', minOffloadBytes: 0 });
    const { srcs, dsts } = lists(64);
    dsts[N - 1] = dsts[3] as Uint8Array; // the last chunk writes where the first one did
    const err = await engine.copyBatch(dsts, srcs).catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('ERR_DMACOPY_OVERLAP');
    expect((err as Error).message).toMatch(/may have been copied/);
    expect(engine.stats().inFlight).toBe(0);
    expect(() => engine.copyBatchSync(dsts, srcs)).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_OVERLAP' }));
    // A bad view in the first chunk is refused before anything is submitted.
    const bad = [...dsts];
    bad[10] = 'x' as never;
    const first = await engine.copyBatch(bad, srcs).catch((e: unknown) => e);
    expect((first as { code: string }).code).toBe('ERR_DMACOPY_INVALID_ARG');
    expect((first as Error).message).not.toMatch(/may have been copied/);
    await engine.close();
  });

  it('destinations interleaved with sources in one buffer take the exact check and pass', async () => {
    const engine = await openEngine({ backend: 'cpu', minOffloadBytes: 0 });
    const buf = new Uint8Array(N * 2 * 64);
    fillPattern(buf, 5);
    const expected = Buffer.from(buf);
    const srcs: Uint8Array[] = [];
    const dsts: Uint8Array[] = [];
    for (let i = 0; i < N; i++) {
      srcs.push(buf.subarray(i * 128, i * 128 + 64));
      dsts.push(buf.subarray(i * 128 + 64, i * 128 + 128));
      expected.copy(expected, i * 128 + 64, i * 128, i * 128 + 64);
    }
    await engine.copyBatch(dsts, srcs);
    expect(Buffer.compare(Buffer.from(buf), expected)).toBe(0);
    await engine.close();
  });
});
