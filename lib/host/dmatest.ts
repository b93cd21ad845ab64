// Drives the kernel's dmatest module (drivers/dma/dmatest.c, Documentation/driver-api/dmaengine/dmatest.rst)
// through /sys/module/dmatest/parameters and reads its results from the kernel log, so operators can put the
// kernel dmaengine path (e.g. DSA kernel work queues, AMD PTDMA) beside dmacopy's own user-space paths.
//
// Order of writes matters: dmatest captures the other parameters when a channel is added, so `channel` is
// written last (once per channel), then `run` = 1. Completion is observed by polling `run` until it reads back
// N (reading `wait` would block a thread until the tests end, and not at all when iterations is infinite).

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DmacopyError, invalidArg } from '../errors';
import { resolveRoots } from './sysfs';

/** File operations on the parameters directory; injectable so tests can stand in for the kernel. */
export interface DmatestIo {
  /** Read a parameter (without its trailing newline); undefined if it does not exist. */
  read(file: string): Promise<string | undefined>;
  /** Write a parameter as `echo value > file` does (O_WRONLY|O_TRUNC, never creating it). */
  write(file: string, value: string): Promise<void>;
  exists(file: string): boolean;
}

export interface DmatestOptions {
  /** Channels to test (`dma0chan0`, …). Empty array: every available channel (`channel` written as ""). */
  channels: readonly string[];
  /** Transfers per thread. Must be > 0 (0 would run forever). Default 1000. */
  iterations?: number;
  /** Threads per channel. Default 1. */
  threadsPerChan?: number;
  /** Test buffer size in bytes. Default 16384 (the module default). */
  testBufSize?: number;
  /** Per-transfer timeout in ms (dmatest `timeout`). Default 3000 (the module default). */
  timeoutMs?: number;
  /** Poll for completion instead of using interrupts (kernels with the `polled` parameter). Default false. */
  polled?: boolean;
  /** Skip data verification. Default false. */
  noverify?: boolean;
  /** Fixed offsets and full-buffer lengths. Default false. */
  norandom?: boolean;
  /** Overall deadline for the run, in ms. Default 120000. */
  waitMs?: number;
  /** How often `run` is polled, in ms. Default 100. */
  pollIntervalMs?: number;
  /** Stands for /sys (default: env DMACOPY_SYSFS_ROOT, else /sys). */
  sysfsRoot?: string;
  /** The parameters directory itself. Default `<sysfsRoot>/module/dmatest/parameters`. */
  paramsDir?: string;
  /** Kernel log source: '/dev/kmsg' (default), 'dmesg' (run the dmesg command), or a file path (tests). */
  kernelLog?: string;
  /** Whether the process is root. Default: process.getuid() === 0. */
  isRoot?: () => boolean;
  io?: DmatestIo;
}

export interface DmatestSummary {
  /** Thread name, e.g. `dma0chan0-copy0`. */
  thread: string;
  /** Channel, e.g. `dma0chan0` (the thread name when it does not follow `<chan>-<op><n>`). */
  channel: string;
  /** `copy`, `memset`, `xor`, `pq`; null when unknown. */
  operation: string | null;
  threadIndex: number | null;
  tests: number;
  failures: number;
  /** Operations per second (two decimals on kernels since 2019, an integer before). */
  iops: number;
  /** KiB per second (the kernel counts len >> 10). */
  kbPerSec: number;
  /** The thread's return code (0 = ran to the end). */
  status: number;
  /** The log line as read. */
  line: string;
}

export interface DmatestError {
  thread: string;
  channel: string;
  /** Test number within the thread. */
  test: number;
  /** e.g. 'data error', 'test timed out', 'prep error'. */
  message: string;
  srcOff: number | null;
  dstOff: number | null;
  len: number | null;
  code: number | null;
  line: string;
}

export interface DmatestChannelTotal {
  channel: string;
  threads: number;
  tests: number;
  failures: number;
  iops: number;
  kbPerSec: number;
}

export interface DmatestRun {
  /** Channels requested ([] = all). */
  channels: string[];
  /** Parameters written, in order (name, value). */
  written: Array<[string, string]>;
  summaries: DmatestSummary[];
  errors: DmatestError[];
  totals: DmatestChannelTotal[];
  /** The run did not finish by the deadline; it was stopped (run = 0) and results may be partial. */
  timedOut: boolean;
  durationMs: number;
}

