// `dmacopy bench` as a library (lib/bench): a tiny run over every path, detection of a broken
// path, the bound (best of memcpy and streaming stores on 1..N threads) and x bound, the targets
// evaluator, the sweep plan and the SVG chart (rendered to PNG by rsvg-convert). Nothing here
// depends on timing: every figure a test checks is synthetic, or only checked for shape.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type BoundFigure, selectBound } from '../../lib/cli/bench/bound';
import type { Cell } from '../../lib/cli/bench/cells';
import { PER_FOLIO_PROBE, planCells, sweepConfig } from '../../lib/cli/bench/cells';
import { LATENCY_CALLS, type Row } from '../../lib/cli/bench/measure';
import { type BenchPath, bufferCopyPath, PREPARED_PATH } from '../../lib/cli/bench/paths';
import { fillRatios, perRepRatio, planTasks, runBench } from '../../lib/cli/bench/run';
import { chartPanels, renderSvg, seriesColor } from '../../lib/cli/bench/svg';
import { formatBounds, formatReport, formatRows, formatTargets } from '../../lib/cli/bench/table';
import { evaluateTargets } from '../../lib/cli/bench/targets';

const KiB = 1024;
const MiB = 1024 * 1024;
const TINY = { reps: 2, warmup: 1, latencyWarmup: 2, latencyMinIters: 5, latencyBudgetMs: 1, latencyMaxIters: 20 };

const cells: Cell[] = [
  { folioSize: 4 * KiB, folios: 2, bytes: 8 * KiB, form: 'region', kind: 'latency' },
  { folioSize: 4 * KiB, folios: 2, bytes: 8 * KiB, form: 'list', kind: 'latency' },
  { folioSize: 64 * KiB, folios: 8, bytes: 512 * KiB, form: 'region', kind: 'throughput' },
  { folioSize: 64 * KiB, folios: 8, bytes: 512 * KiB, form: 'list', kind: 'throughput' },
];

/** Checks that a document is well-formed XML as far as tags go: every element closed in order. */
function wellFormed(xml: string): boolean {
  const body = xml.replace(/^<\?xml[^>]*\?>\s*/, '');
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:amp|lt|gt|quot|apos);)/g;
  let roots = 0;
  for (let m = re.exec(body); m !== null; m = re.exec(body)) {
    if (m[2] === undefined) return false; // a stray '<' or an unescaped '&'
    if (m[1] === '/') {
      if (stack.pop() !== m[2]) return false;
    } else if (m[4] !== '/') {
      if (stack.length === 0) roots++;
      stack.push(m[2]);
    } else if (stack.length === 0) roots++;
  }
  return stack.length === 0 && roots === 1;
}

function row(p: Partial<Row>): Row {
  return {
    folioSize: 4 * KiB,
    folios: 65536,
    bytes: 256 * MiB,
    form: 'region',
    kind: 'throughput',
    path: 'auto',
    pathKind: 'engine',
    mode: 'await',
    threads: 2,
    iterations: 3,
    wallMs: 1,
    medianNs: 1e7,
    p50Ns: 1e7,
    p99Ns: 1e7,
    minNs: 1e7,
    gbps: 26.8,
    cpuNsPerGiB: 1e8,
    vsBufferCopy: null,
    xBound: null,
    verified: true,
    mismatches: 0,
    ...p,
  };
}

