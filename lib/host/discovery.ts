// Discovery of Intel DSA devices and work queues from the idxd sysfs tree (/sys/bus/dsa/devices) and
// their character devices (/dev/dsa/wqD.Q).
//
// Formats follow the kernel's drivers/dma/idxd/sysfs.c and Documentation/ABI/stable/sysfs-driver-dma-idxd.
// Nothing read from sysfs is trusted: a missing, empty or garbage value
// makes the affected queue unusable with a reason and a remedy; it never throws. Only roots that exist but are
// not directories throw (ERR_DMACOPY_SYSFS).

import fs from 'node:fs';
import path from 'node:path';
import { invalidArg } from '../errors';
import { type QueueProblemCode, remedyFor } from './remedies';
import {
  checkRoot,
  isDir,
  listDir,
  parseFlag,
  parseHex,
  parseSigned,
  parseUnsigned,
  type RootOptions,
  readAttr,
  resolveRoots,
  showRaw,
} from './sysfs';

export { type ResolvedRoots, type RootOptions, resolveRoots } from './sysfs';

export type DeviceState = 'enabled' | 'disabled' | 'halted' | 'unknown';
export type QueueState = 'enabled' | 'disabled' | 'quiescing' | 'locked' | 'unknown';
export type QueueMode = 'dedicated' | 'shared' | 'unknown';
export type QueueType = 'user' | 'kernel' | 'none' | 'unknown';

export type { QueueProblemCode } from './remedies';

export interface QueueProblem {
  code: QueueProblemCode;
  /** What is wrong, in a sentence. */
  reason: string;
  /** What an operator can do about it. */
  remedy: string;
}

export interface DsaQueue {
  /** `wqD.Q` */
  name: string;
  /** Owning device, `dsaD`. */
  device: string;
  mode: QueueMode;
  type: QueueType;
  state: QueueState;
  /** Number of WQ entries; null when unreadable. */
  size: number | null;
  /** Shared queues: entries the user (limited) portal may fill; null when unreadable. */
  threshold: number | null;
  blockOnFault: boolean | null;
  maxTransferSize: number | null;
  maxBatchSize: number | null;
  /** The configured name (free text); '' when empty or missing. */
  queueName: string;
  /** `driver_name` (kernel 6.7+): 'user', 'dmaengine', ...; null when absent. */
  driverName: string | null;
  /** Open clients (each open of the cdev counts); null when unreadable. */
  clients: number | null;
  /** Expected character device, `<devRoot>/dsa/wqD.Q` (whether or not it exists). */
  devicePath: string;
  /** The node exists. */
  nodeExists: boolean;
  /** This process may open the node read/write (access(2) R_OK|W_OK). False when it does not exist. */
  accessible: boolean;
  /** NUMA node of the owning device; -1 when unknown. */
  numaNode: number;
  usable: boolean;
  /** First (most fundamental) problem's reason; null when usable. */
  reason: string | null;
  /** First problem's remedy; null when usable. */
  remedy: string | null;
  /** First problem's code; null when usable. */
  problem: QueueProblemCode | null;
  /** Every problem found, most fundamental first. */
  problems: QueueProblem[];
}

export interface DsaDevice {
  /** `dsaN` */
  name: string;
  /** N */
  id: number;
  state: DeviceState;
  /** `version` as a number (0x100 = DSA 1.0, 0x200 = DSA 2.0); null when unreadable. */
  version: number | null;
  /** -1 when the kernel has no node for it, or the value is unreadable. */
  numaNode: number;
  /** GENCAP as `0x…` hex; null when unreadable. */
  genCap: string | null;
  /** The 256-bit OPCAP as `0x…` hex; null when unreadable. */
  opCap: string | null;
  maxTransferSize: number | null;
  maxBatchSize: number | null;
  /** null when unreadable. */
  pasidEnabled: boolean | null;
  /** GENCAP bit 2 (cache_control_mem): the cache-control descriptor flag may be used. */
  cacheControl: boolean;
  /** OPCAP bit 3 (MEMMOVE). */
  memmoveSupported: boolean;
  /** OPCAP bit 1 (BATCH); kernels hide it on DSA 1.0 since INTEL-SA-01084. */
  batchSupported: boolean;
  /** Work queues, ordered by index. */
  queues: DsaQueue[];
}

