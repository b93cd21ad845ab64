// Configuring a DSA user work queue through the real `accel-config` tool (Debian/Ubuntu package
// `accel-config`, github.com/intel/idxd-config). dmacopy never writes the idxd sysfs attributes
// itself: it builds the documented command sequence (the one DTO's and accel-config's own scripts
// use: disable, config-engine, config-wq, enable-device, enable-wq), prints it, and runs it through
// an injectable runner. Permission and capability steps are printed, never done.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DmacopyError, invalidArg } from '../errors';
import type { DsaDevice } from './discovery';
import { permissionSteps } from './remedies';
import { readAttr } from './sysfs';

export interface SetupProfile {
  name: string;
  description: string;
  mode: 'shared' | 'dedicated';
  /** WQ entries. */
  wqSize: number;
  /** Shared queues: entries the unprivileged portal may fill (at least 1 below wqSize). */
  threshold?: number;
  /** 1..15 */
  priority: number;
  blockOnFault: 0 | 1;
  /** Engines put in the group. */
  engines: number;
  groupId: number;
  /** The queue's configured name (free text). */
  wqName: string;
  maxTransferSize?: number;
  maxBatchSize?: number;
}

export const PROFILES: Record<string, SetupProfile> = {
  shared: {
    name: 'shared',
    description:
      'one shared user work queue (size 32, threshold 28) any number of processes can open; submissions need ENQCMD (portal) or write()',
    mode: 'shared',
    wqSize: 32,
    threshold: 28,
    priority: 10,
    blockOnFault: 0,
    engines: 4,
    groupId: 0,
    wqName: 'dmacopy',
  },
  dedicated: {
    name: 'dedicated',
    description:
      'one dedicated user work queue (size 32) owned by a single process at a time; submissions need MOVDIR64B (portal) or write()',
    mode: 'dedicated',
    wqSize: 32,
    priority: 10,
    blockOnFault: 0,
    engines: 4,
    groupId: 0,
    wqName: 'dmacopy',
  },
};

const PROFILE_KEYS = new Set([
  'name',
  'description',
  'mode',
  'wqSize',
  'threshold',
  'priority',
  'blockOnFault',
  'engines',
  'groupId',
  'wqName',
  'maxTransferSize',
  'maxBatchSize',
]);

function intField(p: Record<string, unknown>, key: string, min: number, max: number, where: string): void {
  const v = p[key];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw invalidArg(key, `${where}: ${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
}

/** Checks a profile (from PROFILES or a --file); fills defaults from the profile of the same mode. */
export function checkProfile(raw: unknown, where = 'profile'): SetupProfile {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalidArg('profile', `${where} must be a JSON object`);
  const p = raw as Record<string, unknown>;
  for (const k of Object.keys(p))
    if (!PROFILE_KEYS.has(k)) throw invalidArg(k, `${where}: unknown field '${k}': expected one of ${[...PROFILE_KEYS].join(', ')}`);
  if (p.mode !== 'shared' && p.mode !== 'dedicated') throw invalidArg('mode', `${where}: mode must be "shared" or "dedicated"`);
  const base = PROFILES[p.mode] as SetupProfile;
  intField(p, 'wqSize', 1, 4096, where);
  intField(p, 'threshold', 1, 4096, where);
  intField(p, 'priority', 1, 15, where);
  intField(p, 'blockOnFault', 0, 1, where);
  intField(p, 'engines', 1, 64, where);
  intField(p, 'groupId', 0, 64, where);
  intField(p, 'maxTransferSize', 1, 2 ** 32, where);
  intField(p, 'maxBatchSize', 1, 4096, where);
  for (const k of ['name', 'description', 'wqName'] as const) {
    if (p[k] !== undefined && (typeof p[k] !== 'string' || !/^[\w.:@+-][\w .:@+-]{0,63}$/.test(p[k] as string))) {
      throw invalidArg(k, `${where}: ${k} must be a short string of letters, digits and . : @ + - _ (got ${JSON.stringify(p[k])})`);
    }
  }
  const out = {
    ...base,
    ...(p as Partial<SetupProfile>),
    threshold: p.mode === 'shared' ? ((p.threshold as number | undefined) ?? base.threshold) : undefined,
  } as SetupProfile;
  if (out.mode === 'dedicated' && p.threshold !== undefined)
    throw invalidArg('threshold', `${where}: threshold applies to shared queues only`);
  if (out.mode === 'shared' && (out.threshold as number) >= out.wqSize) {
    throw invalidArg(
      'threshold',
      `${where}: threshold (${out.threshold}) must be at least 1 below wqSize (${out.wqSize}): the last entry is reserved for privileged submitters`,
    );
  }
  return out;
}

export function loadProfileFile(file: string): SetupProfile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw invalidArg('--file', `cannot read profile ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalidArg('--file', `profile ${file} is not valid JSON: ${(err as Error).message}`);
  }
  return checkProfile(json, `profile ${file}`);
}

