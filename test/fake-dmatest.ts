// A stand-in for the kernel's dmatest module, shared by the library and CLI tests: a temp copy of
// the fixture parameters directory, a kernel log that starts with old summaries (which must not be
// reported), and an io layer that records every parameter write and, when `run` is set to 1,
// "runs" the added channels: logs one summary per thread and flips `run` back to N.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import type { DmatestIo } from '../../lib/host/dmatest';
import { FIXTURES } from './helpers';

const FIX = path.join(FIXTURES, 'dmatest');
const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

export function setupDmatest(): { params: string; log: string; sysfsRoot: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-dmatest-'));
  tmp.push(dir);
  fs.cpSync(path.join(FIX, 'sys'), path.join(dir, 'sys'), { recursive: true });
  const log = path.join(dir, 'kern.log');
  fs.copyFileSync(path.join(FIX, 'dmesg-old.txt'), log);
  return { params: path.join(dir, 'sys/module/dmatest/parameters'), log, sysfsRoot: path.join(dir, 'sys') };
}

export interface FakeKernelOptions {
  /** false: `run` never returns to N (a test that times out). */
  finish?: boolean;
  /** Writing this channel fails with EINVAL, as the kernel refuses an unknown channel. */
  refuseChannel?: string;
  /** Failures each summary line reports. */
  failures?: number;
  /** 'dmesg' lines (`[ t] dmatest: ...`) or /dev/kmsg records (`6,seq,ts,-;dmatest: ...`, plus one for another channel). */
  format?: 'dmesg' | 'kmsg';
}

/** The device every fake channel belongs to (what a `device` filter must name to let them be added). */
export const FAKE_DEVICE = 'dsa0';
/** The kernel keeps thread names in task->comm: TASK_COMM_LEN (16) bytes with the NUL, so 15 characters. */
const comm = (name: string): string => name.slice(0, 15);

/**
 * Behaves as drivers/dma/dmatest.c does where dmacopy depends on it: writing `channel` snapshots every other
 * parameter for that channel's threads (and refuses a channel that the `device` filter or `max_channels`
 * excludes); `run` = 1 starts them; each thread logs under its cut name (comm); `verbose=Y` logs a
 * 'test passed' result per test; `dmatest=1` (memset) adds no threads, as DSA's dmaengine channels do not memset.
 */
export function fakeKernel(params: string, log: string, opts: FakeKernelOptions = {}) {
  const writes: Array<[string, string]> = [];
  /** Per channel added: the parameters its threads captured. */
  const captured = new Map<string, Record<string, string>>();
  let seq = 5000;
  const emit = (msg: string, t = 0): void => {
    fs.appendFileSync(log, opts.format === 'kmsg' ? `6,${seq++},9000000,-;dmatest: ${msg}\n` : `[ 99.0${t}] dmatest: ${msg}\n`);
  };
  const snapshot = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const f of fs.readdirSync(params)) if (f !== 'wait') out[f] = fs.readFileSync(path.join(params, f), 'utf8').replace(/\n$/, '');
    return out;
  };
  const einval = () => Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
  const io: DmatestIo = {
    async read(file) {
      try {
        return fs.readFileSync(file, 'utf8').replace(/\n$/, '');
      } catch {
        return undefined;
      }
    },
    async write(file, value) {
      const name = path.basename(file);
      if (name === 'channel') {
        const p = snapshot();
        const chan = value || 'dma0chan0';
        if (value === opts.refuseChannel) throw einval();
        if (p.device && p.device !== FAKE_DEVICE) throw einval(); // "Could not add channel": the filter excludes it
        if (Number(p.max_channels) > 0 && captured.size >= Number(p.max_channels)) throw einval();
        captured.set(chan, p);
        emit(`Added ${p.dmatest === '1' ? 0 : p.threads_per_chan} threads using ${chan}`);
      }
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
      fs.writeSync(fd, `${value}\n`);
      fs.closeSync(fd);
      writes.push([name, value]);
      if (name !== 'run' || value !== '1') return;
      fs.writeFileSync(file, 'Y\n');
      if (opts.finish === false) return;
      setTimeout(() => {
        for (const [c, p] of captured) {
          const threads = p.dmatest === '1' ? 0 : Number(p.threads_per_chan);
          emit(`Started ${threads} threads using ${c}`);
          for (let t = 0; t < threads; t++) {
            const name = comm(`${c}-copy${t}`);
            if (p.verbose === 'Y')
              for (let i = 1; i <= Number(p.iterations); i++)
                emit(
                  `${name}: result #${i}: 'test passed' with src_off=0x0 dst_off=0x0 len=0x${Number(p.test_buf_size).toString(16)} (0)`,
                  t,
                );
            emit(`${name}: summary ${p.iterations} tests, ${opts.failures ?? 0} failures 2371.25 iops 18970 KB/s (0)`, t);
          }
        }
        if (opts.format === 'kmsg') emit('otherchan-copy0: summary 5 tests, 0 failures 1.00 iops 1 KB/s (0)');
        fs.writeFileSync(file, 'N\n');
      }, 25);
    },
    exists: (file) => fs.existsSync(file),
  };
  /** The writes up to and including `run` = 1 (what set up the run; later ones restore the parameters). */
  const runWrites = () => writes.slice(0, writes.findIndex(([n, v]) => n === 'run' && v === '1') + 1);
  return { io, writes, runWrites, captured };
}