const CHANNEL_RE = /^dma\d{1,9}chan\d{1,9}$/;
const SUMMARY_RE = /(\S+): summary (\d+) tests?, (\d+) failures? (\d+(?:\.\d+)?) iops (\d+(?:\.\d+)?) KB\/s \((-?\d+)\)/;
const RESULT_RE =
  /(\S+): result #(\d+): '([^']*)' with src_off=(0x[0-9a-fA-F]+|\d+) dst_off=(0x[0-9a-fA-F]+|\d+) len=(0x[0-9a-fA-F]+|\d+) \((-?\d+)\)/;
const THREAD_RE = /^(dma\d+chan\d+)-([a-z]+?)(\d+)$/;

function splitThread(thread: string): { channel: string; operation: string | null; threadIndex: number | null } {
  const m = THREAD_RE.exec(thread);
  if (!m) return { channel: thread, operation: null, threadIndex: null };
  return { channel: m[1] as string, operation: m[2] as string, threadIndex: Number(m[3]) };
}

function num(text: string): number | null {
  const n = text.startsWith('0x') || text.startsWith('0X') ? Number.parseInt(text.slice(2), 16) : Number(text);
  return Number.isFinite(n) ? n : null;
}

/**
 * Parse dmatest lines out of kernel log text: `dmesg` output (`[ 12.345] dmatest: …`), /dev/kmsg records
 * (`6,1234,5678,-;dmatest: …`), journal lines, or bare messages. Other lines are ignored.
 */
export function parseDmatestLog(text: string): { summaries: DmatestSummary[]; errors: DmatestError[] } {
  const summaries: DmatestSummary[] = [];
  const errors: DmatestError[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    const at = line.indexOf('dmatest: ');
    if (at < 0) continue;
    const msg = line.slice(at + 'dmatest: '.length);
    const s = SUMMARY_RE.exec(msg);
    if (s) {
      const thread = s[1] as string;
      summaries.push({
        thread,
        ...splitThread(thread),
        tests: Number(s[2]),
        failures: Number(s[3]),
        iops: Number(s[4]),
        kbPerSec: Number(s[5]),
        status: Number(s[6]),
        line: msg,
      });
      continue;
    }
    const r = RESULT_RE.exec(msg);
    if (r) {
      const thread = r[1] as string;
      errors.push({
        thread,
        channel: splitThread(thread).channel,
        test: Number(r[2]),
        message: r[3] as string,
        srcOff: num(r[4] as string),
        dstOff: num(r[5] as string),
        len: num(r[6] as string),
        code: num(r[7] as string),
        line: msg,
      });
    }
  }
  return { summaries, errors };
}

/** Per-channel totals of summaries (iops and KB/s add up across a channel's threads). */
export function totalsByChannel(summaries: readonly DmatestSummary[]): DmatestChannelTotal[] {
  const map = new Map<string, DmatestChannelTotal>();
  for (const s of summaries) {
    const t = map.get(s.channel) ?? { channel: s.channel, threads: 0, tests: 0, failures: 0, iops: 0, kbPerSec: 0 };
    t.threads++;
    t.tests += s.tests;
    t.failures += s.failures;
    t.iops = Math.round((t.iops + s.iops) * 100) / 100;
    t.kbPerSec += s.kbPerSec;
    map.set(s.channel, t);
  }
  return [...map.values()].sort((a, b) => a.channel.localeCompare(b.channel, 'en', { numeric: true }));
}

// ---- kernel log sources ----

interface LogSource {
  mark(): Promise<void>;
  /** Text logged since mark(). */
  readNew(): Promise<string>;
}

function fileLog(file: string): LogSource {
  let offset = 0;
  return {
    async mark() {
      try {
        offset = (await fs.promises.stat(file)).size;
      } catch {
        offset = 0;
      }
    },
    async readNew() {
      const buf = await fs.promises.readFile(file);
      return buf.subarray(buf.length >= offset ? offset : 0).toString('utf8');
    },
  };
}

