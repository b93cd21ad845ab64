#!/usr/bin/env node
// Measures copyBatch, and prepared re-runs of the same batch (engine.prepare), through the CPU
// engine against what a Node user has (a Buffer.copy loop, a TypedArray.set loop) and against the bound: the same bytes copied natively with memcpy and
// with streaming stores on 1..N threads (the fastest is the bound), all in one run, so the
// ratios hold on a noisy machine. Every measured copy is verified outside the
// timed region. One cell of `dmacopy bench` (lib/bench), which sweeps everything.
//
//   node scripts/bench-copy.js [--total-mib 256] [--folio 4096] [--reps 5] [--json]
'use strict';
const os = require('node:os');
const dmacopy = require('..');
const bench = require('../dist/cli/bench/index.js');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const totalMiB = arg('total-mib', 256);
const folio = arg('folio', 4096);
const reps = arg('reps', 5);
const json = process.argv.includes('--json');

async function main() {
  const total = totalMiB * 1024 * 1024;
  const folios = Math.floor(total / folio);
  const threads = os.availableParallelism();
  const engine = await dmacopy.openEngine({ backend: 'cpu' });
  const copyPath = { ...bench.enginePath('copyBatch (cpu)', engine, engine.stats().cpuThreads), syncOnLarge: true };
  // Prepared re-runs (engine.prepare once, then copy() / copySync()) on an engine of their own.
  const prepEngine = await dmacopy.openEngine({ backend: 'cpu' });
  const prepPath = bench.preparedPath('prepared (cpu)', prepEngine, prepEngine.stats().cpuThreads);
  const paths = [bench.bufferCopyPath(), bench.typedArraySetPath(), copyPath, prepPath];
  for (const kind of ['memcpy', 'streaming']) for (let k = 1; k <= threads; k++) paths.push(bench.memcpyBoundPath(k, kind));
  const cells = ['region', 'list'].map((form) => ({ folioSize: folio, folios, bytes: folios * folio, form, kind: 'throughput' }));
  const report = await bench.runBench({ cells, paths, memory: false, settings: { reps, warmup: 1 } });
  if (json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    console.log(`${totalMiB} MiB in ${folios} folios of ${folio} B; ${bench.hostLine(report.host)}; median of ${reps}`);
    process.stdout.write(bench.formatBounds(report.bounds));
    process.stdout.write(bench.formatRows(report.rows));
    for (const n of report.notes) console.log(`note: ${n}`);
  }
  if (!report.ok) {
    console.error(report.failures.join('\n'));
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
