// The plain-text report of `dmacopy bench --service`: one line per measured point, then the goals
// of issue 14 for each copyBatch setting at gap 0 (continuous copies).
import { hostLine } from './host';
import type { ServiceGoal, ServicePoint, ServiceReport } from './service-types';
import { grid } from './table';

const ms = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
const gb = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(2));

export function formatServicePoints(points: readonly ServicePoint[], idleP99: number | null, reference: number | null): string {
  const header = [
    'setting',
    'gap ms',
    'req p50',
    'req p99',
    'req max',
    'req/s',
    'loop p50',
    'loop p99',
    'copy GB/s',
    'copy cores',
    'unloaded',
    'unl. cores',
    'p99 x idle',
    'GB/s x unl.',
    'verified',
  ];
  const out: string[][] = [header];
  for (const p of points) {
    const copying = p.strategy !== 'none';
    out.push([
      p.setting,
      String(p.gapMs),
      ms(p.request.p50),
      ms(p.request.p99),
      ms(p.request.max),
      p.request.reqPerSec.toFixed(0),
      ms(p.eventLoopDelay.p50),
      ms(p.eventLoopDelay.p99),
      copying ? gb(p.copyGbps) : '-',
      gb(p.copyCores),
      gb(p.unloadedGbps),
      gb(p.unloadedCopyCores),
      idleP99 ? `${(p.request.p99 / idleP99).toFixed(2)}x` : '-',
      copying && reference ? (p.copyGbps / reference).toFixed(2) : '-',
      p.verified ? 'ok' : 'MISMATCH',
    ]);
  }
  const right = header.map((_, i) => i > 0 && i < header.length - 1);
  return `${grid(out, right).join('\n')}\n`;
}

export function formatServiceGoals(goals: readonly ServiceGoal[]): string {
  if (goals.length === 0) return '  not evaluated (no idle point, or no copy measured unloaded)\n';
  return `${goals
    .map(
      (g) =>
        `  [${g.met ? 'MET    ' : 'NOT MET'}] ${g.setting}: request p99 ${g.p99VsIdle.toFixed(2)}x idle (<= 2x), copy ${g.gbpsVsUnloaded.toFixed(2)} of unloaded (>= 0.5)`,
    )
    .join('\n')}\n`;
}

export function formatServiceReport(r: ServiceReport): string {
  const c = r.config;
  const load = c.rate > 0 ? `${c.rate} req/s overall` : 'as fast as they go';
  return [
    `dmacopy bench --service: ${hostLine(r.host)}`,
    `load average at start ${r.host.loadAverage.join(' ')}; pools of ${c.poolMib} MiB in ${c.pageSize}-byte pages; autocannon, ${c.connections} keep-alive connections to 127.0.0.1, ${load}, ${c.durationS} s per point${c.reps > 1 ? `, medians of ${c.reps} interleaved runs` : ''}; ${(r.durationMs / 1000).toFixed(1)} s`,
    'latencies in ms; loop = event-loop delay in the service (perf_hooks); unloaded = the same copy with no HTTP load; GB/s x unl. = against the best unloaded dmacopy copy of the run (any setting, copyBatchSync and the worker included); cores = CPU seconds per second of the copy threads (copyBatchSync copies on the event loop too, which they do not count)',
    '',
    formatServicePoints(r.points, r.idleP99, r.unloadedReferenceGbps),
    `goals (issue 14: continuous copies, request p99 within 2x idle, at least half the unloaded throughput):\n${formatServiceGoals(r.goals)}`,
    r.failures.length ? `FAILURES:\n${r.failures.map((f) => `  ${f}`).join('\n')}\n` : '',
  ].join('\n');
}
