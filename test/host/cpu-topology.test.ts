// cpuPinning: what the kernel reports of the process's CPUs (fixture /sys and /proc trees), when
// 'auto' binds the copy threads, and that the engine's threads are bound (read back from
// /proc/self/task/<tid>/status), each to its own CPU, and to none with 'off'.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allowedCpus, lastLevelCacheCpus, parseCpuList, pinCpusFor, readCpuTopology } from '../../lib/host/cpu-topology';
import { openEngine } from '../../lib/index';

const made: string[] = [];
afterAll(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

/** A /sys and /proc standing for a machine: cpus[i] lists (level, type, shared_cpu_list) caches of CPU i. */
function fixture(allowed: string, cpus: [number, string, string][][] | undefined): { sys: string; proc: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-topo-'));
  made.push(root);
  const proc = path.join(root, 'proc');
  fs.mkdirSync(path.join(proc, 'self'), { recursive: true });
  fs.writeFileSync(
    path.join(proc, 'self', 'status'),
    `Name:\tnode\nCpus_allowed:\tff\nCpus_allowed_list:\t${allowed}\nMems_allowed_list:\t0\n`,
  );
  const sys = path.join(root, 'sys');
  const n = parseCpuList(allowed)?.at(-1) ?? 0;
  for (let c = 0; c <= n; c++) {
    const dir = path.join(sys, 'devices', 'system', 'cpu', `cpu${c}`);
    fs.mkdirSync(dir, { recursive: true });
    if (!cpus) continue; // a guest that reports no caches (Firecracker)
    (cpus[c] ?? []).forEach(([level, type, shared], i) => {
      const idx = path.join(dir, 'cache', `index${i}`);
      fs.mkdirSync(idx, { recursive: true });
      fs.writeFileSync(path.join(idx, 'level'), `${level}\n`);
      fs.writeFileSync(path.join(idx, 'type'), `${type}\n`);
      fs.writeFileSync(path.join(idx, 'shared_cpu_list'), `${shared}\n`);
    });
  }
  return { sys, proc };
}

/** Caches of a CPU with private L1/L2 and an L3 shared by `l3`. */
const caches = (cpu: number, l3: string): [number, string, string][] => [
  [1, 'Data', String(cpu)],
  [1, 'Instruction', String(cpu)],
  [2, 'Unified', String(cpu)],
  [3, 'Unified', l3],
];

describe('CPU topology', () => {
  it('parses kernel CPU lists and refuses what is not one', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('5')).toEqual([5]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('3-1')).toBeUndefined();
    expect(parseCpuList('0-x')).toBeUndefined();
    expect(parseCpuList(undefined)).toBeUndefined();
  });

  it('reads the allowed CPUs and the last-level cache from /proc and /sys', () => {
    const shared = fixture(
      '0-3',
      [0, 1, 2, 3].map((c) => caches(c, '0-3')),
    );
    expect(allowedCpus(shared.proc)).toEqual([0, 1, 2, 3]);
    expect(lastLevelCacheCpus(shared.sys, 2)).toEqual([0, 1, 2, 3]);
    expect(readCpuTopology(shared.sys, shared.proc)).toEqual({ allowed: [0, 1, 2, 3], sharedLastLevelCache: true });
    // Firecracker: no cache directory at all.
    const none = fixture('0-1', undefined);
    expect(lastLevelCacheCpus(none.sys, 0)).toBeUndefined();
    expect(readCpuTopology(none.sys, none.proc)).toEqual({ allowed: [0, 1], sharedLastLevelCache: false });
    // Each CPU its own L3 (and the L1 instruction cache is never the answer).
    const apart = fixture('0-1', [caches(0, '0'), caches(1, '1')]);
    expect(readCpuTopology(apart.sys, apart.proc).sharedLastLevelCache).toBe(false);
    // A cpuset of CPUs 2-3 whose L3 holds 0-3: shared among the allowed ones.
    const cpuset = fixture(
      '2-3',
      [0, 1, 2, 3].map((c) => caches(c, '0-3')),
    );
    expect(readCpuTopology(cpuset.sys, cpuset.proc)).toEqual({ allowed: [2, 3], sharedLastLevelCache: true });
    // An L3 shared with CPUs outside the affinity mask only does not count.
    const outside = fixture(
      '1,3',
      [0, 1, 2, 3].map((c) => caches(c, c % 2 ? `${c - 1}-${c}` : `${c}-${c + 1}`)),
    );
    expect(readCpuTopology(outside.sys, outside.proc)).toEqual({ allowed: [1, 3], sharedLastLevelCache: false });
    // No /proc: nothing is known, nothing is bound.
    expect(readCpuTopology(none.sys, path.join(none.proc, 'missing')).allowed).toEqual([]);
  });

  it('counts only online CPUs of the affinity mask (the default mask names CPUs that are offline)', () => {
    // 8 CPUs possible, 4 online: 'auto' must not bind 6 threads, two of them to offline CPUs.
    const t = fixture('0-7', undefined);
    fs.writeFileSync(path.join(t.sys, 'devices', 'system', 'cpu', 'online'), '0-3\n');
    const topo = readCpuTopology(t.sys, t.proc);
    expect(topo.allowed).toEqual([0, 1, 2, 3]);
    expect(pinCpusFor('auto', 6, topo)).toEqual([]);
    expect(pinCpusFor('auto', 4, topo)).toEqual([0, 1, 2, 3]);
    // Without the file (or unreadable), the mask as read.
    fs.rmSync(path.join(t.sys, 'devices', 'system', 'cpu', 'online'));
    expect(readCpuTopology(t.sys, t.proc).allowed).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("'auto' binds only where the kernel cannot spread woken threads, with a CPU for each thread", () => {
    const noLlc = { allowed: [0, 1], sharedLastLevelCache: false };
    const llc = { allowed: [0, 1, 2, 3], sharedLastLevelCache: true };
    expect(pinCpusFor('auto', 2, noLlc)).toEqual([0, 1]);
    expect(pinCpusFor('auto', 2, llc)).toEqual([]);
    expect(pinCpusFor('auto', 3, noLlc)).toEqual([]); // more threads than CPUs: the scheduler shares them
    expect(pinCpusFor('auto', 1, noLlc)).toEqual([]);
    expect(pinCpusFor('auto', 1, { allowed: [4], sharedLastLevelCache: false })).toEqual([]);
    expect(pinCpusFor('on', 4, llc)).toEqual([0, 1, 2, 3]);
    expect(pinCpusFor('on', 3, noLlc)).toEqual([0, 1]);
    expect(pinCpusFor('off', 2, noLlc)).toEqual([]);
    expect(pinCpusFor('on', 2, { allowed: [], sharedLastLevelCache: false })).toEqual([]);
  });
});

/** Cpus_allowed_list of every thread of this process, by thread id. */
function threadAffinities(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const status = fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      const list = parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(status)?.[1]);
      if (list) out.set(Number(tid), list);
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return out;
}

