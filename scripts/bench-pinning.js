#!/usr/bin/env node
// Copy threads bound one to a CPU or left to the scheduler (the cpuPinning option): two engines
// in one process, 'on' and 'off', measured interleaved run by run on the same buffers, with
// await copyBatch and copyBatchSync. Prints per engine and mode the median GB/s, and how many
// runs fell under 0.6 of the best run of the cell (one thread copies at about half the speed of
// two): where the kernel cannot spread woken threads (no shared last-level cache, as on
// Firecracker guests), an unbound batch's two threads often wake on one core and copy at one
// thread's speed. Every copy is verified.
//
//   node scripts/bench-pinning.js [--mib 64] [--folio 2097152] [--runs 31] [--json]
'use strict';
const dmacopy = require('..');
const { arg } = require('./arg');

async function main() {
  const total = Number(arg('mib', 64)) * 1024 * 1024;
  const folio = Number(arg('folio', 2 * 1024 * 1024));
  const runs = Number(arg('runs', 31));
  const src = Buffer.alloc(total);
  for (let o = 0; o < total; o += 4096) src.writeUInt32LE(o / 4096, o);
  const dst = Buffer.alloc(total);
  const engines = {
    on: await dmacopy.openEngine({ backend: 'cpu', cpuPinning: 'on' }),
    off: await dmacopy.openEngine({ backend: 'cpu', cpuPinning: 'off' }),
  };
  const samples = {};
  for (let r = -1; r < runs; r++) {
    // Alternate which engine goes first; run -1 is an untimed warm-up.
    for (const k of r % 2 ? ['on', 'off'] : ['off', 'on']) {
      for (const mode of ['await', 'sync']) {
        dst.fill(0);
        const t0 = process.hrtime.bigint();
        if (mode === 'await') await engines[k].copyBatch(dst, src, { folioSize: folio });
        else engines[k].copyBatchSync(dst, src, { folioSize: folio });
        const ns = Number(process.hrtime.bigint() - t0);
        if (!dst.equals(src)) throw new Error(`cpuPinning '${k}', ${mode}: the copy differs from the source`);
        if (r < 0) continue;
        const key = `${mode} ${k}`;
        if (!samples[key]) samples[key] = [];
        samples[key].push(total / ns);
      }
    }
  }
  const pins = engines.on.stats().cpuPins;
  for (const e of Object.values(engines)) await e.close();
  const rows = Object.entries(samples).map(([key, xs]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const best = sorted[sorted.length - 1];
    return {
      key,
      medianGBps: sorted[sorted.length >> 1],
      bestGBps: best,
      slowRuns: xs.filter((x) => x < best * 0.6).length,
      runs: xs.length,
    };
  });
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ totalBytes: total, folio, runs, pins, rows }, null, 2));
    return;
  }
  console.log(
    `${total / 1048576} MiB in folios of ${folio} B, ${runs} interleaved runs per cell; cpuPinning 'on' bound the threads to CPUs ${pins.join(', ')}`,
  );
  for (const r of rows)
    console.log(
      `${r.key.padEnd(10)} median ${r.medianGBps.toFixed(2).padStart(6)} GB/s  best ${r.bestGBps.toFixed(2).padStart(6)}  under 0.6 of the best: ${r.slowRuns}/${r.runs}`,
    );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
