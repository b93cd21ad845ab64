// Repetitions of `dmacopy bench --service` folded into one point per setting and gap: the median
// of every figure (a shared 2-core machine is noisy, and the median of interleaved repetitions is
// what survives it), the counts summed, verified only if every repetition verified, and a copy
// loop's error kept if any repetition had one.
import type { ServicePoint } from './service-types';
import { median } from './stats';

export function medianPoints(raw: readonly ServicePoint[]): ServicePoint[] {
  const groups = new Map<string, ServicePoint[]>();
  for (const p of raw) {
    const key = `${p.setting}\u0000${p.gapMs}`;
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0] as ServicePoint;
    const m = (f: (p: ServicePoint) => number) => median(g.map(f));
    const known = (f: (p: ServicePoint) => number | null) => {
      const xs = g.map(f).filter((x): x is number => x !== null);
      return xs.length ? median(xs) : null;
    };
    // A failed copy loop in any repetition stays on the point (the first one's fields alone hid it).
    const loopError = g.find((p) => p.loopError !== undefined)?.loopError;
    return {
      ...first,
      ...(loopError !== undefined ? { loopError } : {}),
      request: {
        requests: g.reduce((n, p) => n + p.request.requests, 0),
        errors: g.reduce((n, p) => n + p.request.errors, 0),
        reqPerSec: m((p) => p.request.reqPerSec),
        p50: m((p) => p.request.p50),
        p99: m((p) => p.request.p99),
        max: m((p) => p.request.max),
      },
      eventLoopDelay: { p50: m((p) => p.eventLoopDelay.p50), p99: m((p) => p.eventLoopDelay.p99), max: m((p) => p.eventLoopDelay.max) },
      copyGbps: m((p) => p.copyGbps),
      copyCores: known((p) => p.copyCores),
      copies: g.reduce((n, p) => n + p.copies, 0),
      unloadedGbps: known((p) => p.unloadedGbps),
      unloadedCopyCores: known((p) => p.unloadedCopyCores),
      verified: g.every((p) => p.verified),
      reps: g.length,
      p99s: g.flatMap((p) => p.p99s),
      gbpsSamples: g.flatMap((p) => p.gbpsSamples),
    };
  });
}
