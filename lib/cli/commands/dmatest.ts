// `dmacopy dmatest`: run the kernel's dmatest on dmaengine channels (lib/host/dmatest.ts), then copy
// the same buffer size the same number of times on dmacopy's own paths (cpu, the software DSA
// device, and DSA queues when usable), and print both side by side: kernel DMA beside user space.
import type { Command } from 'commander';
import { dsaAvailable } from '../../engine/backends';
import { type Engine, openEngine } from '../../engine/engine';
import { invalidArg } from '../../errors';
import { type DmatestIo, type DmatestRun, runDmatest } from '../../host/dmatest';
import type { ResolvedBackend } from '../../types';
import { dmatestRate, formatDmatestRun } from '../host-reports';
import { columnWidths } from '../text-table';
import { formatBytes, positiveInt } from './format';
import { applyRoots, strictUsage } from './usage';

export interface UserPathResult {
  path: ResolvedBackend;
  /** Copies made (iterations × threads, capped so one path moves at most 1 GiB). */
  ops: number;
  bytes: number;
  elapsedMs: number;
  iops: number;
  /** KiB per second, as dmatest counts (bytes >> 10 per second). */
  kbPerSec: number;
  /** Every copy landed byte for byte. */
  verified: boolean;
  error?: string;
}

export interface DmatestCommandResult {
  dmatest: DmatestRun;
  bufferSize: number;
  userPaths: UserPathResult[];
}

const USER_BYTES_CAP = 1024 ** 3;

/**
 * Copies one buffer of bufferSize bytes `iterations` times on each of `threads` concurrent loops,
 * through an engine of the given backend that sends every batch to that backend (minOffloadBytes 0).
 */
export async function timeUserPath(
  backend: ResolvedBackend,
  bufferSize: number,
  iterations: number,
  threads: number,
): Promise<UserPathResult> {
  const perThread = Math.max(1, Math.min(iterations, Math.floor(USER_BYTES_CAP / threads / bufferSize)));
  const result: UserPathResult = { path: backend, ops: 0, bytes: 0, elapsedMs: 0, iops: 0, kbPerSec: 0, verified: true };
  let engine: Engine;
  try {
    engine = await openEngine({ backend, minOffloadBytes: 0, ...(backend === 'cpu' ? { cpuThreads: Math.max(1, threads) } : {}) });
  } catch (err) {
    return { ...result, verified: false, error: `${(err as Error).message}` };
  }
  try {
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: threads }, async (_, t) => {
        const src = Buffer.alloc(bufferSize);
        for (let i = 0; i < bufferSize; i++) src[i] = (i * 131 + t * 17 + 1) & 0xff;
        const dst = Buffer.alloc(bufferSize);
        for (let i = 0; i < perThread; i++) {
          dst[0] = ~(src[0] as number) & 0xff;
          dst[bufferSize - 1] = ~(src[bufferSize - 1] as number) & 0xff;
          await engine.copyBatch(dst, src);
          if (!dst.equals(src)) result.verified = false;
          result.ops++;
          result.bytes += bufferSize;
        }
      }),
    );
    const ns = Number(process.hrtime.bigint() - started);
    result.elapsedMs = ns / 1e6;
    result.iops = Math.round((result.ops / (ns / 1e9)) * 100) / 100;
    result.kbPerSec = Math.floor(result.bytes / 1024 / (ns / 1e9));
  } catch (err) {
    result.verified = false;
    result.error = (err as Error).message;
  } finally {
    await engine.close();
  }
  return result;
}

export interface DmatestCliOptions {
  channel?: string[];
  iterations: number;
  bufferSize: number;
  threads: number;
  polled?: boolean;
  noverify?: boolean;
  timeoutMs?: number;
  waitMs?: number;
  paramsDir?: string;
  kernelLog?: string;
  userPaths?: boolean;
  json?: boolean;
  sysfsRoot?: string;
}

export interface DmatestDeps {
  isRoot?: () => boolean;
  io?: DmatestIo;
  pollIntervalMs?: number;
  /** Default: cpu, emulated, and dsa when discovery finds a usable queue. */
  paths?: ResolvedBackend[];
  /** Stops the kernel's test early (the CLI's Ctrl-C); the user paths are then not timed. */
  signal?: AbortSignal;
}

export async function runDmatestCommand(o: DmatestCliOptions, deps: DmatestDeps = {}): Promise<DmatestCommandResult> {
  const channels = o.channel ?? [];
  if (channels.length === 0)
    throw invalidArg(
      '--channel',
      'give --channel <dmaNchanM> (repeat it for several; `--channel all` tests every available channel); `dmacopy info` lists them',
    );
  const all = channels.includes('all');
  if (all && channels.length > 1) throw invalidArg('--channel', '--channel all cannot be combined with named channels');
  for (const c of channels) {
    if (c !== 'all' && !/^dma\d{1,9}chan\d{1,9}$/.test(c))
      throw invalidArg('--channel', `--channel takes a channel name such as dma0chan0, got '${c}'`);
  }
  const run = await runDmatest({
    channels: all ? [] : channels,
    iterations: o.iterations,
    testBufSize: o.bufferSize,
    threadsPerChan: o.threads,
    polled: o.polled === true,
    noverify: o.noverify === true,
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.waitMs !== undefined ? { waitMs: o.waitMs } : {}),
    ...(o.sysfsRoot !== undefined ? { sysfsRoot: o.sysfsRoot } : {}),
    ...(o.paramsDir !== undefined ? { paramsDir: o.paramsDir } : {}),
    ...(o.kernelLog !== undefined ? { kernelLog: o.kernelLog } : {}),
    ...(deps.isRoot ? { isRoot: deps.isRoot } : {}),
    ...(deps.io ? { io: deps.io } : {}),
    ...(deps.pollIntervalMs !== undefined ? { pollIntervalMs: deps.pollIntervalMs } : {}),
    ...(deps.signal ? { signal: deps.signal } : {}),
  });
  if (run.interrupted) return { dmatest: run, bufferSize: o.bufferSize, userPaths: [] };
  const userPaths: UserPathResult[] = [];
  if (o.userPaths !== false) {
    const paths = deps.paths ?? (['cpu', 'emulated', ...(dsaAvailable() ? ['dsa'] : [])] as ResolvedBackend[]);
    for (const p of paths) {
      if (deps.signal?.aborted) break; // Ctrl-C while timing: report what was timed
      userPaths.push(await timeUserPath(p, o.bufferSize, o.iterations, o.threads));
    }
  }
  return { dmatest: run, bufferSize: o.bufferSize, userPaths };
}