describe('bench', () => {
  it('measures one small cell per path and reports a complete, verified, JSON-able report', async () => {
    const r = await runBench({ cells, memory: false, settings: TINY });
    expect(r.ok).toBe(true);
    expect(r.failures).toEqual([]);
    const names = new Set(r.rows.map((x) => x.path));
    for (const p of ['Buffer.copy', 'TypedArray.set', 'cpu x1', 'emulated', 'auto', PREPARED_PATH, 'memcpy x1', 'streaming x1'])
      expect(names.has(p)).toBe(true);
    for (const x of r.rows) {
      expect(x.verified).toBe(true);
      expect(x.iterations).toBeGreaterThan(0);
      expect(x.gbps).toBeGreaterThan(0);
      expect(Number.isFinite(x.cpuNsPerGiB)).toBe(x.kind === 'throughput'); // not timed per small batch
      expect(x.vsBufferCopy).toBeGreaterThan(0);
      expect(x.xBound).toBeGreaterThan(0);
      if (x.kind === 'latency') {
        // Its own time, the harness's cost taken off (measureHarnessNs), against the bound.
        expect(r.harnessNs).toBeGreaterThan(0);
        const own = x.pathKind === 'bound' ? x.medianNs : x.medianNs - r.harnessNs; // the bound times itself
        expect(x.xBound).toBeCloseTo(x.bytes / own / (x.boundGbps as number), 9);
        expect(x.xBoundMethod).toBe('medians');
        expect(x.samplesNs).toBeUndefined();
      } else {
        // Throughput rows: the median of the per-repetition ratios to the bound row's same round.
        expect(x.samplesNs).toHaveLength(TINY.reps);
        expect(x.xBoundMethod).toBe('per-rep');
        const b = r.rows.find((y) => y.path === x.boundPath && y.folioSize === x.folioSize && y.folios === x.folios) as Row;
        const ratios = (x.samplesNs as number[]).map((ns, i) => ((b.samplesNs as number[])[i] as number) / ns).sort((p, q) => p - q);
        expect(x.xBound).toBeCloseTo(((ratios[0] as number) + (ratios[1] as number)) / 2, 9); // median of 2
      }
      if (x.kind === 'latency') expect(x.p99Ns).toBeGreaterThanOrEqual(x.p50Ns);
    }
    // Engines are measured with await and with copyBatchSync on the small cells; the bound once per cell.
    expect(r.rows.some((x) => x.path === 'auto' && x.mode === 'sync' && x.kind === 'latency')).toBe(true);
    expect(r.rows.filter((x) => x.path === 'memcpy x1' && x.folios === 2)).toHaveLength(1);
    expect(r.rows.find((x) => x.path === 'Buffer.copy' && x.form === 'list')?.vsBufferCopy).toBe(1);
    expect(r.host.cores).toBeGreaterThan(0);
    expect(typeof r.host.cpuModel).toBe('string');
    expect(Array.isArray(r.host.dsaDevices)).toBe(true);
    expect(r.host.dmacopyVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(r.targets.length).toBeGreaterThanOrEqual(10);
    // The bound: per cell, both kinds on every thread count 1..N, and the fastest chosen.
    const n = Math.max(...r.rows.filter((x) => x.pathKind !== 'bound').map((x) => x.threads));
    expect(r.bounds).toHaveLength(2); // the two cells (folio size, batch); forms share the bound
    for (const c of r.bounds) {
      const want = ['memcpy', 'streaming'].flatMap((k) => Array.from({ length: n }, (_, i) => `${k} x${i + 1}`));
      expect(c.figures.map((f) => f.path)).toEqual(want);
      expect(c.bound?.gbps).toBe(Math.max(...c.figures.map((f) => f.gbps)));
    }
    const back = JSON.parse(JSON.stringify(r));
    expect(back.version).toBe(2);
    expect(back.rows.length).toBe(r.rows.length);
    expect(back.bounds[0].figures[0]).toEqual({
      kind: 'memcpy',
      threads: 1,
      path: 'memcpy x1',
      gbps: expect.any(Number),
      medianNs: expect.any(Number),
      verified: true,
    });
    expect(Object.keys(back.bounds[0].bound).sort()).toEqual(['gbps', 'kind', 'medianNs', 'path', 'threads', 'verified']);
    for (const x of back.rows) expect(typeof x.xBound).toBe('number');
    const text = formatReport(r);
    expect(text).toContain('targets');
    expect(text).toContain('streaming x1 GB/s');
    expect(text).toContain('x bound');
  });

  it('flags a path whose copies are wrong, and one that throws, without stopping the run', async () => {
    const broken: BenchPath = {
      name: 'broken',
      kind: 'engine',
      threads: 1,
      modes: ['await'],
      async run(b) {
        b.src.copy(b.dst, 0, 0, b.src.length - 1); // the last byte never arrives
      },
    };
    const throwing: BenchPath = {
      name: 'throws',
      kind: 'engine',
      threads: 1,
      modes: ['sync'],
      run: () => {
        throw new Error('device on fire');
      },
    };
    const r = await runBench({ cells, paths: [bufferCopyPath()], extraPaths: [broken, throwing], memory: false, settings: TINY });
    expect(r.ok).toBe(false);
    const bad = r.rows.filter((x) => x.path === 'broken');
    expect(bad).toHaveLength(cells.length);
    for (const x of bad) {
      expect(x.verified).toBe(false);
      expect(x.mismatches).toBeGreaterThan(0);
      expect(x.firstBadOffset).toBe(x.bytes - 1);
    }
    expect(r.rows.find((x) => x.path === 'throws')?.error).toBe('device on fire');
    expect(r.rows.filter((x) => x.path === 'Buffer.copy').every((x) => x.verified)).toBe(true);
    expect(r.failures.some((f) => f.startsWith('broken'))).toBe(true);
    expect(formatReport(r)).toContain('VERIFICATION FAILURES');
  });

  /** A stub path that copies for real (so verification passes) and reports a fixed time per call, logging each call. */
  function stub(name: string, times: number[], log: string[], extra: Partial<BenchPath> = {}, opts: { throwAt?: number } = {}): BenchPath {
    let call = 0;
    return {
      name,
      kind: 'engine',
      threads: 1,
      modes: ['await'],
      ...extra,
      run(b) {
        const zeroed = b.dst[0] === 0 && b.dst[b.dst.length - 1] === 0;
        log.push(`${name}/${b.form}/${b.folios}${zeroed ? '' : ' NOT ZEROED'}`);
        const i = call++;
        if (opts.throwAt !== undefined && i >= opts.throwAt) throw new Error(`${name} gave up`);
        b.src.copy(b.dst);
        return times[i] ?? times[times.length - 1];
      },
    };
  }

  it('interleaves the repetitions of every path of a throughput cell (both forms) round by round, rotating the first; latency cells back to back', async () => {
    const log: string[] = [];
    const progress: [number, number][] = [];
    const tcells: Cell[] = [
      { folioSize: 4 * KiB, folios: 2, bytes: 8 * KiB, form: 'region', kind: 'latency' },
      { folioSize: 4 * KiB, folios: 16, bytes: 64 * KiB, form: 'region', kind: 'throughput' },
      { folioSize: 4 * KiB, folios: 16, bytes: 64 * KiB, form: 'list', kind: 'throughput' },
    ];
    const bound = stub('memcpy x1', [100], log, { kind: 'bound', modes: ['sync'], formIndependent: true, boundKind: 'memcpy' });
    const paths = [stub('A', [100], log), stub('B', [100], log), bound];
    const settings = { ...TINY, reps: 5, warmup: 1, latencyWarmup: 0, latencyMinIters: 3, latencyMaxIters: 3 };
    const r = await runBench({ cells: tcells, paths, memory: false, settings, onProgress: (d, t) => progress.push([d, t]) });
    expect(r.ok).toBe(true);
    // dst zeroed before every repetition (throughput), and before every latency sample, whose
    // LATENCY_CALLS calls then run back to back over the same bytes.
    expect(log.filter((l) => l.includes('/16')).every((l) => !l.includes('NOT ZEROED'))).toBe(true);
    const lat = log.filter((l) => l.includes('/2'));
    expect(lat.filter((_, i) => i % LATENCY_CALLS === 0).every((l) => !l.includes('NOT ZEROED'))).toBe(true);
    // Latency cell: each path's samples back to back (warmUp() runs latencyWarmup = 0 calls).
    expect(lat.map((l) => l.replace(' NOT ZEROED', ''))).toEqual([
      ...Array(3 * LATENCY_CALLS).fill('A/region/2'),
      ...Array(3 * LATENCY_CALLS).fill('B/region/2'),
      ...Array(3 * LATENCY_CALLS).fill('memcpy x1/region/2'),
    ]);
    // Throughput: tasks A/region, B/region, memcpy x1 (once per folio size and batch), A/list, B/list.
    const t = ['A/region/16', 'B/region/16', 'memcpy x1/region/16', 'A/list/16', 'B/list/16'];
    const rounds = [0, 1, 2, 3, 4].flatMap((k) => t.map((_, j) => t[(k + j) % t.length] as string));
    expect(log.filter((l) => l.endsWith('/16'))).toEqual([...t, ...rounds]); // warm-up of each, then 5 rotated rounds
    for (const x of r.rows.filter((y) => y.kind === 'throughput')) {
      expect(x.iterations).toBe(5);
      expect(x.samplesNs).toEqual([100, 100, 100, 100, 100]);
    }
    expect(r.rows.map((x) => `${x.path}/${x.form}/${x.folios}`)).toEqual(['A/region/2', 'B/region/2', 'memcpy x1/region/2', ...t]); // rows in task order
    // Progress: done never goes back, counts tasks, and ends at done === total.
    const total = progress[0]?.[1] as number;
    expect(total).toBe(8);
    expect(progress.every(([, tt]) => tt === total)).toBe(true);
    expect(progress.every(([d], i) => i === 0 || d >= (progress[i - 1] as [number, number])[0])).toBe(true);
    expect(progress[progress.length - 1]).toEqual([total, total]);
    expect(progress.filter(([d]) => d === total)).toHaveLength(1);
  });

  it('takes x bound of a throughput row as the median of per-repetition ratios to the bound in the same round, and falls back to the medians', async () => {
    const log: string[] = [];
    const tcell: Cell[] = [{ folioSize: 4 * KiB, folios: 16, bytes: 64 * KiB, form: 'region', kind: 'throughput' }];
    // The first value of each list is the warm-up repetition (not timed).
    const bound = stub('memcpy x1', [999, 100, 200, 400], log, {
      kind: 'bound',
      modes: ['sync'],
      formIndependent: true,
      boundKind: 'memcpy',
    });
    const a = stub('A', [999, 200, 100, 800], log); // ratios bound/A: 0.5, 2, 0.5 -> 0.5; medians: 200 / 200 = 1
    const same = stub('B', [999, 100, 200, 400], log); // in step with the bound: 1
    const quits = stub('C', [999, 300], log, {}, { throwAt: 2 }); // throws on its 2nd timed rep: 1 sample
    const settings = { ...TINY, reps: 3, warmup: 1 };
    const r = await runBench({ cells: tcell, paths: [a, same, quits, bound], memory: false, settings });
    const get = (p: string) => r.rows.find((x) => x.path === p) as Row;
    expect(get('A').samplesNs).toEqual([200, 100, 800]);
    expect(get('A').medianNs).toBe(200);
    expect(get('memcpy x1').medianNs).toBe(200);
    expect(get('A').gbps / (get('A').boundGbps as number)).toBeCloseTo(1, 9); // the ratio of medians...
    expect(get('A').xBound).toBeCloseTo(0.5, 9); // ...is not what x bound reports
    expect(get('A').xBoundMethod).toBe('per-rep');
    expect(get('A').boundPath).toBe('memcpy x1');
    expect(get('B').xBound).toBeCloseTo(1, 9);
    expect(get('memcpy x1').xBound).toBe(1);
    // C stopped after 1 sample (the others went on for all 3): the ratio of the medians instead.
    expect(get('C').error).toBe('C gave up');
    expect(get('C').samplesNs).toEqual([300]);
    expect(get('C').xBound).toBeCloseTo(200 / 300, 9);
    expect(get('C').xBoundMethod).toBe('medians');
    expect(get('B').iterations).toBe(3);
    expect(log.filter((l) => l.startsWith('C/'))).toHaveLength(3); // warm-up, rep 1, the throwing rep 2
    expect(formatReport(r)).toContain('x bound: median of per-rep ratios to the bound measured in the same round');
    // perRepRatio directly: lined-up samples give the median ratio, others null.
    expect(perRepRatio(get('A'), get('memcpy x1'))).toBeCloseTo(0.5, 9);
    expect(perRepRatio(get('C'), get('memcpy x1'))).toBeNull();
    expect(perRepRatio({ ...get('A'), kind: 'latency' }, get('memcpy x1'))).toBeNull();
  });

  it('evaluates the targets against the bound: met, not met, not measured, and failed verification never passes', () => {
    const rows: Row[] = [
      row({ form: 'region', mode: 'await', xBound: 0.95, boundPath: 'streaming x2', boundGbps: 20 }),
      row({ form: 'region', mode: 'sync', xBound: 0.85, boundPath: 'streaming x2', boundGbps: 20 }),
      row({ form: 'list', xBound: 0.81 }),
      row({ folioSize: 64 * KiB, folios: 4096, form: 'list', xBound: 0.95, verified: false, mismatches: 1 }),
      row({ folioSize: 2 * MiB, folios: 128, form: 'region', xBound: null }),
      row({
        folioSize: 4 * KiB,
        folios: 1,
        bytes: 4 * KiB,
        kind: 'latency',
        form: 'list',
        path: 'Buffer.copy',
        pathKind: 'baseline',
        mode: 'sync',
        p50Ns: 1000,
      }),
      row({ folioSize: 4 * KiB, folios: 1, bytes: 4 * KiB, kind: 'latency', form: 'list', mode: 'await', p50Ns: 1900 }),
      row({ folioSize: 4 * KiB, folios: 1, bytes: 4 * KiB, kind: 'latency', form: 'list', mode: 'sync', p50Ns: 1400 }),
    ];
    const memory = { bytes: 1024 * MiB, folioSize: 4096, region: 10 * MiB, list: 70 * MiB, verified: true, method: 'test' };
    const targets = evaluateTargets(rows, memory);
    const t = Object.fromEntries(targets.map((x) => [x.id, x]));
    expect(t['4k-region-await-vs-bound']?.pass).toBe(true);
    expect(t['4k-region-await-vs-bound']?.value).toBe(0.95);
    expect(t['4k-region-await-vs-bound']?.detail).toContain('streaming x2: 20.00 GB/s');
    expect(t['4k-region-sync-vs-bound']?.pass).toBe(false); // 0.85 < 0.9
    expect(t['4k-list-vs-bound']?.pass).toBe(true); // 0.81 >= 0.8
    expect(t['4k-list-vs-bound']?.threshold).toBe(0.8);
    expect(t['64k-list-vs-bound']?.pass).toBe(false); // 0.95, but its copies did not verify
    expect(t['2m-region-vs-bound']?.pass).toBeNull(); // measured, but no bound
    // Throughput targets only against the bound: none against Buffer.copy or memcpy alone.
    expect(targets.filter((x) => x.id.includes('vs-buffer'))).toEqual([]);
    expect(t['latency-1-await']?.pass).toBe(true);
    expect(t['latency-1-await']?.value).toBeCloseTo(1.9);
    expect(t['latency-1-sync']?.pass).toBe(false);
    expect(t['latency-8-await']?.pass).toBeNull();
    expect(t['memory-1g']?.pass).toBe(false);
    expect(t['memory-1g']?.value).toBeCloseTo(70);
    expect(evaluateTargets(rows, null).find((x) => x.id === 'memory-1g')?.pass).toBeNull();
    // The harness's own cost comes off both p50s: 1.9x raw is (1900 - 500) / (1000 - 500) = 2.8x,
    // not met. (A shared constant pulled every latency ratio toward 1.)
    const net = Object.fromEntries(evaluateTargets(rows, memory, 500).map((x) => [x.id, x]));
    expect(net['latency-1-await']?.value).toBeCloseTo(2.8);
    expect(net['latency-1-await']?.pass).toBe(false);
    expect(net['latency-1-await']?.detail).toContain('(1.90 - 0.50) us vs (1.00 - 0.50) us = 2.80x');
    const text = formatTargets(targets);
    expect(text).toMatch(/\[NOT MET\] 256 MiB of 4 KiB folios via auto, region form, copyBatchSync/);
    expect(text).toMatch(/\[MET {4}\] 256 MiB of 4 KiB folios via auto, region form, await copyBatch/);
  });

  it('evaluates the prepared-batch targets: bound, fixed cost and per-folio cost from the probe', () => {
    const prep = { path: PREPARED_PATH, boundGbps: 20, boundPath: 'streaming x2' };
    const one = { folioSize: 4 * KiB, folios: 1, bytes: 4 * KiB, kind: 'latency' as const };
    const rows: Row[] = [
      row({ ...prep, form: 'region', mode: 'await', xBound: 0.95 }),
      row({ ...prep, form: 'list', mode: 'await', xBound: 0.88 }),
      row({ ...prep, form: 'region', mode: 'sync', xBound: 0.93 }),
      row({ ...prep, form: 'list', mode: 'sync', xBound: 0.91 }),
      // 4096 bytes at 20 GB/s (bytes per ns) take 204.8 ns: the fixed cost is p50 minus that.
      ...(['region', 'list'] as const).flatMap((form) =>
        (['await', 'sync'] as const).map((mode) => row({ ...prep, ...one, form, mode, p50Ns: 204.8 + (mode === 'await' ? 1500 : 800) })),
      ),
      // The probe: 4 MiB at 20 GB/s = 209,715.2 ns; 1,000 us beyond it minus the 0.8 us fixed cost over 65,535 folios.
      row({ ...prep, folioSize: 64, folios: 65536, bytes: 4 * MiB, form: 'list', mode: 'sync', probe: true, p50Ns: 209715.2 + 1e6 }),
    ];
    const t = Object.fromEntries(evaluateTargets(rows).map((x) => [x.id, x]));
    expect(t['prepared-4k-await-vs-bound']?.value).toBe(0.88); // the worse form
    expect(t['prepared-4k-await-vs-bound']?.pass).toBe(false);
    expect(t['prepared-4k-sync-vs-bound']?.pass).toBe(true);
    expect(t['prepared-4k-sync-vs-bound']?.detail).toContain('copySync()');
    expect(t['prepared-fixed-cost']?.value).toBeCloseTo(1.5, 6);
    expect(t['prepared-fixed-cost']?.unit).toBe('us');
    expect(t['prepared-fixed-cost']?.pass).toBe(true);
    expect(t['prepared-per-folio']?.value).toBeCloseTo((1e6 - 800) / 65535, 6);
    expect(t['prepared-per-folio']?.pass).toBe(false); // 15.2 ns > 5 ns
    expect(evaluateTargets([]).find((x) => x.id === 'prepared-per-folio')?.pass).toBeNull();
    expect(formatTargets(evaluateTargets(rows))).toMatch(/\[MET {4}\] prepared re-run of 1 folio.*: 1\.50 us \(<= 2 us\)/);
  });

  it('plans the per-folio probe for the prepared path only, and leaves probe rows off the chart', () => {
    const cfg = sweepConfig({ quick: true });
    const probe = planCells(cfg, [PREPARED_PATH]).filter((c) => c.onlyPaths);
    expect(probe).toEqual([{ ...PER_FOLIO_PROBE, bytes: 4 * MiB, form: 'list', kind: 'throughput', onlyPaths: [PREPARED_PATH] }]);
    expect(planCells(cfg).some((c) => c.onlyPaths)).toBe(false);
    const paths = [bufferCopyPath(), { ...bufferCopyPath(), name: 'cpu x1', kind: 'engine' as const }];
    const tasks = planTasks(probe, paths, ['region', 'list']);
    expect(tasks.map((x) => x.path.name)).toEqual(['Buffer.copy']);
    const rows = chartRows();
    const probed = rows.map((r) => ({ ...r, probe: true }));
    expect(chartPanels(probed)).toEqual([]);
  });

  it('picks the bound as the fastest verified figure across copy kinds and thread counts', () => {
    const fig = (kind: BoundFigure['kind'], threads: number, gbps: number, verified = true): BoundFigure => ({
      kind,
      threads,
      path: `${kind} x${threads}`,
      gbps,
      medianNs: (256 * MiB) / gbps,
      verified,
    });
    const pick = (figs: BoundFigure[]) => selectBound(figs)?.path ?? null;
    expect(pick([fig('memcpy', 1, 11), fig('memcpy', 2, 14.5), fig('streaming', 1, 17), fig('streaming', 2, 20)])).toBe('streaming x2');
    // Any kind and thread count can win: e.g. 1-thread memcpy while the machine is busy.
    expect(pick([fig('memcpy', 1, 21), fig('memcpy', 2, 14.5), fig('streaming', 1, 17), fig('streaming', 2, 20)])).toBe('memcpy x1');
    expect(pick([fig('streaming', 1, 17), fig('streaming', 2, 99, false), fig('memcpy', 2, Number.NaN)])).toBe('streaming x1');
    expect(pick([fig('memcpy', 1, 5, false)])).toBeNull();
  });

  it('states every row as a fraction of its cell bound (x bound = GB/s over the bound), the same for both forms', () => {
    const bytes = 256 * MiB;
    const at = (gbps: number) => ({ gbps, medianNs: bytes / gbps });
    const bound = (kind: 'memcpy' | 'streaming', threads: number, gbps: number): Row =>
      row({ path: `${kind} x${threads}`, pathKind: 'bound', mode: 'sync', threads, boundKind: kind, ...at(gbps) });
    const other = { folioSize: 2 * MiB, folios: 32, bytes: 64 * MiB };
    const rows = [
      row({ path: 'Buffer.copy', pathKind: 'baseline', mode: 'sync', threads: 1, ...at(5) }),
      bound('memcpy', 1, 11),
      bound('memcpy', 2, 14.5),
      bound('streaming', 1, 17),
      bound('streaming', 2, 20),
      row({ path: 'auto', threads: 2, ...at(17) }),
      row({ path: 'cpu x1', threads: 1, form: 'list', ...at(10) }),
      // Another cell: its own bound.
      row({ ...other, path: 'memcpy x1', pathKind: 'bound', mode: 'sync', threads: 1, gbps: 8 }),
      row({ ...other, path: 'auto', gbps: 6 }),
    ];
    const bounds = fillRatios(rows);
    expect(bounds.map((c) => `${c.folioSize}:${c.bound?.path}`)).toEqual([`${4 * KiB}:streaming x2`, `${2 * MiB}:memcpy x1`]);
    expect(bounds[0]?.figures.map((f) => f.path)).toEqual(['memcpy x1', 'memcpy x2', 'streaming x1', 'streaming x2']);
    const get = (p: string, folio = 4 * KiB) => rows.find((x) => x.path === p && x.folioSize === folio) as Row;
    expect(get('auto').xBound).toBeCloseTo(17 / 20); // 1.17x memcpy alone: that hid the gap
    expect(get('auto').boundPath).toBe('streaming x2');
    expect(get('auto').boundGbps).toBe(20);
    expect(get('cpu x1').xBound).toBeCloseTo(0.5); // a 1-thread path against the machine's bound
    expect(get('streaming x2').xBound).toBe(1);
    expect(get('memcpy x1').xBound).toBeCloseTo(0.55);
    expect(get('auto').vsBufferCopy).toBeCloseTo(17 / 5);
    expect(get('auto', 2 * MiB).xBound).toBeCloseTo(0.75);
    // Targets read the fraction: 0.85 of the bound is not met, though 1.17x memcpy would have been.
    const t = evaluateTargets(rows).find((x) => x.id === '4k-region-await-vs-bound');
    expect(t?.value).toBeCloseTo(0.85);
    expect(t?.pass).toBe(false);
    // The tables: every figure, the chosen bound, and the x bound column.
    const table = formatBounds(bounds);
    expect(table).toMatch(/memcpy x1 GB\/s +memcpy x2 GB\/s +streaming x1 GB\/s +streaming x2 GB\/s +bound/);
    expect(table).toMatch(/256 MiB of 4 KiB +11\.00 +14\.50 +17\.00 +20\.00 +streaming x2 = 20\.00 GB\/s/);
    expect(table).toMatch(/64 MiB of 2 MiB +8\.00 +- +- +- +memcpy x1 = 8\.00 GB\/s/);
    const lines = formatRows(rows).split('\n');
    expect(lines[0]).toContain('x bound');
    expect(lines.find((l) => /\bauto\b/.test(l) && l.includes('256 MiB'))).toMatch(/ 0\.85 +ok$/);
  });

  it('latency rows: their ratios are taken without the harness cost both sides paid, throughput rows keep theirs', () => {
    const cell = { folioSize: 4 * KiB, folios: 1, bytes: 4 * KiB, kind: 'latency' as const, form: 'list' as const };
    const rows = [
      row({ ...cell, path: 'Buffer.copy', pathKind: 'baseline', mode: 'sync', medianNs: 100, p50Ns: 100, gbps: 4096 / 100 }),
      row({ ...cell, path: 'auto', mode: 'sync', medianNs: 170, p50Ns: 170, gbps: 4096 / 170 }),
      row({ ...cell, path: 'memcpy x1', pathKind: 'bound', mode: 'sync', medianNs: 40, p50Ns: 40, gbps: 4096 / 40 }),
    ];
    fillRatios(rows, 50);
    const auto = rows[1] as Row;
    expect(auto.vsBufferCopy).toBeCloseTo(50 / 120); // (100 - 50) / (170 - 50), not 100 / 170
    expect(auto.xBound).toBeCloseTo(4096 / 120 / (4096 / 40)); // its 120 ns of its own against the bound's 40
  });

  it('plans the quick sweep with the 256 MiB cells of 4 KiB folios in both forms', () => {
    const quick = planCells(sweepConfig({ quick: true }));
    for (const form of ['region', 'list'])
      expect(quick.some((c) => c.folioSize === 4 * KiB && c.bytes === 256 * MiB && c.form === form)).toBe(true);
    expect(quick.filter((c) => c.kind === 'latency').every((c) => c.folioSize === 4 * KiB && c.folios <= 64)).toBe(true);
    const full = planCells(sweepConfig({ folioSizes: [16 * KiB] }));
    expect(full.some((c) => c.folioSize === 16 * KiB)).toBe(true);
    expect(full.every((c) => c.bytes <= 256 * MiB)).toBe(true);
    expect(full.filter((c) => c.folioSize === 2 * MiB && c.kind === 'throughput').map((c) => c.folios)).toContain(128);
  });

  /** A fixed report's rows: 7 series and the bounds on 3 folio sizes, both forms, and small batches. */
  function chartRows(): Row[] {
    const rows: Row[] = [];
    const paths: [string, Row['pathKind'], Row['mode'], number][] = [
      ['Buffer.copy', 'baseline', 'sync', 1],
      ['TypedArray.set', 'baseline', 'sync', 1],
      ['cpu x1', 'engine', 'await', 1],
      ['cpu x2', 'engine', 'await', 2],
      ['emulated', 'engine', 'await', 2],
      ['auto', 'engine', 'await', 2],
      ['auto', 'engine', 'sync', 2],
    ];
    [4 * KiB, 64 * KiB, 2 * MiB].forEach((folioSize, fi) => {
      const cell = { folioSize, folios: (64 * MiB) / folioSize, bytes: 64 * MiB };
      for (const kind of ['memcpy', 'streaming'] as const)
        for (const threads of [1, 2]) {
          const gbps = 10 + threads * 3 + (kind === 'streaming' ? 5 : 0);
          rows.push(row({ ...cell, path: `${kind} x${threads}`, pathKind: 'bound', mode: 'sync', threads, gbps }));
        }
      for (const form of ['region', 'list'] as const)
        paths.forEach(([p, pathKind, mode, threads], i) => {
          rows.push(row({ ...cell, form, path: p, pathKind, mode, threads, gbps: 4 + i * 2 + fi - (form === 'list' ? 1 : 0) }));
          if (fi > 0) return;
          for (const n of [1, 8, 64]) {
            const small = { folioSize, folios: n, bytes: n * folioSize, kind: 'latency' as const };
            rows.push(row({ ...small, form, path: p, pathKind, mode, threads, p50Ns: 500 * n + i * 900 }));
          }
        });
    });
    fillRatios(rows);
    return rows;
  }

  it('charts one panel per form as a fraction of the bound (a line at 1), and small-batch latency; one colour per series, labelled on its line', () => {
    const rows = chartRows();
    const panels = chartPanels(rows);
    expect(panels.map((p) => `${p.kind}/${p.form}`)).toEqual(['throughput/region', 'throughput/list', 'latency/region', 'latency/list']);
    const region = panels[0];
    const labels = ['Buffer.copy', 'TypedArray.set', 'cpu x1', 'cpu x2', 'emulated', 'auto', 'auto (sync)'];
    expect(region?.series.map((s) => s.label)).toEqual(labels);
    // y is x bound: auto on 4 KiB region at 4 + 5 * 2 = 14 GB/s over streaming x2 = 21 GB/s.
    expect(region?.series.find((s) => s.label === 'auto')?.points[0]).toEqual({ x: 4 * KiB, y: 14 / 21 });
    expect(panels[2]?.series.find((s) => s.label === 'cpu x1')?.points).toEqual([
      { x: 1, y: 2.3 },
      { x: 8, y: 5.8 },
      { x: 64, y: 33.8 },
    ]);
    const svg = renderSvg(rows, 'dmacopy bench: "AMD" <2 cores> & Node');
    expect(wellFormed(svg)).toBe(true);
    expect(svg).toContain('&lt;2 cores&gt; &amp; Node');
    expect(svg.match(/<g class="panel"/g)).toHaveLength(4);
    expect(svg.match(/<line class="bound"/g)).toHaveLength(2); // the bound at 1, in each throughput panel
    // No two series share a colour; a path keeps its colour from panel to panel.
    const byLabel = new Map<string, string>();
    const byColor = new Map<string, string>();
    for (const m of svg.matchAll(/<polyline class="series" data-series="([^"]+)" fill="none" stroke="([^"]+)"/g)) {
      const label = m[1] as string;
      const color = m[2] as string;
      expect(byLabel.get(label) ?? color).toBe(color);
      expect(byColor.get(color) ?? label).toBe(label);
      byLabel.set(label, color);
      byColor.set(color, label);
    }
    expect([...byLabel.keys()].sort()).toEqual([...labels].sort());
    // Direct labels: every series is named, in its colour, in each of the 4 panels it is drawn in.
    for (const [label, color] of byLabel) expect(svg.split(`fill="${color}">${label}</text>`).length - 1).toBe(4);
    expect(svg.split('>bound = 1</text>').length - 1).toBe(2);
    expect(new Set(Array.from({ length: 300 }, (_, i) => seriesColor(i))).size).toBe(300);
    expect(wellFormed('<svg><g></svg>')).toBe(false);
  });

  const rsvg = spawnSync('rsvg-convert', ['--version'], { encoding: 'utf8' });
  const rsvgMissing =
    rsvg.status === 0 ? null : `rsvg-convert not found (${rsvg.error?.message ?? `exit ${rsvg.status}`}); install librsvg2-bin`;
  const inCi = process.env.CI === 'true';
  it.skipIf(rsvgMissing !== null && !inCi)(
    `renders the chart to a PNG with rsvg-convert${rsvgMissing && !inCi ? ` (skipped: ${rsvgMissing})` : ''}`,
    () => {
      if (rsvgMissing) throw new Error(`CI must render the chart: ${rsvgMissing}`);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-svg-'));
      try {
        const svg = renderSvg(chartRows(), 'dmacopy bench: synthetic report');
        const size = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(svg);
        const [w, h] = [Number(size?.[1]), Number(size?.[2])];
        fs.writeFileSync(path.join(dir, 'chart.svg'), svg);
        const r = spawnSync('rsvg-convert', ['-f', 'png', '-o', path.join(dir, 'chart.png'), path.join(dir, 'chart.svg')], {
          encoding: 'utf8',
        });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const png = fs.readFileSync(path.join(dir, 'chart.png'));
        expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        expect(png.toString('latin1', 12, 16)).toBe('IHDR');
        expect(png.readUInt32BE(16)).toBe(w);
        expect(png.readUInt32BE(20)).toBe(h);
        expect(w).toBeGreaterThan(800);
        expect(h).toBeGreaterThan(500);
        expect(png.length).toBeGreaterThan(10000); // something was drawn
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('writeChartAfterReport', () => {
  it('writes the chart, or says on stderr that it could not and sets exit code 1, never throwing', async () => {
    const { writeChartAfterReport } = await import('../../lib/cli/commands/format');
    const fsm = await import('node:fs');
    const osm = await import('node:os');
    const pathm = await import('node:path');
    const dir = fsm.mkdtempSync(pathm.join(osm.tmpdir(), 'dmacopy-chart-'));
    const before = process.exitCode;
    const errors: string[] = [];
    const err = console.error;
    console.error = (m: string) => errors.push(m);
    try {
      writeChartAfterReport(pathm.join(dir, 'ok.svg'), () => '<svg/>', true);
      expect(fsm.readFileSync(pathm.join(dir, 'ok.svg'), 'utf8')).toBe('<svg/>');
      expect(process.exitCode).toBe(before);
      writeChartAfterReport(pathm.join(dir, 'gone', 'x.svg'), () => '<svg/>', true);
      expect(process.exitCode).toBe(1);
      expect(errors.join('\n')).toMatch(/the chart could not be written to .*gone.*ENOENT.*the report above is complete/);
    } finally {
      console.error = err;
      process.exitCode = before;
      fsm.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bench --paths', () => {
  it('splits on commas outside parentheses: a --service label keeps its own comma', async () => {
    const { pathsArg } = await import('../../lib/cli/commands/bench');
    expect(pathsArg('copy-batch (2 thr, nice 19),worker')).toEqual(['copy-batch (2 thr, nice 19)', 'worker']);
    expect(pathsArg('copy-batch (2 thr')).toEqual(['copy-batch (2 thr']);
    expect(pathsArg('auto, cpu x2')).toEqual(['auto', 'cpu x2']);
    // A prefix that opens a parenthesis it does not close stays a prefix.
    expect(pathsArg('copy-batch (2 thr,worker')).toEqual(['copy-batch (2 thr', 'worker']);
  });

  it('opens the prepared path when it is selected alone', async () => {
    const { openPaths, closePaths } = await import('../../lib/cli/bench/paths');
    const { paths } = await openPaths({ cpuThreads: [1], dsa: false, only: ['auto prepared'] });
    try {
      expect(paths.map((p) => p.name)).toContain('auto prepared');
      expect(paths.map((p) => p.name)).not.toContain('auto');
    } finally {
      await closePaths(paths);
    }
  });
});
