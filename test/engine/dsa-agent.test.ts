// The dsa backend end to end, from JavaScript, against a device in another process: a fixture
// sysfs tree whose queue nodes are FIFOs, served by dsa-agent (native/core/test/dsa_agent.cc).
// The library runs its real /dev/dsa path: discovery, open, the NOOP probe, write() submission
// (the portal cannot be mapped from a FIFO), completion records that the agent writes into this
// process's memory from outside (process_vm_writev, as the device writes through the IOMMU), out
// of order across queues, page faults on pages that are not resident, a device that wedges, and
// descriptors that fail with a hardware error; and `dmacopy selftest` on that backend.
//
// One artifact of the stand-in: poll() on a FIFO reports POLLIN while the agent has not yet read
// what was written, which idxd reports only for a software error. The library then checks with a
// Drain, finds nothing of its own lost, and counts a foreign error: one per queue per engine.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST, ROOT } from '../helpers';

const { buildAgent, fifoTree } = require('../../scripts/dsa-agent.js') as {
  buildAgent: (dir: string) => { agent: string } | { skip: string };
  fifoTree: (dir: string) => { sysfsRoot: string; devRoot: string; specs: string[] } | { skip: string };
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-agent-'));
let AGENT = '';
let TREE = { sysfsRoot: '', devRoot: '', specs: [] as string[] };
let unavailable = '';

beforeAll(() => {
  const built = buildAgent(tmp);
  if ('skip' in built) {
    unavailable = built.skip;
    return;
  }
  AGENT = built.agent;
  const tree = fifoTree(tmp);
  if ('skip' in tree) unavailable = tree.skip;
  else TREE = tree;
}, 60_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface AgentRun {
  /** Why the agent could not serve this process (no ptrace access): the test skips. */
  denied?: string;
  status: number | null;
  stdout: string;
  stderr: string;
  agentStderr: string;
  result: Record<string, unknown>;
}

/**
 * Runs `node ...args` with the agent serving every queue for that process. The agent starts as
 * soon as the process exists: what the process writes to a FIFO before the agent reads it waits
 * there, as descriptors wait in a device's queue. `result` is stdout as JSON (or its last line).
 */
function runWithAgent(args: string[], agentArgs: string[], env: Record<string, string> = {}): Promise<AgentRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: {
        ...process.env,
        DMACOPY_DIST: DIST,
        DMACOPY_SYSFS_ROOT: TREE.sysfsRoot,
        DMACOPY_DEV_ROOT: TREE.devRoot,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const agent = spawn(AGENT, ['--client', String(child.pid), ...agentArgs, ...TREE.specs], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let agentStderr = '';
    let denied: string | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      agent.kill('SIGKILL');
      reject(new Error(`timed out; stdout: ${stdout}; stderr: ${stderr}; agent: ${agentStderr}`));
    }, 150_000); // a heavily loaded machine runs these at a twentieth of their speed
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    agent.stderr.on('data', (d) => {
      agentStderr += d;
    });
    agent.once('exit', (code) => {
      // 3: no ptrace access to the client (not root, under Yama): the test cannot run here.
      if (code !== 3) return;
      denied = agentStderr.trim();
      child.kill('SIGKILL');
    });
    child.once('exit', (status) => {
      if (process.env.DMACOPY_AGENT_DEBUG) console.log(stdout);
      clearTimeout(timer);
      agent.kill('SIGTERM'); // it reaps its children and ends (it would also end with the client)
      let result: Record<string, unknown> = {};
      for (const text of [stdout, stdout.trim().split('\n').pop() ?? '']) {
        try {
          result = JSON.parse(text);
          break;
        } catch {
          // not JSON: the assertions on status and stdout say what happened
        }
      }
      resolve({ status, stdout, stderr, agentStderr, result, ...(denied ? { denied } : {}) });
    });
  });
}

/**
 * Runs `body` (the inside of an async function with `dm`, the library, in scope; its return value
 * is printed as JSON) in a fresh Node process, with the agent serving every queue for it.
 */
function withAgent(body: string, agentArgs: string[] = []): Promise<AgentRun> {
  const script = `
    const dm = require(process.env.DMACOPY_DIST);
    (async () => { ${body} })().then(
      (r) => { console.log(JSON.stringify(r)); process.exit(0); },
      (err) => { console.log(JSON.stringify({ thrown: err.code ?? String(err), message: err.message })); process.exit(0); },
    );
  `;
  return runWithAgent(['-e', script], agentArgs);
}

