// close() releases every thread and file descriptor of every backend before it resolves, not
// when the engine object is collected: counted in /proc/self/task and /proc/self/fd of a fresh
// process (no GC in between), for the CPU, the software device, and the dsa backend on a stand-in
// device node (a character device that accepts write() submissions but never completes them, so
// opening fails after the probe: the failure path must release what it opened too).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DIST, FIXTURES } from '../helpers';

const COUNT = `
  const fs = require('node:fs');
  const count = () => ({ tasks: fs.readdirSync('/proc/self/task').length, fds: fs.readdirSync('/proc/self/fd').length });
`;

function run(script: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['-e', `${COUNT}\n${script}`], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, DMACOPY_DIST: DIST, ...env },
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
    before: { tasks: number; fds: number };
    after: { tasks: number; fds: number };
    during?: { tasks: number; fds: number };
    codes?: string[];
  };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-release-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('close() releases everything before it resolves', () => {
  for (const backend of ['cpu', 'emulated'] as const) {
    it(`${backend}: threads and descriptors back to where they were, 10 engines in a row`, () => {
      const r = run(`
        const d = require(process.env.DMACOPY_DIST);
        (async () => {
          const once = async () => {
            const e = await d.openEngine({ backend: '${backend}', minOffloadBytes: 0, timeoutMs: 10000 });
            const src = Buffer.alloc(1 << 20, 1), dst = Buffer.alloc(1 << 20);
            await e.copyBatch(dst, src, { folioSize: 4096 });
            if (!dst.equals(src)) throw new Error('bad copy');
            const during = count();
            await e.close();
            return during;
          };
          await once(); // lazy, process-wide state (the event channel, libuv) is set up once
          const before = count();
          let during;
          for (let i = 0; i < 10; i++) during = await once();
          console.log(JSON.stringify({ before, during, after: count() }));
        })();
      `);
      expect(r.after).toEqual(r.before);
      // The engine really had threads of its own while open (so the equality above means something).
      expect((r.during as { tasks: number }).tasks).toBeGreaterThan(r.before.tasks);
    });
  }

  it('names its threads, so that top -H, ps -L and perf show them for what they are', () => {
    const r = run(`
      const d = require(process.env.DMACOPY_DIST);
      (async () => {
        const names = () => fs.readdirSync('/proc/self/task').map((t) => fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim()).filter((n) => n.startsWith('dmacopy-')).sort();
        const e = await d.openEngine({ backend: 'emulated', cpuThreads: 2, minOffloadBytes: 0, emulator: { queues: 1, engines: 2 } });
        await e.copyBatch(Buffer.alloc(1 << 20), Buffer.alloc(1 << 20, 1), { folioSize: 4096 });
        const open = names();
        await e.close();
        console.log(JSON.stringify({ before: count(), after: count(), open, closed: names() }));
      })();
    `) as unknown as { open: string[]; closed: string[] };
    expect(r.open).toEqual(['dmacopy-cpu0', 'dmacopy-cpu1', 'dmacopy-poll', 'dmacopy-sdev', 'dmacopy-sdev']);
    expect(r.closed).toEqual([]);
  });

  // mknod needs root (CAP_MKNOD); as another user the stand-in node cannot be made.
  const isRoot = process.getuid?.() === 0;
  it.skipIf(!isRoot)(
    `dsa on a stand-in device node: a failed open releases what it opened${isRoot ? '' : ' (skipped: mknod needs root)'}`,
    () => {
      const tree = standInTree('spr-4dev');
      const r = run(
        `
        const d = require(process.env.DMACOPY_DIST);
        (async () => {
          const codes = [];
          const once = async () => {
            try { const e = await d.openEngine({ backend: 'dsa', spread: true }); await e.close(); codes.push('opened'); }
            catch (err) { codes.push(err.code); }
          };
          await once();
          const settle = async (want) => {
            // A failed probe's queue is released on a thread of its own (the release may wait for
            // the device): give those threads a moment to end, never the JavaScript thread.
            for (let i = 0; i < 200 && JSON.stringify(count()) !== JSON.stringify(want); i++) await new Promise((res) => setTimeout(res, 10));
            return count();
          };
          let before = count();
          for (let same = 0, i = 0; same < 3 && i < 200; i++) {
            await new Promise((res) => setTimeout(res, 20));
            const now = count();
            same = JSON.stringify(now) === JSON.stringify(before) ? same + 1 : 0;
            before = now;
          }
          await once();
          await once();
          console.log(JSON.stringify({ before, after: await settle(before), codes }));
        })();
      `,
        tree,
      );
      expect(r.codes).toEqual(['ERR_DMACOPY_DEVICE', 'ERR_DMACOPY_DEVICE', 'ERR_DMACOPY_DEVICE']);
      expect(r.after).toEqual(r.before);
    },
  );

  it.skipIf(!isRoot)(
    `dsa on a device that never answers its probe: openEngine keeps the event loop turning${isRoot ? '' : ' (skipped: mknod needs root)'}`,
    () => {
      // Each queue's NOOP probe waits its full timeout (500 ms) for a completion that never
      // comes. Opened in the NativeEngine constructor, the four probes blocked the event loop for
      // two seconds inside `await openEngine()`: no timer could fire before it settled. They now
      // run on a pool thread, side by side.
      const tree = standInTree('spr-4dev');
      const r = run(
        `
        const d = require(process.env.DMACOPY_DIST);
        (async () => {
          let ticks = 0;
          const timer = setInterval(() => ticks++, 20);
          const t0 = Date.now();
          const code = await d.openEngine({ backend: 'dsa', spread: true }).then(async (e) => { await e.close(); return 'opened'; }, (err) => err.code);
          const ms = Date.now() - t0;
          clearInterval(timer);
          console.log(JSON.stringify({ before: count(), after: count(), codes: [code], ticks, ms }));
        })();
      `,
        tree,
      ) as { codes: string[]; ticks: number; ms: number };
      expect(r.codes).toEqual(['ERR_DMACOPY_DEVICE']);
      expect(r.ms).toBeGreaterThanOrEqual(450); // the probes really waited
      expect(r.ticks).toBeGreaterThanOrEqual(5); // and the timer kept firing meanwhile (0 before)
    },
  );
});

/**
 * A copy of a fixture tree whose queue nodes are character devices (1:3, like /dev/null): open()
 * and write() succeed, the NOOP probe never completes. Returns the roots to point dmacopy at.
 */
function standInTree(name: string): Record<string, string> {
  const root = path.join(tmp, name);
  if (!fs.existsSync(root)) {
    fs.cpSync(path.join(FIXTURES, 'sysfs', name), root, { recursive: true, verbatimSymlinks: true });
    const dsaDir = path.join(root, 'dev', 'dsa');
    for (const f of fs.readdirSync(dsaDir)) {
      if (!f.startsWith('wq')) continue;
      fs.rmSync(path.join(dsaDir, f));
      const mk = spawnSync('mknod', [path.join(dsaDir, f), 'c', '1', '3']);
      expect(mk.status, `mknod needs root and a filesystem without nodev: ${mk.stderr}`).toBe(0);
    }
  }
  return { DMACOPY_SYSFS_ROOT: path.join(root, 'sys'), DMACOPY_DEV_ROOT: path.join(root, 'dev') };
}
