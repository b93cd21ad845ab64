#!/usr/bin/env node
// Where a small batch's time goes (docs/benchmarks.md): p50 of single calls in a hot loop, the
// clock's own cost subtracted, for 1 and 8 folios of 4 KiB in the list form (separate views in
// order over one buffer): the Buffer.copy loop, TypedArray#set of the same views, reading and
// checking the views as the small-batch path does (no copy), copyBatchSync, await copyBatch and
// a prepared copySync(), and the floor under issue 13's targets: the copy plus the two `buffer`
// reads a folio that the overlap rule needs, alone and in an async function. Paths are
// interleaved in rounds; each row is the median of the rounds' medians, and the mean of all timed
// calls (where a rare slow call, such as a batch the policy sends through the threads to keep
// measuring them, shows). A second table sets the targets against the floor and the library.
//
//   node scripts/bench-small.js [--dist DIR] [--rounds 15] [--calls 4000]
'use strict';
const path = require('node:path');
const { arg } = require('./arg');

const dist = path.resolve(arg('dist', path.join(__dirname, '..', 'dist')));
const rounds = Number(arg('rounds', 15));
const calls = Number(arg('calls', 4000));
const { openEngine } = require(dist);
const small = require(path.join(dist, 'engine', 'small-copy.js'));
const { intrinsicBufferOf: bufferOf } = require(path.join(dist, 'engine', 'view-getters.js'));

const now = () => Number(process.hrtime.bigint());
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

async function main() {
  const engine = await openEngine({ backend: 'auto' });
  // The clock pair every timed call pays, measured the same way and subtracted.
  const clock = [];
  for (let i = 0; i < 20000; i++) {
    const t = now();
    clock.push(now() - t);
  }
  const clockNs = median(clock);
  const out = [];
  for (const n of [1, 8]) {
    const F = 4096;
    const src = Buffer.alloc(n * F, 7);
    const dst = Buffer.alloc(n * F);
    const sv = [];
    const dv = [];
    for (let i = 0; i < n; i++) {
      sv.push(src.subarray(i * F, (i + 1) * F));
      dv.push(dst.subarray(i * F, (i + 1) * F));
    }
    const prepared = engine.prepare(dv, sv);
    const floorSync = () => {
      for (let i = 0; i < n; i++) {
        if (bufferOf(dv[i]) === bufferOf(sv[i])) throw new Error('overlap');
        dv[i].set(sv[i]);
      }
    };
    const floorAsync = async () => floorSync();
    const paths = [
      [
        'Buffer.copy loop',
        () => {
          for (let i = 0; i < n; i++) sv[i].copy(dv[i]);
        },
      ],
      [
        'TypedArray#set of the views',
        () => {
          for (let i = 0; i < n; i++) dv[i].set(sv[i]);
        },
      ],
      // The floor under the targets: the copy (set() of the views, as the small path
      // copies) plus the one read per view that no correct check can skip, its `buffer`, which
      // the overlap rule compares (a C++ builtin, ~7 ns a read: see docs/benchmarks.md).
      ["floor: set() + each view's buffer", floorSync],
      ['floor, await: the same in an async function', floorAsync],
      [
        'reading and checking the views (no copy)',
        () => {
          if (small.smallBatchBytes(dv, sv, undefined) < 0) throw new Error('not small');
          small.forgetSmall();
        },
      ],
      ['copyBatchSync', () => engine.copyBatchSync(dv, sv)],
      ['await copyBatch', () => engine.copyBatch(dv, sv)],
      ['prepared copySync()', () => prepared.copySync()],
    ];
    const rows = paths.map(() => []);
    const sums = paths.map(() => ({ ns: 0, calls: 0 }));
    for (let r = 0; r < rounds + 2; r++) {
      for (let p = 0; p < paths.length; p++) {
        const run = paths[p][1];
        const t = [];
        for (let c = 0; c < calls; c++) {
          const t0 = now();
          const x = run();
          if (x instanceof Promise) await x;
          t.push(now() - t0);
        }
        if (r < 2) continue; // two untimed rounds: V8 optimizes first
        rows[p].push(median(t) - clockNs);
        for (const x of t) sums[p].ns += x - clockNs;
        sums[p].calls += t.length;
      }
    }
    if (!dst.equals(src)) throw new Error('copy mismatch');
    prepared.release();
    out.push(
      paths.map(([name], p) => ({
        name,
        folios: n,
        p50Ns: Math.max(0, Math.round(median(rows[p]))),
        meanNs: Math.max(0, Math.round(sums[p].ns / sums[p].calls)),
      })),
    );
  }
  await engine.close();
  console.log(`p50 of single calls, clock (${clockNs} ns) subtracted, node ${process.versions.node}, ${dist}`);
  console.log('| | 1 folio, p50 | 8 folios, p50 | 1 folio, mean | 8 folios, mean |');
  console.log('|---|---|---|---|---|');
  for (let p = 0; p < out[0].length; p++) {
    const a = out[0][p];
    const b = out[1][p];
    const ratio = (r, base) => (r.name.startsWith('Buffer.copy') ? '' : ` (${(r.p50Ns / base.p50Ns).toFixed(2)}x)`);
    const ns = (x) => `${x.toLocaleString('en-US')} ns`;
    console.log(
      `| ${a.name} | ${ns(a.p50Ns)}${ratio(a, out[0][0])} | ${ns(b.p50Ns)}${ratio(b, out[1][0])} | ${ns(a.meanNs)} | ${ns(b.meanNs)} |`,
    );
  }
  // Issue 13's small-batch targets against the floor of this run: a target below its floor
  // cannot be met by any path that checks overlap.
  console.log('\n| target (issue 13) | folios | limit | floor | copyBatch path |');
  console.log('|---|---|---|---|---|');
  for (const [k, col] of out.entries()) {
    const row = (name) => col.find((r) => r.name === name);
    const base = col[0].p50Ns;
    for (const [label, limit, floor, path] of [
      ['copyBatchSync <= 1.3x', 1.3, row("floor: set() + each view's buffer"), row('copyBatchSync')],
      ['await copyBatch <= 2x', 2, row('floor, await: the same in an async function'), row('await copyBatch')],
    ]) {
      const x = (v) => `${(v / base).toFixed(2)}x`;
      console.log(
        `| ${label} | ${[1, 8][k]} | ${Math.round(limit * base)} ns | ${floor.p50Ns} ns (${x(floor.p50Ns)}) | ${path.p50Ns} ns (${x(path.p50Ns)}) |`,
      );
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
