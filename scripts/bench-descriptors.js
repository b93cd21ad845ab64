#!/usr/bin/env node
// Descriptors per second through the software DSA device, end to end (issue 3):
//   copyBatch (region form) -> submit -> software device -> poller -> per-descriptor count ->
//   coalesced event -> JS promise resolution,
// with 64-byte folios (pure per-descriptor overhead) and 4 KiB folios, reporting descriptors/s and
// ns per descriptor (median of several repetitions, every copy verified outside the timed region).
// Each also prepared once and re-run (engine.prepare: descriptors built once), interleaved.
// Then the native engine's bookkeeping cost on its own, from build/bench_dsa_channels (built here
// with the g++ command at the top of native/core/bench/bench_dsa_channels.cc when it is missing).
//
//   node scripts/bench-descriptors.js [--mib 4] [--reps 5] [--no-native] [--json]
// Targets: >= 1,000,000 descriptors/s end to end on 2 cores; <= 150 ns native bookkeeping per descriptor.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dmacopy = require('..');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const mib = arg('mib', 4);
const reps = arg('reps', 5);
const json = process.argv.includes('--json');
const wantNative = !process.argv.includes('--no-native');
const root = path.join(__dirname, '..');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The software-device configurations measured: the default shape, and the smallest one. */
const CONFIGS = [
  { label: 'default device (2 queues x 2 engines)', emulator: { latencyUs: 0 } },
  { label: '1 queue x 1 engine', emulator: { latencyUs: 0, queues: 1, engines: 1 } },
];

/**
 * One configuration and folio size: copyBatch, and the same batch prepared once and re-run
 * (its descriptors built at prepare(), only completion records new per run), interleaved rep by
 * rep on one engine. Returns a row for each.
 */
async function endToEnd(config, folioSize, bytes) {
  const engine = await dmacopy.openEngine({ backend: 'emulated', minOffloadBytes: 0, emulator: config.emulator });
  const src = Buffer.alloc(bytes);
  for (let o = 0; o < bytes; o += 4) src.writeUInt32LE((o * 2654435761) >>> 0, o);
  const dst = Buffer.alloc(bytes);
  const prepared = engine.prepare(dst, src, { folioSize });
  const ways = {
    copyBatch: () => engine.copyBatch(dst, src, { folioSize }),
    'prepared copy()': () => prepared.copy(),
  };
  const times = { copyBatch: [], 'prepared copy()': [] };
  let descriptors = 0;
  try {
    for (let r = 0; r < reps + 1; r++) {
      for (const [way, run] of Object.entries(ways)) {
        dst.fill(0);
        const t0 = process.hrtime.bigint();
        const report = await run();
        const ns = Number(process.hrtime.bigint() - t0);
        if (!dst.equals(src)) throw new Error(`${config.label}, ${folioSize}-byte folios, ${way}: the copy differs from the source`);
        descriptors = report.descriptors;
        if (r > 0) times[way].push(ns);
      }
    }
  } finally {
    prepared.release();
    await engine.close();
  }
  return Object.keys(ways).map((way) => {
    const ns = median(times[way]);
    return {
      config: config.label,
      way,
      folioSize,
      bytes,
      descriptors,
      medianNs: ns,
      descriptorsPerSec: descriptors / (ns / 1e9),
      nsPerDescriptor: ns / descriptors,
      gbps: bytes / ns,
    };
  });
}

function nativeBench() {
  const exe = path.join(root, 'build', 'bench_dsa_channels');
  if (!fs.existsSync(exe)) {
    const srcDir = path.join(root, 'native', 'core');
    const sources = fs
      .readdirSync(srcDir)
      .filter((f) => f.endsWith('.cc'))
      .map((f) => path.join(srcDir, f));
    fs.mkdirSync(path.dirname(exe), { recursive: true });
    const args = [
      '-std=c++17',
      '-O2',
      '-pthread',
      '-I',
      srcDir,
      '-o',
      exe,
      path.join(srcDir, 'bench', 'bench_dsa_channels.cc'),
      ...sources,
    ];
    try {
      execFileSync('g++', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      return { error: `could not build ${exe}: ${String(err.stderr || err.message).slice(0, 400)}` };
    }
  }
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return { error: `${exe} exited with ${r.status}: ${(r.stderr || '').slice(0, 400)}` };
  const lines = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(.*?)\s+(\d+) descriptors\/s\s+([\d.]+) ns\/descriptor/.exec(line);
    if (m) lines.push({ label: m[1].trim(), descriptorsPerSec: Number(m[2]), nsPerDescriptor: Number(m[3]) });
  }
  const book = lines.find((l) => l.label.startsWith('bookkeeping'));
  return {
    exe: path.relative(root, exe),
    results: lines,
    bookkeepingNsPerDescriptor: book ? book.nsPerDescriptor : null,
    raw: r.stdout.trim(),
  };
}

async function main() {
  const bytes = mib * 1024 * 1024;
  const e2e = [];
  for (const config of CONFIGS) {
    e2e.push(...(await endToEnd(config, 64, bytes)));
    e2e.push(...(await endToEnd(config, 4096, Math.max(bytes, 16 * 1024 * 1024))));
  }
  const native = wantNative ? nativeBench() : null;
  const best64 = Math.max(...e2e.filter((r) => r.folioSize === 64 && r.way === 'copyBatch').map((r) => r.descriptorsPerSec));
  const targets = [
    { target: 'end to end >= 1,000,000 descriptors/s (64 B folios, best configuration)', value: best64, pass: best64 >= 1e6 },
    {
      target: 'native bookkeeping <= 150 ns per descriptor',
      value: native?.bookkeepingNsPerDescriptor ?? null,
      pass: native?.bookkeepingNsPerDescriptor == null ? null : native.bookkeepingNsPerDescriptor <= 150,
    },
  ];
  const host = {
    cpu: os.cpus()[0]?.model,
    cores: os.availableParallelism(),
    load: os.loadavg()[0],
    node: process.version,
    kernel: os.release(),
  };
  if (json) {
    console.log(JSON.stringify({ host, reps, endToEnd: e2e, native, targets }, null, 2));
    return;
  }
  console.log(
    `descriptor throughput through the software DSA device; ${host.cpu}, ${host.cores} cores, load ${host.load.toFixed(2)}, Node ${host.node}; median of ${reps}`,
  );
  console.log('end to end (copyBatch region form, or its prepared re-run -> device -> poll -> count -> JS):');
  for (const r of e2e) {
    console.log(
      `  ${r.config.padEnd(40)} ${r.way.padEnd(16)} ${String(r.folioSize).padStart(5)} B folios  ${String(r.descriptors).padStart(7)} descriptors  ${(r.descriptorsPerSec / 1e6).toFixed(2).padStart(6)} M/s  ${r.nsPerDescriptor.toFixed(0).padStart(6)} ns/descriptor  ${r.gbps.toFixed(2)} GB/s`,
    );
  }
  if (native) {
    if (native.error) console.log(`native: ${native.error}`);
    else {
      console.log(`native (${native.exe}):`);
      for (const l of native.raw.split('\n')) console.log(`  ${l}`);
    }
  }
  console.log('targets:');
  for (const t of targets) {
    const v = t.value === null ? '-' : t.target.includes('ns') ? `${t.value.toFixed(1)} ns` : `${(t.value / 1e6).toFixed(2)} M/s`;
    console.log(`  [${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'FAIL'}] ${t.target}: ${v}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
