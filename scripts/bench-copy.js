#!/usr/bin/env node
// Measures copyBatch through the CPU engine against what a Node user has (a Buffer.copy loop)
// and against a plain multi-threaded C memcpy of the same bytes, all in one run, so the ratios
// hold on a noisy machine. Every measured copy is verified outside the timed region.
//
//   node scripts/bench-copy.js [--total-mib 256] [--folio 4096] [--reps 5] [--json]
'use strict';
const { performance } = require('node:perf_hooks');
const os = require('node:os');
const dmacopy = require('..');
const { nativeBinding } = require('../dist/native.js');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const totalMiB = arg('total-mib', 256);
const folio = arg('folio', 4096);
const reps = arg('reps', 5);
const json = process.argv.includes('--json');
const total = totalMiB * 1024 * 1024;
const n = Math.floor(total / folio);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const src = Buffer.alloc(total);
  for (let i = 0; i < total; i += 4096) src.writeUInt32LE((i * 2654435761) >>> 0, i);
  const dst = Buffer.alloc(total);
  const srcViews = [];
  const dstViews = [];
  for (let i = 0; i < n; i++) {
    srcViews.push(src.subarray(i * folio, (i + 1) * folio));
    dstViews.push(dst.subarray(i * folio, (i + 1) * folio));
  }
  const engine = await dmacopy.openEngine({ backend: 'cpu' });
  const threads = engine.stats().cpuThreads;

  async function measure(name, fn) {
    const times = [];
    for (let r = 0; r < reps + 1; r++) {
      dst.fill(0);
      const t0 = performance.now();
      const ns = await fn();
      const t = typeof ns === 'number' ? ns / 1e6 : performance.now() - t0;
      if (!dst.equals(src)) throw new Error(`${name}: copied bytes differ from the source`);
      if (r > 0) times.push(t); // first run is warm-up
    }
    const ms = median(times);
    return { name, ms, gbps: total / (ms / 1e3) / 1e9 };
  }

  const rows = [];
  rows.push(
    await measure('Buffer.copy loop (per folio)', () => {
      for (let i = 0; i < n; i++) srcViews[i].copy(dstViews[i]);
    }),
  );
  rows.push(
    await measure('TypedArray.set loop (per folio)', () => {
      for (let i = 0; i < n; i++) dstViews[i].set(srcViews[i]);
    }),
  );
  rows.push(await measure(`native memcpy bound (${threads} threads)`, () => nativeBinding().memcpyBound(dst, src, threads, folio)));
  rows.push(await measure('copyBatch region form', () => engine.copyBatch(dst, src, { folioSize: folio })));
  rows.push(await measure('copyBatch list form', () => engine.copyBatch(dstViews, srcViews)));
  rows.push(await measure('copyBatchSync region form', () => engine.copyBatchSync(dst, src, { folioSize: folio })));
  rows.push(await measure('copyBatchSync list form', () => engine.copyBatchSync(dstViews, srcViews)));
  await engine.close();

  const base = rows[0].ms;
  const bound = rows[2].ms;
  for (const r of rows) {
    r.vsBufferCopy = base / r.ms;
    r.vsMemcpyBound = bound / r.ms;
  }
  const host = { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version, kernel: os.release() };
  if (json) {
    console.log(JSON.stringify({ host, totalBytes: total, folio, folios: n, reps, rows }, null, 2));
    return;
  }
  console.log(`${totalMiB} MiB in ${n} folios of ${folio} B; ${host.cpu}, ${host.cores} cores, Node ${host.node}; median of ${reps}`);
  console.log('path'.padEnd(40), 'ms'.padStart(8), 'GB/s'.padStart(7), 'x Buffer.copy'.padStart(14), 'x memcpy bound'.padStart(15));
  for (const r of rows) {
    console.log(r.name.padEnd(40), r.ms.toFixed(1).padStart(8), r.gbps.toFixed(2).padStart(7), r.vsBufferCopy.toFixed(2).padStart(14), r.vsMemcpyBound.toFixed(2).padStart(15));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
