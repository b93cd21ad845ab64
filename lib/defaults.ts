// Default policy numbers, each with the reason it is what it is. Engine options override them.
import fs from 'node:fs';
import os from 'node:os';

/** Below this, a thread hop (~10-20 us to wake a pool thread and hear back) costs more than the
 *  copy itself at ~10 GB/s, so the batch is copied inline on the calling thread. */
export const DEFAULT_MIN_OFFLOAD_BYTES = 256 * 1024;

/** A work smaller than this is not worth its own channel: fewer, larger works instead. */
export const MIN_WORK_BYTES = 128 * 1024;

export function defaultCpuThreads(): number {
  return Math.max(1, Math.min(64, os.availableParallelism()));
}

/** Nice value of the copy threads. A Node process that copies usually also serves: the event loop
 *  should take a core back from a copy thread the moment a request wakes it. Under continuous
 *  256 MiB copies on 2 cores with the service loaded as fast as it answers, nice 19 kept request
 *  p99 lower than nice 10 in every measured run (1.35-2.25x idle against 2.03-2.57x on one
 *  machine, 2.14-2.30x against 2.45-3.75x on another; README "In a service"), at the same copy
 *  rate within the runs' spread: the copy threads mostly use what the service leaves. Their
 *  weight against a nice-0 thread is then 1/68 (1/10 at nice 10): where the process's own
 *  threads keep every core busy, a copy runs slowly; cpuNice 0 suits a batch job. With the
 *  machine to itself it copies as fast at any nice value. */
export const DEFAULT_CPU_NICE = 19;

/** Streaming (non-temporal) stores pay off once a batch no longer fits in the last-level cache
 *  next to the data the application keeps there: half the LLC, or 16 MiB when it is unknown. */
export function defaultNonTemporalMinBytes(): number {
  try {
    const text = fs.readFileSync('/sys/devices/system/cpu/cpu0/cache/index3/size', 'utf8').trim();
    const m = /^(\d+)([KMG]?)$/.exec(text);
    if (m) {
      const scale = m[2] === 'K' ? 1024 : m[2] === 'M' ? 1024 * 1024 : m[2] === 'G' ? 1024 ** 3 : 1;
      const llc = Number(m[1]) * scale;
      if (llc > 0) return Math.max(4 * 1024 * 1024, llc / 2);
    }
  } catch {
    // not Linux, or no L3 reported: use the fixed default
  }
  return 16 * 1024 * 1024;
}

/** A work's device deadline before the CPU finishes it, in ms (the native side adds 1 ms per MiB of
 *  the work, so only a device slower than ~1 GB/s is abandoned). */
export const DEFAULT_TIMEOUT_MS = 1000;

/** Page faults continued on the device (after touching the page) before the CPU takes the rest:
 *  one retry covers a page the kernel had swapped or not yet populated; a second that still
 *  faults means something is wrong with the mapping. */
export const PAGE_FAULT_RETRIES = 2;

/** Consecutive failures (timeouts, errors, unhealthy states) before a queue is quarantined. */
export const QUARANTINE_AFTER = 3;

/** After a deadline or a device error, how long the in-band Drain descriptor may take (ms) before
 *  the queue counts as wedged: its batches then reject with ERR_DMACOPY_DEVICE_WEDGED and it is
 *  quarantined. Also bounds engine.close() on a wedged device. A Drain waits for what the device
 *  holds, so this is how long a live device may lag before dmacopy stops waiting for it. */
export const DRAIN_TIMEOUT_MS = 1000;

/** Where sysfs does not say: the DSA 1.0 maximum transfer size of Sapphire Rapids devices. */
export const DSA_MAX_TRANSFER_SIZE = 2 * 1024 * 1024;

/** The software DSA device's shape when options.emulator leaves it out: a small SPR-like queue. */
export const EMULATOR_DEFAULTS = {
  /** Queues (each its own software device) when neither emulator.queues nor channels is given. */
  queues: 2,
  engines: 2,
  wqSize: 128,
  maxTransferSize: DSA_MAX_TRANSFER_SIZE,
  seed: 1,
  latencyUs: 0,
  jitterUs: 0,
  /** How late a 'late' fault completes. */
  lateMs: 20,
} as const;
