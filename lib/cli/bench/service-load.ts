// The load generator of `dmacopy bench --service`: autocannon, driven programmatically against
// 127.0.0.1 only, bounded in time and in requests. autocannon is an optional dependency (a
// devDependency of this repository): it is required lazily, and its absence is a typed error
// that says what to install.
import { DmacopyError } from '../../errors';
import { quantile } from './stats';

export interface LoadOptions {
  port: number;
  /** Concurrent keep-alive connections. */
  connections: number;
  durationS: number;
  /** Stop after this many requests even if the duration is not over. */
  maxRequests: number;
  /** Overall requests per second (0: as fast as the connections go). */
  rate: number;
  /** Paths requested in turn on each connection. */
  paths: readonly string[];
}

export interface LoadResult {
  requests: number;
  /** Responses that were not 2xx, plus connection errors and timeouts. */
  errors: number;
  reqPerSec: number;
  /** Request latency in ms, measured per request (autocannon's own histogram keeps whole ms only). */
  p50: number;
  p99: number;
  max: number;
}

interface Tracker {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}
type Autocannon = (options: Record<string, unknown>, done: (err: Error | null, result: Record<string, unknown>) => void) => Tracker;

/** autocannon, or ERR_DMACOPY_MISSING_PEER saying how to get it. */
export function loadAutocannon(): Autocannon {
  // Resolved first, loaded second: only a missing package is "not installed"; an installed one
  // that fails to load throws its own error. Lazy: only the service benchmark needs it.
  const where = resolveOptional('autocannon');
  if (where === undefined)
    throw new DmacopyError(
      'ERR_DMACOPY_MISSING_PEER',
      'dmacopy bench --service needs the load generator autocannon: run `npm install --save-dev autocannon` (9 or later) where dmacopy is installed',
    );
  return require(where) as Autocannon;
}

function resolveOptional(name: string): string | undefined {
  try {
    return require.resolve(name);
  } catch {
    return undefined;
  }
}

export function runLoad(o: LoadOptions, autocannon: Autocannon = loadAutocannon()): Promise<LoadResult> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const tracker = autocannon(
      {
        url: `http://127.0.0.1:${o.port}`,
        connections: o.connections,
        duration: o.durationS,
        maxOverallRequests: o.maxRequests,
        ...(o.rate > 0 ? { overallRate: o.rate } : {}),
        requests: o.paths.map((path) => ({ method: 'GET', path })),
        timeout: 10,
      },
      (err, result) => {
        if (err) return reject(err);
        const ok = latencies.length;
        const errors = Number(result.errors ?? 0) + Number(result.timeouts ?? 0) + Number(result.non2xx ?? 0);
        const seconds = Number(result.duration ?? o.durationS) || o.durationS;
        resolve({
          requests: ok,
          errors,
          reqPerSec: ok / seconds,
          p50: quantile(latencies, 0.5),
          p99: quantile(latencies, 0.99),
          max: latencies.reduce((a, b) => Math.max(a, b), 0),
        });
      },
    );
    tracker.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}
