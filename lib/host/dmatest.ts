// Drives the kernel's dmatest module (drivers/dma/dmatest.c, Documentation/driver-api/dmaengine/dmatest.rst)
// through /sys/module/dmatest/parameters and reads its results from the kernel log, so operators can put the
// kernel dmaengine path (e.g. DSA kernel work queues, AMD PTDMA) beside dmacopy's own user-space paths.
//
// Order of writes matters: dmatest captures the other parameters when a channel is added, so `channel` is
// written last (once per channel), then `run` = 1. Completion is observed by polling `run` until it reads back
// N (reading `wait` would block a thread until the tests end, and not at all when iterations is infinite).
//
// Module parameters keep their values between runs and across users, so each run sets every parameter that shapes
// it (parameterPlan) and writes the earlier values back afterwards, also when the run fails.

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
  /**
   * Stops the run early (Ctrl-C in the CLI): the test is stopped (run = 0) and the parameters
   * written back, as on the deadline; the result says `interrupted`.
   */
  signal?: AbortSignal;
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
  /** Thread name as logged, e.g. `dma0chan0-copy0`; the kernel cuts it to 15 characters (see `truncated`). */
  thread: string;
  /** Channel, e.g. `dma0chan0` (the thread name when it does not follow `<chan>-<op><n>`). */
  channel: string;
  /** `copy`, `set` (memset), `xor`, `pq`; null when unknown (cut off, or not a dmatest thread name). */
  operation: string | null;
  /** Index of the thread on its channel; null when the kernel cut it off and it cannot be told apart. */
  threadIndex: number | null;
  /** The logged name may be the kernel's 15-character cut of a longer one, and its full name is not known. */
  truncated: boolean;
  tests: number;
  failures: number;
  /** Operations per second (two decimals on kernels since 2019, an integer before); null on kernels before v3.13, which did not log it. */
  iops: number | null;
  /** KiB per second (the kernel counts len >> 10); null on kernels before v3.13. */
  kbPerSec: number | null;
  /** The thread's return code (0 = ran to the end). */
  status: number;
  /** The log line as read. */
  line: string;
}

export interface DmatestError {
  thread: string;
  channel: string;
  /** Test number within the thread, counted from 1 (kernels before v3.10 logged it from 0; it is shifted). */
  test: number;
  /** e.g. 'data error', 'test timed out', 'prep error'. */
  message: string;
  srcOff: number | null;
  dstOff: number | null;
  len: number | null;
  /** The number in parentheses: an error count for 'data error', else a return code (negative errno). */
  code: number | null;
  line: string;
}

export interface DmatestChannelTotal {
  channel: string;
  /**
   * The operation its threads ran (`copy`, `set`, `xor`, `pq`; null when the thread names do not
   * say): one total per operation, since dmatest adds xor and pq threads to a channel that offers
   * them even when only copies were asked for, and those are not copies.
   */
  operation: string | null;
  threads: number;
  tests: number;
  failures: number;
  /** Sum over the channel's threads; null when a thread's summary does not give it (kernels before v3.13). */
  iops: number | null;
  kbPerSec: number | null;
}

export interface DmatestRun {
  /** Channels requested ([] = all). */
  channels: string[];
  /** Parameters written for the run, in order (name, value). */
  written: Array<[string, string]>;
  /** Parameters written back afterwards to the values they had before the run, in order (name, value). */
  restored: Array<[string, string]>;
  /** Parameters that could not be written back (name, the value it had before, why). */
  notRestored: Array<{ name: string; value: string; error: string }>;
  summaries: DmatestSummary[];
  errors: DmatestError[];
  totals: DmatestChannelTotal[];
  /** The run did not finish by the deadline; it was stopped (run = 0) and results may be partial. */
  timedOut: boolean;
  /** The run was stopped by options.signal (run = 0, parameters written back); results may be partial. */
  interrupted: boolean;
  durationMs: number;
}

/** What the parser may know about the run the log comes from; it resolves thread names the kernel cut. */
export interface DmatestLogContext {
  /** Channels under test (full names). Channels the log names in `Added/Started N threads using X` are added. */
  channels?: readonly string[];
  /** threads_per_chan of the run: tells a cut index (`…-copy1` of `…-copy10`) from a whole one. */
  threadsPerChan?: number;
}