export interface DiscoveryOptions extends RootOptions {
  /**
   * Checks that this process may open a node read/write; throws (with an errno `code`) when it may not.
   * Default: `fs.accessSync(p, R_OK | W_OK)`. Injectable because root passes every access check.
   */
  accessCheck?: (devicePath: string) => void;
}

const DEVICE_RE = /^dsa(\d{1,9})$/;
const QUEUE_RE = /^wq(\d{1,9})\.(\d{1,9})$/;

const OPCODE_BATCH = 1;
const OPCODE_MEMMOVE = 3;
const GENCAP_CACHE_CONTROL_MEM = 1n << 2n;

/**
 * Parse `op_cap`, a 256-bit bitmap. Accepted forms:
 *  - current kernels: `%*pb` per 64-bit word, highest word first: eight comma-separated 32-bit chunks
 *    without a prefix (`00000000,…,00ff00fd`); any number of such chunks is read as a `%*pb` bitmap;
 *  - four comma-separated `%#llx` 64-bit groups, highest first (`0x0,0x0,0x0,0xfd`);
 *  - kernels before 5.18: four space-separated `%#llx` groups, lowest first (`0xfd 0x0 0x0 0x0`);
 *  - a single `%#llx` value.
 * Returns null for anything else.
 */
export function parseOpCap(text: string | undefined): bigint | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (t.length === 0 || t.length > 200) return null;
  if (t.includes(',')) {
    const chunks = t.split(',');
    if (chunks.every((c) => /^[0-9a-fA-F]{1,8}$/.test(c)) && chunks.length <= 8) {
      return chunks.reduce((acc, c) => (acc << 32n) | BigInt(`0x${c}`), 0n);
    }
    if (chunks.length === 4 && chunks.every((c) => /^(0[xX])?[0-9a-fA-F]{1,16}$/.test(c))) {
      return chunks.reduce((acc, c) => (acc << 64n) | BigInt(c.startsWith('0x') || c.startsWith('0X') ? c : `0x${c}`), 0n);
    }
    return null;
  }
  const words = t.split(/\s+/);
  if (words.length === 4 && words.every((w) => /^0[xX][0-9a-fA-F]{1,16}$/.test(w) || w === '0')) {
    // Lowest first.
    return words.reduceRight((acc, w) => (acc << 64n) | BigInt(w === '0' ? 0 : w), 0n);
  }
  if (words.length === 1) {
    const single = words[0] as string;
    // A lone `%*pb` chunk (no prefix) or a lone `%#llx` value.
    if (/^[0-9a-fA-F]{1,8}$/.test(single)) return BigInt(`0x${single}`);
    return parseHex(single);
  }
  return null;
}

function hexOf(v: bigint | null): string | null {
  return v === null ? null : `0x${v.toString(16)}`;
}

function parseDeviceState(raw: string | undefined): DeviceState | null {
  const t = raw?.trim();
  if (t === 'enabled' || t === 'disabled' || t === 'halted' || t === 'unknown') return t;
  return null;
}

function parseQueueState(raw: string | undefined): QueueState | null {
  const t = raw?.trim();
  if (t === 'enabled' || t === 'disabled' || t === 'quiescing' || t === 'locked' || t === 'unknown') return t;
  return null;
}

function parseMode(raw: string | undefined): QueueMode | null {
  const t = raw?.trim();
  // Unlike accfg_wq_get_mode(), anything other than the two known words is NOT taken as dedicated.
  if (t === 'dedicated' || t === 'shared') return t;
  return null;
}

function parseType(raw: string | undefined): QueueType | null {
  if (raw === undefined) return null;
  // libaccfg splits on ':' first (older kernels printed e.g. "user:name").
  const t = raw.trim().split(':')[0];
  if (t === 'user' || t === 'kernel' || t === 'none') return t;
  return null;
}

