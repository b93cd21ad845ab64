// Turns engine options into what the native layer opens: the CPU pool alone, a software DSA
// device (backend 'emulated'), or the /dev/dsa queues discovery found (backend 'dsa').
import fs from 'node:fs';
import path from 'node:path';
import { DSA_MAX_TRANSFER_SIZE, EMULATOR_DEFAULTS } from '../defaults';
import { DmacopyError, invalidArg, outOfRange } from '../errors';
import { pinCpusFor, readCpuTopology } from '../host/cpu-topology';
import { type DsaQueue, listDevices, resolveRoots, selectQueues } from '../host/discovery';
import { type OpenProblemCode, openReason, remedyFor } from '../host/remedies';
import type { NativeQueueOpenResult, NativeSoftQueue, NativeUserQueue } from '../native/abi';
import type { CpuPinning, EmulatorFaults, EmulatorOptions } from '../types';
import { checkIntInRange, checkNonNegative, describe } from './validate';

const EMULATOR_KEYS = new Set([
  'device',
  'queues',
  'engines',
  'wqSize',
  'mode',
  'maxTransferSize',
  'seed',
  'latencyUs',
  'jitterUs',
  'faults',
]);
/** Every key of EmulatorFaults (types.ts); realPageFaults is the one boolean. */
export const EMULATOR_FAULT_KEYS = [
  'pageFault',
  'backward',
  'error',
  'hang',
  'hangMs',
  'lostRecord',
  'late',
  'lateMs',
  'retry',
  'disable',
  'realPageFaults',
] as const;
const FAULT_KEYS = new Set<string>(EMULATOR_FAULT_KEYS);
let nextEmulatedDevice = 1;

function probability(v: unknown, name: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number') throw invalidArg(name, `${name} must be a probability from 0 to 1, got ${describe(v)}`);
  if (!(v >= 0 && v <= 1)) throw outOfRange(name, `${name} must be a probability from 0 to 1, got ${v}`);
  return v;
}

function flag(v: unknown, name: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw invalidArg(name, `${name} must be true or false, got ${describe(v)}`);
  return v;
}

