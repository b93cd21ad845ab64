// runSelftest(): dmatest-style verification of dmacopy's own copy paths. Random batches (folio
// counts, sizes, source offsets and alignments, list and region forms, async and sync calls) are
// copied into destinations surrounded by guard bytes; every batch is then checked the way the
// kernel's dmatest checks a transfer: every source byte landed, no guard byte changed, the source
// is unchanged. Everything random comes from one seed (also handed to the software device), so a
// failure replays with the same --seed.

import { EMULATOR_FAULT_KEYS } from '../engine/backends';
import { openEngine } from '../engine/engine';
import { checkIntInRange, checkNonNegative, describe } from '../engine/validate';
import { addFallbacks, zeroFallbacks } from '../engine/work';
import { invalidArg } from '../errors';
import type { Backend, CopyReport, EmulatorFaults, EmulatorOptions, FallbackCounts, ResolvedBackend } from '../types';
import { prng } from './prng';

export interface SelftestOptions {
  /** Default 'auto'. */
  backend?: Backend;
  /** Batches to copy. Default 100. */
  batches?: number;
  /** Seed of every random choice (and of the software device). Default: random, reported. */
  seed?: number;
  /** Backend 'emulated': faults the software device injects. */
  faults?: EmulatorFaults;
  /** Backend 'emulated': other software device settings (seed and faults come from the fields above). */
  emulator?: Omit<EmulatorOptions, 'seed' | 'faults'>;
  /** Most folios in one batch. Default 48. */
  maxFolios?: number;
  /** Largest folio in bytes. Default 256 KiB. */
  maxFolioBytes?: number;
  /** Engine deadline per work before the CPU takes over, ms (faults such as `hang` wait this long). */
  timeoutMs?: number;
  /** Engine channels. Default: the backend's default. */
  channels?: number;
  /** @internal test seam: runs after each copy, before verification (a test corrupts bytes here). */
  tamper?: (batch: number, dstArena: Buffer, srcArena: Buffer) => void;
  /** Called after each batch (progress). */
  onBatch?: (done: number, total: number) => void;
}

export interface SelftestFailure {
  batch: number;
  folio: number;
  kind: 'destination' | 'guard-before' | 'guard-after' | 'source' | 'error';
  /** Offset of the first differing byte within the folio (or guard); -1 for errors. */
  offset: number;
  /** Differing bytes in this folio (or guard). */
  bytes: number;
  length: number;
  message?: string;
}

export interface SelftestResult {
  ok: boolean;
  seed: number;
  requestedBackend: Backend;
  backend: ResolvedBackend | null;
  batches: number;
  syncBatches: number;
  regionBatches: number;
  folios: number;
  bytes: number;
  descriptors: number;
  offloadedBytes: number;
  cpuBytes: number;
  outOfOrder: number;
  /** Bytes that differ, by where. */
  mismatches: { destination: number; guard: number; source: number };
  /** Batches that rejected or threw. */
  errors: number;
  fallbacks: FallbackCounts;
  /** The first failures (at most 20), for the report. */
  failures: SelftestFailure[];
  elapsedMs: number;
  /** Command line that replays this run. */
  replay: string;
}

const GUARD = 64;
const MAX_FAILURES = 20;
const FAULT_KEYS = EMULATOR_FAULT_KEYS;

/** Parses `pageFault=0.05,error=0.01,lateMs=5,realPageFaults=1` into emulator faults. */
export function parseFaults(text: string): EmulatorFaults {
  const out: Record<string, number | boolean> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)) {
    const m = /^([A-Za-z]+)=([0-9.eE+-]+)$/.exec(part);
    if (!m)
      throw invalidArg('--faults', `--faults takes name=value pairs separated by commas (e.g. pageFault=0.05,error=0.01), got '${part}'`);
    const key = m[1] as string;
    if (!(FAULT_KEYS as readonly string[]).includes(key))
      throw invalidArg('--faults', `unknown fault '${key}': expected one of ${FAULT_KEYS.join(', ')}`);
    const v = Number(m[2]);
    if (!Number.isFinite(v)) throw invalidArg('--faults', `--faults ${key} must be a number, got '${m[2]}'`);
    if (key === 'realPageFaults') {
      if (v !== 0 && v !== 1) throw invalidArg('--faults', `--faults realPageFaults is 1 (on) or 0 (off), got '${m[2]}'`);
      out[key] = v === 1;
    } else out[key] = v;
  }
  return out as EmulatorFaults;
}

