#!/usr/bin/env node
// The JavaScript cost of reading a list-form batch: prepareListSlice (lib/engine/validate.ts)
// over 65,536 Buffer views of 4 KiB, alone (no copy, no native call), median of --reps runs, in
// ns per folio (a destination and a source view). Compare two builds with --dist:
//
//   node scripts/bench-view-read.js [--dist DIR] [--folios 65536] [--reps 41]
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
