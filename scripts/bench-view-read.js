#!/usr/bin/env node
// The JavaScript cost of reading a list-form batch: prepareListSlice (lib/engine/validate.ts)
// over 65,536 Buffer views of 4 KiB, alone (no copy, no native call), median of --reps runs, in
// ns per folio (a destination and a source view). Compare two builds with --dist:
//
//   node scripts/bench-view-read.js [--dist DIR] [--folios 65536] [--reps 41]
//
// With --getters it times each of the library's intrinsic view reads (view-getters.ts) alone
// instead, in ns a read over 10^7 reads of two Buffer views (best of 5): as the small-batch path
// calls them, and after an element read of the view, which hands V8 the view's map so that it
// can inline the getters it knows (`buffer` is a C++ builtin it never inlines).
'use strict';
const path = require('node:path');
const { arg } = require('./arg');

const dist = path.resolve(arg('dist', path.join(__dirname, '..', 'dist')));
const folios = Number(arg('folios', 65536));
const reps = Number(arg('reps', 41));
const { prepareListSlice } = require(path.join(dist, 'engine', 'validate.js'));
const F = 4096;
const src = Buffer.alloc(folios * F);
const dst = Buffer.alloc(folios * F);
const dsts = [];
const srcs = [];
for (let i = 0; i < folios; i++) {
  dsts.push(dst.subarray(i * F, (i + 1) * F));
  srcs.push(src.subarray(i * F, (i + 1) * F));
}
if (process.argv.includes('--getters')) {
  timeGetters();
  process.exit(0);
}

function timeGetters() {
  const g = require(path.join(dist, 'engine', 'view-getters.js'));
  const whole = Buffer.alloc(2 * F);
  const views = [whole.subarray(0, F), whole.subarray(F)];
  const ab = whole.buffer;
  const reads = 1e7;
  // Each loop is compiled on its own (new Function), so that V8 optimizes it with the getter
  // inlined where it can; each sums what it reads, so that the reads stay, and the sums are checked.
  const loop = (body) =>
    new Function(
      'get',
      'views',
      'ab',
      'n',
      `let sum = 0; for (let i = 0; i < n; i++) { const v = views[i & 1]; sum += ${body}; } return sum;`,
    );
  const getters = {
    'buffer (intrinsicBufferOf)': [g.intrinsicBufferOf, '(get(v) === ab ? 1 : 0)'],
    'byteOffset (intrinsicByteOffsetOf)': [g.intrinsicByteOffsetOf, 'get(v)'],
    'length (intrinsicLengthOf)': [g.intrinsicLengthOf, 'get(v)'],
    'kind (typedArrayKind)': [g.typedArrayKind, "(get(v) === 'Uint8Array' ? 1 : 0)"],
  };
  const time = (get, body) => {
    const run = loop(body);
    let best = Number.POSITIVE_INFINITY;
    let sum = 0;
    for (let r = 0; r < 5; r++) {
      const t = process.hrtime.bigint();
      sum = run(get, views, ab, reads);
      best = Math.min(best, Number(process.hrtime.bigint() - t));
    }
    return { ns: best / reads, sum };
  };
  const empty = time(undefined, '(v === ab ? 1 : 0)');
  console.log(
    `ns a read, 10^7 reads of two Buffer views, best of 5, loop cost (${empty.ns.toFixed(2)} ns) not subtracted; node ${process.versions.node}, V8 ${process.versions.v8}`,
  );
  console.log('| read | as the small-batch path calls it | after an element read of the view |');
  console.log('|---|---|---|');
  for (const [name, [get, body]] of Object.entries(getters)) {
    const a = time(get, body);
    const b = time(get, `(v[0], ${body})`);
    if (a.sum !== b.sum) throw new Error(`${name}: the two loops read different values`);
    console.log(`| ${name} | ${a.ns.toFixed(2)} | ${b.ns.toFixed(2)} |`);
  }
}
const into = new Float64Array(folios * 5);
const times = [];
for (let r = 0; r < reps + 10; r++) {
  const t = process.hrtime.bigint();
  const batch = prepareListSlice(dsts, srcs, 0, folios, into);
  const ns = Number(process.hrtime.bigint() - t);
  if (batch.folios !== folios || batch.bytes !== folios * F) throw new Error('prepareListSlice read the batch wrong');
  if (r >= 10) times.push(ns); // the first runs include V8's optimization of the loop
}
times.sort((a, b) => a - b);
const med = times[times.length >> 1];
console.log(
  `${folios} folios (Buffer views of 4 KiB): ${(med / 1e6).toFixed(2)} ms, ${(med / folios).toFixed(1)} ns a folio (median of ${reps}; node ${process.versions.node}, V8 ${process.versions.v8}; ${dist})`,
);
