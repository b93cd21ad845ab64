// `dmacopy bench` as a library (lib/bench): a tiny run over every path, detection of a broken
// path, the targets evaluator, the sweep plan and the SVG chart.
import { describe, expect, it } from 'vitest';
import type { Cell } from '../../lib/cli/bench/cells';
import { planCells, sweepConfig } from '../../lib/cli/bench/cells';
import type { Row } from '../../lib/cli/bench/measure';
import { type BenchPath, bufferCopyPath } from '../../lib/cli/bench/paths';
import { fillRatios, runBench } from '../../lib/cli/bench/run';
import { renderSvg } from '../../lib/cli/bench/svg';
import { formatReport } from '../../lib/cli/bench/table';
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
    vsMemcpyBound: null,
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
    for (const p of ['Buffer.copy', 'TypedArray.set', 'cpu x1', 'emulated', 'auto', 'memcpy x1']) expect(names.has(p)).toBe(true);
    for (const x of r.rows) {
      expect(x.verified).toBe(true);
      expect(x.iterations).toBeGreaterThan(0);
      expect(x.gbps).toBeGreaterThan(0);
      expect(Number.isFinite(x.cpuNsPerGiB)).toBe(true);
      expect(x.vsBufferCopy).toBeGreaterThan(0);
      expect(x.vsMemcpyBound).toBeGreaterThan(0);
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
    expect(r.targets.length).toBeGreaterThanOrEqual(11);
    const back = JSON.parse(JSON.stringify(r));
    expect(back.rows.length).toBe(r.rows.length);
    expect(formatReport(r)).toContain('targets');
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

  it('evaluates the targets: pass, fail, not measured, and failed verification never passes', () => {
    const rows: Row[] = [
      row({ form: 'region', vsBufferCopy: 2.0, vsMemcpyBound: 0.95, boundThreads: 2 }),
      row({ form: 'list', vsBufferCopy: 1.3 }),
      row({ folioSize: 64 * KiB, folios: 4096, form: 'list', vsBufferCopy: 1.7, verified: false, mismatches: 1 }),
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
    const t = Object.fromEntries(
      evaluateTargets(rows, { bytes: 1024 * MiB, folioSize: 4096, region: 10 * MiB, list: 70 * MiB, verified: true, method: 'test' }).map(
        (x) => [x.id, x],
      ),
    );
    expect(t['4k-region-vs-buffer']?.pass).toBe(true);
    expect(t['4k-region-vs-bound']?.pass).toBe(true);
    expect(t['4k-list-vs-buffer']?.pass).toBe(false);
    expect(t['64k-list-vs-buffer']?.pass).toBe(false); // 1.7x, but its copies did not verify
    expect(t['2m-region-vs-bound']?.pass).toBeNull();
    expect(t['latency-1-await']?.pass).toBe(true);
    expect(t['latency-1-await']?.value).toBeCloseTo(1.9);
    expect(t['latency-1-sync']?.pass).toBe(false);
    expect(t['latency-8-await']?.pass).toBeNull();
    expect(t['memory-1g']?.pass).toBe(false);
    expect(t['memory-1g']?.value).toBeCloseTo(70);
    expect(evaluateTargets(rows, null).find((x) => x.id === 'memory-1g')?.pass).toBeNull();
  });

  it('takes the memcpy ratio against the fastest bound with at most the path thread count', () => {
    const rows = [
      row({ path: 'Buffer.copy', pathKind: 'baseline', threads: 1, medianNs: 4e7 }),
      row({ path: 'memcpy x1', pathKind: 'bound', threads: 1, medianNs: 2e7 }),
      row({ path: 'memcpy x2', pathKind: 'bound', threads: 2, medianNs: 5e7 }), // disturbed: slower than 1 thread
      row({ path: 'auto', threads: 2, medianNs: 1e7 }),
    ];
    fillRatios(rows);
    const auto = rows[3] as Row;
    expect(auto.vsBufferCopy).toBeCloseTo(4);
    expect(auto.vsMemcpyBound).toBeCloseTo(2);
    expect(auto.boundThreads).toBe(1);
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

  it('writes a well-formed SVG with one polyline per path and form, a legend and the host in the title', () => {
    const rows: Row[] = [];
    for (const folioSize of [4 * KiB, 64 * KiB, 2 * MiB]) {
      for (const form of ['region', 'list'] as const) {
        rows.push(row({ folioSize, form, path: 'auto', gbps: 8 }));
        rows.push(row({ folioSize, form, path: 'Buffer.copy', pathKind: 'baseline', mode: 'sync', gbps: 5 }));
      }
      rows.push(row({ folioSize, path: 'memcpy x2', pathKind: 'bound', mode: 'sync', gbps: 9 }));
    }
    rows.push(row({ folioSize: 4 * KiB, folios: 1, kind: 'latency', path: 'auto', gbps: 1 })); // not charted
    const svg = renderSvg(rows, 'dmacopy bench: "AMD" <2 cores> & Node');
    expect(wellFormed(svg)).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(5);
    expect(svg).toContain('&lt;2 cores&gt; &amp; Node');
    expect(svg).toContain('auto (list)');
    expect(svg).toContain('2 MiB');
    expect(wellFormed('<svg><g></svg>')).toBe(false);
  });
});
