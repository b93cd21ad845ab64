import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDmatestRun } from '../../lib/cli/host-reports';
import { parseDmatestLog, resolveThreadName, runDmatest, totalsByChannel, unsignedLongToErrno } from '../../lib/host/dmatest';
import { FAKE_DEVICE, setupDmatest as setup, fakeKernel as sharedFakeKernel } from '../fake-dmatest';
import { FIXTURES } from '../helpers';

/** The /dev/kmsg record format, as the library reads the kernel log by default. */
const fakeKernel = (params: string, log: string, opts: { finish?: boolean; refuseChannel?: string } = {}) =>
  sharedFakeKernel(params, log, { ...opts, format: 'kmsg' });

const FIX = path.join(FIXTURES, 'dmatest');

describe('runDmatest', () => {
  it('writes the parameters, channel last, then run; parses only the new summary lines', async () => {
    const { params, log } = setup();
    const k = fakeKernel(params, log);
    const run = await runDmatest({
      channels: ['dma0chan0', 'dma1chan0'],
      iterations: 50,
      threadsPerChan: 2,
      testBufSize: 4096,
      timeoutMs: 2000,
      polled: true,
      noverify: true,
      paramsDir: params,
      kernelLog: log,
      isRoot: () => true,
      io: k.io,
      pollIntervalMs: 10,
    });
    expect(k.runWrites()).toEqual([
      ['verbose', 'N'],
      ['device', ''],
      ['max_channels', '0'],
      ['timeout', '2000'],
      ['iterations', '50'],
      ['threads_per_chan', '2'],
      ['test_buf_size', '4096'],
      ['dmatest', '0'],
      ['transfer_size', '0'],
      ['alignment', '-1'],
      ['xor_sources', '3'],
      ['pq_sources', '3'],
      ['nobounce', 'N'],
      ['polled', 'Y'],
      ['noverify', 'Y'],
      ['norandom', 'N'],
      ['channel', 'dma0chan0'],
      ['channel', 'dma1chan0'],
      ['run', '1'],
    ]);
    expect(run.written).toEqual(k.runWrites());
    // What the run changed is written back, last first; what it left as it was is not written again.
    expect(run.restored).toEqual([
      ['noverify', 'N'],
      ['polled', 'N'],
      ['test_buf_size', '16384'],
      ['threads_per_chan', '1'],
      ['iterations', '0'],
      ['timeout', '3000'],
    ]);
    expect(k.writes.slice(run.written.length)).toEqual(run.restored);
    expect(run.notRestored).toEqual([]);
    expect(k.captured.get('dma0chan0')).toMatchObject({ iterations: '50', threads_per_chan: '2', polled: 'Y' });
    expect(fs.readFileSync(path.join(params, 'iterations'), 'utf8')).toBe('0\n');
    expect(run.timedOut).toBe(false);
    expect(run.summaries.map((s) => s.thread)).toEqual(['dma0chan0-copy0', 'dma0chan0-copy1', 'dma1chan0-copy0', 'dma1chan0-copy1']);
    expect(run.summaries[0]).toMatchObject({
      channel: 'dma0chan0',
      operation: 'copy',
      threadIndex: 0,
      tests: 50,
      failures: 0,
      iops: 2371.25,
      kbPerSec: 18970,
      status: 0,
    });
    expect(run.totals).toEqual([
      { channel: 'dma0chan0', operation: 'copy', threads: 2, tests: 100, failures: 0, iops: 4742.5, kbPerSec: 37940 },
      { channel: 'dma1chan0', operation: 'copy', threads: 2, tests: 100, failures: 0, iops: 4742.5, kbPerSec: 37940 },
    ]);
    const text = formatDmatestRun(run);
    expect(text).toMatch(/Kernel dmatest on dma0chan0, dma1chan0:/);
    expect(text).toMatch(/dma0chan0-copy0\s+50\s+0\s+2371\.25\s+18970\s+0/);
    expect(text).toMatch(/dma0chan0 copy \(2 threads\)\s+100/);
  });

  it('tests every channel when none is named (channel written as "")', async () => {
    const { params, log } = setup();
    const k = fakeKernel(params, log);
    const run = await runDmatest({ channels: [], paramsDir: params, kernelLog: log, isRoot: () => true, io: k.io, pollIntervalMs: 10 });
    expect(k.runWrites().slice(-2)).toEqual([
      ['channel', ''],
      ['run', '1'],
    ]);
    expect(run.summaries.map((s) => s.thread)).toEqual(['dma0chan0-copy0', 'otherchan-copy0']); // all that the kernel logged
  });

  it('works through the default file I/O and the sysfsRoot option', async () => {
    const { params, log, sysfsRoot } = setup();
    const timer = setInterval(() => {
      const run = fs.readFileSync(path.join(params, 'run'), 'utf8').trim();
      if (run === '1') {
        fs.appendFileSync(log, '[ 9.0] dmatest: dma3chan0-copy0: summary 10 tests, 1 failures 99.50 iops 800 KB/s (0)\n');
        fs.appendFileSync(log, "[ 9.0] dmatest: dma3chan0-copy0: result #4: 'data error' with src_off=0x10 dst_off=0x20 len=0x30 (0)\n");
        fs.writeFileSync(path.join(params, 'run'), 'N\n');
      }
    }, 10);
    try {
      const run = await runDmatest({
        channels: ['dma3chan0'],
        iterations: 10,
        sysfsRoot,
        kernelLog: log,
        isRoot: () => true,
        pollIntervalMs: 10,
      });
      expect(fs.readFileSync(path.join(params, 'channel'), 'utf8')).toBe('dma3chan0\n');
      expect(run.summaries).toHaveLength(1);
      expect(run.errors).toEqual([
        expect.objectContaining({
          thread: 'dma3chan0-copy0',
          channel: 'dma3chan0',
          test: 4,
          message: 'data error',
          srcOff: 16,
          dstOff: 32,
          len: 48,
          code: 0,
        }),
      ]);
      expect(formatDmatestRun(run)).toMatch(/dma3chan0-copy0 test #4: data error/);
    } finally {
      clearInterval(timer);
    }
  });

  const kmsgReadable = (() => {
    try {
      fs.accessSync('/dev/kmsg', fs.constants.R_OK);
      fs.closeSync(fs.openSync('/dev/kmsg', fs.constants.O_RDONLY | fs.constants.O_NONBLOCK));
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!kmsgReadable)('reads the real /dev/kmsg without blocking (nothing new from a fake run)', async () => {
    const { params, log } = setup();
    const k = fakeKernel(params, log);
    const run = await runDmatest({
      channels: ['dma0chan0'],
      paramsDir: params,
      kernelLog: '/dev/kmsg',
      isRoot: () => true,
      io: k.io,
      pollIntervalMs: 10,
    });
    expect(run.timedOut).toBe(false);
    expect(run.summaries.every((s) => s.channel === 'dma0chan0')).toBe(true);
  });

  it('refuses without root, naming the remedy', async () => {
    const { params } = setup();
    await expect(runDmatest({ channels: ['dma0chan0'], paramsDir: params, isRoot: () => false })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_PERMISSION',
      message: expect.stringMatching(/root.*sudo/s),
    });
  });

  it('refuses without the module, naming modprobe dmatest', async () => {
    await expect(runDmatest({ channels: ['dma0chan0'], sysfsRoot: '/nonexistent-dmacopy', isRoot: () => true })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_BACKEND_UNAVAILABLE',
      message: expect.stringContaining('modprobe dmatest'),
    });
  });

  it('refuses to start while a test is running', async () => {
    const { params, log } = setup();
    fs.writeFileSync(path.join(params, 'run'), 'Y\n');
    await expect(runDmatest({ channels: ['dma0chan0'], paramsDir: params, kernelLog: log, isRoot: () => true })).rejects.toMatchObject({
      code: 'ERR_DMACOPY_DEVICE',
    });
  });

  it('reports a channel the kernel refuses', async () => {
    const { params, log } = setup();
    const k = fakeKernel(params, log, { refuseChannel: 'dma9chan9' });
    await expect(
      runDmatest({ channels: ['dma9chan9'], paramsDir: params, kernelLog: log, isRoot: () => true, io: k.io }),
    ).rejects.toMatchObject({
      code: 'ERR_DMACOPY_DEVICE',
      errno: 'EINVAL',
      message: expect.stringContaining('refused channel "dma9chan9"'),
    });
    expect(k.writes.map(([n]) => n)).not.toContain('run');
  });

  it('stops the run at the deadline and says so', async () => {
    const { params, log } = setup();
    const k = fakeKernel(params, log, { finish: false });
    const run = await runDmatest({
      channels: ['dma0chan0'],
      paramsDir: params,
      kernelLog: log,
      isRoot: () => true,
      io: k.io,
      waitMs: 60,
      pollIntervalMs: 10,
    });
    expect(run.timedOut).toBe(true);
    expect(fs.readFileSync(path.join(params, 'run'), 'utf8')).toBe('0\n');
    expect(formatDmatestRun(run)).toMatch(/DID NOT FINISH/);
  });

  it("stopped by its signal (the CLI's Ctrl-C): stops the test and writes the parameters back", async () => {
    // Before, Ctrl-C left the kernel's test running with the run's parameters in place: its
    // threads kept copying and the next run refused ("already running").
    const { params, log } = setup();
    const before = fs.readFileSync(path.join(params, 'iterations'), 'utf8');
    const k = fakeKernel(params, log, { finish: false });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 50);
    const run = await runDmatest({
      channels: ['dma0chan0'],
      iterations: 100_000_000,
      paramsDir: params,
      kernelLog: log,
      isRoot: () => true,
      io: k.io,
      waitMs: 5_000,
      pollIntervalMs: 10,
      signal: stop.signal,
    });
    expect(run.interrupted).toBe(true);
    expect(run.timedOut).toBe(false);
    expect(fs.readFileSync(path.join(params, 'run'), 'utf8')).toBe('0\n');
    expect(fs.readFileSync(path.join(params, 'iterations'), 'utf8')).toBe(before);
    expect(formatDmatestRun(run)).toMatch(/INTERRUPTED/);
  });

  it('skips polled on kernels without it, and refuses to pretend when it is asked for', async () => {
    const { params, log } = setup();
    fs.rmSync(path.join(params, 'polled'));
    const k = fakeKernel(params, log);
    await runDmatest({ channels: ['dma0chan0'], paramsDir: params, kernelLog: log, isRoot: () => true, io: k.io, pollIntervalMs: 10 });
    expect(k.writes.map(([n]) => n)).not.toContain('polled');
    await expect(
      runDmatest({ channels: ['dma0chan0'], polled: true, paramsDir: params, kernelLog: log, isRoot: () => true, io: k.io }),
    ).rejects.toMatchObject({
      code: 'ERR_DMACOPY_BACKEND_UNAVAILABLE',
    });
  });

  // Guards issue 12 item 3, cut thread names: the kernel keeps thread names in 15 characters, so every thread of a
  // channel whose name has 10+ characters (dma10chan0-copy0 → dma10chan0-copy) and threads 10 and up of any
  // channel (dma0chan0-copy10 → dma0chan0-copy1) are logged cut. Their summaries were dropped (`no summary`) or
  // read as the wrong thread; each must count for its channel.
  it('counts cut thread names for their channels and drops no summary (10+ character channels, 12 threads)', async () => {
    const { params, log } = setup();
    const k = fakeKernel(params, log);
    const run = await runDmatest({
      channels: ['dma10chan0', 'dma0chan12', 'dma0chan0'],
      iterations: 5,
      threadsPerChan: 12,
      paramsDir: params,
      kernelLog: log,
      isRoot: () => true,
      io: k.io,
      pollIntervalMs: 10,
    });
    expect(run.summaries).toHaveLength(36);
    expect(run.totals.map((t) => [t.channel, t.threads, t.tests])).toEqual([
      ['dma0chan0', 12, 60],
      ['dma0chan12', 12, 60],
      ['dma10chan0', 12, 60],
    ]);
    const byChannel = (c: string) => run.summaries.filter((s) => s.channel === c);
    expect(byChannel('dma10chan0').every((s) => s.thread === 'dma10chan0-copy' && s.threadIndex === null && s.truncated)).toBe(true);
    expect(byChannel('dma10chan0').every((s) => s.operation === 'copy')).toBe(true);
    // dma0chan0-copy1 stands for threads 1, 10 and 11: not read as thread 1.
    expect(byChannel('dma0chan0').map((s) => s.threadIndex)).toEqual([0, null, 2, 3, 4, 5, 6, 7, 8, 9, null, null]);
    const text = formatDmatestRun(run);
    expect(text).not.toMatch(/no summary lines/);
    expect(text).toMatch(/dma10chan0 copy \(12 threads\)\s+60/);
    expect(text).toMatch(/dma10chan0-copy…/);
  });

  const LEFTOVERS: Record<string, string> = {
    verbose: 'Y',
    device: 'dsa9',
    max_channels: '1',
    dmatest: '1',
    transfer_size: '8',
    alignment: '3',
    nobounce: 'Y',
    xor_sources: '5',
    pq_sources: '5',
    norandom: 'Y',
    noverify: 'Y',
    polled: 'Y',
    timeout: '1',
    iterations: '7',
    threads_per_chan: '4',
    test_buf_size: '64',
  };
  const leaveBehind = (params: string) => {
    for (const [name, value] of Object.entries(LEFTOVERS)) fs.writeFileSync(path.join(params, name), `${value}\n`);
  };
  const paramsNow = (params: string) =>
    Object.fromEntries(
      Object.keys(LEFTOVERS)
        .filter((n) => fs.existsSync(path.join(params, n)))
        .map((n) => [n, fs.readFileSync(path.join(params, n), 'utf8').replace(/\n$/, '')]),
    );

  // Guards issue 12 item 3, persistent parameters: module parameters keep their values between runs, so what an
  // earlier run (or a person) left — verbose=Y, a device filter, max_channels, memset, a transfer size, … — leaked
  // into dmacopy's run. Every parameter that shapes the run is set, and each is written back afterwards.
  it('leftover parameters from an earlier run do not leak into this one, and are written back after it', async () => {
    const { params, log } = setup();
    leaveBehind(params);
    const k = fakeKernel(params, log);
    const run = await runDmatest({
      channels: ['dma0chan0', 'dma1chan0'],
      iterations: 20,
      paramsDir: params,
      kernelLog: log,
      isRoot: () => true,
      io: k.io,
      pollIntervalMs: 10,
    });
    const expected = {
      verbose: 'N',
      device: '',
      max_channels: '0',
      dmatest: '0',
      transfer_size: '0',
      alignment: '-1',
      nobounce: 'N',
      xor_sources: '3',
      pq_sources: '3',
      norandom: 'N',
      noverify: 'N',
      polled: 'N',
      timeout: '3000',
      iterations: '20',
      threads_per_chan: '1',
      test_buf_size: '16384',
    };
    expect(FAKE_DEVICE).not.toBe(LEFTOVERS.device);
    expect([...k.captured.keys()]).toEqual(['dma0chan0', 'dma1chan0']);
    for (const c of k.captured.values()) expect(c).toMatchObject(expected);
    expect(run.summaries.map((s) => [s.thread, s.tests])).toEqual([
      ['dma0chan0-copy0', 20],
      ['dma1chan0-copy0', 20],
    ]);
    expect(run.errors).toEqual([]);
    expect(paramsNow(params)).toEqual(LEFTOVERS);
    expect(run.restored).toHaveLength(Object.keys(LEFTOVERS).length); // every leftover differs from what the run needs
  });

  it('writes the parameters back when the run fails, and skips those an older kernel lacks', async () => {
    const { params, log } = setup();
    leaveBehind(params);
    const older = ['transfer_size', 'alignment', 'nobounce', 'polled', 'dmatest']; // parameters added after v3.13
    for (const absent of older) fs.rmSync(path.join(params, absent));
    const k = fakeKernel(params, log, { refuseChannel: 'dma9chan9' });
    await expect(
      runDmatest({ channels: ['dma0chan0', 'dma9chan9'], paramsDir: params, kernelLog: log, isRoot: () => true, io: k.io }),
    ).rejects.toMatchObject({ code: 'ERR_DMACOPY_DEVICE', errno: 'EINVAL' });
    const names = k.writes.map(([n]) => n);
    for (const absent of older) expect(names).not.toContain(absent);
    expect(names).toContain('verbose');
    expect(names).not.toContain('run');
    expect(paramsNow(params)).toEqual(Object.fromEntries(Object.entries(LEFTOVERS).filter(([n]) => !older.includes(n))));
  });

  it('validates its options', async () => {
    const base = { isRoot: () => true, paramsDir: '/nonexistent' };
    for (const bad of [
      { channels: 'dma0chan0' },
      { channels: ['eth0'] },
      { channels: ['dma0chan0', 'dma0chan0'] },
      { channels: [], iterations: 0 },
      { channels: [], threadsPerChan: 1.5 },
      { channels: [], polled: 'yes' },
    ]) {
      await expect(runDmatest({ ...base, ...(bad as object) } as never)).rejects.toMatchObject({ code: 'ERR_DMACOPY_INVALID_ARG' });
    }
  });
});