const CHANNEL_RE = /^dma\d{1,9}chan\d{1,9}$/;

// Thread names are `<channel>-<op><index>` (kthread_create(…, "%s-%s%u", dma_chan_name(chan), op, i)), kept in
// task->comm, which holds TASK_COMM_LEN (16) bytes with the NUL: the kernel cuts longer names to 15 characters,
// and every message prints the cut one (current->comm). `dma10chan0-copy0` is logged as `dma10chan0-copy`.
const COMM_MAX = 15;
const OPS = ['copy', 'set', 'xor', 'pq'] as const;

// The thread-name token before `: `; kmsg record prefixes are removed first (they have no space before it).
const T = String.raw`(?:^|\s)(\S+): `;
const HEX = String.raw`(0x[0-9a-fA-F]+|\d+)`;
const OFFS = `src_off=${HEX} dst_off=${HEX} len=${HEX}`;
// Summary lines, all versions (format strings of drivers/dma/dmatest.c):
//   v2.6.24–v3.12  "%s: terminating after %u tests, %u failures (status %d)"        (pr_notice)
//   vendor copies  "%s: terminating after %u tests, %u failures %llu iops %llu KB/s (status %d)"
//   v3.13–v5.2     "%s: summary %u tests, %u failures %llu iops %llu KB/s (%d)"
//   v5.3 onward    "%s: summary %u tests, %u failures %llu.%02llu iops %llu KB/s (%d)"
const SUMMARY_RE = new RegExp(
  `${T}(?:summary|terminating after) (\\d+) tests?, (\\d+) failures?(?: (\\d+(?:\\.\\d+)?) iops (\\d+) KB/s)? \\((?:status )?(-?\\d+)\\)`,
);
// v3.13 onward: result()/dbg_result() "%s: result #%u: '%s' with src_off=0x%x dst_off=0x%x len=0x%x (%lu)".
const RESULT_RE = new RegExp(`${T}result #(\\d+): '([^']*)' with ${OFFS} \\((-?\\d+)\\)`);
// Before v3.13 results were "%s: #%u: <what>[ with src_off=0x%x dst_off=0x%x len=0x%x][ (%lu)]": v3.10–v3.12 print
// "%s: #%u: %s with … (%lu)" (thread_result_get, tests counted from 1), older ones "%s: #%u: %u errors with …",
// "…: prep error with …", "…: submit error %d with …", "…: test timed out", "…: got completion callback, but
// status is '%s'" (tests counted from 0). The generic `#n:` shape is only taken from dmatest thread names.
const OLD_RESULT_RE = new RegExp(`${T}#(\\d+): (.+?)(?: with ${OFFS}(?: \\((-?\\d+)\\))?)?$`);
// Printed when a channel is added or its threads started (full channel names, never cut).
const CHANNEL_LINE_RE = /(?:Added|Started) \d+ threads using (dma\d+chan\d+)\s*$/;
const KMSG_PREFIX_RE = /^\d+,\d+,\d+,[^;]*;/;
const DMATEST_THREAD_RE = /^dma\d+chan\d/;
// Results that report success, not an error: `verbose=Y` logs every passed test (v4.19+: 'test passed'), and
// v3.10–v3.12 logged 'No errors' for each; v3.10–v3.12 also log 'verify errors' per buffer region before the
// 'errors' line that counts the test, so only the latter is taken.
const NOT_ERRORS = new Set(['test passed', 'No errors', 'verify errors']);

/**
 * `%lu` of a negative `int` (an errno): 18446744073709551605 is -11 on 64-bit kernels, 4294967285 on 32-bit ones.
 * Values within MAX_ERRNO (4095) of the top are read back as negative.
 */
export function unsignedLongToErrno(text: string): number | null {
  if (!/^-?\d+$/.test(text)) return null;
  const v = BigInt(text);
  for (const bits of [64n, 32n]) {
    const top = 1n << bits;
    if (v < top && v >= top - 4095n) return Number(v - top);
  }
  return Number(v);
}

function num(text: string | undefined): number | null {
  if (text === undefined) return null;
  const n = /^0x/i.test(text) ? Number.parseInt(text.slice(2), 16) : Number(text);
  return Number.isFinite(n) ? n : null;
}

