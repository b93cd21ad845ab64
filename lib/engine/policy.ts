// The path policy, tuned from what this engine measures rather than from fixed constants:
//  - inline or threads: a batch is copied on the calling thread when the thread hop would cost
//    more than the threads save. The break-even size comes from measured inline throughput,
//    threaded throughput and hop latency (exploring near the threshold now and then);
//  - the CPU share beside a device (DTO's split): a fraction of each large device batch goes to
//    the CPU threads, sized so both finish together, from measured device and CPU rates.
import type { PolicyStats } from '../types';
import { SPLIT_UNIT } from './split';

const EWMA = 0.2;
const MIN_INLINE = 16 * 1024;
/**
 * The most a tuned threshold may keep on the calling thread: an event-loop budget (~30-100 us of
 * copying at this machine kind's rates, a few hundred cold), whatever the rates say. The inline
 * rate is measured on small copies that mostly hit the cache and the threaded rate on batches
 * of 4 MiB and more, so comparing them claims inline always wins; before this cap, 8 MiB
 * batches ran inline for milliseconds. No batch above it is sent inline to explore either.
 */
const MAX_INLINE = 1024 * 1024;
/** Hop samples kept: the hop is their median, so one delayed completion cannot set it. */
const HOP_SAMPLES = 15;
/** The CPU share 'auto' starts from until the CPU side of a device batch was timed once. */
const AUTO_START_SHARE = 0.1;
/** Device batches smaller than this are not worth splitting with the CPU. */
const MIN_SHARED_BATCH = 1024 * 1024;
const MAX_CPU_SHARE = 0.9;

function ewma(old: number, sample: number): number {
  return old === 0 ? sample : old + EWMA * (sample - old);
}

export class Policy {
  #inlineMax: number;
  readonly #inlineFixed: boolean;
  #inlineRate = 0; // bytes per ns
  #threadedRate = 0;
  #hopNs = 0;
  readonly #hops: number[] = [];
  #hopNext = 0;
  #deviceRate = 0;
  #cpuShare: number;
  readonly #cpuShareMode: 'off' | 'fixed' | 'auto';
  #tuned = false;
  #batches = 0;
  #inlineSamples = 0;

  constructor(
    options: { minOffloadBytes?: number; defaultMinOffloadBytes: number; cpuShare?: number | 'auto'; device: boolean },
    private readonly cpuThreads: number,
  ) {
    this.#inlineFixed = options.minOffloadBytes !== undefined;
    this.#inlineMax = options.minOffloadBytes ?? options.defaultMinOffloadBytes;
    const share = options.device ? (options.cpuShare ?? 0) : 0;
    this.#cpuShareMode = share === 'auto' ? 'auto' : share > 0 ? 'fixed' : 'off';
    this.#cpuShare = typeof share === 'number' ? share : AUTO_START_SHARE;
  }

