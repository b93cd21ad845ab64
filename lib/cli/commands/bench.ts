// `dmacopy bench`: sweeps folio sizes, batch sizes and every available copy path (the Buffer.copy
// and TypedArray.set loops a Node user has, the CPU engine with 1..N threads, the software DSA
// device, real DSA queues when present, 'auto'), against the bound (best of native memcpy and streaming stores) measured in the
// same run; prints a table and the issue-5 targets, or JSON; optionally writes an SVG chart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError } from 'commander';
import { DmacopyTypeError } from '../../errors';
import type { Form } from '../bench/cells';
import { hostLine } from '../bench/host';
import { pathNames } from '../bench/paths';
import { type BenchReport, runBench } from '../bench/run';
import { parseSize } from '../bench/stats';
import { renderSvg } from '../bench/svg';
import { formatReport } from '../bench/table';
import { runServiceCommand, type ServiceCliOptions } from './bench-service';
import { bufferMib, positiveInt, stopBarOnSigint, writeChartAfterReport } from './format';
import { applyRoots, checkPathPrefixes, strictUsage } from './usage';

interface BenchCliOptions extends ServiceCliOptions {
  service?: boolean;
  quick?: boolean;
  folioSizes?: number[];
  totalMib?: number;
  batches?: number[];
  forms?: Form[];
  paths?: string[];
  threads?: number;
  reps?: number;
  latencyMs?: number;
  memory?: boolean;
  memoryMib?: number;
  json?: boolean;
  svg?: string;
  progress?: boolean;
  checkTargets?: boolean;
  sysfsRoot?: string;
  devRoot?: string;
}

function nonNegativeInt(name: string) {
  return (value: string): number => {
    if (value === '0') return 0;
    try {
      return positiveInt(name)(value);
    } catch {
      throw new InvalidArgumentError(`${name} must be a whole number, 0 or more, in decimal digits`);
    }
  };
}

/** --threads: as many copy threads as an engine may have (cpuThreads: 1 to 256). */
function threadsArg(value: string): number {
  const n = positiveInt('--threads')(value);
  if (n > 256) throw new InvalidArgumentError(`--threads must be from 1 to 256 (an engine's cpuThreads), got ${n}`);
  return n;
}

