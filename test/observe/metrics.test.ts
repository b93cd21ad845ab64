// enableMetrics(): prom-client metrics fed by the diagnostics_channel events, after real copies
// on the CPU engine and on the software DSA device with injected faults.
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LATENCY_BUCKETS, enableMetrics, type MetricsHandle, openEngine } from '../../lib/index';
import { DIST, runNode } from '../helpers';

type Value = { labels: Record<string, string | number>; value: number; metricName?: string };

async function values(register: Registry, name: string): Promise<Value[]> {
  const metric = register.getSingleMetric(name);
  if (!metric) throw new Error(`metric ${name} is not registered`);
  return (await metric.get()).values as Value[];
}

function total(vs: Value[], match: Record<string, string> = {}): number {
  return vs.filter((v) => Object.entries(match).every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

describe('enableMetrics', () => {
  let handle: MetricsHandle | undefined;
  afterEach(() => {
    handle?.disable();
    handle = undefined;
  });

  it('counts bytes by path and by who copied, batches, folios, descriptors and latency on the CPU engine', async () => {
    const register = new Registry();
    handle = enableMetrics({ register });
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2, minOffloadBytes: 64 * 1024 });
    const big = new Uint8Array(1 << 20).fill(3);
    const small = new Uint8Array(16 * 1024).fill(4);
    await engine.copyBatch(new Uint8Array(big.length), big, { folioSize: 4096 }); // threads
    await engine.copyBatch([new Uint8Array(small.length)], [small]); // inline
    engine.copyBatchSync(new Uint8Array(big.length), big, { folioSize: 65536 }); // threads, sync
    const stats = engine.stats();
    await engine.close();

    const bytes = await values(register, 'dmacopy_bytes_total');
    expect(total(bytes)).toBe(stats.bytes);
    expect(total(bytes, { copied_by: 'cpu' })).toBe(stats.cpuBytes);
    expect(total(bytes, { copied_by: 'device' })).toBe(0);
    expect(total(bytes, { path: 'inline' })).toBe(small.length);
    expect(total(bytes, { path: 'threads' })).toBe(2 * big.length);
    expect(total(bytes, { backend: 'cpu' })).toBe(stats.bytes);

    const batches = await values(register, 'dmacopy_batches_total');
    expect(total(batches, { result: 'ok' })).toBe(3);
    expect(total(await values(register, 'dmacopy_folios_total'))).toBe(stats.folios);
    expect(total(await values(register, 'dmacopy_descriptors_total'))).toBe(stats.descriptors);

    const hist = await values(register, 'dmacopy_batch_duration_seconds');
    const count = hist.filter((v) => v.metricName === 'dmacopy_batch_duration_seconds_count');
    expect(total(count)).toBe(3);
    const les = hist
      .filter((v) => v.metricName === 'dmacopy_batch_duration_seconds_bucket' && v.labels.path === 'inline')
      .map((v) => v.labels.le);
    expect(les).toEqual([...DEFAULT_LATENCY_BUCKETS, '+Inf']);
    expect(DEFAULT_LATENCY_BUCKETS[0]).toBe(1e-5);
    expect(DEFAULT_LATENCY_BUCKETS.at(-1)).toBe(1);

    const text = await register.metrics();
    expect(text).toContain('# TYPE dmacopy_bytes_total counter');
    expect(text).toContain('# TYPE dmacopy_batch_duration_seconds histogram');
  });

  it('counts device and CPU bytes, fallbacks by reason, quarantines and out-of-order completions on a faulty software device', async () => {
    const register = new Registry();
    handle = enableMetrics({ register, prefix: 'app_dma_' });
    const engine = await openEngine({
      backend: 'emulated',
      minOffloadBytes: 0,
      timeoutMs: 5,
      emulator: { queues: 2, engines: 2, seed: 8, jitterUs: 20, faults: { error: 0.3, hang: 0.1, hangMs: 20, pageFault: 0.2 } },
    });
    const src = new Uint8Array(1 << 20);
    for (let i = 0; i < src.length; i++) src[i] = (i * 7) & 0xff;
    for (let i = 0; i < 4; i++) {
      const dst = new Uint8Array(src.length);
      await engine.copyBatch(dst, src, { folioSize: 4096 });
      expect(Buffer.from(dst).equals(Buffer.from(src))).toBe(true);
    }
    const stats = engine.stats();
    await engine.close();

    const bytes = await values(register, 'app_dma_bytes_total');
    expect(total(bytes, { backend: 'emulated', path: 'device' })).toBe(stats.bytes);
    expect(total(bytes, { copied_by: 'device' })).toBe(stats.offloadedBytes);
    expect(total(bytes, { copied_by: 'cpu' })).toBe(stats.cpuBytes);
    expect(stats.cpuBytes).toBeGreaterThan(0); // the faults made the CPU finish some descriptors

    const fallbacks = await values(register, 'app_dma_fallbacks_total');
    expect(total(fallbacks, { reason: 'timeout' })).toBe(stats.fallbacks.timeout);
    expect(total(fallbacks, { reason: 'error' })).toBe(stats.fallbacks.error);
    expect(total(fallbacks, { reason: 'page_fault' })).toBe(stats.fallbacks.pageFault);
    expect(total(fallbacks, { reason: 'submit' })).toBe(stats.fallbacks.submit);
    expect(total(fallbacks)).toBeGreaterThan(0);

    // Quarantines come from the 'dmacopy:queue:quarantine' channel the engine publishes.
    const quarantined =
      (stats.native as { dsa?: { channels: { quarantined: boolean }[] } }).dsa?.channels.filter((c) => c.quarantined).length ?? 0;
    const quarantines = await values(register, 'app_dma_queue_quarantines_total');
    expect(total(quarantines)).toBe(quarantined);
    expect(quarantined).toBeGreaterThan(0); // 30% error statuses quarantine both queues quickly
    expect(total(await values(register, 'app_dma_out_of_order_completions_total'))).toBe(stats.outOfOrder);
    expect(total(await values(register, 'app_dma_descriptors_total'))).toBe(stats.descriptors);
  });

  it('disable() unsubscribes and unregisters, so metrics can be enabled again', async () => {
    const register = new Registry();
    const first = enableMetrics({ register });
    expect(() => enableMetrics({ register })).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_INVALID_ARG' }));
    first.disable();
    first.disable(); // idempotent
    expect(register.getMetricsAsArray()).toHaveLength(0);

    const engine = await openEngine({ backend: 'cpu', cpuThreads: 1 });
    const src = new Uint8Array(4096).fill(1);
    await engine.copyBatch(new Uint8Array(4096), src); // not counted: nothing is subscribed
    handle = enableMetrics({ register });
    await engine.copyBatch(new Uint8Array(4096), src);
    await engine.close();
    expect(total(await values(register, 'dmacopy_bytes_total'))).toBe(4096);
  });

  it('rejects bad options with typed errors', () => {
    expect(() => enableMetrics({ prefix: 'bad-prefix' })).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_INVALID_ARG' }));
    expect(() => enableMetrics({ buckets: [] })).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_INVALID_ARG' }));
    expect(() => enableMetrics({ register: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_INVALID_ARG' }));
    for (const buckets of [[0.001, Number.POSITIVE_INFINITY], [Number.NaN], [0, 1]])
      expect(() => enableMetrics({ buckets }), String(buckets)).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_INVALID_ARG' }));
  });

  it('sorts and deduplicates the bucket bounds it is given: a batch lands under the right le', async () => {
    // prom-client takes them in the order given: [1, 1e-7] once exported a 30 ms batch as le="1e-7".
    const register = new Registry();
    handle = enableMetrics({ register, buckets: [1, 1e-7, 1] });
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 1 });
    await engine.copyBatch(new Uint8Array(1 << 20), new Uint8Array(1 << 20).fill(3));
    await engine.close();
    const text = await register.metrics();
    const les = [...text.matchAll(/_bucket\{[^}]*le="([^"]+)"[^}]*\} (\d+)/g)].map((m) => [m[1], Number(m[2])]);
    const bounds = [...new Set(les.map(([le]) => le))];
    expect(bounds).toEqual(['1e-7', '1', '+Inf']);
    // Nothing copies a MiB in 100 ns: no count below 1e-7.
    for (const [le, n] of les) if (le === '1e-7') expect(n).toBe(0);
  });

  it('uses the global prom-client register by default, and works through the built package', () => {
    const r = runNode(`
      const d = require(process.env.DMACOPY_DIST);
      const prom = require('prom-client');
      const h = d.enableMetrics();
      d.openEngine({ backend: 'cpu', cpuThreads: 1 }).then(async (e) => {
        await e.copyBatch(new Uint8Array(8192), new Uint8Array(8192));
        await e.close();
        const text = await prom.register.metrics();
        h.disable();
        console.log(JSON.stringify({ has: /dmacopy_bytes_total\\{backend="cpu",path="inline",copied_by="cpu"\\} 8192/.test(text), after: prom.register.getMetricsAsArray().length }));
      });
    `);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ has: true, after: 0 });
  });

  it('says what to install when prom-client is missing (ERR_DMACOPY_MISSING_PEER)', () => {
    // Hide prom-client from the resolver, as in a project that never installed it.
    const r = runNode(`
      const Module = require('node:module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === 'prom-client') { const e = new Error("Cannot find module 'prom-client'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
        return resolve.call(this, request, ...rest);
      };
      const d = require(process.env.DMACOPY_DIST);
      try { d.enableMetrics(); console.log('no error'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, name: e.name, message: e.message })); }
    `);
    expect(r.status, r.stderr).toBe(0);
    const e = JSON.parse(r.stdout);
    expect(e.code).toBe('ERR_DMACOPY_MISSING_PEER');
    expect(e.name).toBe('DmacopyError');
    expect(e.message).toContain('npm install prom-client');
  });

  it('does not load prom-client until enableMetrics() is called', () => {
    const r = runNode(`
      require(process.env.DMACOPY_DIST);
      console.log(Object.keys(require.cache).some((k) => k.includes('prom-client')));
    `);
    expect(r.stdout.trim()).toBe('false');
    expect(DIST).toMatch(/index\.js$/);
  });
});
