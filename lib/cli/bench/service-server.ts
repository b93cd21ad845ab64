// The example service (examples/snapshot-service/server.js) as a child process of the service
// benchmark: started with one setting's engine options, driven over its HTTP control routes, and
// stopped. The service runs in its own process so the load generator's CPU is not its CPU, as in
// production.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { DmacopyError } from '../../errors';

/** From lib/cli/bench or dist/cli/bench alike. */
export const SERVER_SCRIPT = path.join(__dirname, '..', '..', '..', 'examples', 'snapshot-service', 'server.js');

export interface ServerOptions {
  strategy: string;
  poolMib: number;
  pageSize: number;
  cpuThreads?: number;
  cpuNice?: number;
  cpuPolicy?: 'normal' | 'idle';
  cpuPinning?: 'auto' | 'on' | 'off';
  /** Time allowed for the pool to fill and the first snapshot to finish. */
  startTimeoutMs: number;
}

export interface ServerStats {
  eventLoopDelay: { p50: number; p99: number; max: number; samples: number };
  copies: number;
  bytes: number;
  /** Why the copy loop stopped by itself, if it did. */
  loopError?: string;
  elapsedMs: number;
  gbps: number;
  /** Cores used since the reset: the service process's, and its copy threads' (null off Linux). */
  cpu?: { processCores: number; copyCores: number | null };
  engine: { backend: string; cpuThreads: number; cpuNice: number; cpuPolicy?: 'normal' | 'idle'; cpuPins?: number[] };
}

export class ServiceProcess {
  readonly #child: ChildProcess;
  readonly port: number;

  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
  }

  static async start(o: ServerOptions): Promise<ServiceProcess> {
    const args = [SERVER_SCRIPT, '--pool-mib', String(o.poolMib), '--page-size', String(o.pageSize), '--snapshot-interval-ms', '0'];
    // 'none' serves without copying: any strategy will do, it never runs.
    args.push('--strategy', o.strategy === 'none' ? 'copy-batch' : o.strategy);
    if (o.cpuThreads !== undefined) args.push('--cpu-threads', String(o.cpuThreads));
    if (o.cpuNice !== undefined) args.push('--cpu-nice', String(o.cpuNice));
    if (o.cpuPolicy !== undefined) args.push('--cpu-policy', o.cpuPolicy);
    if (o.cpuPinning !== undefined) args.push('--cpu-pinning', o.cpuPinning);
    // The IPC channel ties the service's life to this process: it exits if we die without stopping it.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const fail = (why: string) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(new DmacopyError('ERR_DMACOPY_INTERNAL', `the example service did not start (${why}): ${stderr.trim() || 'no output'}`));
      };
      const timer = setTimeout(() => fail(`not listening after ${o.startTimeoutMs} ms`), o.startTimeoutMs);
      child.on('exit', (code, signal) => fail(`exited with ${signal ?? code}`));
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"listening"'));
        if (!line) return;
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
    return new ServiceProcess(child, port);
  }

  async #call<T>(method: 'GET' | 'POST', route: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.port}${route}`, { method });
    const body = (await res.json()) as T & { error?: string };
    if (!res.ok) throw new DmacopyError('ERR_DMACOPY_INTERNAL', `example service ${method} ${route}: ${res.status} ${body.error ?? ''}`);
    return body;
  }

  startLoop(gapMs: number): Promise<unknown> {
    return this.#call('POST', `/loop/start?gapMs=${gapMs}`);
  }

  stopLoop(): Promise<unknown> {
    return this.#call('POST', '/loop/stop');
  }

  resetStats(): Promise<unknown> {
    return this.#call('POST', '/stats/reset');
  }

  stats(): Promise<ServerStats> {
    return this.#call('GET', '/stats');
  }

  /** One more snapshot after everything in flight, then both pools compared byte for byte. */
  async verify(): Promise<boolean> {
    return (await this.#call<{ equal: boolean }>('GET', '/snapshot/verify')).equal;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