describe.runIf(process.platform === 'linux')('cpuPinning', () => {
  const allowed = allowedCpus() ?? [];

  it.runIf(allowed.length >= 2)("'on' binds each copy thread to its own CPU, and no other thread; copies stay exact", async () => {
    const before = threadAffinities();
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2, cpuPinning: 'on', minOffloadBytes: 0 });
    const pins = engine.stats().cpuPins;
    expect(pins).toHaveLength(2);
    expect(new Set(pins).size).toBe(2);
    for (const c of pins) expect(allowed).toContain(c);
    const after = threadAffinities();
    const fresh = [...after].filter(([tid]) => !before.has(tid));
    const bound = fresh.filter(([, cpus]) => cpus.length === 1).map(([, cpus]) => cpus[0]);
    expect(bound.sort()).toEqual([...pins].sort());
    for (const [tid, cpus] of before) expect(after.get(tid) ?? cpus).toEqual(cpus);
    const src = Buffer.alloc(8 << 20, 0x3c);
    const dst = Buffer.alloc(8 << 20);
    await engine.copyBatch(dst, src, { folioSize: 4096 });
    engine.copyBatchSync(dst.subarray(0, 4 << 20), src.subarray(4 << 20), { folioSize: 4096 });
    expect(dst.subarray(4 << 20).equals(src.subarray(4 << 20))).toBe(true);
    expect(dst.subarray(0, 4 << 20).equals(src.subarray(0, 4 << 20))).toBe(true);
    expect((engine.stats().native as { cpuPinFailures: number }).cpuPinFailures).toBe(0);
    await engine.close();
  });

  it("'off' leaves every copy thread to the scheduler", async () => {
    const before = threadAffinities();
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2, cpuPinning: 'off' });
    expect(engine.stats().cpuPins).toEqual([]);
    const fresh = [...threadAffinities()].filter(([tid]) => !before.has(tid));
    for (const [, cpus] of fresh) expect(cpus).toEqual(allowed);
    await engine.close();
  });

  it("'auto' follows the host: bound exactly when pinCpusFor says so", async () => {
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2 });
    expect(engine.stats().cpuPins).toEqual(pinCpusFor('auto', 2, readCpuTopology(process.env.DMACOPY_SYSFS_ROOT || '/sys')));
    await engine.close();
  });

  it('refuses an unknown cpuPinning with ERR_DMACOPY_INVALID_ARG', async () => {
    await expect(openEngine({ cpuPinning: 'always' as never })).rejects.toMatchObject({ code: 'ERR_DMACOPY_INVALID_ARG' });
  });
});