  /**
   * Inline or not. Near the threshold (from a quarter of it to twice it), one batch in 16 takes
   * the other path to keep measuring. Not further below: a threaded batch of a few KiB costs
   * ~40 us of thread wake-ups on a VM, so exploring 32 KiB batches under a 256 KiB threshold
   * raised their mean latency fourfold while the measurement gained nothing.
   */
  useInline(bytes: number): boolean {
    this.#batches++;
    const inline = bytes < this.#inlineMax;
    if (this.#inlineFixed || bytes < Math.max(MIN_INLINE / 2, this.#inlineMax / 4) || bytes > 2 * this.#inlineMax) return inline;
    // Exploring inline never goes past the event-loop budget.
    if (this.#batches % 16 === 0) return !inline && bytes > MAX_INLINE ? false : !inline;
    return inline;
  }

  /**
   * Whether an inline batch of at most 64 KiB that nobody observes should be timed for
   * observeInline: never below MIN_INLINE (ignored there) or when the threshold is fixed, else
   * until a first rate exists and then one batch in 8. The rate is an average; timing every
   * batch would add two clock reads (~100 ns on a VM) to copies that take a few hundred.
   */
  sampleInline(bytes: number): boolean {
    if (this.#inlineFixed || bytes < MIN_INLINE) return false;
    return this.#inlineRate === 0 || (++this.#inlineSamples & 7) === 0;
  }

  observeInline(bytes: number, ns: number): void {
    if (bytes < MIN_INLINE || ns <= 0) return;
    this.#inlineRate = ewma(this.#inlineRate, bytes / ns);
    this.#retune();
  }

  /**
   * A batch that went through the CPU threads (async or sync): elapsed includes the hop. The
   * elapsed time is taken when JavaScript handles the completion, so a busy event loop or a
   * burst of batches adds to it: the hop is the median of the last HOP_SAMPLES samples, which a
   * few delayed ones do not move, and which newer samples (exploration keeps them coming) replace.
   */
  observeThreaded(bytes: number, ns: number): void {
    if (ns <= 0) return;
    if (bytes >= 4 * 1024 * 1024) this.#threadedRate = ewma(this.#threadedRate, bytes / ns);
    else if (this.#threadedRate > 0 && bytes <= 1024 * 1024) this.#addHop(Math.max(0, ns - bytes / this.#threadedRate));
    this.#retune();
  }

  #addHop(ns: number): void {
    this.#hops[this.#hopNext] = ns;
    this.#hopNext = (this.#hopNext + 1) % HOP_SAMPLES;
    const sorted = [...this.#hops].sort((x, y) => x - y);
    this.#hopNs = sorted[sorted.length >> 1] as number;
  }

  /** A device batch: device works' bytes and the time the slowest of them took; CPU share alike. */
  observeDevice(deviceBytes: number, deviceNs: number, cpuBytes: number, cpuNs: number): void {
    if (deviceBytes > 0 && deviceNs > 0) this.#deviceRate = ewma(this.#deviceRate, deviceBytes / deviceNs);
    // The CPU share's bytes over the time its slowest work took: the rate of all the threads
    // together (it was once multiplied by the thread count again, which doubled the share's
    // weight on two threads).
    // (A device engine's threaded rate comes from here only: 0 until the CPU side was timed.)
    if (cpuBytes > 0 && cpuNs > 0) this.#threadedRate = ewma(this.#threadedRate, cpuBytes / cpuNs);
    if (this.#cpuShareMode !== 'auto' || this.#deviceRate === 0 || this.#threadedRate === 0) return;
    // Both sides finish together when the CPU gets its rate's share of the bytes.
    this.#cpuShare = Math.min(MAX_CPU_SHARE, this.#threadedRate / (this.#threadedRate + this.#deviceRate));
  }

  /** How many CPU works to add beside the device works, and the weight of each work. */
  deviceSplit(bytes: number, deviceWorks: number): { cpuWorks: number; weights: number[] | undefined } {
    if (this.#cpuShare <= 0 || bytes < MIN_SHARED_BATCH) return { cpuWorks: 0, weights: undefined };
    const cpuWorks = this.cpuThreads;
    const weights = [
      ...Array.from({ length: deviceWorks }, () => (1 - this.#cpuShare) / deviceWorks),
      ...Array.from({ length: cpuWorks }, () => this.#cpuShare / cpuWorks),
    ];
    return { cpuWorks, weights };
  }

  #retune(): void {
    if (this.#inlineFixed || this.#inlineRate === 0 || this.#threadedRate === 0 || this.#hopNs === 0) return;
    // Inline time b/ri equals threaded time hop + b/rt at b = hop / (1/ri - 1/rt).
    const gain = 1 / this.#inlineRate - 1 / this.#threadedRate;
    const breakEven = gain > 0 ? this.#hopNs / gain : MAX_INLINE;
    this.#inlineMax = Math.round(Math.min(MAX_INLINE, Math.max(MIN_INLINE, breakEven)) / SPLIT_UNIT) * SPLIT_UNIT;
    this.#tuned = true;
  }

  stats(): PolicyStats {
    return {
      inlineMaxBytes: this.#inlineMax,
      inlineSource: this.#inlineFixed ? 'fixed' : this.#tuned ? 'measured' : 'default',
      inlineGBps: this.#inlineRate,
      threadedGBps: this.#threadedRate,
      deviceGBps: this.#deviceRate,
      hopNs: Math.round(this.#hopNs),
      cpuShare: this.#cpuShare,
      cpuShareSource:
        this.#cpuShareMode === 'off'
          ? 'off'
          : this.#cpuShareMode === 'fixed'
            ? 'fixed'
            : this.#threadedRate && this.#deviceRate
              ? 'measured'
              : 'default',
    };
  }
}