export interface SetupStep {
  /** Arguments after `accel-config`. */
  args: string[];
  why: string;
}

export interface SetupPlan {
  profile: SetupProfile;
  device: string;
  /** `dsaN/wqN.Q` */
  wq: string;
  /** The /dev node the queue gets once enabled. */
  devicePath: string;
  steps: SetupStep[];
  /** The plan disables an enabled device: every other queue of it stops until re-enabled. */
  disruptive: boolean;
  warnings: string[];
  /** Printed, never run: node permissions and the portal capability. */
  permissionSteps: string[];
}

export interface PlanOptions {
  profile: SetupProfile;
  /** `dsaN`; default: the first device discovery found, else dsa0. */
  device?: string;
  /** Queue index or `wqN.Q`; default 0. */
  wq?: string;
  devices: readonly DsaDevice[];
  sysfsRoot: string;
  devRoot: string;
  /** Group for /dev/dsa access. Default 'dsa'. */
  group?: string;
}

/** Builds the accel-config command sequence for a profile on one device. Pure: reads sysfs only. */
export function planSetup(o: PlanOptions): SetupPlan {
  const warnings: string[] = [];
  const deviceName = o.device ?? o.devices[0]?.name ?? 'dsa0';
  const dm = /^dsa(\d{1,9})$/.exec(deviceName);
  if (!dm) throw invalidArg('--device', `--device must name a DSA device such as dsa0, got '${deviceName}'`);
  const id = Number(dm[1]);
  let wqIndex = 0;
  if (o.wq !== undefined) {
    const m = /^(?:wq(\d{1,9})\.)?(\d{1,9})$/.exec(o.wq);
    if (!m || (m[1] !== undefined && Number(m[1]) !== id))
      throw invalidArg('--wq', `--wq must be a queue of ${deviceName} such as wq${id}.0 (or just its index), got '${o.wq}'`);
    wqIndex = Number(m[2]);
  }
  const wqName = `wq${id}.${wqIndex}`;
  const wq = `${deviceName}/${wqName}`;
  const dev = o.devices.find((d) => d.name === deviceName);
  const devDir = path.join(o.sysfsRoot, 'bus', 'dsa', 'devices', deviceName);
  const limit = (attr: string): number | undefined => {
    const v = Number(readAttr(devDir, attr)?.trim());
    return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  };
  const p = o.profile;
  let engines = p.engines;
  if (!dev) {
    warnings.push(
      `${deviceName} was not found under ${path.join(o.sysfsRoot, 'bus', 'dsa', 'devices')}: the plan assumes it exists, is disabled and has ${engines} engines`,
    );
  } else {
    const maxEngines = limit('max_engines');
    if (maxEngines !== undefined && engines > maxEngines) {
      warnings.push(`${deviceName} has ${maxEngines} engines: using ${maxEngines}, not ${engines}`);
      engines = maxEngines;
    }
    const maxWqs = limit('max_work_queues');
    if (maxWqs !== undefined && wqIndex >= maxWqs)
      throw invalidArg('--wq', `${deviceName} has ${maxWqs} work queues (wq${id}.0 to wq${id}.${maxWqs - 1}), not ${wqName}`);
    const maxSize = limit('max_work_queues_size');
    if (maxSize !== undefined && p.wqSize > maxSize)
      throw invalidArg('wqSize', `the profile's wqSize ${p.wqSize} exceeds ${deviceName}'s max_work_queues_size ${maxSize}`);
    const maxGroups = limit('max_groups');
    if (maxGroups !== undefined && p.groupId >= maxGroups)
      throw invalidArg('groupId', `the profile's groupId ${p.groupId} is past ${deviceName}'s ${maxGroups} groups`);
    if (dev.pasidEnabled === false)
      warnings.push(`${deviceName} has PASID disabled: user queues will not work until the host boots with intel_iommu=on,sm_on`);
  }
  const steps: SetupStep[] = [];
  const q = dev?.queues.find((x) => x.name === wqName);
  if (q && q.state !== 'disabled')
    steps.push({ args: ['disable-wq', wq], why: `${wqName} is ${q.state}: a queue is configured only while disabled` });
  let disruptive = false;
  if (dev && dev.state !== 'disabled') {
    disruptive = true;
    const others = dev.queues.filter((x) => x.name !== wqName && x.state === 'enabled');
    const names = others.map((x) => x.name).join(', ');
    steps.push({
      args: ['disable-device', deviceName],
      why: `${deviceName} is ${dev.state}: engines and groups are configured only while the device is disabled${others.length ? `; this also stops ${names} and clears their configuration` : ''}`,
    });
    // The kernel resets every queue, engine and group of a device it disables (idxd_device_clear_state):
    // re-enabling the other queues is not enough, they must be configured again.
    if (others.length)
      warnings.push(
        `disabling ${deviceName} stops its other enabled queues and clears their configuration, which this plan does not restore: ${others.map(queueConfig).join('; ')}. Save it first (\`accel-config save-config -s <file>\`) and configure them again afterwards. accel-config refuses to disable the device while a process has one of its queues open`,
      );
  }
  for (let e = 0; e < engines; e++) {
    steps.push({
      args: ['config-engine', `${deviceName}/engine${id}.${e}`, `--group-id=${p.groupId}`],
      why: `engine ${e} into group ${p.groupId}`,
    });
  }
  const wqArgs = [
    'config-wq',
    wq,
    `--group-id=${p.groupId}`,
    `--mode=${p.mode}`,
    `--wq-size=${p.wqSize}`,
    ...(p.mode === 'shared' ? [`--threshold=${p.threshold}`] : []),
    `--priority=${p.priority}`,
    `--block-on-fault=${p.blockOnFault}`,
    ...(p.maxTransferSize !== undefined ? [`--max-transfer-size=${p.maxTransferSize}`] : []),
    ...(p.maxBatchSize !== undefined ? [`--max-batch-size=${p.maxBatchSize}`] : []),
    '--type=user',
    `--name=${p.wqName}`,
    '--driver-name=user',
  ];
  steps.push({ args: wqArgs, why: `a ${p.mode} user queue bound to the "user" driver (creates /dev/dsa/${wqName})` });
  steps.push({ args: ['enable-device', deviceName], why: 'apply the device configuration' });
  steps.push({ args: ['enable-wq', wq], why: `enable ${wqName}` });
  const devicePath = path.join(o.devRoot, 'dsa', wqName);
  return {
    profile: p,
    device: deviceName,
    wq,
    devicePath,
    steps,
    disruptive,
    warnings,
    permissionSteps: permissionSteps(devicePath, o.group ?? 'dsa'),
  };
}

