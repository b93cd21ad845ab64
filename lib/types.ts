// Public types: engine options, reports and statistics. Field names are part of the API (docs/api.md is generated from them).

export type Backend = 'auto' | 'cpu' | 'emulated' | 'dsa';
export type ResolvedBackend = 'cpu' | 'emulated' | 'dsa';
/** Scheduling policy of the native copy threads: SCHED_OTHER at cpuNice, or SCHED_IDLE. */
export type CpuPolicy = 'normal' | 'idle';
/** Whether the native copy threads are bound one to a CPU: 'auto' (where the kernel cannot spread them), 'on', 'off'. */
export type CpuPinning = 'auto' | 'on' | 'off';

export interface EngineOptions {
  /** Where copies run. 'auto' picks DSA when usable queues exist and open, else the CPU engine. Default 'auto'. */
  backend?: Backend;
  /** Works per batch (one per channel). Default: one per CPU thread (CPU) or per queue (DSA). */
  channels?: number;
  /** Native copy threads. Default os.availableParallelism(), at most 64. */
  cpuThreads?: number;
  /**
   * Nice value (0..19) of the native copy threads, set per thread (Linux): the event loop and the
   * rest of the process keep their priority, so a thread that wakes to serve a request takes a
   * core back from the copy at once, and the copy runs on whatever CPU is left. 0 runs them at the
   * process's own priority, for a batch job whose other threads keep every core busy
   * (at 19 a copy thread weighs 1/68 of a normal one). Default 19, which gave requests the most
   * room at the same copy rate (see "In a service" in the README).
   */
  cpuNice?: number;
  /**
   * Scheduling policy of the native copy threads (Linux, per thread). 'normal' (default):
   * SCHED_OTHER at cpuNice. 'idle': SCHED_IDLE, so the threads run only on cores nothing else
   * wants and any other thread that wakes (the event loop with a request) preempts them at once;
   * the copy then gets only the smallest share the scheduler has (SCHED_IDLE's weight, a third of
   * nice 19's) of a core another process keeps busy. See "In a service"
   * in the README for what each costs and saves.
   */
  cpuPolicy?: CpuPolicy;
  /**
   * Binds each native copy thread to its own CPU (of those the process may use). 'auto'
   * (default): only where the kernel cannot place woken threads on idle CPUs itself, that is
   * where sysfs reports no last-level cache shared by the process's CPUs (a Firecracker guest
   * reports none): there a batch's copy threads often woke on one core and copied at one thread's
   * speed. 'on': always; 'off': never (the scheduler places them). stats().cpuPins shows the result.
   */
  cpuPinning?: CpuPinning;
  /** Deadline for one work on a device before the CPU finishes it, in ms (scaled up with work size): more than 0, at most 3,600,000. */
  timeoutMs?: number;
  /**
   * Device backends: after a deadline or a device error, how long the queue's in-band Drain may
   * take, in ms, before the queue counts as wedged (its batches reject with
   * ERR_DMACOPY_DEVICE_WEDGED, the queue is quarantined). Also bounds close(). Default 1000.
   */
  drainTimeoutMs?: number;
  /**
   * Batches smaller than this are copied inline on the calling thread (no thread hop). Default:
   * tuned from measurements on the CPU backend, between 16 KiB and 1 MiB (an event-loop budget),
   * starting at 256 KiB; device backends keep 256 KiB.
   */
  minOffloadBytes?: number;
  /** Batches at least this large use non-temporal (cache-bypassing) stores on the CPU path. */
  nonTemporalMinBytes?: number;
  /** Backend 'emulated': the software DSA device's shape and injected faults. */
  emulator?: EmulatorOptions;
  /** DSA backends: set the cache-control flag (destination writes allocate in the LLC) where the device supports it. Default false. */
  cacheControl?: boolean;
  /** Backend 'dsa': how descriptors reach the device. 'auto' maps the portal when allowed (CAP_SYS_RAWIO), else write(). */
  submission?: 'auto' | 'portal' | 'write';
  /** Backend 'dsa': prefer queues of devices on this NUMA node (default: the calling CPU's node). */
  numaNode?: number;
  /** Backend 'dsa': use the usable queues of every NUMA node, not only the preferred node's. Default false. */
  spread?: boolean;
  /**
   * Device backends: the fraction of each large batch copied by the CPU threads beside the device
   * (DTO's split), 0 to 0.9, or 'auto' to size it from measured rates so both finish together
   * (starting at 0.1 until the CPU side has been timed).
   * Default 'auto' for 'dsa', 0 for 'emulated' (the software device already uses these cores).
   */
  cpuShare?: number | 'auto';
}