describe('parseDmatestLog', () => {
  it('parses dmesg output with fixed-point iops and result lines', () => {
    const { summaries, errors } = parseDmatestLog(fs.readFileSync(path.join(FIX, 'dmesg.txt'), 'utf8'));
    expect(summaries).toEqual([
      expect.objectContaining({
        thread: 'dma0chan0-copy0',
        channel: 'dma0chan0',
        tests: 1000,
        failures: 0,
        iops: 2371.25,
        kbPerSec: 18970,
        status: 0,
      }),
      expect.objectContaining({
        thread: 'dma0chan1-copy0',
        channel: 'dma0chan1',
        tests: 1000,
        failures: 1,
        iops: 2210.03,
        kbPerSec: 17680,
        status: 0,
      }),
    ]);
    expect(errors).toEqual([
      expect.objectContaining({ thread: 'dma0chan1-copy0', test: 7, message: 'data error', srcOff: 0x1f0, dstOff: 0x2a0, len: 0x3c00 }),
    ]);
  });

  it('parses the older integer-iops format', () => {
    const { summaries } = parseDmatestLog(fs.readFileSync(path.join(FIX, 'dmesg-old.txt'), 'utf8'));
    expect(summaries.map((s) => [s.thread, s.tests, s.iops, s.kbPerSec])).toEqual([
      ['dma0chan0-copy0', 400000, 17848, 151006],
      ['dma0chan0-copy1', 400000, 17790, 150500],
    ]);
    expect(totalsByChannel(summaries)).toEqual([
      { channel: 'dma0chan0', operation: 'copy', threads: 2, tests: 800000, failures: 0, iops: 35638, kbPerSec: 301506 },
    ]);
  });

  it('totals each operation of a channel apart: the xor and pq threads dmatest adds are not copies', () => {
    // dmatest_add_channel starts xor and pq threads on a channel that offers them, even with
    // only copies asked for; they were once summed into the channel's "copies".
    const line = (t: string, tests: number) =>
      `[  100.000000] dmatest: ${t}: summary ${tests} tests, 0 failures 1000.00 iops 8000 KB/s (0)`;
    const { summaries } = parseDmatestLog(
      [line('dma0chan0-copy0', 1000), line('dma0chan0-xor0', 1000), line('dma0chan0-pq0', 1000), line('dma0chan0-copy1', 1000)].join('\n'),
    );
    expect(totalsByChannel(summaries).map((t) => [t.channel, t.operation, t.threads, t.tests])).toEqual([
      ['dma0chan0', 'copy', 2, 2000],
      ['dma0chan0', 'pq', 1, 1000],
      ['dma0chan0', 'xor', 1, 1000],
    ]);
  });

  it('parses /dev/kmsg records and ignores continuation lines', () => {
    const { summaries } = parseDmatestLog(fs.readFileSync(path.join(FIX, 'kmsg.txt'), 'utf8'));
    expect(summaries.map((s) => [s.thread, s.iops])).toEqual([
      ['dma1chan0-copy0', 1450.1],
      ['dma1chan0-copy1', 1466],
    ]);
  });

  it('parses the doc example, bare and journal lines; ignores everything else', () => {
    const text = [
      'dmatest: dma0chan0-copy0: summary 1 test, 0 failures 1000 iops 100000 KB/s (0)',
      'Jun 01 12:00:00 host kernel: dmatest: dma1chan3-memset2: summary 7 tests, 2 failures 3.50 iops 12 KB/s (-5)',
      'dmatest: Started 1 threads using dma0chan0',
      'random: crng init done',
      'dmatest: dma0chan0-copy0: summary banana tests',
      '',
    ].join('\n');
    const { summaries } = parseDmatestLog(text);
    expect(summaries.map((s) => [s.thread, s.channel, s.operation, s.threadIndex, s.tests, s.failures, s.iops, s.status])).toEqual([
      ['dma0chan0-copy0', 'dma0chan0', 'copy', 0, 1, 0, 1000, 0],
      ['dma1chan3-memset2', 'dma1chan3', 'memset', 2, 7, 2, 3.5, -5],
    ]);
  });
});

