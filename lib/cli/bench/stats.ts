// Order statistics and timing helpers for `dmacopy bench`. Everything the bench reports is a
// median or a percentile of repeated measurements: a shared 2-core machine is noisy, and the
// median of several repetitions is what survives the noise.

/** The value at quantile q (0..1) of xs, nearest-rank on a sorted copy; NaN for an empty list. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i] as number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Monotonic nanoseconds as a number (safe for ~104 days of uptime differences). */
export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** process.cpuUsage() (user + system of every thread of the process, native threads included) in ns. */
export function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
export const KiB = 1024;

/** Bytes per ns is GB/s (1e9 bytes per second). */
export function gbps(bytes: number, ns: number): number {
  return ns > 0 ? bytes / ns : Number.NaN;
}

/** 4096 -> "4 KiB", 2097152 -> "2 MiB", 100 -> "100 B". */
export function sizeLabel(n: number): string {
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= KiB) return `${(n / KiB).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Parses "4k", "64KiB", "2m", "2MiB", "4096" into bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a size: '${text}' (use e.g. 4096, 4k, 64KiB, 2m)`);
  const scale = { '': 1, k: KiB, m: MiB, g: GiB }[(m[2] as string).toLowerCase()] as number;
  const n = Math.round(Number(m[1]) * scale);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`size must be at least 1 byte: '${text}'`);
  return n;
}
