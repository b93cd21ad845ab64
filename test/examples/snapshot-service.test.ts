// The example service (examples/snapshot-service) as its users run it: one command, a port on
// 127.0.0.1, pages read and written over HTTP, snapshots taken with copyBatch that equal the live
// pool byte for byte, and the copy strategies the service benchmark compares (the worker one
// included) completing while the main thread keeps answering. No assertion on timing.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CPU_NICE } from '../../lib/defaults';
import { openEngine } from '../../lib/index';
import { ROOT } from '../helpers';

const SERVER = path.join(ROOT, 'examples', 'snapshot-service', 'server.js');
const PAGE = 4096;
const running: ChildProcess[] = [];

async function startService(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [SERVER, '--pool-mib', '4', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line).port);
    });
    child.on('exit', (code) => reject(new Error(`service exited with ${code}: ${stderr}`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function bytes(url: string): Promise<Buffer> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function json(url: string, method = 'GET', body?: Buffer): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method, body });
  expect(res.status, url).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

afterEach(async () => {
  for (const c of running.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    await exited;
  }
});

describe('examples/snapshot-service', () => {
  it('serves pages, snapshots them with copyBatch on request, and the snapshot equals the live pool', async () => {
    const { url } = await startService(['--snapshot-interval-ms', '0']);
    const page5 = await bytes(`${url}/page/5`);
    expect(page5.length).toBe(PAGE);
    expect(page5.readUInt32LE(0)).toBe(5); // each page starts with its index
    const written = Buffer.alloc(PAGE, 0x42);
    await json(`${url}/page/9`, 'PUT', written);
    expect((await bytes(`${url}/page/9`)).equals(written)).toBe(true);
    expect((await bytes(`${url}/snapshot/page/9`)).equals(written)).toBe(false); // not snapshotted yet
    const snap = await json(`${url}/snapshot`, 'POST');
    expect(snap).toMatchObject({ bytes: 4 << 20, strategy: 'copy-batch' });
    // The snapshot stamps a generation into a page of the live pool before copying: compare after.
    expect((await bytes(`${url}/snapshot/page/9`)).subarray(16).equals(written.subarray(16))).toBe(true);
    expect(await json(`${url}/snapshot/verify`)).toMatchObject({ equal: true });
    expect((await fetch(`${url}/page/1024`)).status).toBe(404);
    expect((await fetch(`${url}/nothing`)).status).toBe(404);
    // A bad gapMs is the client's mistake (400, naming it), not a missing route.
    for (const bad of ['abc', '-5', '']) {
      const res = await fetch(`${url}/loop/start?gapMs=${bad}`, { method: 'POST' });
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/gapMs must be a whole number/);
    }
    const stats = await json(`${url}/stats`);
    expect(stats.engine).toMatchObject({ backend: 'cpu', cpuNice: DEFAULT_CPU_NICE });
    expect(stats.eventLoopDelay).toMatchObject({ p50: expect.any(Number), p99: expect.any(Number) });
  });

  it.each(['copy-batch', 'copy-batch-sync', 'buffer-copy', 'worker', 'worker-sync'])(
    'copies back to back with the %s strategy while requests are answered, and the snapshot verifies',
    async (strategy) => {
      const { url } = await startService(['--strategy', strategy, '--snapshot-interval-ms', '0']);
      await json(`${url}/stats/reset`, 'POST');
      await json(`${url}/loop/start?gapMs=0`, 'POST');
      // Pages keep coming back right while copies complete (until two have, with a generous bound).
      let stats: Record<string, unknown> = {};
      const deadline = Date.now() + 30_000;
      for (let i = 0; Date.now() < deadline; i++) {
        const n = (i * 37) % 1024;
        expect((await bytes(`${url}/page/${n}`)).readUInt32LE(0)).toBe(n);
        stats = await json(`${url}/stats`);
        if ((stats.copies as number) >= 2) break;
      }
      // A write while copies run waits for the copy in flight, then lands whole.
      const written = Buffer.alloc(PAGE, 0x77);
      await json(`${url}/page/1000`, 'PUT', written);
      expect((await bytes(`${url}/page/1000`)).equals(written)).toBe(true);
      await json(`${url}/loop/stop`, 'POST');
      expect(stats.strategy).toBe(strategy);
      expect(stats.copies as number).toBeGreaterThan(0);
      expect(stats.bytes).toBe((stats.copies as number) * (4 << 20));
      expect(await json(`${url}/snapshot/verify`)).toMatchObject({ equal: true });
    },
  );

  it('takes timer snapshots, and exits cleanly on SIGTERM', async () => {
    const { url, child } = await startService(['--snapshot-interval-ms', '20']);
    let generation = 0;
    for (let i = 0; i < 200 && generation < 4; i++) {
      await new Promise((r) => setTimeout(r, 20));
      generation = (await json(`${url}/stats`)).generation as number;
    }
    expect(generation).toBeGreaterThanOrEqual(4);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('started with an IPC channel, exits when its parent goes, even while still starting', async () => {
    // The service benchmark starts the service with an IPC channel. A parent that died during the
    // service's start-up (killed, OOM) once left it running for good: it listened for the
    // disconnect only once started, and by then the channel was already gone.
    const child = spawn(process.execPath, [SERVER, '--pool-mib', '64'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.disconnect(); // at once: the pool is still being filled
    const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000))]);
    if (code === 'still running') child.kill('SIGKILL');
    expect(code).toBe(0);
  });

  it('refuses a bad setting with a message naming the flag', async () => {
    const child = spawn(process.execPath, [SERVER, '--pool-mib', 'lots'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/--pool-mib/);
  });

  it("counts the copy threads' CPU time (/stats cpu): at least what the bytes they copied take", async () => {
    // cpu-time.js sums the CPU time of the threads named dmacopy-cpuN in this process. 1 GiB
    // copied by those threads alone (await copyBatch on the CPU backend: the calling thread takes
    // no share) takes them at least 20 ms at 50 GB/s, whatever else the machine runs.
    const { mark, cpuSince } = require(path.join(ROOT, 'examples', 'snapshot-service', 'cpu-time.js')) as {
      mark: () => unknown;
      cpuSince: (m: unknown) => { processCores: number; copyCores: number | null };
    };
    const engine = await openEngine({ backend: 'cpu', cpuThreads: 2, minOffloadBytes: 0 });
    try {
      const src = Buffer.alloc(256 << 20, 3);
      const dst = Buffer.alloc(256 << 20);
      const from = mark();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 4; i++) await engine.copyBatch(dst, src, { folioSize: 4096 });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const used = cpuSince(from);
      expect(dst.equals(src)).toBe(true);
      expect(used.copyCores).not.toBeNull();
      expect((used.copyCores as number) * seconds).toBeGreaterThanOrEqual(0.02);
      expect(used.processCores).toBeGreaterThanOrEqual(used.copyCores as number);
    } finally {
      await engine.close();
    }
  });
});