/** Validates the software device settings and expands them to one native queue per channel. */
export function emulatorQueues(emulator: unknown, channels: number | undefined): NativeSoftQueue[] {
  const e = (emulator ?? {}) as EmulatorOptions;
  if (typeof e !== 'object' || e === null) throw invalidArg('options.emulator', `emulator must be an object, got ${describe(emulator)}`);
  for (const k of Object.keys(e)) {
    if (!EMULATOR_KEYS.has(k))
      throw invalidArg(`options.emulator.${k}`, `unknown emulator setting '${k}': expected one of ${[...EMULATOR_KEYS].join(', ')}`);
  }
  const f = (e.faults ?? {}) as EmulatorFaults;
  if (typeof f !== 'object' || f === null) throw invalidArg('options.emulator.faults', 'emulator.faults must be an object');
  for (const k of Object.keys(f)) {
    if (!FAULT_KEYS.has(k))
      throw invalidArg(`options.emulator.faults.${k}`, `unknown fault '${k}': expected one of ${[...FAULT_KEYS].join(', ')}`);
  }
  const mode = e.mode ?? 'dedicated';
  if (mode !== 'dedicated' && mode !== 'shared')
    throw invalidArg('options.emulator.mode', `emulator.mode must be 'dedicated' or 'shared', got ${describe(mode)}`);
  const queues =
    e.queues === undefined ? (channels ?? EMULATOR_DEFAULTS.queues) : checkIntInRange(e.queues, 'options.emulator.queues', 1, 64);
  if (e.device !== undefined && (typeof e.device !== 'string' || e.device.length === 0 || e.device.length > 64))
    throw invalidArg('options.emulator.device', `emulator.device must be a name of 1 to 64 characters, got ${describe(e.device)}`);
  const device = e.device ?? `emu-${process.pid}-${nextEmulatedDevice++}`;
  const seed = e.seed === undefined ? EMULATOR_DEFAULTS.seed : checkNonNegative(e.seed, 'options.emulator.seed');
  if (!Number.isInteger(seed)) throw outOfRange('options.emulator.seed', 'emulator.seed must be an integer');
  const faults: Required<EmulatorFaults> = {
    pageFault: probability(f.pageFault, 'options.emulator.faults.pageFault'),
    backward: probability(f.backward, 'options.emulator.faults.backward'),
    error: probability(f.error, 'options.emulator.faults.error'),
    hang: probability(f.hang, 'options.emulator.faults.hang'),
    hangMs: f.hangMs === undefined ? 0 : checkIntInRange(f.hangMs, 'options.emulator.faults.hangMs', 0, 600_000),
    lostRecord: probability(f.lostRecord, 'options.emulator.faults.lostRecord'),
    late: probability(f.late, 'options.emulator.faults.late'),
    lateMs: f.lateMs === undefined ? EMULATOR_DEFAULTS.lateMs : checkIntInRange(f.lateMs, 'options.emulator.faults.lateMs', 1, 600_000),
    retry: probability(f.retry, 'options.emulator.faults.retry'),
    disable: probability(f.disable, 'options.emulator.faults.disable'),
    realPageFaults: flag(f.realPageFaults, 'options.emulator.faults.realPageFaults'),
  };
  const base = {
    engines: e.engines === undefined ? EMULATOR_DEFAULTS.engines : checkIntInRange(e.engines, 'options.emulator.engines', 1, 64),
    wqSize: e.wqSize === undefined ? EMULATOR_DEFAULTS.wqSize : checkIntInRange(e.wqSize, 'options.emulator.wqSize', 1, 4096),
    mode,
    maxTransferSize:
      e.maxTransferSize === undefined
        ? EMULATOR_DEFAULTS.maxTransferSize
        : checkIntInRange(e.maxTransferSize, 'options.emulator.maxTransferSize', 64, 2 ** 32),
    latencyUs:
      e.latencyUs === undefined ? EMULATOR_DEFAULTS.latencyUs : checkIntInRange(e.latencyUs, 'options.emulator.latencyUs', 0, 10_000_000),
    jitterUs:
      e.jitterUs === undefined ? EMULATOR_DEFAULTS.jitterUs : checkIntInRange(e.jitterUs, 'options.emulator.jitterUs', 0, 10_000_000),
    faults,
  };
  // Each queue is its own software device, with its own seed, so queues do not fault in lockstep.
  // Its queues are queues of one device: they share its software-error latch.
  return Array.from({ length: queues }, (_, i) => ({ ...base, device, name: `soft${i}.0`, seed: seed + i * 7919 }));
}

/**
 * The CPUs the engine's copy threads are bound to, one each (lib/host/cpu-topology.ts: under
 * 'auto', only where the kernel cannot spread woken threads itself); [] leaves them unbound.
 */
export function copyThreadCpus(mode: CpuPinning, threads: number): number[] {
  if (mode === 'off') return [];
  return pinCpusFor(mode, threads, readCpuTopology(resolveRoots({}).sysfsRoot));
}

/**
 * The NUMA node of the CPU this thread runs on (Linux: the processor field of /proc/self/stat and
 * the cpuN/nodeM link in sysfs), or undefined when it cannot be told.
 */
export function currentNumaNode(sysfsRoot = '/sys'): number | undefined {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    // Fields after the parenthesised command name; processor is field 39 overall.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = Number(fields[36]);
    if (!Number.isInteger(cpu)) return undefined;
    const entries = fs.readdirSync(path.join(sysfsRoot, 'devices/system/cpu', `cpu${cpu}`));
    const node = entries.find((e) => /^node\d+$/.test(e));
    return node === undefined ? undefined : Number(node.slice(4));
  } catch {
    return undefined;
  }
}