/** --svg: a file in a directory that exists and can be written, checked before the run (which may take minutes). */
function svgPathArg(value: string): string {
  const dir = path.dirname(path.resolve(value));
  try {
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw new InvalidArgumentError(
      `--svg ${value}: cannot write a file in ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return value;
}

function sizesArg(value: string): number[] {
  try {
    return value
      .split(',')
      .filter((s) => s.trim() !== '')
      .map(parseSize);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function intListArg(name: string) {
  return (value: string): number[] => {
    const out = value.split(',').map((s) => Number(s.trim()));
    if (out.length === 0 || out.some((n) => !Number.isSafeInteger(n) || n < 1))
      throw new InvalidArgumentError(`${name} must be a comma-separated list of positive integers`);
    return out;
  };
}

/**
 * --paths: a comma-separated list, where commas inside parentheses belong to the name: the
 * --service labels hold them ("copy-batch (2 thr, nice 19)").
 */
export function pathsArg(value: string): string[] {
  const count = (s: string, c: string): number => s.split(c).length - 1;
  const parts = value.split(',');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    let cur = parts[i] as string;
    // An open parenthesis joins the next piece only if that piece closes it: a prefix such as
    // "copy-batch (2 thr" stays a prefix in "copy-batch (2 thr,worker".
    while (count(cur, '(') > count(cur, ')') && i + 1 < parts.length && (parts[i + 1] as string).includes(')')) {
      cur += `,${parts[++i]}`;
    }
    out.push(cur.trim());
  }
  return out;
}

function formsArg(value: string): Form[] {
  const out = value.split(',').map((s) => s.trim());
  if (out.length === 0 || out.some((f) => f !== 'region' && f !== 'list'))
    throw new InvalidArgumentError("--forms must list 'region' and/or 'list'");
  return out as Form[];
}

/** Options that only the throughput bench reads, and those only --service reads (commander names). */
const BENCH_ONLY = [
  'quick',
  'folioSizes',
  'totalMib',
  'batches',
  'forms',
  'threads',
  'latencyMs',
  'memory',
  'memoryMib',
  'checkTargets',
  'sysfsRoot',
  'devRoot',
];
const SERVICE_ONLY = ['short', 'duration', 'poolMib', 'connections', 'rate'];
const flag = (name: string): string => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** A flag of the other mode is refused, not ignored: `--service --check-targets` once passed every gate. */
function checkModeFlags(o: BenchCliOptions, self: Command): void {
  const given = (name: string): boolean => self.getOptionValueSource(name) === 'cli';
  const wrong = (o.service ? BENCH_ONLY : SERVICE_ONLY).filter(given);
  if (wrong.length === 0) return;
  const list = wrong.map(flag).join(', ');
  throw new DmacopyTypeError(
    'ERR_DMACOPY_INVALID_ARG',
    o.service
      ? `${list} ${wrong.length > 1 ? 'apply' : 'applies'} to the throughput bench, not to --service (see \`dmacopy bench --help\`)`
      : `${list} ${wrong.length > 1 ? 'apply' : 'applies'} to --service only: add --service, or leave ${wrong.length > 1 ? 'them' : 'it'} out (see \`dmacopy bench --help\`)`,
  );
}

export function register(program: Command): void {
  const cmd = program
    .command('bench')
    .description(
      'measure every copy path (Buffer.copy, TypedArray.set, CPU engine 1..N threads, software DSA, DSA, auto) against the bound: the best of native memcpy and streaming stores on 1..N threads',
    )
    .option('--quick', 'fewer cells and repetitions (under a minute on 2 cores); still includes 256 MiB of 4 KiB folios')
    .option('--folio-sizes <list>', 'extra folio sizes, e.g. 16k,1m (4 KiB, 64 KiB and 2 MiB are always measured)', sizesArg)
    .option('--total-mib <n>', 'size of the large batch in MiB', bufferMib('--total-mib'), 256)
    .option('--batches <list>', 'batch sizes in folios (the large total is always added)', intListArg('--batches'))
    .option('--forms <list>', 'region, list or both', formsArg)
    .option(
      '--paths <list>',
      'only these paths (prefixes: auto, cpu, emulated, dsa, TypedArray.set); Buffer.copy and the bounds always run; --service: settings by label prefix (copy-batch, "copy-batch (2 thr", worker, ...), idle always runs',
      pathsArg,
    )
    .option('--threads <n>', 'CPU engine thread counts 1..n, n at most 256 (default: available parallelism)', threadsArg)
    .option(
      '--reps <n>',
      'timed repetitions of each throughput cell, interleaved across its paths (default 5 with --quick, 7 otherwise); --service: runs of the whole sweep, interleaved (medians)',
      positiveInt('--reps'),
    )
    .option('--latency-ms <n>', 'wall-time budget per latency cell and path', positiveInt('--latency-ms'))
    .option('--memory', 'measure peak memory of a 1 GiB batch of 4 KiB folios in a child process (default in full runs)')
    .option('--no-memory', 'skip the memory measurement')
    .option('--memory-mib <n>', 'batch size of the memory measurement in MiB', bufferMib('--memory-mib'), 1024)
    .option('--json', 'print the report as JSON (no table, no progress bar)')
    .option(
      '--svg <file>',
      'write a chart: per form, throughput as a fraction of the bound against folio size, and small-batch latency',
      svgPathArg,
    )
    .option('--no-progress', 'no progress bar')
    .option('--check-targets', 'exit with 1 when a measured target is not met')
    .option('--sysfs-root <dir>', 'directory standing for /sys (default: $DMACOPY_SYSFS_ROOT or /sys)')
    .option('--dev-root <dir>', 'directory standing for /dev (default: $DMACOPY_DEV_ROOT or /dev)')
    .option(
      '--service',
      'instead: run the example snapshot service under autocannon (needs `npm install autocannon`) with no copy, Buffer.copy, copyBatch, copyBatchSync and a worker; request p50/p99/max, event-loop delay, copy GB/s',
    )
    .option('--short', '--service: one point per copy strategy instead of the full sweep')
    .option('--duration <s>', '--service: seconds of load per point (default 3)', positiveInt('--duration'))
    .option('--pool-mib <n>', '--service: size of the live and snapshot pools in MiB (default 256)', positiveInt('--pool-mib'))
    .option('--connections <n>', '--service: concurrent keep-alive connections (default 4)', positiveInt('--connections'))
    .option('--rate <n>', '--service: overall requests per second, 0 for as fast as they go (default 0)', nonNegativeInt('--rate'))
    .action(async (o: BenchCliOptions, self: Command) => {
      checkModeFlags(o, self);
      if (o.service) return runServiceCommand(o);
      // With --threads, or the default thread counts.
      if (o.paths) checkPathPrefixes(o.paths, pathNames(o.threads ?? Math.min(256, os.availableParallelism())), 'path');
      applyRoots(o);
      const showBar = o.progress !== false && !o.json && process.stderr.isTTY === true;
      const bar = showBar
        ? new SingleBar({
            format: 'bench [{bar}] {value}/{total} {eta_formatted} left  {label}',
            hideCursor: true,
            clearOnComplete: true,
            etaBuffer: 20,
          })
        : undefined;
      let started = false;
      let report: BenchReport;
      const unhook = stopBarOnSigint(bar);
      try {
        report = await runBench({
          quick: o.quick,
          folioSizes: o.folioSizes,
          totalBytes: (o.totalMib ?? 256) * 1024 * 1024,
          batches: o.batches,
          forms: o.forms,
          only: o.paths,
          maxThreads: o.threads,
          memory: o.memory,
          memoryBytes: (o.memoryMib ?? 1024) * 1024 * 1024,
          settings: {
            ...(o.reps !== undefined ? { reps: o.reps } : {}),
            ...(o.latencyMs !== undefined ? { latencyBudgetMs: o.latencyMs } : {}),
          },
          onProgress: bar
            ? (done, total, label) => {
                if (!started) {
                  bar.start(total, done, { label });
                  started = true;
                } else bar.update(done, { label });
                if (done === total) bar.stop();
              }
            : undefined,
        });
      } finally {
        unhook();
        if (started) bar?.stop();
      }
      // The report first, the chart after it (writeChartAfterReport).
      if (o.json) console.log(JSON.stringify(report, null, 2));
      else process.stdout.write(formatReport(report));
      const missed = report.targets.some((t) => t.pass === false);
      process.exitCode = !report.ok ? 1 : o.checkTargets && missed ? 1 : 0;
      if (o.svg) writeChartAfterReport(o.svg, () => renderSvg(report.rows, `dmacopy bench: ${hostLine(report.host)}`), o.json === true);
    });
  strictUsage(cmd);
}
