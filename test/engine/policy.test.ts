// The path policy: inline threshold and the CPU share beside a device come from measurements.
import { describe, expect, it, vi } from 'vitest';
import { Policy } from '../../lib/engine/policy';
import { boundaryBytes } from '../../lib/engine/split';
import { openEngine } from '../../lib/index';
import { fillPattern } from '../helpers';

describe('policy', () => {
  it('decides inline or threaded once per batch, so an exploring batch really takes the other path', async () => {
    const engine = await openEngine({ backend: 'cpu' });
    const spy = vi.spyOn(Policy.prototype, 'useInline');
    const src = new Uint8Array(64 * 1024);
    fillPattern(src, 9);
    let threaded = 0;
    try {
      // 32 batches of 16 folios of 4 KiB (64 KiB): the small-batch path qualifies each, and
      // every 16th batch, a quarter of the default 256 KiB threshold, explores the threaded path.
      for (let i = 0; i < 32; i++) {
        const dst = new Uint8Array(src.length);
        const dsts = Array.from({ length: 16 }, (_, k) => dst.subarray(k * 4096, (k + 1) * 4096));
        const srcs = Array.from({ length: 16 }, (_, k) => src.subarray(k * 4096, (k + 1) * 4096));
        const before = engine.stats().native?.cpuJobs ?? 0;
        await engine.copyBatch(dsts, srcs);
        if ((engine.stats().native?.cpuJobs ?? 0) > before) threaded++;
        expect(Buffer.compare(dst, src)).toBe(0);
      }
      expect(spy).toHaveBeenCalledTimes(32);
      expect(threaded).toBe(2); // batches 16 and 32 explored, and the exploration held
    } finally {
      spy.mockRestore();
      await engine.close();
    }
  });

  it('moves the inline threshold to the measured break-even size', () => {
    const p = new Policy({ defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    expect(p.stats().inlineSource).toBe('default');
    // Inline at 5 GB/s, threads at 10 GB/s, a 20 us hop: break-even = 20000 / (1/5 - 1/10) = 200 KB.
    for (let i = 0; i < 50; i++) {
      p.observeInline(100_000, 100_000 / 5);
      p.observeThreaded(64 << 20, (64 << 20) / 10);
      p.observeThreaded(500_000, 20_000 + 500_000 / 10);
    }
    const s = p.stats();
    expect(s.inlineSource).toBe('measured');
    expect(s.inlineMaxBytes).toBeGreaterThan(180_000);
    expect(s.inlineMaxBytes).toBeLessThan(220_000);
    expect(s.hopNs).toBeGreaterThan(15_000);
  });

  it('keeps a tuned threshold within 1 MiB, and explores inline no further, however fast inline copies look', () => {
    const p = new Policy({ defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    // Inline copies that hit the cache at 60 GB/s, threads at 15 GB/s: break-even is past any size.
    for (let i = 0; i < 50; i++) {
      p.observeInline(64 * 1024, (64 * 1024) / 60);
      p.observeThreaded(64 << 20, (64 << 20) / 15);
      p.observeThreaded(512 * 1024, 100_000 + (512 * 1024) / 15);
    }
    expect(p.stats().inlineMaxBytes).toBe(1 << 20);
    // 7 MiB snapshots once ran inline 30 times in 32; now never, exploring or not.
    expect(Array.from({ length: 64 }, () => p.useInline(7 << 20)).some((x) => x)).toBe(false);
    expect(Array.from({ length: 64 }, () => p.useInline(3 << 19)).some((x) => x)).toBe(false);
    // Near the threshold it still explores both ways.
    expect(Array.from({ length: 64 }, () => p.useInline(900 * 1024)).filter((x) => !x).length).toBe(4);
  });

  it('takes the hop as the median of recent samples: one delayed completion does not set it for good', () => {
    const p = new Policy({ defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    p.observeThreaded(64 << 20, (64 << 20) / 15);
    // The first small threaded batch waited 4 ms behind a busy event loop.
    p.observeThreaded(512 * 1024, 4_000_000 + (512 * 1024) / 15);
    expect(p.stats().hopNs).toBeGreaterThan(3_900_000);
    for (let i = 0; i < 8; i++) p.observeThreaded(512 * 1024, 120_000 + (512 * 1024) / 15);
    expect(p.stats().hopNs).toBeGreaterThan(100_000);
    expect(p.stats().hopNs).toBeLessThan(150_000);
  });

  it('never tunes a threshold the caller fixed, and explores near a tuned one', () => {
    const fixed = new Policy({ minOffloadBytes: 1000, defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    for (let i = 0; i < 100; i++) expect(fixed.useInline(999)).toBe(true);
    const tuned = new Policy({ defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    const choices = Array.from({ length: 64 }, () => tuned.useInline(200 * 1024));
    expect(choices.filter((x) => !x).length).toBe(4); // one in 16 takes the other path
    expect(Array.from({ length: 64 }, () => tuned.useInline(8 << 20)).every((x) => !x)).toBe(true);
    // Far below the threshold (under a quarter of it) a batch always stays inline.
    expect(Array.from({ length: 64 }, () => tuned.useInline(32 * 1024)).every((x) => x)).toBe(true);
  });

  it('asks to time small inline batches only from 16 KiB, every one until a rate exists, then one in 8', () => {
    const p = new Policy({ defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    expect(p.sampleInline(4096)).toBe(false);
    expect(p.sampleInline(32 * 1024)).toBe(true);
    expect(p.sampleInline(32 * 1024)).toBe(true); // still no rate
    p.observeInline(32 * 1024, 2000);
    const asked = Array.from({ length: 64 }, () => p.sampleInline(32 * 1024)).filter(Boolean).length;
    expect(asked).toBe(8);
    const fixed = new Policy({ minOffloadBytes: 1000, defaultMinOffloadBytes: 256 * 1024, device: false }, 2);
    expect(fixed.sampleInline(32 * 1024)).toBe(false); // a fixed threshold learns nothing
  });

  it('sizes the CPU share beside a device so both finish together', () => {
    const p = new Policy({ defaultMinOffloadBytes: 256 * 1024, device: true, cpuShare: 'auto' }, 2);
    // Nothing measured yet: a small share runs beside the device, so that the CPU side gets
    // timed at all (an engine that only copies large batches once never started one).
    expect(p.deviceSplit(64 << 20, 4).cpuWorks).toBe(2);
    expect(p.stats()).toMatchObject({ cpuShare: 0.1, cpuShareSource: 'default' });
    // A device rate alone measures nothing about the CPU.
    p.observeDevice(30_000_000, 1_000_000, 0, 0);
    expect(p.stats()).toMatchObject({ cpuShare: 0.1, cpuShareSource: 'default' });
    // Device 30 GB/s; the CPU share's bytes over its slowest work's time, 20 GB/s, is the rate of
    // both threads together (not to be multiplied by the thread count): share = 20 / 50 = 0.4.
    for (let i = 0; i < 40; i++) p.observeDevice(30_000_000, 1_000_000, 20_000_000, 1_000_000);
    expect(p.stats().cpuShare).toBeCloseTo(0.4, 2);
    expect(p.stats().cpuShareSource).toBe('measured');
    const { cpuWorks, weights } = p.deviceSplit(64 << 20, 4);
    expect(cpuWorks).toBe(2);
    expect(weights?.length).toBe(6);
    const starts = boundaryBytes(64 << 20, 6, weights);
    expect((64 << 20) - (starts[3] as number)).toBeCloseTo(0.4 * (64 << 20), -6);
    expect(p.deviceSplit(100_000, 4).cpuWorks).toBe(0); // small batches are not split
  });

  it('a fixed CPU share runs beside the software device and is reported', async () => {
    const engine = await openEngine({ backend: 'emulated', minOffloadBytes: 0, cpuShare: 0.5, emulator: { queues: 2, seed: 3 } });
    const src = new Uint8Array(8 << 20);
    fillPattern(src, 2);
    const dst = new Uint8Array(8 << 20);
    const r = await engine.copyBatch(dst, src, { folioSize: 65536 });
    expect(Buffer.compare(dst, src)).toBe(0);
    expect(r.cpuBytes).toBeGreaterThan(3 << 20);
    expect(r.offloadedBytes).toBeGreaterThan(3 << 20);
    expect(r.channels).toBe(2 + engine.stats().cpuThreads);
    const s = engine.stats();
    expect(s.policy.cpuShare).toBe(0.5);
    expect(s.policy.cpuShareSource).toBe('fixed');
    expect(s.policy.deviceGBps).toBeGreaterThan(0);
    const dst2 = new Uint8Array(8 << 20);
    const rs = engine.copyBatchSync(dst2, src, { folioSize: 65536 });
    expect(Buffer.compare(dst2, src)).toBe(0);
    expect(rs.cpuBytes).toBeGreaterThan(3 << 20);
    await engine.close();
    await expect(openEngine({ backend: 'emulated', cpuShare: 2 })).rejects.toMatchObject({ code: 'ERR_DMACOPY_OUT_OF_RANGE' });
  });
});

describe('diagnostics_channel', () => {
  it('publishes batch start, end, fallback and queue quarantine', async () => {
    const dc = await import('node:diagnostics_channel');
    const seen: Record<string, unknown[]> = { start: [], end: [], fallback: [], quarantine: [] };
    const subs: [string, (m: unknown) => void][] = [
      ['dmacopy:batch:start', (m) => seen.start?.push(m)],
      ['dmacopy:batch:end', (m) => seen.end?.push(m)],
      ['dmacopy:batch:fallback', (m) => seen.fallback?.push(m)],
      ['dmacopy:queue:quarantine', (m) => seen.quarantine?.push(m)],
    ];
    for (const [name, fn] of subs) dc.subscribe(name, fn);
    try {
      const engine = await openEngine({
        backend: 'emulated',
        minOffloadBytes: 0,
        timeoutMs: 5,
        emulator: { queues: 2, seed: 8, faults: { error: 0.5, hang: 0.2, hangMs: 20 } },
      });
      const src = new Uint8Array(1 << 20);
      const dst = new Uint8Array(1 << 20);
      for (let i = 0; i < 4; i++) await engine.copyBatch(dst, src, { folioSize: 4096 });
      await engine.close();
      expect(seen.start?.length).toBe(4);
      expect(seen.end?.length).toBe(4);
      const first = seen.end?.[0] as { report: { bytes: number } } | undefined;
      expect(first?.report.bytes).toBe(1 << 20);
      expect(seen.fallback?.length).toBeGreaterThan(0);
      expect(seen.quarantine?.length).toBeGreaterThan(0);
    } finally {
      for (const [name, fn] of subs) dc.unsubscribe(name, fn);
    }
  });
});