function defaultAccessCheck(p: string): void {
  fs.accessSync(p, fs.constants.R_OK | fs.constants.W_OK);
}

interface RawDevice {
  name: string;
  id: number;
  dir: string;
  state: DeviceState | null;
  stateRaw: string | undefined;
  version: number | null;
  versionRaw: string | undefined;
  numaNode: number;
  genCap: bigint | null;
  opCap: bigint | null;
  opCapRaw: string | undefined;
  maxTransferSize: number | null;
  maxBatchSize: number | null;
  pasid: boolean | null;
  pasidRaw: string | undefined;
}

function readDevice(name: string, id: number, dir: string): RawDevice {
  const stateRaw = readAttr(dir, 'state');
  const versionRaw = readAttr(dir, 'version');
  const versionBig = parseHex(versionRaw);
  const numa = parseSigned(readAttr(dir, 'numa_node'));
  const opCapRaw = readAttr(dir, 'op_cap');
  const pasidRaw = readAttr(dir, 'pasid_enabled');
  return {
    name,
    id,
    dir,
    state: parseDeviceState(stateRaw),
    stateRaw,
    version: versionBig !== null && versionBig <= 0xffffffffn ? Number(versionBig) : null,
    versionRaw,
    numaNode: numa !== null && numa >= -1 ? numa : -1,
    genCap: parseHex(readAttr(dir, 'gen_cap')),
    opCap: parseOpCap(opCapRaw),
    opCapRaw,
    maxTransferSize: parseUnsigned(readAttr(dir, 'max_transfer_size')),
    maxBatchSize: parseUnsigned(readAttr(dir, 'max_batch_size')),
    pasid: parseFlag(pasidRaw),
    pasidRaw,
  };
}

function deviceProblems(d: RawDevice): QueueProblem[] {
  const out: QueueProblem[] = [];
  if (d.state === 'disabled') {
    out.push({
      code: 'device-disabled',
      reason: `device ${d.name} is disabled`,
      remedy: remedyFor('device-disabled', { device: d.name }),
    });
  } else if (d.state === 'halted') {
    out.push({
      code: 'device-halted',
      reason: `device ${d.name} is halted: it hit a fatal error (accel-config list still shows it as enabled)`,
      remedy: remedyFor('device-halted', { device: d.name }),
    });
  } else if (d.state !== 'enabled') {
    out.push({
      code: 'device-state-unknown',
      reason: `device ${d.name} state is ${d.state === 'unknown' ? '"unknown"' : showRaw(d.stateRaw)}, not "enabled"`,
      remedy: remedyFor('device-state-unknown', { device: d.name }),
    });
  }
  return out;
}