interface ThreadName {
  channel: string;
  operation: string | null;
  threadIndex: number | null;
  truncated: boolean;
}

/**
 * Which channel, operation and index a logged thread name stands for. Names shorter than 15 characters are
 * whole. A 15-character one may be cut: it is matched by prefix against the known channels, the operation by
 * prefix against the operations, and the index against threads_per_chan (`dma0chan0-copy1` is thread 1, 10 or
 * 11 of 12; with 2 threads it is thread 1). What cannot be told apart is null, never guessed.
 */
export function resolveThreadName(thread: string, context: DmatestLogContext = {}): ThreadName {
  const mayBeCut = thread.length === COMM_MAX;
  const whole = /^(dma\d+chan\d+)-([a-z]+)(\d+)$/.exec(thread);
  if (!mayBeCut) {
    if (!whole) return { channel: thread, operation: null, threadIndex: null, truncated: false };
    return { channel: whole[1] as string, operation: whole[2] as string, threadIndex: Number(whole[3]), truncated: false };
  }
  // A cut name: the channel is the known one it starts with (its `-` pins the boundary), or, when the name ends
  // inside a channel name of 15+ characters, the known one that starts with the name (several only if hundreds of
  // devices or channels share the first 15 characters; the first in order is taken and the name stays marked cut).
  const known = [...(context.channels ?? [])].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const channel =
    known.find((c) => thread.startsWith(`${c}-`)) ??
    known.find((c) => `${c}-`.startsWith(thread)) ??
    /^(dma\d+chan\d+)(?:-|$)/.exec(thread)?.[1];
  if (channel === undefined) return { channel: thread, operation: null, threadIndex: null, truncated: true };
  const rest = /^([a-z]*)(\d*)$/.exec(thread.slice(channel.length + 1));
  const opText = rest?.[1] ?? '';
  const digits = rest?.[2] ?? '';
  const ops = opText === '' ? [] : OPS.filter((o) => o.startsWith(opText));
  const operation = ops.length === 1 ? (ops[0] as string) : null;
  let threadIndex: number | null = null;
  if (operation !== null && opText === operation && digits !== '') {
    const tpc = context.threadsPerChan;
    // Indexes have no leading zeros, so a visible "0" is thread 0; otherwise every index below threads_per_chan
    // that starts with the visible digits is a candidate.
    const candidates =
      digits === '0' ? [0] : tpc === undefined ? [] : Array.from({ length: tpc }, (_, i) => i).filter((i) => String(i).startsWith(digits));
    if (candidates.length === 1) threadIndex = candidates[0] as number;
  }
  const truncated = threadIndex === null || `${channel}-${operation}${threadIndex}` !== thread;
  return { channel, operation, threadIndex, truncated };
}

function channelsInLog(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    const m = CHANNEL_LINE_RE.exec(line);
    if (m && !out.includes(m[1] as string)) out.push(m[1] as string);
  }
  return out;
}

/**
 * Parse dmatest lines out of kernel log text: `dmesg` output (`[ 12.345] dmatest: …`), /dev/kmsg records
 * (`6,1234,5678,-;dmatest: …`), journal lines, or bare messages, in the formats of every kernel since v2.6.24
 * (see SUMMARY_RE, RESULT_RE, OLD_RESULT_RE). Other lines are ignored; every summary line is returned.
 */
