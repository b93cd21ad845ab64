// Every dmacopy:batch:start gets exactly one dmacopy:batch:end, on every path and every failure:
// metrics count a batch only at its end, so a missing end is a batch that never happened.
import dc from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DmacopyError, type Engine, openEngine } from '../../lib/index';

interface Seen {
  starts: number;
  ends: { error?: Error; report?: unknown }[];
}

const seen: Seen = { starts: 0, ends: [] };
const onStart = (): void => {
  seen.starts++;
};
const onEnd = (m: unknown): void => {
  seen.ends.push(m as { error?: Error });
};

beforeAll(() => {
  dc.subscribe('dmacopy:batch:start', onStart);
  dc.subscribe('dmacopy:batch:end', onEnd);
});
afterAll(() => {
  dc.unsubscribe('dmacopy:batch:start', onStart);
  dc.unsubscribe('dmacopy:batch:end', onEnd);
});

/** n folios of `size` bytes where folio `dup` writes the same destination as folio 0 (an overlap the native side finds). */
function overlapping(n: number, size: number, dup: number): { dsts: Uint8Array[]; srcs: Uint8Array[] } {
  const dst = new Uint8Array(n * size);
  const dsts = Array.from({ length: n }, (_, i) => dst.subarray((i === dup ? 0 : i) * size, ((i === dup ? 0 : i) + 1) * size));
  const srcs = Array.from({ length: n }, () => new Uint8Array(size).fill(3));
  return { dsts, srcs };
}

async function settle(run: () => unknown): Promise<Error | undefined> {
  try {
    await run();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

const CASES = [
  { name: 'inline (native overlap check)', n: 32, size: 4096, dup: 20 },
  { name: 'threaded (submit-time failure)', n: 256, size: 4096, dup: 200 },
  { name: 'chunked, overlap found in a later chunk', n: 9000, size: 64, dup: 8500 },
];

describe.each(['cpu', 'emulated'] as const)('batch start/end pairs (%s)', (backend) => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await openEngine({ backend, timeoutMs: 10_000 });
  });
  afterAll(async () => {
    await engine.close();
  });

  for (const c of CASES) {
    for (const sync of [false, true]) {
      it(`${c.name}, ${sync ? 'copyBatchSync' : 'copyBatch'}: one end, carrying the error`, async () => {
        const before = { starts: seen.starts, ends: seen.ends.length };
        const { dsts, srcs } = overlapping(c.n, c.size, c.dup);
        const err = await settle(() => (sync ? engine.copyBatchSync(dsts, srcs) : engine.copyBatch(dsts, srcs)));
        expect((err as DmacopyError | undefined)?.code, String(err)).toBe('ERR_DMACOPY_OVERLAP');
        expect(seen.starts - before.starts).toBe(1);
        const ends = seen.ends.slice(before.ends);
        expect(ends).toHaveLength(1);
        expect(ends[0]?.error).toBe(err);
      });
    }
  }

  it('a successful batch on every path: one end with the report', async () => {
    for (const [n, size] of [
      [4, 1024],
      [32, 4096],
      [256, 4096],
      [9000, 64],
    ] as const) {
      for (const sync of [false, true]) {
        const before = { starts: seen.starts, ends: seen.ends.length };
        const dsts = Array.from({ length: n }, () => new Uint8Array(size));
        const srcs = Array.from({ length: n }, () => new Uint8Array(size).fill(9));
        const r = sync ? engine.copyBatchSync(dsts, srcs) : await engine.copyBatch(dsts, srcs);
        expect(seen.starts - before.starts, `${n} folios`).toBe(1);
        const ends = seen.ends.slice(before.ends);
        expect(ends, `${n} folios`).toHaveLength(1);
        expect(ends[0]?.report).toBe(r);
      }
    }
  });
});

describe('dmacopy:queue:quarantine on every path (emulated)', () => {
  const quarantined = (e: Engine): string[] =>
    ((e.stats().native as { dsa: { channels: { name: string; quarantined: boolean }[] } }).dsa.channels ?? [])
      .filter((c) => c.quarantined)
      .map((c) => c.name)
      .sort();

  const cases: [string, Parameters<typeof openEngine>[0], (e: Engine, sync: boolean) => unknown][] = [
    [
      'a chunked list (10,000 folios) with device errors',
      { emulator: { faults: { error: 0.5 }, seed: 1 } },
      (e, sync) => {
        const dsts = Array.from({ length: 10_000 }, () => new Uint8Array(4096));
        const srcs = Array.from({ length: 10_000 }, () => new Uint8Array(4096).fill(5));
        return sync ? e.copyBatchSync(dsts, srcs) : e.copyBatch(dsts, srcs);
      },
    ],
    [
      'a batch that rejects wedged',
      // Every descriptor hangs for good, and the deadline leaves a loaded machine's poller time to
      // submit some: one submitted before it wedges its queue (with 2% hanging and a 20 ms
      // deadline, a loaded run once submitted none that hung, and nothing was quarantined).
      { timeoutMs: 200, drainTimeoutMs: 50, emulator: { faults: { hang: 1, hangMs: 0 }, seed: 3 } },
      (e, sync) => {
        const dst = new Uint8Array(16 << 20);
        const src = new Uint8Array(16 << 20).fill(6);
        return sync ? e.copyBatchSync(dst, src, { folioSize: 4096 }) : e.copyBatch(dst, src, { folioSize: 4096 });
      },
    ],
  ];
  for (const [label, options, run] of cases) {
    for (const sync of [false, true]) {
      it(`${label} (${sync ? 'copyBatchSync' : 'await copyBatch'}): one event per queue stats() shows quarantined`, async () => {
        const events: string[] = [];
        const on = (m: unknown): void => {
          events.push((m as { channel: string }).channel);
        };
        dc.subscribe('dmacopy:queue:quarantine', on);
        const e = await openEngine({ backend: 'emulated', minOffloadBytes: 0, ...options });
        try {
          await settle(() => run(e, sync));
          expect(quarantined(e).length).toBeGreaterThan(0);
          expect(events.sort()).toEqual(quarantined(e));
        } finally {
          dc.unsubscribe('dmacopy:queue:quarantine', on);
          await e.close();
        }
      });
    }
  }
});

describe('close() from a dmacopy:batch:start subscriber', () => {
  for (const backend of ['cpu', 'emulated'] as const) {
    it(`waits for the batch that published it (${backend})`, async () => {
      const e = await openEngine({ backend, minOffloadBytes: 0 });
      const dst = new Uint8Array(16 << 20);
      const src = new Uint8Array(16 << 20).fill(8);
      let atClose: { inFlight: number; copied: boolean } | undefined;
      let closing: Promise<unknown> | undefined;
      const on = (): void => {
        if (closing) return;
        closing = e.close().then(() => {
          atClose = { inFlight: e.stats().inFlight, copied: Buffer.compare(dst, src) === 0 };
        });
      };
      dc.subscribe('dmacopy:batch:start', on);
      try {
        await Promise.all([e.copyBatch(dst, src, { folioSize: 4096 }), closing]);
        expect(atClose).toEqual({ inFlight: 0, copied: true });
      } finally {
        dc.unsubscribe('dmacopy:batch:start', on);
      }
    });
  }
});
