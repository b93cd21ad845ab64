import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDmatestRun } from '../../lib/cli/host-reports';
import { parseDmatestLog, runDmatest, totalsByChannel } from '../../lib/host/dmatest';
import { setupDmatest as setup, fakeKernel as sharedFakeKernel } from '../fake-dmatest';
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
      { channel: 'dma0chan0', threads: 2, tests: 100, failures: 0, iops: 4742.5, kbPerSec: 37940 },
      { channel: 'dma1chan0', threads: 2, tests: 100, failures: 0, iops: 4742.5, kbPerSec: 37940 },
    ]);
    const text = formatDmatestRun(run);
    expect(text).toMatch(/Kernel dmatest on dma0chan0, dma1chan0:/);
    expect(text).toMatch(/dma0chan0-copy0\s+50\s+0\s+2371\.25\s+18970\s+0/);
    expect(text).toMatch(/dma0chan0 \(2 threads\)\s+100/);
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
      { channel: 'dma0chan0', threads: 2, tests: 800000, failures: 0, iops: 35638, kbPerSec: 301506 },
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
