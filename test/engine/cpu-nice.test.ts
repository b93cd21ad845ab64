// cpuNice: the copy threads, and only they, run at the nice value asked for (Linux keeps a nice
// value per thread, readable in /proc/self/task/<tid>/stat); the default suits a process that
// also serves requests; a worker's engine does the same for its own threads.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CPU_NICE } from '../../lib/defaults';
import { openEngine } from '../../lib/index';
import { runNode } from '../helpers';

/** Nice value of every thread of this process, by thread id (field 19 of the stat line). */
function threadNices(): Map<number, number> {
  return threadStat(16);
}

/** Scheduling policy of every thread of this process (field 41: 0 SCHED_OTHER, 5 SCHED_IDLE). */
function threadPolicies(): Map<number, number> {
  return threadStat(38);
}

/** One numeric field of every thread's stat line, by index after the name (field 3 is index 0). */
function threadStat(index: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), Number(fields[index]));
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return out;
}

describe('cpuNice', () => {
  it('defaults to the service setting and is reported in stats()', async () => {
    const engine = await openEngine({ backend: 'cpu' });
    expect(engine.stats().cpuNice).toBe(DEFAULT_CPU_NICE);
    expect(DEFAULT_CPU_NICE).toBeGreaterThan(0);
    await engine.close();
  });

  it('sets every copy thread, and no other thread, to the nice value; copies stay byte-exact', async () => {
    const before = threadNices();
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 3, cpuNice: 7, minOffloadBytes: 0 });
    const src = Buffer.alloc(8 << 20, 0x5a);
    const dst = Buffer.alloc(8 << 20);
    await engine.copyBatch(dst, src, { folioSize: 4096 }); // every thread has started by now
    expect(dst.equals(src)).toBe(true);
    const after = threadNices();
    const fresh = [...after].filter(([tid]) => !before.has(tid));
    expect(fresh.filter(([, nice]) => nice === 7)).toHaveLength(3);
    for (const [tid, nice] of before) if (after.has(tid)) expect(after.get(tid)).toBe(nice);
    const native = engine.stats().native as { cpuNice: number; cpuNiceFailures: number };
    expect(native.cpuNice).toBe(7);
    expect(native.cpuNiceFailures).toBe(0);
    await engine.close();
  });

  it('cpuNice 0 leaves the copy threads at the process priority', async () => {
    const own = threadNices().get(process.pid);
    const before = threadNices();
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2, cpuNice: 0, minOffloadBytes: 0 });
    await engine.copyBatch(Buffer.alloc(1 << 20), Buffer.alloc(1 << 20, 1));
    const fresh = [...threadNices()].filter(([tid]) => !before.has(tid));
    expect(fresh.length).toBeGreaterThanOrEqual(2);
    for (const [, nice] of fresh) expect(nice).toBe(own);
    await engine.close();
  });

  it('a worker thread opens its own engine with the same option, and copies into shared memory the main thread reads', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const shared = new SharedArrayBuffer(16 << 20);
      const src = new SharedArrayBuffer(16 << 20);
      Buffer.from(src).fill(0xc3);
      const w = new Worker(\`
        const { parentPort, workerData } = require('node:worker_threads');
        const { openEngine } = require(process.env.DMACOPY_DIST);
        (async () => {
          const e = await openEngine({ backend: 'cpu', cpuNice: 11, minOffloadBytes: 0 });
          const r = await e.copyBatch(Buffer.from(workerData.dst), Buffer.from(workerData.src), { folioSize: 4096 });
          parentPort.postMessage({ bytes: r.bytes, nice: e.stats().cpuNice, failures: e.stats().native.cpuNiceFailures });
          await e.close();
        })();
      \`, { eval: true, workerData: { dst: shared, src } });
      w.once('message', (m) => {
        const equal = Buffer.from(shared).equals(Buffer.from(src));
        console.log(JSON.stringify({ ...m, equal }));
      });
    `;
    const r = runNode(script);
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout.trim());
    expect(m).toEqual({ bytes: 16 << 20, nice: 11, failures: 0, equal: true });
  });

  it("cpuPolicy 'idle' puts every copy thread, and no other thread, in SCHED_IDLE; copies stay byte-exact", async () => {
    const before = threadPolicies();
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2, cpuPolicy: 'idle', minOffloadBytes: 0 });
    const src = Buffer.alloc(8 << 20, 0x3c);
    const dst = Buffer.alloc(8 << 20);
    await engine.copyBatch(dst, src, { folioSize: 4096 });
    expect(dst.equals(src)).toBe(true);
    const after = threadPolicies();
    const fresh = [...after].filter(([tid]) => !before.has(tid));
    expect(fresh.filter(([, policy]) => policy === 5)).toHaveLength(2);
    for (const [tid, policy] of before) if (after.has(tid)) expect(after.get(tid)).toBe(policy);
    expect(engine.stats().cpuPolicy).toBe('idle');
    const native = engine.stats().native as { cpuIdle: boolean; cpuNiceFailures: number };
    expect(native.cpuIdle).toBe(true);
    expect(native.cpuNiceFailures).toBe(0);
    await engine.close();
    const plain = await openEngine({ backend: 'cpu' });
    expect(plain.stats().cpuPolicy).toBe('normal');
    await plain.close();
  });
});