function readQueue(
  dev: RawDevice,
  name: string,
  dir: string,
  devRoot: string,
  devRootUsable: boolean,
  accessCheck: (p: string) => void,
): DsaQueue {
  const stateRaw = readAttr(dir, 'state');
  const modeRaw = readAttr(dir, 'mode');
  const typeRaw = readAttr(dir, 'type');
  const sizeRaw = readAttr(dir, 'size');
  const thresholdRaw = readAttr(dir, 'threshold');
  const bofRaw = readAttr(dir, 'block_on_fault');
  const mtsRaw = readAttr(dir, 'max_transfer_size');
  const mbsRaw = readAttr(dir, 'max_batch_size');
  const clientsRaw = readAttr(dir, 'clients');
  const driverNameRaw = readAttr(dir, 'driver_name');
  const nameRaw = readAttr(dir, 'name');
  // DSA 2.0, Linux 6.0+: the operations this queue accepts, in op_cap's format. Older kernels
  // and devices have no such file: every operation the device offers.
  const opConfigRaw = readAttr(dir, 'op_config');
  const opConfig = opConfigRaw === undefined ? undefined : parseOpCap(opConfigRaw);

  const state = parseQueueState(stateRaw);
  const mode = parseMode(modeRaw);
  const type = parseType(typeRaw);
  const size = parseUnsigned(sizeRaw);
  const threshold = parseUnsigned(thresholdRaw);
  const blockOnFault = parseFlag(bofRaw);
  const maxTransferSize = parseUnsigned(mtsRaw);
  const maxBatchSize = parseUnsigned(mbsRaw);
  const clients = parseUnsigned(clientsRaw);
  const driverName = driverNameRaw !== undefined && driverNameRaw.trim().length > 0 ? driverNameRaw.trim() : null;

  const devicePath = path.join(devRoot, 'dsa', name);
  let nodeExists = false;
  let accessible = false;
  let accessErr: string | undefined;
  if (devRootUsable) {
    try {
      fs.statSync(devicePath);
      nodeExists = true;
    } catch {
      nodeExists = false;
    }
    if (nodeExists) {
      try {
        accessCheck(devicePath);
        accessible = true;
      } catch (err) {
        accessErr = (err as NodeJS.ErrnoException).code ?? 'EACCES';
      }
    }
  }

  const problems: QueueProblem[] = deviceProblems(dev);

  if (state === 'disabled') {
    problems.push({
      code: 'queue-disabled',
      reason: `work queue ${name} is disabled`,
      remedy: remedyFor('queue-disabled', { device: dev.name, queue: name }),
    });
  } else if (state !== 'enabled') {
    problems.push({
      code: 'queue-not-enabled',
      reason: `work queue ${name} state is ${state === null ? showRaw(stateRaw) : `"${state}"`}, not "enabled"`,
      remedy: remedyFor('queue-not-enabled', { device: dev.name, queue: name }),
    });
  }

  if (type === 'kernel') {
    problems.push({
      code: 'kernel-type',
      reason: `work queue ${name} is a kernel queue: it serves the in-kernel dmaengine (/sys/class/dma), not user space`,
      remedy: remedyFor('kernel-type', { device: dev.name, queue: name }),
    });
  } else if (type !== 'user') {
    problems.push({
      code: 'not-user-type',
      reason: `work queue ${name} type is ${type === 'none' ? '"none" (unconfigured)' : showRaw(typeRaw)}, not "user"`,
      remedy: remedyFor('not-user-type', { device: dev.name, queue: name }),
    });
  }

  // Values dmacopy relies on to drive the queue.
  const bad: string[] = [];
  if (mode === null) bad.push(`${name}/mode=${showRaw(modeRaw)}`);
  if (size === null || size === 0) bad.push(`${name}/size=${showRaw(sizeRaw)}`);
  if (mode === 'shared' && threshold === null) bad.push(`${name}/threshold=${showRaw(thresholdRaw)}`);
  if (maxTransferSize === null || maxTransferSize === 0) bad.push(`${name}/max_transfer_size=${showRaw(mtsRaw)}`);
  if (blockOnFault === null) bad.push(`${name}/block_on_fault=${showRaw(bofRaw)}`);
  if (mode !== 'shared' && clients === null) bad.push(`${name}/clients=${showRaw(clientsRaw)}`);
  if (dev.version === null) bad.push(`${dev.name}/version=${showRaw(dev.versionRaw)}`);
  if (dev.opCap === null) bad.push(`${dev.name}/op_cap=${showRaw(dev.opCapRaw)}`);
  if (dev.pasid === null) bad.push(`${dev.name}/pasid_enabled=${showRaw(dev.pasidRaw)}`);
  if (opConfig === null) bad.push(`${name}/op_config=${showRaw(opConfigRaw)}`);
  if (bad.length > 0) {
    problems.push({
      code: 'bad-sysfs-value',
      reason: `unreadable or invalid sysfs value${bad.length > 1 ? 's' : ''}: ${bad.join(', ')}`,
      remedy: remedyFor('bad-sysfs-value', { device: dev.name, queue: name }),
    });
  }

  if (dev.pasid === false) {
    problems.push({
      code: 'no-pasid',
      reason: `device ${dev.name} has PASID/SVA disabled (pasid_enabled 0): user work queues need shared virtual addressing`,
      remedy: remedyFor('no-pasid', { device: dev.name, queue: name }),
    });
  }

  if (dev.opCap !== null && ((dev.opCap >> BigInt(OPCODE_MEMMOVE)) & 1n) === 0n) {
    problems.push({
      code: 'no-memmove',
      reason: `device ${dev.name} does not offer MEMMOVE (op_cap bit 3 is clear)`,
      remedy: remedyFor('no-memmove', { device: dev.name, queue: name }),
    });
  }

  if (opConfig !== undefined && opConfig !== null && ((opConfig >> BigInt(OPCODE_MEMMOVE)) & 1n) === 0n) {
    // Before, only the device's op_cap was read: such a queue passed the NOOP probe and then
    // failed every memmove over to the CPU.
    problems.push({
      code: 'memmove-not-allowed',
      reason: `work queue ${name} does not accept MEMMOVE: its op_config has bit 3 clear`,
      remedy: remedyFor('memmove-not-allowed', { device: dev.name, queue: name }),
    });
  }

  if (mode === 'dedicated' && clients !== null && clients > 0) {
    problems.push({
      code: 'dedicated-owned',
      reason: `dedicated work queue ${name} already has ${clients} open client${clients > 1 ? 's' : ''}: a dedicated queue serves one opener (open() fails with EBUSY)`,
      remedy: remedyFor('dedicated-owned', { device: dev.name, queue: name, devicePath }),
    });
  }

  if (!nodeExists) {
    problems.push({
      code: 'no-device-node',
      reason: `the device node ${devicePath} does not exist`,
      remedy: remedyFor('no-device-node', { device: dev.name, queue: name, devicePath }),
    });
  } else if (!accessible) {
    problems.push({
      code: 'permission',
      reason: `this process cannot open ${devicePath} for reading and writing (${accessErr ?? 'EACCES'})`,
      remedy: remedyFor('permission', { device: dev.name, queue: name, devicePath }),
    });
  }

  const first = problems[0];
  return {
    name,
    device: dev.name,
    mode: mode ?? 'unknown',
    type: type ?? 'unknown',
    state: state ?? 'unknown',
    size,
    threshold,
    blockOnFault,
    maxTransferSize,
    maxBatchSize,
    queueName: nameRaw?.trim() ?? '',
    driverName,
    clients,
    devicePath,
    nodeExists,
    accessible,
    numaNode: dev.numaNode,
    usable: first === undefined,
    reason: first?.reason ?? null,
    remedy: first?.remedy ?? null,
    problem: first?.code ?? null,
    problems,
  };
}

