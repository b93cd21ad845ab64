// What `dmacopy bench --service` measures: the settings (how the example service copies, and with
// which engine options) and, for the copyBatch settings, the gaps between copies that trace each
// setting's curve of request p99 against copy throughput.

import { DEFAULT_CPU_NICE } from '../../defaults';
import { copyThreadCpus } from '../../engine/backends';

export type Strategy = 'none' | 'buffer-copy' | 'copy-batch' | 'copy-batch-sync' | 'worker' | 'worker-sync';

export interface ServiceSetting {
  /** Unique label: the strategy and the engine options that differ from the defaults. */
  label: string;
  strategy: Strategy;
  cpuThreads?: number;
  cpuNice?: number;
  cpuPolicy?: 'normal' | 'idle';
  cpuPinning?: 'auto' | 'on' | 'off';
  /** Pauses between back-to-back copies, ms: one measured point each (0: continuous). */
  gapsMs: number[];
}

function label(
  strategy: Strategy,
  cpuThreads?: number,
  cpuNice?: number,
  cpuPolicy?: 'normal' | 'idle',
  cpuPinning?: 'auto' | 'on' | 'off',
): string {
  const opts = [
    cpuThreads === undefined ? '' : `${cpuThreads} thr`,
    cpuNice === undefined ? '' : `nice ${cpuNice}`,
    cpuPolicy === 'idle' ? 'sched idle' : '',
    cpuPinning === undefined ? '' : cpuPinning === 'off' ? 'unpinned' : `pinning ${cpuPinning}`,
  ].filter(Boolean);
  return opts.length ? `${strategy} (${opts.join(', ')})` : strategy;
}

function setting(
  strategy: Strategy,
  gapsMs: number[],
  cpuThreads?: number,
  cpuNice?: number,
  cpuPolicy?: 'normal' | 'idle',
  cpuPinning?: 'auto' | 'on' | 'off',
): ServiceSetting {
  return {
    label: label(strategy, cpuThreads, cpuNice, cpuPolicy, cpuPinning),
    strategy,
    cpuThreads,
    cpuNice,
    cpuPolicy,
    cpuPinning,
    gapsMs,
  };
}

/**
 * The full sweep: idle, the Buffer.copy loop, copyBatchSync, then copyBatch with every combination
 * of copy threads (1, all) and nice (0: the process's priority, 10, 19: the default), and with
 * SCHED_IDLE copy threads (cpuPolicy 'idle'), and the default with the other binding than
 * 'auto' gives it on this host, at three gaps each, then the copy issued from a worker. The short
 * sweep (CI) keeps one point of each strategy. `autoBinds`: whether cpuPinning 'auto' binds the
 * copy threads here (what the engine itself decides, read from this host by default).
 */
export function serviceSettings(cores: number, short: boolean, autoBinds = copyThreadCpus('auto', cores).length > 0): ServiceSetting[] {
  if (short) {
    return [
      setting('none', [0]),
      setting('buffer-copy', [0]),
      setting('copy-batch', [0]),
      setting('copy-batch-sync', [0]),
      setting('worker', [0]),
    ];
  }
  const gaps = [0, 20, 100];
  const threads = [...new Set([1, cores])];
  const out = [setting('none', [0]), setting('buffer-copy', [0]), setting('copy-batch-sync', [0])];
  for (const nice of [0, 10, 19]) for (const t of threads) out.push(setting('copy-batch', gaps, t, nice));
  for (const t of threads) out.push(setting('copy-batch', gaps, t, undefined, 'idle'));
  // What binding costs or saves a service: the default with its threads unbound where 'auto'
  // binds them (no shared last-level cache), and bound where 'auto' does not (a second point
  // with the default's own setting would measure nothing new).
  if (cores > 1) out.push(setting('copy-batch', gaps, cores, DEFAULT_CPU_NICE, undefined, autoBinds ? 'off' : 'on'));
  out.push(setting('worker', [0]), setting('worker-sync', [0]));
  return out;
}