export function formatFaults(f: EmulatorFaults | undefined): string {
  if (!f) return '';
  return Object.entries(f)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'boolean' ? Number(v) : v}`) // booleans as parseFaults reads them
    .join(',');
}

interface Folio {
  /** Offset of the destination in the destination arena (guard bytes before and after). */
  dstOff: number;
  srcOff: number;
  len: number;
}

function pick<T>(rnd: () => number, items: readonly T[]): T {
  return items[Math.floor(rnd() * items.length)] as T;
}

function int(rnd: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rnd() * (hi - lo + 1));
}

/** A folio length: mostly small and page-sized, sometimes odd, sometimes large. */
function folioLength(rnd: () => number, max: number): number {
  const r = rnd();
  let n: number;
  if (r < 0.15) n = int(rnd, 1, 64);
  else if (r < 0.35) n = int(rnd, 65, 4095);
  else if (r < 0.6) n = 4096 * int(rnd, 1, 4);
  else if (r < 0.75) n = 4096 * int(rnd, 1, 16) + pick(rnd, [-1, 1, 7, 63, 64]);
  else if (r < 0.9) n = int(rnd, 4096, Math.max(4096, max));
  else n = max;
  return Math.max(1, Math.min(max, n));
}

/** An offset inside a slot, with the alignment dmatest varies: 0, odd, 8, 64, page. */
function alignedPad(rnd: () => number): number {
  return pick(rnd, [0, 0, 1, 3, 7, 8, 24, 63, 64, 128, 4096 - 64, 4096]);
}

function guardByte(i: number): number {
  return (0xa5 ^ (i * 31)) & 0xff;
}

function fillRandom(buf: Buffer, rnd: () => number): void {
  let i = 0;
  for (; i + 4 <= buf.length; i += 4) buf.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
  for (; i < buf.length; i++) buf[i] = (rnd() * 256) & 0xff;
}

function countDiff(a: Uint8Array, b: Uint8Array): { first: number; count: number } {
  let first = -1;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  return { first, count };
}

function validate(
  options: SelftestOptions,
): Required<Pick<SelftestOptions, 'backend' | 'batches' | 'seed' | 'maxFolios' | 'maxFolioBytes'>> {
  if (options === null || typeof options !== 'object')
    throw invalidArg('options', `selftest options must be an object, got ${describe(options)}`);
  const backend = options.backend ?? 'auto';
  if (!['auto', 'cpu', 'emulated', 'dsa'].includes(backend))
    throw invalidArg('backend', `backend must be auto, cpu, emulated or dsa, got ${describe(backend)}`);
  if ((options.faults !== undefined || options.emulator !== undefined) && backend !== 'emulated') {
    throw invalidArg('faults', "faults and emulator settings apply to backend 'emulated' only");
  }
  const batches = options.batches === undefined ? 100 : checkIntInRange(options.batches, 'batches', 1, 10_000_000);
  const seed = options.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : checkNonNegative(options.seed, 'seed');
  if (!Number.isSafeInteger(seed)) throw invalidArg('seed', 'seed must be a non-negative integer');
  const maxFolios = options.maxFolios === undefined ? 48 : checkIntInRange(options.maxFolios, 'maxFolios', 1, 100_000);
  const maxFolioBytes =
    options.maxFolioBytes === undefined ? 256 * 1024 : checkIntInRange(options.maxFolioBytes, 'maxFolioBytes', 1, 64 * 1024 * 1024);
  return { backend, batches, seed, maxFolios, maxFolioBytes };
}

/** Runs the selftest. Resolves with the counts; `ok` is false on any mismatch or failed batch. */
export async function runSelftest(options: SelftestOptions = {}): Promise<SelftestResult> {
  const o = validate(options);
  const rnd = prng(o.seed);
  const engine = await openEngine({
    backend: o.backend,
    // Every batch goes to the backend under test, however small (no inline copies on the caller).
    minOffloadBytes: 0,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.channels !== undefined ? { channels: options.channels } : {}),
    ...(o.backend === 'emulated' ? { emulator: { ...options.emulator, seed: o.seed, faults: options.faults ?? {} } } : {}),
  });
  const result: SelftestResult = {
    ok: true,
    seed: o.seed,
    requestedBackend: o.backend,
    backend: engine.backend,
    batches: 0,
    syncBatches: 0,
    regionBatches: 0,
    folios: 0,
    bytes: 0,
    descriptors: 0,
    offloadedBytes: 0,
    cpuBytes: 0,
    outOfOrder: 0,
    mismatches: { destination: 0, guard: 0, source: 0 },
    errors: 0,
    fallbacks: zeroFallbacks(),
    failures: [],
    elapsedMs: 0,
    replay: replayCommand(o, options),
  };
  const fail = (f: SelftestFailure): void => {
    result.ok = false;
    if (result.failures.length < MAX_FAILURES) result.failures.push(f);
  };
  const started = Date.now();
  try {
    for (let b = 0; b < o.batches; b++) {
      const region = rnd() < 0.2;
      const sync = rnd() < 0.25;
      let folios: Folio[];
      let dstSize: number;
      let srcSize: number;
      let folioSize = 0;
      if (region) {
        // One destination region, one source region, cut into equal folios (the last may be short).
        folioSize = folioLength(rnd, Math.min(o.maxFolioBytes, 64 * 1024));
        const n = int(rnd, 1, o.maxFolios);
        const total = folioSize * (n - 1) + int(rnd, 1, folioSize);
        const dstOff = GUARD + alignedPad(rnd);
        const srcOff = alignedPad(rnd);
        folios = [{ dstOff, srcOff, len: total }];
        dstSize = dstOff + total + GUARD;
        srcSize = srcOff + total + alignedPad(rnd);
      } else {
        const n = int(rnd, 1, o.maxFolios);
        folios = [];
        let d = 0;
        let s = 0;
        for (let i = 0; i < n; i++) {
          const len = folioLength(rnd, o.maxFolioBytes);
          d += GUARD + alignedPad(rnd);
          s += alignedPad(rnd);
          folios.push({ dstOff: d, srcOff: s, len });
          d += len;
          s += len;
        }
        dstSize = d + GUARD;
        srcSize = s;
        // Shuffle the order, so folio i's destination is not always after folio i-1's.
        for (let i = folios.length - 1; i > 0; i--) {
          const j = Math.floor(rnd() * (i + 1));
          [folios[i], folios[j]] = [folios[j] as Folio, folios[i] as Folio];
        }
      }
      const src = Buffer.alloc(srcSize);
      fillRandom(src, rnd);
      const srcBefore = Buffer.from(src);
      const dst = Buffer.alloc(dstSize);
      for (let i = 0; i < dst.length; i++) dst[i] = guardByte(i);
      const dstBefore = Buffer.from(dst);
      const dsts = folios.map((f) => dst.subarray(f.dstOff, f.dstOff + f.len));
      const srcs = folios.map((f) => src.subarray(f.srcOff, f.srcOff + f.len));

      let report: CopyReport | undefined;
      try {
        if (region) {
          const d0 = dsts[0] as Buffer;
          const s0 = srcs[0] as Buffer;
          report = sync ? engine.copyBatchSync(d0, s0, { folioSize }) : await engine.copyBatch(d0, s0, { folioSize });
        } else {
          report = sync ? engine.copyBatchSync(dsts, srcs) : await engine.copyBatch(dsts, srcs);
        }
      } catch (err) {
        result.errors++;
        fail({
          batch: b,
          folio: -1,
          kind: 'error',
          offset: -1,
          bytes: 0,
          length: 0,
          message: `${(err as Error).message}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ''}`,
        });
      }
      result.batches++;
      if (sync) result.syncBatches++;
      if (region) result.regionBatches++;
      const folioCount = region ? Math.ceil((folios[0] as Folio).len / folioSize) : folios.length;
      result.folios += folioCount;
      if (report) {
        result.bytes += report.bytes;
        result.descriptors += report.descriptors;
        result.offloadedBytes += report.offloadedBytes;
        result.cpuBytes += report.cpuBytes;
        result.outOfOrder += report.outOfOrder;
        addFallbacks(result.fallbacks, report.fallbacks);
      }

      options.tamper?.(b, dst, src);
      // Verify: destinations, every guard byte between and around them, the source.
      const sorted = [...folios].sort((a, z) => a.dstOff - z.dstOff);
      let cursor = 0;
      sorted.forEach((f, idx) => {
        const folio = folios.indexOf(f);
        const gap = countDiff(dst.subarray(cursor, f.dstOff), dstBefore.subarray(cursor, f.dstOff));
        if (gap.count > 0) {
          result.mismatches.guard += gap.count;
          fail({ batch: b, folio, kind: 'guard-before', offset: gap.first - (f.dstOff - cursor), bytes: gap.count, length: f.len });
        }
        const body = countDiff(dst.subarray(f.dstOff, f.dstOff + f.len), srcBefore.subarray(f.srcOff, f.srcOff + f.len));
        if (body.count > 0) {
          result.mismatches.destination += body.count;
          fail({ batch: b, folio, kind: 'destination', offset: body.first, bytes: body.count, length: f.len });
        }
        cursor = f.dstOff + f.len;
        if (idx === sorted.length - 1) {
          const tail = countDiff(dst.subarray(cursor), dstBefore.subarray(cursor));
          if (tail.count > 0) {
            result.mismatches.guard += tail.count;
            fail({ batch: b, folio, kind: 'guard-after', offset: tail.first, bytes: tail.count, length: f.len });
          }
        }
      });
      const srcDiff = countDiff(src, srcBefore);
      if (srcDiff.count > 0) {
        result.mismatches.source += srcDiff.count;
        fail({ batch: b, folio: -1, kind: 'source', offset: srcDiff.first, bytes: srcDiff.count, length: src.length });
      }
      options.onBatch?.(b + 1, o.batches);
    }
  } finally {
    await engine.close();
  }
  result.elapsedMs = Date.now() - started;
  return result;
}

function replayCommand(
  o: { backend: Backend; batches: number; seed: number; maxFolios: number; maxFolioBytes: number },
  options: SelftestOptions,
): string {
  const parts = ['dmacopy selftest', `--backend ${o.backend}`, `--batches ${o.batches}`, `--seed ${o.seed}`];
  if (o.maxFolios !== 48) parts.push(`--max-folios ${o.maxFolios}`);
  if (o.maxFolioBytes !== 256 * 1024) parts.push(`--max-folio-bytes ${o.maxFolioBytes}`);
  if (options.timeoutMs !== undefined) parts.push(`--timeout-ms ${options.timeoutMs}`);
  if (options.channels !== undefined) parts.push(`--channels ${options.channels}`);
  const f = formatFaults(options.faults);
  if (f) parts.push(`--faults ${f}`);
  return parts.join(' ');
}

/** Plain-text report. */
export function formatSelftest(r: SelftestResult): string {
  const lines = [
    `backend      ${r.backend ?? '?'}${r.requestedBackend !== r.backend ? ` (requested ${r.requestedBackend})` : ''}`,
    `seed         ${r.seed}`,
    `batches      ${r.batches} (${r.syncBatches} sync, ${r.regionBatches} region form)`,
    `folios       ${r.folios}`,
    `bytes        ${r.bytes}`,
    `descriptors  ${r.descriptors}`,
    `offloaded    ${r.offloadedBytes} bytes (cpu ${r.cpuBytes})`,
    `fallbacks    timeout ${r.fallbacks.timeout}, error ${r.fallbacks.error}, page fault ${r.fallbacks.pageFault}, submit ${r.fallbacks.submit}`,
    `out of order ${r.outOfOrder}`,
    `mismatches   ${r.mismatches.destination} destination bytes, ${r.mismatches.guard} guard bytes, ${r.mismatches.source} source bytes`,
    `errors       ${r.errors} batch${r.errors === 1 ? '' : 'es'}`,
    `elapsed      ${r.elapsedMs} ms`,
  ];
  for (const f of r.failures) {
    lines.push(
      f.kind === 'error'
        ? `FAIL batch ${f.batch}: ${f.message}`
        : `FAIL batch ${f.batch} folio ${f.folio}: ${f.kind} differs in ${f.bytes} byte${f.bytes === 1 ? '' : 's'} (first at offset ${f.offset}, folio length ${f.length})`,
    );
  }
  lines.push(`result       ${r.ok ? 'PASS' : 'FAIL'}`);
  lines.push(`replay       ${r.replay}`);
  return `${lines.join('\n')}\n`;
}
