// `dmacopy bench --service` as a library: for each setting, start the example service, measure
// the copy with no HTTP load, then put it under load (autocannon) at each gap between copies, and
// record request latency, event-loop delay (measured in the service) and copy throughput. Every
// point ends with a byte-for-byte check of the snapshot. Nothing here asserts on timing: the
// goals are evaluated and reported, and the caller decides what a miss means.
import os from 'node:os';
import { type HostRecord, hostRecord } from './host';
import { type LoadResult, loadAutocannon, runLoad } from './service-load';
import { type ServerStats, ServiceProcess } from './service-server';
import { type ServiceSetting, type Strategy, serviceSettings } from './service-settings';
import { nowNs } from './stats';

export interface ServiceBenchOptions {
  /** Size of each pool (live and snapshot), MiB. */
  poolMib: number;
  pageSize: number;
  /** Seconds of load per point. */
  durationS: number;
  /** Seconds the copy runs with no HTTP load, per setting (its unloaded throughput). */
  unloadedS: number;
  connections: number;
  /** Overall requests per second, 0 for as fast as the connections go. */
  rate: number;
  /** Upper bound on requests per point. */
  maxRequests: number;
  /** One point per strategy instead of the full sweep. */
  short: boolean;
  settings?: ServiceSetting[];
  onProgress?: (done: number, total: number, label: string) => void;
}

export interface ServicePoint {
  setting: string;
  strategy: Strategy;
  cpuThreads: number;
  cpuNice: number;
  gapMs: number;
  request: LoadResult;
  /** Event-loop delay in the service, ms (perf_hooks.monitorEventLoopDelay). */
  eventLoopDelay: { p50: number; p99: number; max: number };
  /** Copy throughput under load, GB/s (0 when the setting does not copy). */
  copyGbps: number;
  copies: number;
  /** The same setting copying with no HTTP load (gap 0 points of copying settings). */
  unloadedGbps: number | null;
  /** The snapshot equalled the live pool byte for byte after the point. */
  verified: boolean;
}

export interface ServiceGoal {
  setting: string;
  /** request p99 / idle p99 (goal: <= 2). */
  p99VsIdle: number;
  /** copy GB/s under load / the engine's best unloaded GB/s in this run (goal: >= 0.5). */
  gbpsVsUnloaded: number;
  met: boolean;
}

export interface ServiceReport {
  host: HostRecord;
  config: Omit<ServiceBenchOptions, 'onProgress' | 'settings'>;
  points: ServicePoint[];
  idleP99: number | null;
  /** The best unloaded copyBatch throughput of the run: the reference of gbpsVsUnloaded. */
  unloadedReferenceGbps: number | null;
  /** copyBatch-family settings at gap 0, against the goals of issue 14. */
  goals: ServiceGoal[];
  failures: string[];
  ok: boolean;
  durationMs: number;
}

