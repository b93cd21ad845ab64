// `dmacopy info`: what this host offers and what dmacopy will do with it. DSA devices and work
// queues (usable or why not, with remedies), kernel dmaengine channels, the CPU features the
// submission instructions need, the submission path each queue would get, and what
// `backend: 'auto'` will use and why. Everything is read, nothing is opened: a queue that looks
// usable is still opened and probed with a NOOP by openEngine().
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { defaultCpuThreads } from '../../defaults';
import { currentNumaNode } from '../../engine/backends';
import { type DsaDevice, type DsaQueue, listDevices, resolveRoots, selectQueues } from '../../host/discovery';
import { type DmaChannel, listDmaChannels } from '../../host/dma-channels';
import { nativeBinding, nativeLoadError } from '../../native/loader';
import { formatDevices, formatDmaChannels } from '../host-reports';
import { applyRoots, strictUsage } from './usage';

export interface CpuFeatures {
  movdir64b: boolean;
  enqcmd: boolean;
  waitpkg: boolean;
  /** Where the flags came from; null when they could not be read (then every feature reads false). */
  source: string | null;
}

export interface QueueSubmission {
  queue: string;
  mode: DsaQueue['mode'];
  usable: boolean;
  /** 'portal' (mmap + MOVDIR64B/ENQCMD) or 'write' (write(2) of descriptors to the fd). */
  path: 'portal' | 'write';
  /** The instruction the portal path would use for this queue's mode. */
  instruction: 'MOVDIR64B' | 'ENQCMD' | null;
  why: string;
}

export interface AutoChoice {
  backend: 'dsa' | 'cpu';
  /** DSA queues (dsa) or native CPU threads (cpu). */
  channels: number;
  queues?: string[];
  /** True when the native addon did not load: copies run in JavaScript on the calling thread. */
  jsFallback: boolean;
  reason: string;
}

export interface HostInfo {
  sysfsRoot: string;
  devRoot: string;
  devices: DsaDevice[];
  submission: QueueSubmission[];
  dmaChannels: DmaChannel[];
  cpu: CpuFeatures;
  /** CAP_SYS_RAWIO in the effective set (mmap of a DSA portal needs it since INTEL-SA-01084); null when unknown. */
  capSysRawio: boolean | null;
  native: { loaded: boolean; error: string | null };
  auto: AutoChoice;
}

export interface GatherOptions {
  sysfsRoot?: string;
  devRoot?: string;
  /** Default /proc/cpuinfo. */
  cpuinfoPath?: string;
  /** Default /proc/self/status. */
  statusPath?: string;
  /** Default: whether the native addon loaded. */
  nativeLoaded?: boolean;
  /** Default defaultCpuThreads(). */
  cpuThreads?: number;
  /** Discovery's access check (tests). */
  accessCheck?: (p: string) => void;
}

/** CPU flags from /proc/cpuinfo (what the kernel enabled: ENQCMD shows only where the kernel supports PASID). */
export function readCpuFeatures(cpuinfoPath = '/proc/cpuinfo'): CpuFeatures {
  let text: string;
  try {
    text = fs.readFileSync(cpuinfoPath, 'utf8');
  } catch {
    return { movdir64b: false, enqcmd: false, waitpkg: false, source: null };
  }
  const line = /^flags\s*:(.*)$/m.exec(text);
  const flags = new Set((line?.[1] ?? '').trim().split(/\s+/));
  return {
    movdir64b: flags.has('movdir64b'),
    enqcmd: flags.has('enqcmd'),
    waitpkg: flags.has('waitpkg'),
    source: line ? cpuinfoPath : null,
  };
}

/** CAP_SYS_RAWIO (bit 17) of CapEff in /proc/self/status; null when unreadable. */
export function readCapSysRawio(statusPath = '/proc/self/status'): boolean | null {
  try {
    const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(fs.readFileSync(statusPath, 'utf8'));
    if (!m) return null;
    return ((BigInt(`0x${m[1]}`) >> 17n) & 1n) === 1n;
  } catch {
    return null;
  }
}