// The kernel's own format strings across versions of drivers/dma/dmatest.c; each fixture's header says which
// kernels it follows. Guards issue 12 item 3: older summary formats, cut thread names, thread indexes 10 and up,
// negative codes printed with %lu, and 'test passed' (verbose=Y) not counted as errors.
describe('parseDmatestLog across kernel versions', () => {
  const read = (name: string) => fs.readFileSync(path.join(FIX, name), 'utf8');

  it('v2.6.24–v3.9: "terminating after" summaries without iops, "#n:" results counted from 0, no prefix', () => {
    const { summaries, errors } = parseDmatestLog(read('v2.6.24-v3.9.txt'));
    expect(summaries.map((s) => [s.thread, s.channel, s.threadIndex, s.tests, s.failures, s.iops, s.kbPerSec, s.status])).toEqual([
      ['dma0chan0-copy0', 'dma0chan0', 0, 1000, 5, null, null, 0],
      ['dma10chan0-copy', 'dma10chan0', null, 1000, 0, null, null, 0],
      ['dma10chan0-copy', 'dma10chan0', null, 1000, 0, null, null, 0],
    ]);
    expect(totalsByChannel(summaries)).toEqual([
      { channel: 'dma0chan0', operation: 'copy', threads: 1, tests: 1000, failures: 5, iops: null, kbPerSec: null },
      { channel: 'dma10chan0', operation: 'copy', threads: 2, tests: 2000, failures: 0, iops: null, kbPerSec: null },
    ]);
    expect(errors.map((e) => [e.test, e.message, e.srcOff, e.dstOff, e.len, e.code])).toEqual([
      [4, 'data error', 0x1f0, 0x2a0, 0x3c00, 17],
      [6, 'test timed out', null, null, null, null],
      [7, "got completion callback, but status is 'error'", null, null, null, null],
      [8, 'prep error', 0, 0x10, 0x20, null],
      [9, 'submit error', 0, 0x10, 0x20, -16],
    ]);
  });

  it('v3.10–v3.12: "#n: <what> with … (%lu)" results; success and per-region lines are not errors', () => {
    const { summaries, errors } = parseDmatestLog(read('v3.10-v3.12.txt'));
    expect(summaries.map((s) => [s.thread, s.channel, s.tests, s.failures, s.iops])).toEqual([
      ['dma0chan12-copy', 'dma0chan12', 1000, 3, null],
    ]);
    expect(errors.map((e) => [e.channel, e.test, e.message, e.code])).toEqual([
      ['dma0chan12', 3, 'data error', 17],
      ['dma0chan12', 5, 'submit error', -16],
      ['dma0chan12', 6, 'test timed out', 0],
    ]);
  });

  it('v3.13–2019: integer iops summaries and result lines of a cut channel name, a negative %lu code', () => {
    const { summaries, errors } = parseDmatestLog(read('v3.13-v5.2.txt'));
    expect(summaries).toHaveLength(3);
    expect(totalsByChannel(summaries)).toEqual([
      { channel: 'dma0chan12', operation: 'copy', threads: 3, tests: 3000, failures: 2, iops: 15109, kbPerSec: 120872 },
    ]);
    expect(errors.map((e) => [e.channel, e.test, e.message, e.code])).toEqual([
      ['dma0chan12', 4, 'test timed out', 0],
      ['dma0chan12', 9, 'prep error', -12],
    ]);
  });

  it('since 2019: fixed-point summaries, 12 threads cut, verbose "test passed" lines ignored', () => {
    const { summaries, errors } = parseDmatestLog(read('v5.3-onward.txt'), { threadsPerChan: 12 });
    expect(totalsByChannel(summaries)).toEqual([
      { channel: 'dma0chan0', operation: 'copy', threads: 12, tests: 1200, failures: 0, iops: 12006, kbPerSec: 96000 },
      { channel: 'dma10chan0', operation: 'copy', threads: 12, tests: 1200, failures: 2, iops: 28455, kbPerSec: 227640 },
    ]);
    expect(summaries.filter((s) => s.channel === 'dma0chan0').map((s) => s.threadIndex)).toEqual([
      0,
      null,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      null,
      null,
    ]);
    expect(errors.map((e) => [e.thread, e.channel, e.test, e.message, e.code])).toEqual([
      ['dma10chan0-copy', 'dma10chan0', 2, 'completion error status', -5],
      ['dma10chan0-copy', 'dma10chan0', 3, 'data error', 17],
    ]);
  });

  it('reads %lu of a negative errno on 64- and 32-bit kernels', () => {
    expect(unsignedLongToErrno('18446744073709551605')).toBe(-11);
    expect(unsignedLongToErrno('4294967285')).toBe(-11);
    expect(unsignedLongToErrno('17')).toBe(17);
    expect(unsignedLongToErrno('0')).toBe(0);
    expect(unsignedLongToErrno('x')).toBeNull();
  });

  it('resolves cut thread names by the known channels and threads_per_chan, and guesses nothing', () => {
    expect(resolveThreadName('dma0chan0-copy1', { threadsPerChan: 2 })).toEqual({
      channel: 'dma0chan0',
      operation: 'copy',
      threadIndex: 1,
      truncated: false,
    });
    expect(resolveThreadName('dma0chan0-copy1', { threadsPerChan: 12 }).threadIndex).toBeNull();
    expect(resolveThreadName('dma0chan0-copy1').threadIndex).toBeNull();
    expect(resolveThreadName('dma0chan0-copy0')).toMatchObject({ threadIndex: 0, truncated: false });
    expect(resolveThreadName('dma100chan0-cop')).toMatchObject({ channel: 'dma100chan0', operation: 'copy', threadIndex: null });
    expect(resolveThreadName('dma1000chan1000', { channels: ['dma1000chan10000'] })).toMatchObject({
      channel: 'dma1000chan10000',
      operation: null,
      truncated: true,
    });
    expect(resolveThreadName('dma1chan2-pq11')).toMatchObject({ channel: 'dma1chan2', operation: 'pq', threadIndex: 11, truncated: false }); // 14 characters: whole
    expect(resolveThreadName('dma1chan2-xor11', { threadsPerChan: 12 })).toMatchObject({ threadIndex: 11, truncated: false });
    expect(resolveThreadName('otherchan-copy0')).toMatchObject({ channel: 'otherchan-copy0', operation: null });
  });
});