/**
 * The usable /dev/dsa queues for an engine, or an error listing why there are none. By default
 * only queues of devices on the calling CPU's NUMA node (all nodes when it has none, or with
 * spread: true), so copies do not cross the socket interconnect twice.
 */
export function userQueues(options: {
  channels?: number;
  numaNode?: number;
  spread?: boolean;
  submission?: 'auto' | 'portal' | 'write';
}): NativeUserQueue[] {
  const roots = resolveRoots({});
  const devices = listDevices(roots);
  const numaNode = options.numaNode ?? currentNumaNode(roots.sysfsRoot);
  const picked = selectQueues(devices, { numaNode, spread: options.spread ?? false });
  if (picked.length === 0) {
    const all = devices.flatMap((d) => d.queues);
    const why =
      all.length === 0
        ? `no DSA devices under ${path.join(roots.sysfsRoot, 'bus/dsa/devices')}`
        : all.map((q) => `${q.name}: ${q.reason ?? 'unusable'}${q.remedy ? ` (${q.remedy})` : ''}`).join('; ');
    throw new DmacopyError(
      'ERR_DMACOPY_BACKEND_UNAVAILABLE',
      `no usable DSA work queue: ${why}. Run \`dmacopy info\` for details, or use backend 'cpu'`,
    );
  }
  const byName = new Map(devices.map((d) => [d.name, d]));
  const limit = options.channels ?? picked.length;
  return picked.slice(0, limit).map((q: DsaQueue) => {
    const dev = byName.get(q.device);
    const devDir = path.join(roots.sysfsRoot, 'bus/dsa/devices', q.device);
    const wqDir = path.join(roots.sysfsRoot, 'bus/dsa/devices', q.name);
    return {
      name: q.name,
      devicePath: q.devicePath,
      mode: q.mode === 'shared' ? 'shared' : 'dedicated',
      size: q.mode === 'shared' ? (q.threshold ?? q.size ?? 1) : (q.size ?? 1),
      maxTransferSize: q.maxTransferSize ?? dev?.maxTransferSize ?? DSA_MAX_TRANSFER_SIZE,
      cacheControl: dev?.cacheControl ?? false,
      wqStatePath: path.join(wqDir, 'state'),
      deviceStatePath: path.join(devDir, 'state'),
      deviceErrorsPath: path.join(devDir, 'errors'),
      submission: options.submission ?? 'auto',
    } satisfies NativeUserQueue;
  });
}

/** True when discovery finds at least one usable queue (cheap: a few small sysfs reads). */
export function dsaAvailable(): boolean {
  try {
    return selectQueues(listDevices(resolveRoots({})), { spread: true }).length > 0;
  } catch {
    return false;
  }
}

/** What opening one /dev/dsa queue gave, in words (EngineStats.queues). */
export interface QueueOpenReport extends NativeQueueOpenResult {
  name: string;
  reason: string;
  remedy: string;
}

/**
 * The native open results (codes and errno only) of `queues`, in the same order, worded from the
 * remedy catalogue: why each queue that failed could not be opened, and what to do about it.
 */
export function describeOpenResults(queues: readonly NativeUserQueue[], results: readonly NativeQueueOpenResult[]): QueueOpenReport[] {
  return results.map((r, i) => {
    const q = queues[i] as NativeUserQueue;
    if (r.ok) return { ...r, name: q.name, reason: '', remedy: '' };
    const code = r.code as OpenProblemCode;
    const device = /^wq(\d+)\./.exec(q.name)?.[1]; // wqD.Q belongs to dsaD
    return {
      ...r,
      name: q.name,
      reason: openReason(code, r.errno, q.devicePath, r.probeStatus),
      remedy: remedyFor(code, { device: device === undefined ? undefined : `dsa${device}`, queue: q.name, devicePath: q.devicePath }),
    };
  });
}