/**
 * Probabilities (0..1) per descriptor of each fault the software device injects, and
 * `realPageFaults`: page faults from real memory state instead of dice.
 */
export interface EmulatorFaults {
  /** Partial completion with DSA_COMP_PAGE_FAULT_NOBOF. */
  pageFault?: number;
  /** Of the page faults, the share reported as a backward copy (result = 1). */
  backward?: number;
  /** A hardware error status. */
  error?: number;
  /** Completes only after hangMs; with hangMs 0, never (a wedged device: nothing aborts it). */
  hang?: number;
  /** How long a hung descriptor takes, in ms; 0 (the default): forever. */
  hangMs?: number;
  /** The data is copied but the completion record is never written (a fault on it, DSA 1.0): a software error instead. */
  lostRecord?: number;
  /** Completes only after lateMs. */
  late?: number;
  lateMs?: number;
  /** Shared queue: a spurious Retry at submission. */
  retry?: number;
  /** The queue gets disabled when this descriptor runs. */
  disable?: number;
  /**
   * Fault where memory really is not resident (mincore): a memmove stops at the first source or
   * destination page that is not present, like the hardware with block-on-fault off, and the
   * engine's touch makes it present before continuing. Default false.
   */
  realPageFaults?: boolean;
}

export interface EmulatorOptions {
  /**
   * The emulated device's name. Engines given the same name share its device-wide software-error
   * latch, as clients of one real device do. Default: a name of this engine's own.
   */
  device?: string;
  /** Software queues (channels). Default: options.channels, else 2. */
  queues?: number;
  /** Engine threads per queue. Default 2. */
  engines?: number;
  /** Descriptors a queue holds. Default 128. */
  wqSize?: number;
  mode?: 'dedicated' | 'shared';
  maxTransferSize?: number;
  /** Seeds every latency, jitter and fault decision, so a failing order replays. */
  seed?: number;
  latencyUs?: number;
  jitterUs?: number;
  faults?: EmulatorFaults;
}

/** What engine.close() found. */
export interface CloseReport {
  /**
   * DSA queues whose Drain did not complete within drainTimeoutMs: the device may still write
   * what they held (those batches rejected with ERR_DMACOPY_DEVICE_WEDGED). Empty normally.
   */
  wedgedQueues: string[];
}

export interface CopyOptions {
  /** Region form only: split one large dst/src pair into folios of this many bytes. */
  folioSize?: number;
}

export interface FallbackCounts {
  /** Descriptors finished by the CPU because their work passed its deadline. */
  timeout: number;
  /** Descriptors finished by the CPU after a device error status. */
  error: number;
  /** Descriptors whose remainder the CPU finished after repeated page faults. */
  pageFault: number;
  /** Descriptors the device refused at submission (queue full past the retry bound, disabled). */
  submit: number;
}

