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