/**
 * List the DSA devices and their work queues. Synchronous: sysfs reads are fast.
 * A sysfs root that does not exist yields no devices; one that is not a directory throws ERR_DMACOPY_SYSFS.
 */
export function listDevices(options?: DiscoveryOptions): DsaDevice[] {
  const { sysfsRoot, devRoot } = resolveRoots(options);
  const accessCheck = options?.accessCheck ?? defaultAccessCheck;
  if (typeof accessCheck !== 'function') throw invalidArg('accessCheck', 'options.accessCheck must be a function');
  if (!checkRoot(sysfsRoot, 'sysfs')) return [];
  const devRootUsable = checkRoot(devRoot, 'dev');

  const busDir = path.join(sysfsRoot, 'bus', 'dsa', 'devices');
  const entries = listDir(busDir);

  const raw = new Map<number, RawDevice>();
  for (const e of entries) {
    const m = DEVICE_RE.exec(e);
    if (!m) continue; // iax*, engine*, group*, anything else
    const dir = path.join(busDir, e);
    if (!isDir(dir)) continue; // dangling link or a plain file
    const id = Number(m[1]);
    raw.set(id, readDevice(e, id, dir));
  }

  const queues = new Map<number, DsaQueue[]>();
  for (const e of entries) {
    const m = QUEUE_RE.exec(e);
    if (!m) continue;
    const devId = Number(m[1]);
    const dev = raw.get(devId);
    if (dev === undefined) continue; // a queue of an iax device, or of a device we cannot read
    const dir = path.join(busDir, e);
    if (!isDir(dir)) continue;
    const list = queues.get(devId) ?? [];
    list.push(readQueue(dev, e, dir, devRoot, devRootUsable, accessCheck));
    queues.set(devId, list);
  }

  const out: DsaDevice[] = [];
  for (const id of [...raw.keys()].sort((a, b) => a - b)) {
    const d = raw.get(id) as RawDevice;
    const qs = (queues.get(id) ?? []).sort((a, b) => queueIndex(a.name) - queueIndex(b.name));
    out.push({
      name: d.name,
      id: d.id,
      state: d.state ?? 'unknown',
      version: d.version,
      numaNode: d.numaNode,
      genCap: hexOf(d.genCap),
      opCap: hexOf(d.opCap),
      maxTransferSize: d.maxTransferSize,
      maxBatchSize: d.maxBatchSize,
      pasidEnabled: d.pasid,
      cacheControl: d.genCap !== null && (d.genCap & GENCAP_CACHE_CONTROL_MEM) !== 0n,
      memmoveSupported: d.opCap !== null && ((d.opCap >> BigInt(OPCODE_MEMMOVE)) & 1n) === 1n,
      batchSupported: d.opCap !== null && ((d.opCap >> BigInt(OPCODE_BATCH)) & 1n) === 1n,
      queues: qs,
    });
  }
  return out;
}