/** /dev/kmsg: one record per read(); O_NONBLOCK so the end of the buffer reads EAGAIN. */
function kmsgLog(file: string): LogSource {
  let lastSeq = -1;
  const readAll = (): Array<{ seq: number; text: string }> => {
    const out: Array<{ seq: number; text: string }> = [];
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(16384);
      for (;;) {
        let n: number;
        try {
          n = fs.readSync(fd, buf, 0, buf.length, null);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EPIPE') continue; // records overwritten while reading: skip ahead
          if (code === 'EAGAIN' || code === 'EWOULDBLOCK') break;
          throw err;
        }
        if (n <= 0) break;
        const text = buf.toString('utf8', 0, n);
        const seq = Number(text.split(',', 2)[1]);
        out.push({ seq: Number.isFinite(seq) ? seq : -1, text: text.replace(/\n$/, '') });
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
  };
  return {
    async mark() {
      for (const r of readAll()) lastSeq = Math.max(lastSeq, r.seq);
    },
    async readNew() {
      return readAll()
        .filter((r) => r.seq > lastSeq)
        .map((r) => r.text)
        .join('\n');
    },
  };
}

function dmesgLog(): LogSource {
  let lines = 0;
  const run = (): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile('dmesg', [], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
  return {
    async mark() {
      lines = (await run()).split('\n').length - 1;
    },
    async readNew() {
      return (await run()).split('\n').slice(lines).join('\n');
    },
  };
}

function pickLog(kernelLog: string | undefined): LogSource {
  if (kernelLog === 'dmesg') return dmesgLog();
  if (kernelLog === undefined || kernelLog === '/dev/kmsg') {
    try {
      fs.accessSync('/dev/kmsg', fs.constants.R_OK);
      return kmsgLog('/dev/kmsg');
    } catch {
      return dmesgLog();
    }
  }
  return fileLog(kernelLog);
}

// ---- parameters ----

const defaultIo: DmatestIo = {
  async read(file) {
    try {
      return (await fs.promises.readFile(file, 'utf8')).replace(/\n$/, '');
    } catch {
      return undefined;
    }
  },
  async write(file, value) {
    const h = await fs.promises.open(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
    try {
      await h.write(`${value}\n`);
    } finally {
      await h.close();
    }
  },
  exists(file) {
    return fs.existsSync(file);
  },
};

function defaultIsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function isRunning(value: string | undefined): boolean {
  const v = value?.trim();
  return v === 'Y' || v === 'y' || v === '1';
}

function positiveInt(name: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (allowZero ? 0 : 1) || value > 0x7fffffff) {
    throw invalidArg(name, `options.${name} must be an integer ${allowZero ? '>= 0' : '> 0'} (got ${String(value)})`);
  }
  return value;
}

function bool(name: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArg(name, `options.${name} must be a boolean`);
  return value;
}

/** Where the parameters directory is, and whether the module is loaded and this process may drive it. */
export function dmatestParamsDir(options: { sysfsRoot?: string; paramsDir?: string } = {}): string {
  if (options.paramsDir !== undefined) {
    if (typeof options.paramsDir !== 'string' || options.paramsDir.length === 0)
      throw invalidArg('paramsDir', 'options.paramsDir must be a non-empty string');
    return options.paramsDir;
  }
  return path.join(resolveRoots({ sysfsRoot: options.sysfsRoot }).sysfsRoot, 'module', 'dmatest', 'parameters');
}

/**
 * Run dmatest on the given channels and return the per-thread summaries it logs.
 * Refuses without root (ERR_DMACOPY_PERMISSION) or without the module (ERR_DMACOPY_BACKEND_UNAVAILABLE).
 */
export async function runDmatest(options: DmatestOptions): Promise<DmatestRun> {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'options must be an object');
  const channels = options.channels;
  if (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string' && CHANNEL_RE.test(c))) {
    throw invalidArg(
      'channels',
      'options.channels must be an array of channel names such as "dma0chan0" ([] tests every available channel)',
    );
  }
  if (new Set(channels).size !== channels.length) throw invalidArg('channels', 'options.channels lists a channel twice');
  const iterations = positiveInt('iterations', options.iterations, 1000);
  const threadsPerChan = positiveInt('threadsPerChan', options.threadsPerChan, 1);
  const testBufSize = positiveInt('testBufSize', options.testBufSize, 16384);
  const timeoutMs = positiveInt('timeoutMs', options.timeoutMs, 3000);
  const waitMs = positiveInt('waitMs', options.waitMs, 120000);
  const pollIntervalMs = positiveInt('pollIntervalMs', options.pollIntervalMs, 100);
  const polled = bool('polled', options.polled);
  const noverify = bool('noverify', options.noverify);
  const norandom = bool('norandom', options.norandom);
  const io = options.io ?? defaultIo;
  const isRoot = options.isRoot ?? defaultIsRoot;
  const dir = dmatestParamsDir(options);

  if (!isRoot()) {
    throw new DmacopyError(
      'ERR_DMACOPY_PERMISSION',
      'dmatest needs root: it loads kernel test threads through /sys/module/dmatest/parameters. Run it as root (e.g. `sudo dmacopy dmatest …`).',
      { path: dir },
    );
  }
  if (!io.exists(dir)) {
    throw new DmacopyError(
      'ERR_DMACOPY_BACKEND_UNAVAILABLE',
      `The dmatest module is not loaded (${dir} does not exist): load it with \`modprobe dmatest\` (kernel built with CONFIG_DMATEST).`,
      { path: dir },
    );
  }
  const param = (name: string): string => path.join(dir, name);
  if (isRunning(await io.read(param('run')))) {
    throw new DmacopyError('ERR_DMACOPY_DEVICE', `dmatest is already running: wait for it, or stop it with \`echo 0 > ${param('run')}\`.`, {
      path: param('run'),
    });
  }

  const written: Array<[string, string]> = [];
  const write = async (name: string, value: string): Promise<void> => {
    try {
      await io.write(param(name), value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') {
        throw new DmacopyError('ERR_DMACOPY_PERMISSION', `Cannot write ${param(name)} (${code}): run as root.`, {
          path: param(name),
          errno: code,
          syscall: 'write',
          cause: err,
        });
      }
      const hint =
        name === 'channel'
          ? ` The kernel refused channel "${value}": it does not exist, is busy, is already added, or does not do memcpy (see \`ls /sys/class/dma\` and \`dmacopy info\`).`
          : '';
      throw new DmacopyError('ERR_DMACOPY_DEVICE', `Writing ${value} to ${param(name)} failed (${code ?? 'error'}).${hint}`, {
        path: param(name),
        errno: code,
        syscall: 'write',
        cause: err,
      });
    }
    written.push([name, value]);
  };
  const writeOptional = async (name: string, value: boolean): Promise<void> => {
    if (io.exists(param(name))) await write(name, value ? 'Y' : 'N');
    else if (value) {
      throw new DmacopyError('ERR_DMACOPY_BACKEND_UNAVAILABLE', `This kernel's dmatest has no \`${name}\` parameter: run without it.`, {
        path: param(name),
      });
    }
  };

  const log = pickLog(options.kernelLog);
  await log.mark();
  const started = Date.now();

  // Everything the test threads capture when a channel is added, then the channels, then run.
  await write('timeout', String(timeoutMs));
  await write('iterations', String(iterations));
  await write('threads_per_chan', String(threadsPerChan));
  await write('test_buf_size', String(testBufSize));
  if (io.exists(param('dmatest'))) await write('dmatest', '0'); // memcpy, not memset
  await writeOptional('polled', polled);
  await writeOptional('noverify', noverify);
  await writeOptional('norandom', norandom);
  if (channels.length === 0) await write('channel', '');
  for (const c of channels) await write('channel', c);
  await write('run', '1');

  let timedOut = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, pollIntervalMs));
    if (!isRunning(await io.read(param('run')))) break;
    if (Date.now() - started > waitMs) {
      timedOut = true;
      try {
        await io.write(param('run'), '0');
      } catch {
        /* reported through timedOut */
      }
      break;
    }
  }

  const parsed = parseDmatestLog(await log.readNew());
  const wanted = (ch: string): boolean => channels.length === 0 || channels.includes(ch);
  const summaries = parsed.summaries.filter((s) => wanted(s.channel));
  return {
    channels: [...channels],
    written,
    summaries,
    errors: parsed.errors.filter((e) => wanted(e.channel)),
    totals: totalsByChannel(summaries),
    timedOut,
    durationMs: Date.now() - started,
  };
}