export function parseDmatestLog(text: string, context: DmatestLogContext = {}): { summaries: DmatestSummary[]; errors: DmatestError[] } {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '').replace(KMSG_PREFIX_RE, ''));
  const ctx: DmatestLogContext = { ...context, channels: [...new Set([...(context.channels ?? []), ...channelsInLog(lines)])] };
  const summaries: DmatestSummary[] = [];
  const errors: DmatestError[] = [];
  for (const line of lines) {
    const s = SUMMARY_RE.exec(line);
    if (s) {
      const thread = s[1] as string;
      summaries.push({
        thread,
        ...resolveThreadName(thread, ctx),
        tests: Number(s[2]),
        failures: Number(s[3]),
        iops: num(s[4]),
        kbPerSec: num(s[5]),
        status: Number(s[6]),
        line: line.slice(s.index).trimStart(),
      });
      continue;
    }
    const r = RESULT_RE.exec(line);
    if (r) {
      if (NOT_ERRORS.has(r[3] as string)) continue;
      const thread = r[1] as string;
      errors.push({
        thread,
        channel: resolveThreadName(thread, ctx).channel,
        test: Number(r[2]),
        message: r[3] as string,
        srcOff: num(r[4]),
        dstOff: num(r[5]),
        len: num(r[6]),
        code: unsignedLongToErrno(r[7] as string),
        line: line.slice(r.index).trimStart(),
      });
      continue;
    }
    const o = OLD_RESULT_RE.exec(line);
    if (o && DMATEST_THREAD_RE.test(o[1] as string)) {
      const old = oldResult(o[3] as string, o[7]);
      if (old === null) continue;
      const thread = o[1] as string;
      errors.push({
        thread,
        channel: resolveThreadName(thread, ctx).channel,
        // Only v3.10–v3.12 print the `(%lu)` suffix, and they count tests from 1; older kernels from 0.
        test: Number(o[2]) + (o[7] === undefined ? 1 : 0),
        message: old.message,
        srcOff: num(o[4]),
        dstOff: num(o[5]),
        len: num(o[6]),
        code: old.code,
        line: line.slice(o.index).trimStart(),
      });
    }
  }
  return { summaries, errors };
}

/** Message and code of a pre-v3.13 result; null for lines that report success. */
function oldResult(what: string, data: string | undefined): { message: string; code: number | null } | null {
  if (NOT_ERRORS.has(what)) return null;
  const counted = /^(\d+) errors$/.exec(what);
  if (counted) return { message: 'data error', code: Number(counted[1]) };
  if (what === 'errors') return { message: 'data error', code: data === undefined ? null : unsignedLongToErrno(data) };
  const submit = /^submit error (-?\d+)$/.exec(what);
  if (submit) return { message: 'submit error', code: Number(submit[1]) };
  return { message: what, code: data === undefined ? null : unsignedLongToErrno(data) };
}

/** Totals of summaries per channel and operation (iops and KB/s add up across those threads). */
export function totalsByChannel(summaries: readonly DmatestSummary[]): DmatestChannelTotal[] {
  const map = new Map<string, DmatestChannelTotal>();
  const add = (a: number | null, b: number | null): number | null => (a === null || b === null ? null : a + b);
  for (const s of summaries) {
    const key = `${s.channel}\0${s.operation ?? ''}`;
    const t = map.get(key) ?? {
      channel: s.channel,
      operation: s.operation,
      threads: 0,
      tests: 0,
      failures: 0,
      iops: 0,
      kbPerSec: 0,
    };
    t.threads++;
    t.tests += s.tests;
    t.failures += s.failures;
    const iops = add(t.iops, s.iops);
    t.iops = iops === null ? null : Math.round(iops * 100) / 100;
    t.kbPerSec = add(t.kbPerSec, s.kbPerSec);
    map.set(key, t);
  }
  return [...map.values()].sort(
    (a, b) => a.channel.localeCompare(b.channel, 'en', { numeric: true }) || (a.operation ?? '').localeCompare(b.operation ?? ''),
  );
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

  // Decide what to write before writing anything, so a kernel that lacks a needed parameter changes nothing.
  const plan = parameterPlan({ iterations, threadsPerChan, testBufSize, timeoutMs, polled, noverify, norandom }).filter((p) => {
    if (io.exists(param(p.name))) return true;
    if (!p.required) return false;
    throw new DmacopyError(
      'ERR_DMACOPY_BACKEND_UNAVAILABLE',
      `This kernel's dmatest has no \`${p.name}\` parameter${p.asked ? ': run without that option' : ', which dmacopy needs to run it'}.`,
      { path: param(p.name) },
    );
  });
  // The values before this run, to write back afterwards. Only the planned parameters are read: reading `wait`
  // blocks until the tests end.
  const previous = new Map<string, string>();
  for (const p of plan) {
    const v = await io.read(param(p.name));
    if (v !== undefined) previous.set(p.name, v);
  }
  const restored: Array<[string, string]> = [];
  const notRestored: DmatestRun['notRestored'] = [];
  const restore = async (): Promise<void> => {
    for (const p of [...plan].reverse()) {
      const before = previous.get(p.name);
      if (before === undefined || before === p.value || !written.some(([n]) => n === p.name)) continue;
      try {
        await io.write(param(p.name), before);
        restored.push([p.name, before]);
      } catch (err) {
        notRestored.push({ name: p.name, value: before, error: (err as Error).message });
      }
    }
  };

  const log = pickLog(options.kernelLog);
  await log.mark();
  const started = Date.now();

  let timedOut = false;
  let interrupted = false;
  const stopped = (): boolean => options.signal?.aborted === true;
  try {
    // Everything the test threads capture when a channel is added, then the channels, then run.
    for (const p of plan) await write(p.name, p.value);
    if (channels.length === 0) await write('channel', '');
    for (const c of channels) await write('channel', c);
    if (stopped()) interrupted = true;
    else await write('run', '1');

    while (!interrupted) {
      await new Promise((r) => setTimeout(r, pollIntervalMs));
      if (!isRunning(await io.read(param('run')))) break;
      const late = Date.now() - started > waitMs;
      if (late || stopped()) {
        // Stopped like the kernel's own test: the threads end, the parameters go back below.
        if (late) timedOut = true;
        else interrupted = true;
        try {
          await io.write(param('run'), '0');
        } catch {
          /* reported through timedOut / interrupted */
        }
        break;
      }
    }
  } catch (err) {
    await restore(); // best effort: the error that stopped the run is the one reported
    throw err;
  }
  await restore();

  const parsed = parseDmatestLog(await log.readNew(), { channels, threadsPerChan });
  const wanted = (ch: string): boolean => channels.length === 0 || channels.includes(ch);
  const summaries = parsed.summaries.filter((s) => wanted(s.channel));
  return {
    channels: [...channels],
    written,
    restored,
    notRestored,
    summaries,
    errors: parsed.errors.filter((e) => wanted(e.channel)),
    totals: totalsByChannel(summaries),
    timedOut,
    interrupted,
    durationMs: Date.now() - started,
  };
}