function queueIndex(name: string): number {
  const m = QUEUE_RE.exec(name);
  return m ? Number(m[2]) : 0;
}

export interface SelectQueuesOptions {
  /** Prefer queues of devices on this NUMA node; when none is usable there, fall back to all nodes. */
  numaNode?: number;
  /** Take every usable queue (preferred node first) instead of only the preferred node's. */
  spread?: boolean;
  /** Only queues of this mode. Default: both. */
  mode?: 'shared' | 'dedicated';
}

/**
 * Pick the queues an engine should open: the usable ones, preferring `numaNode`; with `spread: true`, all of
 * them. The result is interleaved across devices (wq0.0, wq2.0, wq4.0, wq0.1, …) so that splitting a batch
 * over the first k queues spreads it over devices.
 */
export function selectQueues(devices: readonly DsaDevice[], options: SelectQueuesOptions = {}): DsaQueue[] {
  if (!Array.isArray(devices)) throw invalidArg('devices', 'devices must be the array listDevices() returns');
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'options must be an object');
  const { numaNode, spread = false, mode } = options;
  if (numaNode !== undefined && (typeof numaNode !== 'number' || !Number.isInteger(numaNode))) {
    throw invalidArg('numaNode', 'options.numaNode must be an integer');
  }
  if (mode !== undefined && mode !== 'shared' && mode !== 'dedicated') {
    throw invalidArg('mode', "options.mode must be 'shared' or 'dedicated'");
  }
  const usable = (d: DsaDevice): DsaQueue[] => d.queues.filter((q) => q.usable && (mode === undefined || q.mode === mode));
  const preferred = numaNode !== undefined && numaNode >= 0 ? devices.filter((d) => d.numaNode === numaNode) : [];
  const others = devices.filter((d) => !preferred.includes(d));
  const prefQueues = interleave(preferred.map(usable));
  const otherQueues = interleave(others.map(usable));
  if (spread) return [...prefQueues, ...otherQueues];
  return prefQueues.length > 0 ? prefQueues : otherQueues;
}

function interleave(lists: DsaQueue[][]): DsaQueue[] {
  const out: DsaQueue[] = [];
  for (let i = 0; ; i++) {
    let any = false;
    for (const l of lists) {
      const q = l[i];
      if (q !== undefined) {
        out.push(q);
        any = true;
      }
    }
    if (!any) return out;
  }
}