export const SERVICE_DEFAULTS: Omit<ServiceBenchOptions, 'short'> = {
  poolMib: 256,
  pageSize: 4096,
  durationS: 3,
  unloadedS: 1,
  connections: 4,
  rate: 0,
  maxRequests: 1_000_000,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measurePoint(
  server: ServiceProcess,
  s: ServiceSetting,
  gapMs: number,
  o: ServiceBenchOptions,
): Promise<Omit<ServicePoint, 'unloadedGbps'>> {
  const copying = s.strategy !== 'none';
  if (copying) {
    await server.startLoop(gapMs);
    await sleep(200); // the first copies of the loop, before the window opens
  }
  await server.resetStats();
  const request = await runLoad({
    port: server.port,
    connections: o.connections,
    durationS: o.durationS,
    maxRequests: o.maxRequests,
    rate: o.rate,
    paths: loadPaths(o),
  });
  const st: ServerStats = await server.stats();
  if (copying) await server.stopLoop();
  const verified = await server.verify();
  return {
    setting: s.label,
    strategy: s.strategy,
    cpuThreads: st.engine.cpuThreads,
    cpuNice: st.engine.cpuNice,
    gapMs,
    request,
    eventLoopDelay: { p50: st.eventLoopDelay.p50, p99: st.eventLoopDelay.p99, max: st.eventLoopDelay.max },
    copyGbps: copying ? st.gbps : 0,
    copies: st.copies,
    verified,
  };
}

/** Reads spread over the pool, live and snapshot pages: what the service's clients do. */
function loadPaths(o: ServiceBenchOptions): string[] {
  const pages = Math.floor((o.poolMib * 1024 * 1024) / o.pageSize);
  const at = [0, Math.floor(pages / 3), Math.floor((2 * pages) / 3), pages - 1];
  return [...at.map((n) => `/page/${n}`), `/snapshot/page/${at[1]}`];
}

/** The setting's copy loop with no HTTP load: the throughput to keep. */
async function measureUnloaded(server: ServiceProcess, seconds: number): Promise<number> {
  await server.startLoop(0);
  await sleep(200);
  await server.resetStats();
  await sleep(seconds * 1000);
  const st = await server.stats();
  await server.stopLoop();
  return st.gbps;
}

export function evaluateGoals(points: readonly ServicePoint[], idleP99: number | null, reference: number | null): ServiceGoal[] {
  if (idleP99 === null || reference === null) return [];
  return points
    .filter((p) => p.gapMs === 0 && p.strategy !== 'none' && p.strategy !== 'buffer-copy')
    .map((p) => {
      const p99VsIdle = p.request.p99 / idleP99;
      const gbpsVsUnloaded = p.copyGbps / reference;
      return { setting: p.setting, p99VsIdle, gbpsVsUnloaded, met: p99VsIdle <= 2 && gbpsVsUnloaded >= 0.5 };
    });
}

export async function runServiceBench(options: Partial<ServiceBenchOptions> = {}): Promise<ServiceReport> {
  const { onProgress, settings: given, ...rest } = options;
  const o: ServiceBenchOptions = { ...SERVICE_DEFAULTS, short: false, ...rest };
  if (rest.unloadedS === undefined && o.short) o.unloadedS = 0.5;
  loadAutocannon(); // fail before starting anything when the load generator is missing
  const t0 = nowNs();
  const host = hostRecord();
  const settings = given ?? serviceSettings(os.availableParallelism(), o.short);
  const total = settings.reduce((n, s) => n + s.gapsMs.length, 0);
  const points: ServicePoint[] = [];
  const failures: string[] = [];
  for (const s of settings) {
    const server = await ServiceProcess.start({
      strategy: s.strategy,
      poolMib: o.poolMib,
      pageSize: o.pageSize,
      cpuThreads: s.cpuThreads,
      cpuNice: s.cpuNice,
      startTimeoutMs: 120_000,
    });
    try {
      const unloaded = s.strategy === 'none' ? null : await measureUnloaded(server, o.unloadedS);
      for (const gapMs of s.gapsMs) {
        onProgress?.(points.length, total, `${s.label}, gap ${gapMs} ms`);
        const p = await measurePoint(server, s, gapMs, o);
        points.push({ ...p, unloadedGbps: gapMs === 0 ? unloaded : null });
        if (!p.verified) failures.push(`${s.label}, gap ${gapMs} ms: the snapshot differs from the live pool`);
        if (p.request.errors > 0) failures.push(`${s.label}, gap ${gapMs} ms: ${p.request.errors} requests failed`);
        if (p.request.requests === 0) failures.push(`${s.label}, gap ${gapMs} ms: no request completed`);
      }
    } finally {
      await server.stop();
    }
  }
  onProgress?.(total, total, 'done');
  const idle = points.find((p) => p.strategy === 'none');
  const idleP99 = idle ? idle.request.p99 : null;
  const unloaded = points.filter((p) => p.strategy.startsWith('copy-batch') || p.strategy.startsWith('worker'));
  const refs = unloaded.map((p) => p.unloadedGbps).filter((g): g is number => g !== null);
  const unloadedReferenceGbps = refs.length ? Math.max(...refs) : null;
  return {
    host,
    config: o,
    points,
    idleP99,
    unloadedReferenceGbps,
    goals: evaluateGoals(points, idleP99, unloadedReferenceGbps),
    failures,
    ok: failures.length === 0,
    durationMs: (nowNs() - t0) / 1e6,
  };
}
