// Where the copy threads should run: the CPUs this process may use, and whether the kernel can
// spread woken threads over them by itself.
//
// The scheduler looks for an idle CPU for a woken thread only within the last-level-cache domain
// of its target CPU. A guest that reports no cache topology (Firecracker exposes no
// /sys/devices/system/cpu/cpuN/cache at all), or CPUs that share no last-level cache, leave that
// domain a single CPU: a woken thread lands on the waker's CPU or its own previous one even
// while another CPU idles. A batch's second copy thread then often queues behind the first, and
// the batch copies at one thread's speed until the load balancer moves it, milliseconds later
// (on a 2-core Firecracker VM, one async 64 MiB copy in four ran at half speed). There, and only
// there, the engine binds each copy thread to its own CPU (cpuPinning 'auto').

import fs from 'node:fs';
import path from 'node:path';
import type { CpuPinning } from '../types';
import { readAttr } from './sysfs';

export interface CpuTopology {
  /** The CPUs this process may run on (its affinity mask), ascending. */
  allowed: number[];
  /**
   * True when the first allowed CPU shares its last-level cache with another allowed CPU, as
   * sysfs reports it: the kernel then finds an idle CPU for a woken thread itself.
   */
  sharedLastLevelCache: boolean;
}

/** Parses a kernel CPU list ("0-3,8,10-11"); undefined when it is not one. */
export function parseCpuList(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === '') return [];
  const out = new Set<number>();
  for (const part of t.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a > 65536) return undefined;
    for (let c = a; c <= b; c++) out.add(c);
  }
  return [...out].sort((x, y) => x - y);
}

/** The CPUs of the calling process's affinity mask, from /proc/self/status (undefined if unreadable). */
export function allowedCpus(procRoot = '/proc'): number[] | undefined {
  let status: string;
  try {
    status = fs.readFileSync(path.join(procRoot, 'self', 'status'), 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Cpus_allowed_list:\s*(.*)$/m.exec(status);
  return parseCpuList(m?.[1]);
}

/**
 * The CPUs sharing cpu's last-level cache (the highest cache level sysfs lists for it), or
 * undefined when sysfs lists no cache for it.
 */
export function lastLevelCacheCpus(sysfsRoot: string, cpu: number): number[] | undefined {
  const dir = path.join(sysfsRoot, 'devices', 'system', 'cpu', `cpu${cpu}`, 'cache');
  let entries: string[];
  try {
    entries = fs.readdirSync(dir).filter((e) => /^index\d+$/.test(e));
  } catch {
    return undefined;
  }
  let best: { level: number; cpus: number[] } | undefined;
  for (const e of entries) {
    const index = path.join(dir, e);
    const level = Number(readAttr(index, 'level'));
    const type = readAttr(index, 'type');
    const cpus = parseCpuList(readAttr(index, 'shared_cpu_list'));
    if (!Number.isInteger(level) || cpus === undefined || type === 'Instruction') continue;
    if (!best || level > best.level) best = { level, cpus };
  }
  return best?.cpus;
}

/** What the kernel reports of the CPUs this process may use. */
export function readCpuTopology(sysfsRoot = '/sys', procRoot = '/proc'): CpuTopology {
  // Cpus_allowed_list is the affinity mask as set, which by default names every CPU the kernel
  // could bring up; sched_getaffinity() and the scheduler use it ANDed with the online CPUs. A
  // thread bound to an offline CPU is refused (and left unbound), so count only online ones.
  const online = parseCpuList(readAttr(path.join(sysfsRoot, 'devices', 'system', 'cpu'), 'online'));
  const mask = allowedCpus(procRoot) ?? [];
  const allowed = online === undefined ? mask : mask.filter((c) => online.includes(c));
  const first = allowed[0];
  const llc = first === undefined ? undefined : lastLevelCacheCpus(sysfsRoot, first);
  const sharedLastLevelCache = llc !== undefined && allowed.some((c) => c !== first && llc.includes(c));
  return { allowed, sharedLastLevelCache };
}

/**
 * The CPUs to bind `threads` copy threads to (thread i to entry i modulo the list, see
 * CpuCopyPool), or [] to leave them to the scheduler. 'off': never. 'on': always, over the
 * allowed CPUs (more threads than CPUs share them round-robin). 'auto': only where the kernel
 * cannot spread woken threads itself (no shared last-level cache reported) and there are at least
 * as many allowed CPUs as threads, and more than one.
 */
export function pinCpusFor(mode: CpuPinning, threads: number, topo: CpuTopology): number[] {
  if (mode === 'off' || topo.allowed.length === 0) return [];
  if (mode === 'on') return topo.allowed;
  if (topo.sharedLastLevelCache || topo.allowed.length < 2 || threads < 2 || threads > topo.allowed.length) return [];
  return topo.allowed;
}