export interface CopyReport {
  backend: ResolvedBackend;
  /** Bytes copied (the sum of the source lengths). */
  bytes: number;
  folios: number;
  /** Descriptors (device) or regions (CPU) the batch was cut into. */
  descriptors: number;
  /** Works the batch was split into, one per channel used. */
  channels: number;
  offloadedBytes: number;
  cpuBytes: number;
  fallbacks: FallbackCounts;
  /** Completions observed before an earlier-submitted descriptor of the same queue. */
  outOfOrder: number;
  /**
   * Wall time of the batch in ns. It may be 0 for a batch of at most 64 KiB copied on the
   * calling thread while nothing observes batches: two clock reads (~50 ns each on a VM) cost as
   * much as copying 4 KiB, so such batches are timed only when the inline/threads policy takes a
   * sample (from 16 KiB up). enableMetrics() or any dmacopy:batch diagnostics_channel subscriber
   * times every batch.
   */
  elapsedNs: number;
}

export interface EngineStats {
  backend: ResolvedBackend;
  channels: number;
  cpuThreads: number;
  /** The nice value the copy threads were given (native.cpuNiceFailures counts threads where it failed). */
  cpuNice: number;
  /** The scheduling policy of the copy threads ('idle': SCHED_IDLE; cpuNice does not apply then). */
  cpuPolicy: CpuPolicy;
  /** The CPU each copy thread is bound to (cpuPinning), -1 where binding failed; [] when they are not bound. */
  cpuPins: number[];
  batches: number;
  /** Batches copied inline on the calling thread (below minOffloadBytes). */
  inlineBatches: number;
  bytes: number;
  folios: number;
  descriptors: number;
  offloadedBytes: number;
  cpuBytes: number;
  fallbacks: FallbackCounts;
  outOfOrder: number;
  /** Batches accepted but not yet finished. */
  inFlight: number;
  /** Prepared batches (engine.prepare) whose native plan is held: neither released nor garbage-collected. */
  prepared: number;
  /** True when the native addon is not available and copies run in JavaScript. */
  jsFallback: boolean;
  /** The inline threshold in force now (tuned from measurements unless minOffloadBytes was given). */
  minOffloadBytes: number;
  nonTemporalMinBytes: number;
  /** What the path policy measured and decided. */
  policy: PolicyStats;
  /** Backend 'auto': why it chose the backend it chose. */
  autoReason?: string;
  /** Native counters: CPU jobs, and per DSA channel submissions, completions, drains, quarantines. */
  native?: NativeStats;
  /** Backend 'dsa': how each queue opened (submission path, instruction, or why not). */
  queues?: { name: string; ok: boolean; reason: string; remedy: string; path: string; instruction: string }[];
}

/** What the path policy measured and decided (engine.stats().policy). */
export interface PolicyStats {
  /** Batches below this many bytes are copied inline on the calling thread. */
  inlineMaxBytes: number;
  /** 'fixed' when minOffloadBytes was given, else 'measured' once tuned ('default' before). */
  inlineSource: 'fixed' | 'default' | 'measured';
  /** Measured rates in GB/s (0 until measured). */
  inlineGBps: number;
  threadedGBps: number;
  deviceGBps: number;
  /** Measured cost of handing a batch to the threads and hearing back, in ns. */
  hopNs: number;
  /** Fraction of each large device batch copied by the CPU threads beside the device. */
  cpuShare: number;
  cpuShareSource: 'off' | 'fixed' | 'measured' | 'default';
}

/** engine.stats().native: counters of the native layer (CPU jobs, and per DSA channel submissions, completions, drains, quarantines). */
export interface NativeStats {
  cpuJobs: number;
  cpuRegions: number;
  cpuBytes: number;
  /** Copy-kernel calls of whole-work jobs: adjacent regions merged into one run take one. */
  cpuCopies: number;
  cpuThreads: number;
  cpuNice: number;
  cpuIdle: boolean;
  /** Copy threads whose nice value (or SCHED_IDLE) could not be set, and the errno of the last failure. */
  cpuNiceFailures: number;
  cpuNiceErrno: number;
  /** The CPU each copy thread is bound to (-1: binding failed); [] when unbound. */
  cpuPins: number[];
  cpuPinFailures: number;
  inFlightJobs: number;
  /** Prepared plans neither released nor collected. */
  preparedPlans: number;
  dsa?: Record<string, unknown> & { channels: Record<string, unknown>[] };
}