/** The submission path a queue would get: what the native UserWorkQueue decides with submission 'auto'. */
export function submissionFor(
  q: Pick<DsaQueue, 'name' | 'mode' | 'usable'>,
  cpu: CpuFeatures,
  capSysRawio: boolean | null,
): QueueSubmission {
  const instruction: QueueSubmission['instruction'] = q.mode === 'shared' ? 'ENQCMD' : q.mode === 'dedicated' ? 'MOVDIR64B' : null;
  const base = { queue: q.name, mode: q.mode, usable: q.usable, instruction };
  if (instruction === null) return { ...base, path: 'write', why: 'queue mode unknown: write() (the kernel submits)' };
  const hasInsn = instruction === 'ENQCMD' ? cpu.enqcmd : cpu.movdir64b;
  if (capSysRawio !== true) {
    return {
      ...base,
      path: 'write',
      why: `no CAP_SYS_RAWIO${capSysRawio === null ? ' (unknown)' : ''}: mmap of the portal fails with EPERM since INTEL-SA-01084, so descriptors go through write() (needs a kernel with the idxd write() path: 6.10+, or 6.1.91/6.6.y/6.8.10/6.9.1 backports)`,
    };
  }
  if (!hasInsn) {
    return { ...base, path: 'write', why: `the CPU lacks ${instruction} (needed for a ${q.mode} queue's portal): write()` };
  }
  return {
    ...base,
    path: 'portal',
    why: `CAP_SYS_RAWIO and ${instruction}: mmap the portal and submit with ${instruction}, write() if the mmap fails`,
  };
}