/** A queue's configuration as sysfs shows it, in a few words (what a device disable clears). */
function queueConfig(q: DsaDevice['queues'][number]): string {
  const threshold = q.mode === 'shared' ? `, threshold ${q.threshold ?? '?'}` : '';
  return `${q.name} (${q.type} ${q.mode}, size ${q.size ?? '?'}${threshold}, name '${q.queueName}')`;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
  /** How the step ended when it did not exit: 'killed by SIGSEGV', 'timed out after 60 s (killed)', 'could not be started: ...'. */
  ended?: string;
}

/** How long one accel-config step may take (a disable can wait on the device's drain). */
const STEP_TIMEOUT_MS = 60_000;
/** Runs `accel-config <args>`; injectable for tests. */
export type Runner = (tool: string, args: string[]) => Promise<RunResult>;

export const defaultRunner: Runner = (tool, args) =>
  new Promise((resolve) => {
    execFile(tool, args, { timeout: STEP_TIMEOUT_MS }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string | null; signal?: string | null; killed?: boolean }) | null;
      // A step that exited has a numeric code. One killed by a signal (a crash, or our timeout)
      // has none: say which, instead of the 127 of a command that could not be started.
      let ended: string | undefined;
      let status = 0;
      if (e) {
        if (typeof e.code === 'number') status = e.code;
        else if (e.signal) {
          status = 128 + (os.constants.signals[e.signal as NodeJS.Signals] ?? 0);
          ended = e.killed ? `timed out after ${STEP_TIMEOUT_MS / 1000} s (killed with ${e.signal})` : `killed by ${e.signal}`;
        } else {
          status = 127;
          ended = `could not be started: ${e.message}`;
        }
      }
      resolve({ status, stdout: String(stdout), stderr: String(stderr || (ended ?? '')), ...(ended ? { ended } : {}) });
    });
  });

/** The accel-config executable on PATH, or undefined. */
export function findAccelConfig(envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, 'accel-config');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function missingToolError(): DmacopyError {
  return new DmacopyError(
    'ERR_DMACOPY_BACKEND_UNAVAILABLE',
    'accel-config is not installed (not found on PATH): install it with `apt-get install accel-config` (Debian/Ubuntu; `dnf install accel-config` on Fedora/RHEL), or run with --dry-run to see the plan',
  );
}

export function notRootError(): DmacopyError {
  return new DmacopyError(
    'ERR_DMACOPY_PERMISSION',
    'configuring DSA work queues needs root (accel-config writes the idxd sysfs attributes): run `sudo dmacopy setup …`, or add --dry-run to see the plan',
  );
}

export function commandLine(tool: string, args: readonly string[]): string {
  return [tool, ...args].map((a) => (/^[\w./=:@+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
