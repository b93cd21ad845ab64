// `dmacopy dmatest`: drives runDmatest against the fixture parameters directory and a canned kernel log
// (a stand-in kernel flips `run` and logs summaries), prints dmatest beside dmacopy's own paths, and
// refuses without root (injected) or without the module.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type DmatestCliOptions, formatDmatestCommand, runDmatestCommand, timeUserPath } from '../../lib/cli/commands/dmatest';
import { fakeKernel, setupDmatest as setup } from '../fake-dmatest';
import { ROOT } from '../helpers';

const BIN = path.join(ROOT, 'bin', 'dmacopy.js');
const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

const base = (s: ReturnType<typeof setup>, more: Partial<DmatestCliOptions> = {}): DmatestCliOptions => ({
  channel: ['dma0chan0'],
  iterations: 20,
  bufferSize: 4096,
  threads: 2,
  sysfsRoot: s.sysfsRoot,
  kernelLog: s.log,
  ...more,
});

describe('dmacopy dmatest (injected root and kernel)', () => {
  it('writes the parameters (channel last, then run) and puts the kernel summary beside cpu and emulated', async () => {
    const s = setup();
    const k = fakeKernel(s.params, s.log);
    const r = await runDmatestCommand(base(s, { polled: true }), {
      isRoot: () => true,
      io: k.io,
      pollIntervalMs: 5,
      paths: ['cpu', 'emulated'],
    });
    const names = k.runWrites().map(([n]) => n);
    expect(names.slice(-2)).toEqual(['channel', 'run']);
    expect(k.writes).toContainEqual(['test_buf_size', '4096']);
    expect(k.writes).toContainEqual(['threads_per_chan', '2']);
    expect(k.writes).toContainEqual(['iterations', '20']);
    expect(k.writes).toContainEqual(['polled', 'Y']);
    expect(r.dmatest.summaries.map((x) => x.thread)).toEqual(['dma0chan0-copy0', 'dma0chan0-copy1']);
    expect(r.dmatest.totals).toEqual([
      { channel: 'dma0chan0', operation: 'copy', threads: 2, tests: 40, failures: 0, iops: 4742.5, kbPerSec: 37940 },
    ]);
    expect(r.userPaths.map((u) => u.path)).toEqual(['cpu', 'emulated']);
    for (const u of r.userPaths) {
      expect(u).toMatchObject({ ops: 40, bytes: 40 * 4096, verified: true });
      expect(u.iops).toBeGreaterThan(0);
    }
    const text = formatDmatestCommand(r);
    expect(text).toMatch(/kernel dma0chan0\s+40\s+0\s+4742\.50\s+37940\s+dmatest, 2 copy threads/);
    expect(text).toMatch(/dmacopy cpu\s+40\s+0\s+[\d.]+\s+\d+\s+verified/);
    expect(text).toMatch(/dmacopy emulated\s+40\s+0/);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('--channel all writes an empty channel; several channels are each written', async () => {
    const s = setup();
    const k = fakeKernel(s.params, s.log);
    await runDmatestCommand(base(s, { channel: ['all'], userPaths: false }), { isRoot: () => true, io: k.io, pollIntervalMs: 5 });
    expect(k.writes.filter(([n]) => n === 'channel')).toEqual([['channel', '']]);
    const s2 = setup();
    const k2 = fakeKernel(s2.params, s2.log);
    const r2 = await runDmatestCommand(base(s2, { channel: ['dma0chan0', 'dma1chan0'], userPaths: false }), {
      isRoot: () => true,
      io: k2.io,
      pollIntervalMs: 5,
    });
    expect(k2.writes.filter(([n]) => n === 'channel').map(([, v]) => v)).toEqual(['dma0chan0', 'dma1chan0']);
    expect(r2.dmatest.totals.map((t) => t.channel)).toEqual(['dma0chan0', 'dma1chan0']);
    expect(r2.userPaths).toEqual([]);
  });

  // Guards issue 12 item 3: the kernel cuts thread names to 15 characters, so every thread of dma10chan0 logs as
  // `dma10chan0-copy`; its summaries were dropped and the table said "no dmatest summary".
  it('a channel of 10+ characters gets its kernel row (thread names the kernel cut)', async () => {
    const s = setup();
    const k = fakeKernel(s.params, s.log);
    const r = await runDmatestCommand(base(s, { channel: ['dma10chan0'], userPaths: false }), {
      isRoot: () => true,
      io: k.io,
      pollIntervalMs: 5,
    });
    expect(r.dmatest.totals).toEqual([
      { channel: 'dma10chan0', operation: 'copy', threads: 2, tests: 40, failures: 0, iops: 4742.5, kbPerSec: 37940 },
    ]);
    const text = formatDmatestCommand(r);
    expect(text).not.toMatch(/no dmatest summary/);
    expect(text).toMatch(/kernel dma10chan0\s+40\s+0\s+4742\.50\s+37940\s+dmatest, 2 copy threads/);
  });

  it('refuses without root, without the module, and without a channel', async () => {
    const s = setup();
    const k = fakeKernel(s.params, s.log);
    await expect(runDmatestCommand(base(s), { isRoot: () => false, io: k.io })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_PERMISSION',
      message: expect.stringContaining('root'),
    });
    expect(k.writes).toEqual([]);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-nomod-'));
    tmp.push(empty);
    await expect(runDmatestCommand(base(s, { sysfsRoot: empty }), { isRoot: () => true })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_BACKEND_UNAVAILABLE',
      message: expect.stringContaining('modprobe dmatest'),
    });
    await expect(runDmatestCommand(base(s, { channel: [] }), { isRoot: () => true })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_INVALID_ARG',
    });
    await expect(runDmatestCommand(base(s, { channel: ['all', 'dma0chan0'] }), { isRoot: () => true })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_INVALID_ARG',
    });
    await expect(runDmatestCommand(base(s, { channel: ['eth0'] }), { isRoot: () => true })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_INVALID_ARG',
    });
  });

  it('an unavailable user path is reported, not thrown', async () => {
    const prev = process.env.DMACOPY_SYSFS_ROOT;
    process.env.DMACOPY_SYSFS_ROOT = path.join(os.tmpdir(), 'dmacopy-no-such-root');
    try {
      const u = await timeUserPath('dsa', 4096, 2, 1);
      expect(u.ops).toBe(0);
      expect(u.error).toMatch(/DSA/);
    } finally {
      if (prev === undefined) delete process.env.DMACOPY_SYSFS_ROOT;
      else process.env.DMACOPY_SYSFS_ROOT = prev;
    }
  });
});

describe('dmacopy dmatest CLI', () => {
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, 'dmatest', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  it('without the module (or without root): refused, exit 2, dmacopy: message (CODE)', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-nomod-'));
    tmp.push(empty);
    const r = cli(['--channel', 'dma0chan0', '--sysfs-root', empty, '--json']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const code = process.getuid?.() === 0 ? 'ERR_DMACOPY_BACKEND_UNAVAILABLE' : 'ERR_DMACOPY_PERMISSION';
    expect(r.stderr.trim()).toMatch(new RegExp(`^dmacopy: .*\\(${code}\\)$`));
  });
  it('bad usage: exit 2', () => {
    for (const args of [[], ['--channel', 'dma0chan0', '--iterations', '0'], ['--channel', 'dma0chan0', '--bogus']]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim()).toMatch(/^dmacopy: .*\(ERR_DMACOPY_INVALID_ARG\)$/);
    }
  });
});