interface PlannedParameter {
  name: string;
  value: string;
  /** A run cannot be what was asked without it: refuse on a kernel that lacks it (others are skipped there). */
  required: boolean;
  /** Required because the caller asked for a non-default value (the error then says to run without the option). */
  asked?: boolean;
}

/**
 * Every dmatest parameter that shapes a run, with the value this run needs. Module parameters persist between
 * runs, so one left by an earlier run or by hand (`verbose=Y`, `device=…`, `transfer_size=…`, `dmatest=1`, …)
 * would silently change this one: each is set on every run and written back afterwards (see runDmatest). Not
 * here: `channel` and `run`, which are actions (adding a channel, starting), and the read-only `wait`/`test_list`.
 * Parameters newer than the oldest kernels with `run` are optional: skipped on kernels that lack them.
 */
function parameterPlan(o: {
  iterations: number;
  threadsPerChan: number;
  testBufSize: number;
  timeoutMs: number;
  polled: boolean;
  noverify: boolean;
  norandom: boolean;
}): PlannedParameter[] {
  const yn = (v: boolean): string => (v ? 'Y' : 'N');
  const option = (name: string, value: boolean): PlannedParameter => ({ name, value: yn(value), required: value, asked: value });
  return [
    { name: 'verbose', value: 'N', required: false }, // 'test passed' for every test floods the log
    { name: 'device', value: '', required: false }, // a device filter would refuse the named channels
    { name: 'max_channels', value: '0', required: false }, // no cap on the channels added
    { name: 'timeout', value: String(o.timeoutMs), required: true },
    { name: 'iterations', value: String(o.iterations), required: true },
    { name: 'threads_per_chan', value: String(o.threadsPerChan), required: true },
    { name: 'test_buf_size', value: String(o.testBufSize), required: true },
    { name: 'dmatest', value: '0', required: false }, // the operation: memcpy, not memset
    { name: 'transfer_size', value: '0', required: false }, // lengths vary within the buffer (the whole buffer with norandom)
    { name: 'alignment', value: '-1', required: false }, // the device's own alignment
    { name: 'xor_sources', value: '3', required: false }, // module defaults, for channels that also get xor/pq threads
    { name: 'pq_sources', value: '3', required: false },
    { name: 'nobounce', value: 'N', required: false }, // buffers as the kernel maps them (swiotlb allowed)
    option('polled', o.polled),
    option('noverify', o.noverify),
    option('norandom', o.norandom),
  ];
}
