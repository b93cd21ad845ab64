// The short fault campaign inside npm test (the long one: npm run test:faults -- --minutes N).
// Randomized batches against the software DSA device with every fault kind in combination and
// against the CPU backend; every byte of every buffer checked (destinations, guards, sources,
// late writes after close). The seed is random per run and printed on failure; pin it with
// DMACOPY_CAMPAIGN_SEED to replay.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import * as lib from '../../lib/index';

const require = createRequire(import.meta.url);
const { runCampaign, table } = require('../../scripts/fault-campaign.js') as {
  runCampaign: (o: Record<string, unknown>) => Promise<Campaign>;
  table: (t: Campaign) => string;
};

interface Campaign {
  ok: boolean;
  seed: number;
  batches: number;
  mismatches: number;
  guardHits: number;
  lateWrites: number;
  rejected: number;
  stuck: number;
  leftInFlight: number;
  failures: unknown[];
  byBackend: { cpu: number; emulated: number };
  faults: Record<string, number>;
  fallbacks: Record<string, number>;
}

const envSeed = process.env.DMACOPY_CAMPAIGN_SEED;
const seed = envSeed !== undefined ? Number(envSeed) >>> 0 : (Date.now() ^ (process.pid << 8)) >>> 0;
// Under the sanitizer build everything is several times slower: fewer batches.
const scale = process.env.DMACOPY_ASAN ? 0.35 : 1;

describe('fault campaign (short)', () => {
  it(`every byte right under every fault kind, CPU too (seed ${seed})`, { timeout: 240_000 }, async () => {
    const t = await runCampaign({ lib, seed, rounds: 10, batchesPerRound: Math.round(60 * scale) });
    const why = `replay: node scripts/fault-campaign.js --seed ${seed} --rounds 10 --batches ${Math.round(60 * scale)}\n${table(t)}\n${JSON.stringify(t.failures, null, 1)}`;
    expect(t.failures, why).toEqual([]);
    expect(t.mismatches, why).toBe(0);
    expect(t.guardHits, why).toBe(0);
    expect(t.lateWrites, why).toBe(0);
    expect(t.rejected + t.stuck + t.leftInFlight, why).toBe(0);
    expect(t.ok, why).toBe(true);
    expect(t.batches).toBeGreaterThan(100);
    const faults = Object.values(t.faults).reduce((a, x) => a + x, 0);
    expect(faults, why).toBeGreaterThan(0);
  });

  // The campaign's own checks must catch what they claim to catch: a wrong byte inside a
  // destination, a write next to one, a changed source, and a write landing after resolve.
  describe('the verifier catches', () => {
    const saboteur = (kind: 'dst' | 'guard' | 'src' | 'late') => ({
      ...lib,
      async openEngine(o: lib.EngineOptions) {
        const e = await lib.openEngine(o);
        let n = 0;
        const late: (() => void)[] = [];
        const harm = (dsts: unknown, srcs: unknown) => {
          if (n++ % 5 !== 2) return;
          const d = (Array.isArray(dsts) ? dsts.find((v: ArrayBufferView) => v.byteLength > 0) : dsts) as ArrayBufferView | undefined;
          const s = (Array.isArray(srcs) ? srcs.find((v: ArrayBufferView) => v.byteLength > 0) : srcs) as ArrayBufferView | undefined;
          if (!d || !s || d.byteLength === 0 || s.byteLength === 0) return;
          const db = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
          if (kind === 'dst') db[0] = (db[0] as number) ^ 0xff;
          if (kind === 'guard' && d.byteOffset > 0) {
            const all = new Uint8Array(d.buffer);
            all[d.byteOffset - 1] = (all[d.byteOffset - 1] as number) ^ 0x01;
          }
          if (kind === 'src') {
            const sb = new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
            sb[0] = (sb[0] as number) ^ 0x10;
          }
          if (kind === 'late') late.push(() => (db[0] = (db[0] as number) ^ 0x3c));
        };
        return new Proxy(e, {
          get(target, prop) {
            if (prop === 'copyBatch') {
              return async (d: never, s: never, opts?: never) => {
                const r = await target.copyBatch(d, s, opts);
                harm(d, s);
                return r;
              };
            }
            if (prop === 'copyBatchSync') {
              return (d: never, s: never, opts?: never) => {
                const r = target.copyBatchSync(d, s, opts);
                harm(d, s);
                return r;
              };
            }
            if (prop === 'close') {
              return async () => {
                await target.close();
                for (const f of late) f();
              };
            }
            const v = Reflect.get(target, prop, target);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        });
      },
    });
    it.each(['dst', 'guard', 'src', 'late'] as const)('%s corruption', async (kind) => {
      const t = await runCampaign({ lib: saboteur(kind), seed: 7, rounds: 3, batchesPerRound: 40 });
      expect(t.ok).toBe(false);
      if (kind === 'dst') expect(t.mismatches).toBeGreaterThan(0);
      if (kind === 'guard' || kind === 'src') expect(t.guardHits).toBeGreaterThan(0);
      // A late write is only detectable on batches poisoned after resolve; over 3 rounds some are.
      if (kind === 'late') expect(t.lateWrites).toBeGreaterThan(0);
    });
  });
});
