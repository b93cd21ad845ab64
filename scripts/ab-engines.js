#!/usr/bin/env node
// Before/after for engine changes: two builds of dmacopy (package directories with a built
// dist/ and addon, e.g. a `git worktree` of the old commit after `npm install`) loaded into one
// process and measured interleaved, repetition by repetition, on the same buffers, so the
// machine's drift touches both alike. Every copy is verified. Medians in GB/s.
//
//   node scripts/ab-engines.js --a ../before --b . [--total-mib 256] [--folio 4096]
//                              [--form region|list] [--prepared] [--reps 15] [--json]
//
// --prepared: each engine prepares the batch once and re-runs it (copy() and copySync()).
'use strict';
const path = require('node:path');
const { arg } = require('./arg');

async function main() {
  const dirs = { a: path.resolve(arg('a', '.')), b: path.resolve(arg('b', '.')) };
  const total = Number(arg('total-mib', 256)) * 1024 * 1024;
  const folio = Number(arg('folio', 4096));
  const form = arg('form', 'region');
  const reps = Number(arg('reps', 15));
  const src = Buffer.alloc(total);
  for (let i = 0; i < total; i += 4096) src.writeUInt32LE(i / 4096, i);
  const dst = Buffer.alloc(total);
  const dv = [];
  const sv = [];
  if (form === 'list') {
    for (let o = 0; o < total; o += folio) {
      dv.push(dst.subarray(o, o + folio));
      sv.push(src.subarray(o, o + folio));
    }
  }
  const engines = {};
  for (const [k, dir] of Object.entries(dirs)) engines[k] = await require(dir).openEngine({ backend: 'cpu' });
  const prepared = process.argv.includes('--prepared');
  const handles = new Map();
  if (prepared)
    for (const e of Object.values(engines)) handles.set(e, form === 'list' ? e.prepare(dv, sv) : e.prepare(dst, src, { folioSize: folio }));
  const run = (e, mode) => {
    const h = handles.get(e);
    if (h) return mode === 'sync' ? h.copySync() : h.copy();
    if (form === 'list') return mode === 'sync' ? e.copyBatchSync(dv, sv) : e.copyBatch(dv, sv);
    return mode === 'sync' ? e.copyBatchSync(dst, src, { folioSize: folio }) : e.copyBatch(dst, src, { folioSize: folio });
  };
  const samples = {};
  for (let r = -1; r < reps; r++) {
    // Alternate which build goes first; round -1 is an untimed warm-up.
    for (const k of r % 2 ? ['a', 'b'] : ['b', 'a']) {
      for (const mode of ['await', 'sync']) {
        dst.fill(0);
        const t0 = process.hrtime.bigint();
        await run(engines[k], mode);
        const ns = Number(process.hrtime.bigint() - t0);
        if (!dst.equals(src)) throw new Error(`${k} ${mode}: the copy differs from the source`);
        if (r < 0) continue;
        const key = `${k} ${mode}`;
        if (!samples[key]) samples[key] = [];
        samples[key].push(total / ns);
      }
    }
  }
  const median = (v) => {
    const s = [...v].sort((x, y) => x - y);
    return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const out = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ dirs, total, folio, form, prepared, reps, gbps: out }, null, 2));
  } else {
    console.log(
      `${total / 2 ** 20} MiB, ${form} form${prepared ? ', prepared' : ''}, folios of ${folio} B, median of ${reps} interleaved reps; a = ${dirs.a}, b = ${dirs.b}`,
    );
    for (const mode of ['await', 'sync']) {
      const a = out[`a ${mode}`];
      const b = out[`b ${mode}`];
      console.log(`${mode.padEnd(5)}  a ${a.toFixed(2)} GB/s  b ${b.toFixed(2)} GB/s  b/a ${(b / a).toFixed(2)}`);
    }
  }
  for (const h of handles.values()) h.release();
  for (const e of Object.values(engines)) await e.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