/** The CLI (`dmacopy ...args`) with the agent serving every queue for it. */
function cliWithAgent(args: string[], agentArgs: string[] = []): Promise<AgentRun> {
  return runWithAgent([path.join(ROOT, 'bin', 'dmacopy.js'), ...args], agentArgs);
}

/** Child-side helper source: a buffer whose every 4-byte word holds its own offset, xor a seed. */
const PATTERN = `
  const pattern = (n, seed) => { const b = Buffer.alloc(n); for (let i = 0; i + 4 <= n; i += 4) b.writeUInt32LE((i ^ seed) >>> 0, i); return b; };
`;

describe('the dsa backend against a device in another process (dsa-agent)', () => {
  it('opens every queue through its NOOP probe and copies byte-exact, every descriptor counted, in every form', async (ctx) => {
    if (unavailable) ctx.skip();
    const r = await withAgent(`
      ${PATTERN}
      const e = await dm.openEngine({ backend: 'dsa', spread: true, minOffloadBytes: 0 });
      const opened = e.stats().queues;
      const src = pattern(32 << 20, 0x5a5a), dst = Buffer.alloc(32 << 20);
      const region = await e.copyBatch(dst, src, { folioSize: 4096 });
      const regionOk = dst.equals(src);
      // List form, folios of mixed sizes out of separate buffers.
      const sizes = [4096, 65536, 2 << 20, 12288, 1 << 20, 4096];
      const srcs = sizes.map((n, i) => pattern(n, i + 1)), dsts = sizes.map((n) => Buffer.alloc(n));
      const list = await e.copyBatch(dsts, srcs);
      const listOk = dsts.every((d, i) => d.equals(srcs[i]));
      const src2 = pattern(8 << 20, 0x77), dst2 = Buffer.alloc(8 << 20);
      const sync = e.copyBatchSync(dst2, src2, { folioSize: 65536 });
      const syncOk = dst2.equals(src2);
      const snap = e.prepare(dst, src, { folioSize: 4096 });
      src.fill(0x3c, 0, 1 << 20);
      const prepared = await snap.copy();
      const preparedOk = dst.equals(src);
      snap.release();
      const dsa = e.stats().native.dsa;
      const closed = await e.close();
      const pick = (r) => ({ bytes: r.bytes, offloadedBytes: r.offloadedBytes, descriptors: r.descriptors, fallbacks: r.fallbacks });
      return { backend: e.backend, opened, regionOk, listOk, syncOk, preparedOk,
        region: pick(region), list: pick(list), sync: pick(sync), prepared: pick(prepared), dsa, wedged: closed.wedgedQueues.length };
    `);
    if (r.denied) ctx.skip(); // no ptrace access to the client here (r.denied says why)
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    const out = r.result as {
      backend: string;
      opened: { name: string; ok: boolean; path: string; probeStatus: number }[];
      regionOk: boolean;
      listOk: boolean;
      syncOk: boolean;
      preparedOk: boolean;
      region: { bytes: number; offloadedBytes: number; descriptors: number; fallbacks: Record<string, number> };
      prepared: { bytes: number; offloadedBytes: number; descriptors: number };
      dsa: {
        submitted: number;
        deviceCompleted: number;
        deviceBytes: number;
        lostRecords: number;
        channels: { name: string; completed: number }[];
      };
      wedged: number;
    };
    expect(out.backend, JSON.stringify(r.result)).toBe('dsa');
    // Every queue opened through the write() path (no portal on a FIFO), its NOOP probe answered.
    expect(out.opened.map((q) => q.name).sort()).toEqual(['wq0.0', 'wq0.1', 'wq2.0', 'wq4.0', 'wq6.0']);
    for (const q of out.opened) expect(q).toMatchObject({ ok: true, path: 'write', probeStatus: 1 });
    expect([out.regionOk, out.listOk, out.syncOk, out.preparedOk]).toEqual([true, true, true, true]);
    // The device did the copying, not a silent CPU fallback; and every descriptor completed.
    expect(out.region.offloadedBytes).toBeGreaterThan(0.5 * out.region.bytes);
    expect(out.region.fallbacks).toEqual({ timeout: 0, error: 0, pageFault: 0, submit: 0 });
    expect(out.prepared.offloadedBytes).toBeGreaterThan(0);
    expect(out.dsa.deviceCompleted).toBe(out.dsa.submitted);
    expect(out.dsa.lostRecords).toBe(0);
    expect(out.dsa.channels.filter((c) => c.completed > 0).length).toBe(5); // all five queues worked
    expect(out.wedged).toBe(0);
  }, 180_000);

  it('a destination not yet in memory faults on the device, and the continuation finishes it on the device', async (ctx) => {
    if (unavailable) ctx.skip();
    // allocUnsafeSlow of 64 MiB is fresh anonymous memory: no page is resident until written.
    // The agent faults on such pages as an IOMMU would (PAGE_FAULT_NOBOF with the page).
    const r = await withAgent(
      `
      ${PATTERN}
      const e = await dm.openEngine({ backend: 'dsa', spread: true, minOffloadBytes: 0, cpuShare: 0 });
      const src = pattern(64 << 20, 0x1234), dst = Buffer.allocUnsafeSlow(64 << 20);
      const rep = await e.copyBatch(dst, src, { folioSize: 2 << 20 });
      const ok = dst.equals(src);
      const dsa = e.stats().native.dsa;
      await e.close();
      return { ok, bytes: rep.bytes, offloadedBytes: rep.offloadedBytes, fallbacks: rep.fallbacks, pageFaults: dsa.pageFaults, descriptors: rep.descriptors };
    `,
      ['--pagemap-faults'],
    );
    if (r.denied) ctx.skip(); // no ptrace access to the client here (r.denied says why)
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    const out = r.result as { ok: boolean; bytes: number; offloadedBytes: number; fallbacks: { pageFault: number }; pageFaults: number };
    expect(out.ok, JSON.stringify(r.result)).toBe(true);
    expect(out.pageFaults).toBeGreaterThan(0); // the device really faulted
    expect(out.offloadedBytes).toBeGreaterThanOrEqual(0.9 * out.bytes); // and still did the copying
  }, 180_000);

  it('a device that wedges mid-batch: the batch rejects ERR_DMACOPY_DEVICE_WEDGED, close() names the queues, the process exits cleanly', async (ctx) => {
    if (unavailable) ctx.skip();
    // The agent completes the probes (5) and a few descriptors more, then takes descriptors and
    // completes nothing, Drains included. The deadline passes, the Drain never completes: the
    // queues are wedged, and since the device may still write the destination, the batch must
    // not resolve as if the CPU's copy were final.
    const r = await withAgent(
      `
      ${PATTERN}
      const e = await dm.openEngine({ backend: 'dsa', spread: true, minOffloadBytes: 0, cpuShare: 0, timeoutMs: 100, drainTimeoutMs: 100 });
      const src = pattern(16 << 20, 0x99), dst = Buffer.alloc(16 << 20);
      const code = await e.copyBatch(dst, src, { folioSize: 4096 }).then(() => 'resolved', (err) => err.code);
      const closed = await e.close();
      return { code, wedged: closed.wedgedQueues };
    `,
      ['--wedge-after', '40'],
    );
    if (r.denied) ctx.skip(); // no ptrace access to the client here (r.denied says why)
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    const out = r.result as { code: string; wedged: string[] };
    expect(out.code, JSON.stringify(r.result)).toBe('ERR_DMACOPY_DEVICE_WEDGED');
    expect(out.wedged.length).toBeGreaterThan(0);
  }, 180_000);

  it('queues opened for an engine that could not be made are released at once, not when collected', async (ctx) => {
    if (unavailable) ctx.skip();
    // The queues are opened and probed before the NativeEngine exists. A constructor that threw
    // before it took them (copy threads refused, say) left them open until the handle was
    // collected, and a dedicated queue stays busy (EBUSY) while open, also to the retry the error
    // message advises. Counted as descriptors of this process open on the queues' FIFOs.
    const r = await withAgent(`
      const path = require('node:path');
      const dist = path.dirname(process.env.DMACOPY_DIST);
      const b = require(path.join(dist, 'native', 'loader.js')).nativeBinding();
      const { userQueues } = require(path.join(dist, 'engine', 'backends.js'));
      const fs = require('node:fs');
      const onQueues = () => fs.readdirSync('/proc/self/fd').filter((fd) => { try { return fs.readlinkSync('/proc/self/fd/' + fd).includes('/dev/dsa/wq'); } catch { return false; } }).length;
      const settle = async () => { for (let i = 0; i < 100 && onQueues() > 0; i++) await new Promise((res) => setTimeout(res, 10)); return onQueues(); };
      const queues = userQueues({ spread: true });
      const options = { cacheControl: false, pageFaultRetries: 3, quarantineAfter: 3, drainTimeoutMs: 1000 };
      const h = await b.openUserQueues(queues);
      const opened = onQueues();
      let code;
      try { new b.NativeEngine({ threads: 0, nonTemporalMinBytes: 0, timeoutMs: 1000, dsa: { kind: 'user', queues, opened: h, options } }); }
      catch (err) { code = err.code; }
      const afterThrow = await settle();
      let again;
      try { new b.NativeEngine({ threads: 1, nonTemporalMinBytes: 0, timeoutMs: 1000, dsa: { kind: 'user', queues, opened: h, options } }); }
      catch (err) { again = err.code; }
      const h2 = await b.openUserQueues(queues);
      const reopened = onQueues(); // the same queues open again: the first handle let them go
      b.releaseOpenedQueues(h2);
      b.releaseOpenedQueues(h2); // idempotent
      const afterRelease = await settle();
      return { opened, code, afterThrow, again, reopened, afterRelease };
    `);
    if (r.denied) ctx.skip(); // no ptrace access to the client here (r.denied says why)
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    expect(r.result).toEqual({
      opened: 5,
      code: 'ERR_DMACOPY_OUT_OF_RANGE',
      afterThrow: 0,
      again: 'ERR_DMACOPY_INVALID_ARG',
      reopened: 5,
      afterRelease: 0,
    });
  }, 180_000);

  it('a device that fails descriptors with a hardware error: the CPU copies what they held, byte-exact, each failure counted', async (ctx) => {
    if (unavailable) ctx.skip();
    // Every 25th MEMMOVE completes with DSA_COMP_HW_ERR1 and nothing copied. The library must copy
    // those pieces itself, count each one, and resolve only with every byte in place.
    const r = await withAgent(
      `
      ${PATTERN}
      const e = await dm.openEngine({ backend: 'dsa', spread: true, minOffloadBytes: 0, cpuShare: 0 });
      const src = pattern(8 << 20, 0x42), dst = Buffer.alloc(8 << 20);
      const rep = await e.copyBatch(dst, src, { folioSize: 4096 });
      const ok = dst.equals(src);
      const dsa = e.stats().native.dsa;
      await e.close();
      return { ok, bytes: rep.bytes, offloadedBytes: rep.offloadedBytes, fallbacks: rep.fallbacks, errors: dsa.errors };
    `,
      ['--fail-every', '25'],
    );
    if (r.denied) ctx.skip(); // no ptrace access to the client here (r.denied says why)
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    const out = r.result as { ok: boolean; bytes: number; offloadedBytes: number; fallbacks: { error: number }; errors: number };
    expect(out.ok, JSON.stringify(r.result)).toBe(true);
    expect(out.errors).toBeGreaterThan(0);
    expect(out.fallbacks.error).toBeGreaterThan(0);
    expect(out.offloadedBytes).toBeGreaterThan(0);
    expect(out.offloadedBytes).toBeLessThan(out.bytes);
  }, 180_000);

  it('dmacopy selftest --backend dsa: random batches through the real queue path, every byte and guard checked', async (ctx) => {
    if (unavailable) ctx.skip();
    const r = await cliWithAgent(['selftest', '--backend', 'dsa', '--batches', '80', '--seed', '7', '--json']);
    if (r.denied) ctx.skip();
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    expect(r.result).toMatchObject({
      ok: true,
      backend: 'dsa',
      batches: 80,
      mismatches: { destination: 0, guard: 0, source: 0 },
      errors: 0,
      failures: [],
    });
    expect(r.result.offloadedBytes as number).toBeGreaterThan(0);
  }, 180_000);

  it('dmacopy selftest --backend dsa on a device that faults on absent pages and fails every 31st copy: every byte right, every failure counted', async (ctx) => {
    if (unavailable) ctx.skip();
    const r = await cliWithAgent(
      ['selftest', '--backend', 'dsa', '--batches', '60', '--seed', '11', '--json'],
      ['--pagemap-faults', '--fail-every', '31'],
    );
    if (r.denied) ctx.skip();
    expect(r.status, r.stderr + r.agentStderr).toBe(0);
    expect(r.result).toMatchObject({
      ok: true,
      backend: 'dsa',
      mismatches: { destination: 0, guard: 0, source: 0 },
      errors: 0,
      failures: [],
    });
    expect((r.result.fallbacks as { error: number }).error).toBeGreaterThan(0);
  }, 180_000);
});
