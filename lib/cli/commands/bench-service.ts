// `dmacopy bench --service` (and scripts/bench-service.js): runs the example snapshot service in a
// child process under autocannon, with no copy, a Buffer.copy loop, copyBatch, copyBatchSync and
// the copy issued from a worker; prints the table, or JSON, and optionally writes the chart.
import os from 'node:os';
import { SingleBar } from 'cli-progress';
import { runServiceBench, SERVICE_DEFAULTS } from '../bench/service-run';
import { serviceSettings } from '../bench/service-settings';
import { renderServiceSvg } from '../bench/service-svg';
import { formatServiceReport } from '../bench/service-table';
import { stopBarOnSigint, writeChartAfterReport } from './format';
import { checkPathPrefixes } from './usage';

export interface ServiceCliOptions {
  short?: boolean;
  duration?: number;
  poolMib?: number;
  connections?: number;
  rate?: number;
  reps?: number;
  /** Only the settings whose label starts with one of these (idle always runs: the goals need it). */
  paths?: string[];
  json?: boolean;
  svg?: string;
  progress?: boolean;
}

export async function runServiceCommand(o: ServiceCliOptions): Promise<void> {
  const showBar = o.progress !== false && !o.json && process.stderr.isTTY === true;
  const bar = showBar
    ? new SingleBar({ format: 'bench --service [{bar}] {value}/{total}  {label}', hideCursor: true, clearOnComplete: true })
    : undefined;
  const all = serviceSettings(os.availableParallelism(), o.short ?? false);
  checkPathPrefixes(
    o.paths ?? [],
    all.map((s) => s.label),
    '--service setting',
  );
  let started = false;
  const unhook = stopBarOnSigint(bar);
  try {
    const report = await runServiceBench({
      short: o.short ?? false,
      durationS: o.duration ?? SERVICE_DEFAULTS.durationS,
      poolMib: o.poolMib ?? SERVICE_DEFAULTS.poolMib,
      connections: o.connections ?? SERVICE_DEFAULTS.connections,
      rate: o.rate ?? SERVICE_DEFAULTS.rate,
      reps: o.reps ?? SERVICE_DEFAULTS.reps,
      settings: o.paths ? all.filter((s) => s.strategy === 'none' || (o.paths as string[]).some((p) => s.label.startsWith(p))) : undefined,
      onProgress: bar
        ? (done, total, label) => {
            if (!started) bar.start(total, done, { label });
            else bar.update(done, { label });
            started = true;
          }
        : undefined,
    });
    if (started) bar?.stop();
    started = false;
    // The report first, the chart after it (writeChartAfterReport).
    if (o.json) console.log(JSON.stringify(report, null, 2));
    else process.stdout.write(formatServiceReport(report));
    process.exitCode = report.ok ? 0 : 1;
    if (o.svg)
      writeChartAfterReport(o.svg, () => renderServiceSvg(report, 'dmacopy in a service: request p99 against copy GB/s'), o.json === true);
  } finally {
    unhook();
    if (started) bar?.stop();
  }
}