export function gatherInfo(options: GatherOptions = {}): HostInfo {
  const { sysfsRoot, devRoot } = resolveRoots({ sysfsRoot: options.sysfsRoot, devRoot: options.devRoot });
  const devices = listDevices({ sysfsRoot, devRoot, ...(options.accessCheck ? { accessCheck: options.accessCheck } : {}) });
  const dmaChannels = listDmaChannels({ sysfsRoot });
  // The native CPUID reading (what the submission code checks) when the addon loaded; ENQCMD
  // also needs the kernel's PASID support. Otherwise (or given a file, in tests) /proc/cpuinfo.
  const native = options.cpuinfoPath === undefined ? nativeBinding()?.cpuFeatures() : undefined;
  const cpu: CpuFeatures = native
    ? { movdir64b: native.movdir64b, enqcmd: native.enqcmd && native.kernelEnqcmd, waitpkg: native.waitpkg, source: 'CPUID' }
    : readCpuFeatures(options.cpuinfoPath);
  const capSysRawio = readCapSysRawio(options.statusPath);
  const nativeLoaded = options.nativeLoaded ?? nativeBinding() !== undefined;
  const cpuThreads = options.cpuThreads ?? defaultCpuThreads();
  const submission = devices.flatMap((d) => d.queues.map((q) => submissionFor(q, cpu, capSysRawio)));
  // What backend 'auto' does (backends.userQueues): queues of the calling CPU's NUMA node, all nodes when it has none usable.
  const numaNode = currentNumaNode(sysfsRoot);
  const picked = selectQueues(devices, { numaNode, spread: false });
  const queues = devices.flatMap((d) => d.queues);
  let auto: AutoChoice;
  if (!nativeLoaded) {
    auto = {
      backend: 'cpu',
      channels: 1,
      jsFallback: true,
      reason: `the native addon did not load (${nativeLoadError()?.message ?? 'unknown error'}): DSA needs it, and copies run in JavaScript on the calling thread`,
    };
  } else if (picked.length > 0) {
    auto = {
      backend: 'dsa',
      channels: picked.length,
      queues: picked.map((q) => q.name),
      jsFallback: false,
      reason: `${picked.length} usable DSA work queue${picked.length === 1 ? '' : 's'} (${picked.map((q) => q.name).join(', ')})${numaNode !== undefined && picked.every((q) => q.numaNode === numaNode) ? ` on NUMA node ${numaNode}, the calling CPU's (all nodes with the engine option spread: true)` : ''}; each is opened and probed with a NOOP at openEngine(): one that fails is reported in engine.stats().queues, and if none opens, 'auto' copies on the CPU (engine.stats().autoReason says why) while backend 'dsa' rejects with ERR_DMACOPY_DEVICE`,
    };
  } else {
    const bus = path.join(sysfsRoot, 'bus', 'dsa', 'devices');
    auto = {
      backend: 'cpu',
      channels: cpuThreads,
      jsFallback: false,
      reason:
        devices.length === 0
          ? `no Intel DSA devices under ${bus} (no DSA hardware, or the idxd driver is not loaded)`
          : `none of the ${queues.length} DSA work queue${queues.length === 1 ? ' is' : 's are'} usable by this process (see the reasons above)`,
    };
  }
  return {
    sysfsRoot,
    devRoot,
    devices,
    submission,
    dmaChannels,
    cpu,
    capSysRawio,
    native: { loaded: nativeLoaded, error: nativeLoaded ? null : (nativeLoadError()?.message ?? null) },
    auto,
  };
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

export function formatInfo(info: HostInfo): string {
  const out: string[] = [];
  const bus = path.join(info.sysfsRoot, 'bus', 'dsa', 'devices');
  if (info.devices.length === 0) {
    // Said of the tree read: a --sysfs-root other than /sys is not "this host".
    const where = info.sysfsRoot === '/sys' ? 'on this host' : `under ${info.sysfsRoot}`;
    out.push(`Intel DSA: none ${where}: no devices under ${bus} (no DSA hardware, or the idxd driver is not loaded).`);
  } else {
    out.push(formatDevices(info.devices).trimEnd());
    const usable = info.submission.filter((s) => s.usable);
    out.push('');
    if (usable.length === 0) {
      out.push('Submission path: no usable queue.');
    } else {
      out.push('Submission path per usable queue:');
      const w = Math.max(...usable.map((s) => s.queue.length));
      for (const s of usable)
        out.push(`  ${s.queue.padEnd(w)}  ${s.path === 'portal' ? `portal (${s.instruction})` : 'write()'}: ${s.why}`);
    }
  }
  out.push('');
  out.push(formatDmaChannels(info.dmaChannels, info.sysfsRoot).trimEnd());
  out.push('');
  const src = info.cpu.source === null ? ' (could not read /proc/cpuinfo)' : '';
  out.push(
    `CPU features: MOVDIR64B ${yesNo(info.cpu.movdir64b)}, ENQCMD ${yesNo(info.cpu.enqcmd)}, WAITPKG ${yesNo(info.cpu.waitpkg)}${src}`,
  );
  out.push(
    `  MOVDIR64B submits to dedicated queues, ENQCMD to shared queues (portal path); WAITPKG lets waits use UMONITOR/UMWAIT (${info.cpu.waitpkg ? 'used' : 'pause/yield instead'}).`,
  );
  out.push(
    `CAP_SYS_RAWIO: ${info.capSysRawio === null ? 'unknown' : yesNo(info.capSysRawio)} (needed to mmap a queue's portal; without it dmacopy submits with write())`,
  );
  out.push(`Native addon: ${info.native.loaded ? 'loaded' : `NOT loaded (${info.native.error ?? 'unknown error'})`}`);
  out.push('');
  const a = info.auto;
  const what =
    a.backend === 'dsa'
      ? `dsa, ${a.channels} queue${a.channels === 1 ? '' : 's'}`
      : a.jsFallback
        ? 'cpu (JavaScript copy on the calling thread)'
        : `cpu, ${a.channels} thread${a.channels === 1 ? '' : 's'} (native multi-threaded copy)`;
  out.push(`backend 'auto' will use: ${what}`);
  out.push(`  because ${a.reason}`);
  return `${out.join('\n')}\n`;
}

interface InfoCliOptions {
  sysfsRoot?: string;
  devRoot?: string;
  json?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('info')
    .description(
      'show DSA devices and queues (usable or why not), dmaengine channels, CPU features, submission paths and what backend auto uses',
    )
    .option('--sysfs-root <dir>', 'directory standing for /sys (default: $DMACOPY_SYSFS_ROOT or /sys)')
    .option('--dev-root <dir>', 'directory standing for /dev (default: $DMACOPY_DEV_ROOT or /dev)')
    .option('--json', 'print the report as JSON')
    .action((o: InfoCliOptions) => {
      applyRoots(o);
      const info = gatherInfo({});
      if (o.json) console.log(JSON.stringify(info, null, 2));
      else process.stdout.write(formatInfo(info));
    });
  strictUsage(cmd);
}
