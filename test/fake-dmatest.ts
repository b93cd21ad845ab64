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

export function fakeKernel(params: string, log: string, opts: FakeKernelOptions = {}) {
  const writes: Array<[string, string]> = [];
  const added: string[] = [];
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
      if (name === 'channel' && value === opts.refuseChannel) throw Object.assign(new Error('EINVAL'), { code: 'EINVAL' });
      const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
      fs.writeSync(fd, `${value}\n`);
      fs.closeSync(fd);
      writes.push([name, value]);
      if (name === 'channel') added.push(value);
      if (name !== 'run' || value !== '1') return;
      fs.writeFileSync(file, 'Y\n');
      if (opts.finish === false) return;
      setTimeout(() => {
        const threads = Number(fs.readFileSync(path.join(params, 'threads_per_chan'), 'utf8'));
        const iterations = Number(fs.readFileSync(path.join(params, 'iterations'), 'utf8'));
        const kmsg = opts.format === 'kmsg';
        let seq = 5000;
        for (const c of added.map((a) => a || 'dma0chan0')) {
          for (let t = 0; t < threads; t++) {
            const summary = `dmatest: ${c}-copy${t}: summary ${iterations} tests, ${opts.failures ?? 0} failures 2371.25 iops 18970 KB/s (0)`;
            fs.appendFileSync(log, kmsg ? `6,${seq++},9000000,-;${summary}\n` : `[ 99.0${t}] ${summary}\n`);
          }
        }
        if (kmsg)
          fs.appendFileSync(log, `6,${seq++},9000001,-;dmatest: otherchan-copy0: summary 5 tests, 0 failures 1.00 iops 1 KB/s (0)\n`);
        fs.writeFileSync(file, 'N\n');
      }, 25);
    },
    exists: (file) => fs.existsSync(file),
  };
  return { io, writes };
}
