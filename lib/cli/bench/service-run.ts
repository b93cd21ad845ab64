// `dmacopy bench --service` as a library: for each setting, start the example service, measure
// the copy with no HTTP load, then put it under load (autocannon) at each gap between copies, and
// record request latency, event-loop delay (measured in the service) and copy throughput. Every
// point ends with a byte-for-byte check of the snapshot. Nothing here asserts on timing: the
// goals are evaluated and reported, and the caller decides what a miss means.
import os from 'node:os';
import { hostRecord } from './host';
import { medianPoints } from './service-aggregate';
import { loadAutocannon, runLoad } from './service-load';
import { type ServerStats, ServiceProcess } from './service-server';
import { type ServiceSetting, serviceSettings } from './service-settings';
import type { ServiceBenchOptions, ServiceGoal, ServicePoint, ServiceReport } from './service-types';
import { nowNs } from './stats';

export const SERVICE_DEFAULTS: Omit<ServiceBenchOptions, 'short'> = {
  poolMib: 256,
  pageSize: 4096,
  durationS: 3,
  unloadedS: 1,
  connections: 4,
  rate: 0,
  maxRequests: 1_000_000,
  reps: 1,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measurePoint(
  server: ServiceProcess,
  s: ServiceSetting,
  gapMs: number,
  o: ServiceBenchOptions,
): Promise<Omit<ServicePoint, 'unloadedGbps' | 'unloadedCopyCores' | 'reps' | 'p99s' | 'gbpsSamples'>> {
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
    cpuPolicy: st.engine.cpuPolicy ?? 'normal',
    cpuPins: st.engine.cpuPins ?? [],
    gapMs,
    request,
    eventLoopDelay: { p50: st.eventLoopDelay.p50, p99: st.eventLoopDelay.p99, max: st.eventLoopDelay.max },
    copyGbps: copying ? st.gbps : 0,
    copyCores: copying ? (st.cpu?.copyCores ?? null) : null,
    copies: st.copies,
    verified,
    ...(st.loopError ? { loopError: st.loopError } : {}),
  };
}

/** Reads spread over the pool, live and snapshot pages: what the service's clients do. */
function loadPaths(o: ServiceBenchOptions): string[] {
  const pages = Math.floor((o.poolMib * 1024 * 1024) / o.pageSize);
  const at = [0, Math.floor(pages / 3), Math.floor((2 * pages) / 3), pages - 1];
  return [...at.map((n) => `/page/${n}`), `/snapshot/page/${at[1]}`];
}

/** The setting's copy loop with no HTTP load: the throughput to keep, and the cores it took. */
async function measureUnloaded(server: ServiceProcess, seconds: number): Promise<{ gbps: number; copyCores: number | null }> {
  await server.startLoop(0);
  await sleep(200);
  await server.resetStats();
  await sleep(seconds * 1000);
  const st = await server.stats();
  await server.stopLoop();
  return { gbps: st.gbps, copyCores: st.cpu?.copyCores ?? null };
}

export function evaluateGoals(points: readonly ServicePoint[], idleP99: number | null, reference: number | null): ServiceGoal[] {
  if (idleP99 === null || reference === null) return [];
  return points
    .filter((p) => p.gapMs === 0 && p.strategy !== 'none' && p.strategy !== 'buffer-copy')
    .map((p) => {
      const p99VsIdle = p.request.p99 / idleP99;
      const gbpsVsUnloaded = p.copyGbps / reference;
      // Like the bench's targets: a point whose copies did not verify, or whose loop failed, meets nothing.
      const met = p99VsIdle <= 2 && gbpsVsUnloaded >= 0.5 && p.verified && p.loopError === undefined;
      return { setting: p.setting, p99VsIdle, gbpsVsUnloaded, met };
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
  const total = o.reps * settings.reduce((n, s) => n + s.gapsMs.length, 0);
  const raw: ServicePoint[] = [];
  const failures: string[] = [];
  // Repetitions outermost: a slow drift in what else the machine runs touches every setting alike.
  for (let rep = 0; rep < o.reps; rep++) {
    for (const s of settings) {
      const server = await ServiceProcess.start({
        strategy: s.strategy,
        poolMib: o.poolMib,
        pageSize: o.pageSize,
        cpuThreads: s.cpuThreads,
        cpuNice: s.cpuNice,
        cpuPolicy: s.cpuPolicy,
        cpuPinning: s.cpuPinning,
        startTimeoutMs: 120_000,
      });
      try {
        const unloaded = s.strategy === 'none' ? null : await measureUnloaded(server, o.unloadedS);
        for (const gapMs of s.gapsMs) {
          onProgress?.(raw.length, total, `${s.label}, gap ${gapMs} ms`);
          const p = await measurePoint(server, s, gapMs, o);
          raw.push({
            ...p,
            unloadedGbps: gapMs === 0 && unloaded ? unloaded.gbps : null,
            unloadedCopyCores: gapMs === 0 && unloaded ? unloaded.copyCores : null,
            reps: 1,
            p99s: [p.request.p99],
            gbpsSamples: [p.copyGbps],
          });
          const where = `${s.label}, gap ${gapMs} ms${o.reps > 1 ? `, repetition ${rep + 1}` : ''}`;
          if (!p.verified) failures.push(`${where}: the snapshot differs from the live pool`);
          if (p.loopError) failures.push(`${where}: a copy failed: ${p.loopError}`);
          if (p.request.errors > 0) failures.push(`${where}: ${p.request.errors} requests failed`);
          if (p.request.requests === 0) failures.push(`${where}: no request completed`);
        }
      } finally {
        await server.stop();
      }
    }
  }
  onProgress?.(total, total, 'done');
  const points = medianPoints(raw);
  const idle = points.find((p) => p.strategy === 'none');
  const idleP99 = idle ? idle.request.p99 : null;
  const refs = points.filter((p) => p.strategy !== 'buffer-copy').map((p) => p.unloadedGbps);
  const known = refs.filter((g): g is number => g !== null);
  const unloadedReferenceGbps = known.length ? Math.max(...known) : null;
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
