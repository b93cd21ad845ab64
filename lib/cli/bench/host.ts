// The host a bench ran on, recorded with its figures: ratios only mean something next to the
// machine that produced them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listDevices } from '../../host/discovery';
import { nativeBinding, nativeLoadError } from '../../native/loader';

export interface HostQueue {
  name: string;
  mode: string;
  size: number | null;
  state: string;
  usable: boolean;
  reason: string | null;
}

export interface HostDevice {
  name: string;
  state: string;
  version: number | null;
  numaNode: number;
  queues: HostQueue[];
}

export interface HostRecord {
  cpuModel: string;
  /** os.availableParallelism(): the cores this process may use. */
  cores: number;
  memoryBytes: number;
  kernel: string;
  platform: string;
  arch: string;
  node: string;
  dmacopyVersion: string;
  nativeLoaded: boolean;
  nativeError: string | null;
  dsaDevices: HostDevice[];
  /** Usable DSA work queues (names), the ones backend 'dsa' would open. */
  usableQueues: string[];
  /** Where discovery failed, if it did. */
  discoveryError?: string;
  loadAverage: number[];
}

export function packageVersion(): string {
  // lib/bench (tests, via the TS sources) and dist/bench (the CLI) are both two levels below the root.
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function hostRecord(): HostRecord {
  let devices: HostDevice[] = [];
  let discoveryError: string | undefined;
  try {
    devices = listDevices().map((d) => ({
      name: d.name,
      state: d.state,
      version: d.version,
      numaNode: d.numaNode,
      queues: d.queues.map((q) => ({ name: q.name, mode: q.mode, size: q.size, state: q.state, usable: q.usable, reason: q.reason })),
    }));
  } catch (err) {
    discoveryError = (err as Error).message;
  }
  const loaded = nativeBinding() !== undefined;
  return {
    cpuModel: os.cpus()[0]?.model?.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    platform: process.platform,
    arch: process.arch,
    node: process.version,
    dmacopyVersion: packageVersion(),
    nativeLoaded: loaded,
    nativeError: loaded ? null : (nativeLoadError()?.message ?? null),
    dsaDevices: devices,
    usableQueues: devices.flatMap((d) => d.queues.filter((q) => q.usable).map((q) => `${d.name}/${q.name}`)),
    ...(discoveryError !== undefined ? { discoveryError } : {}),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** One line: "AMD EPYC, 2 cores, 23.5 GiB, Linux 6.18, Node v20.20.2, no DSA". */
export function hostLine(h: HostRecord): string {
  const dsa = h.dsaDevices.length === 0 ? 'no DSA' : `${h.dsaDevices.length} DSA device(s), ${h.usableQueues.length} usable queue(s)`;
  return `${h.cpuModel}, ${h.cores} cores, ${(h.memoryBytes / 1024 ** 3).toFixed(1)} GiB, Linux ${h.kernel}, Node ${h.node}, dmacopy ${h.dmacopyVersion}, ${dsa}`;
}