export function formatDmatestCommand(r: DmatestCommandResult): string {
  const lines: string[] = [formatDmatestRun(r.dmatest).trimEnd(), ''];
  lines.push(
    `Side by side, ${formatBytes(r.bufferSize)} buffers (dmatest varies offsets and lengths within the buffer unless norandom; dmacopy copies the whole buffer):`,
  );
  const rows: string[][] = [['PATH', 'COPIES', 'FAILURES', 'IOPS', 'KB/S', 'NOTE']];
  // Copies only: dmatest also runs xor and pq threads on channels that offer them (listed above).
  const copies = r.dmatest.totals.filter((t) => t.operation === 'copy');
  for (const t of copies)
    rows.push([
      `kernel ${t.channel}`,
      String(t.tests),
      String(t.failures),
      dmatestRate(t.iops, 2),
      dmatestRate(t.kbPerSec),
      `dmatest, ${t.threads} copy thread${t.threads === 1 ? '' : 's'}`,
    ]);
  if (copies.length === 0) rows.push(['kernel', '-', '-', '-', '-', 'no dmatest copy summary']);
  for (const u of r.userPaths) {
    if (u.error !== undefined && u.ops === 0) rows.push([`dmacopy ${u.path}`, '-', '-', '-', '-', `unavailable: ${u.error}`]);
    else
      rows.push([
        `dmacopy ${u.path}`,
        String(u.ops),
        u.verified ? '0' : 'yes',
        u.iops.toFixed(2),
        String(u.kbPerSec),
        u.error ?? (u.verified ? 'verified' : 'MISMATCH'),
      ]);
  }
  const widths = columnWidths(rows);
  for (const row of rows) {
    lines.push(
      `  ${row
        .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : i === row.length - 1 ? c : c.padStart(widths[i] ?? 0)))
        .join('  ')
        .trimEnd()}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').filter((v) => v.length > 0)];
}

export function register(program: Command): void {
  const cmd = program
    .command('dmatest')
    .description("run the kernel's dmatest on dmaengine channels (as root) and print it beside dmacopy's own copy paths")
    .option('--channel <dmaNchanM>', 'channel to test (repeat or comma-separate; "all" = every available channel)', collect)
    .option('--iterations <n>', 'transfers per thread', positiveInt('--iterations'), 1000)
    .option('--buffer-size <bytes>', 'test buffer size (dmatest test_buf_size)', positiveInt('--buffer-size'), 16384)
    .option('--threads <n>', 'threads per channel (and concurrent copy loops per dmacopy path)', positiveInt('--threads'), 1)
    .option('--polled', 'dmatest polls for completion instead of using interrupts')
    .option('--noverify', 'dmatest skips data verification')
    .option('--timeout-ms <n>', 'dmatest per-transfer timeout', positiveInt('--timeout-ms'))
    .option('--wait-ms <n>', 'overall deadline for the dmatest run', positiveInt('--wait-ms'))
    .option('--no-user-paths', "run dmatest only, without dmacopy's own paths")
    .option('--sysfs-root <dir>', 'directory standing for /sys (default: $DMACOPY_SYSFS_ROOT or /sys)')
    .option('--params-dir <dir>', 'the dmatest parameters directory (default <sysfs-root>/module/dmatest/parameters)')
    .option('--kernel-log <src>', "where dmatest's summary lines are read: /dev/kmsg (default), dmesg, or a file")
    .option('--json', 'print the result as JSON')
    .action(async (o: DmatestCliOptions) => {
      applyRoots(o);
      // Ctrl-C, SIGTERM, SIGHUP: stop the kernel's test and write its parameters back before
      // going (left alone, its threads kept copying and the next run found it "already running").
      const stop = new AbortController();
      let caught: NodeJS.Signals | undefined;
      const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      const onSignal = (sig: NodeJS.Signals): void => {
        caught ??= sig;
        stop.abort();
        // Once: a second Ctrl-C ends the command at once, as without us.
        for (const s of sigs) process.off(s, onSignal);
      };
      for (const sig of sigs) process.on(sig, onSignal);
      let r: DmatestCommandResult;
      try {
        r = await runDmatestCommand(o, { signal: stop.signal });
      } finally {
        for (const sig of sigs) process.off(sig, onSignal);
      }
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else process.stdout.write(formatDmatestCommand(r));
      if (caught) {
        process.kill(process.pid, caught); // end as the signal would have
        return;
      }
      const failed =
        r.dmatest.timedOut || r.dmatest.totals.some((t) => t.failures > 0) || r.userPaths.some((u) => !u.verified && u.ops > 0);
      process.exitCode = failed ? 1 : 0;
    });
  strictUsage(cmd);
}
