#!/usr/bin/env node
// Builds and runs the plain C++ core unit tests (native/core/test/test_*.cc), without Node-API.
// Core sources are compiled once (in parallel) and linked into each test binary under
// build/core-tests/. Prints each file's "N passed, N failed" and writes results.json.
// Usage: node scripts/run-core-tests.js [--sanitize] [filter]
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const coreDir = path.join(root, 'native', 'core');
const testDir = path.join(coreDir, 'test');
// Test-only code the core tests link (e.g. the deliberately wrong dcbm strategy): never shipped,
// binding.gyp compiles native/core/*.cc only.
const supportDir = path.join(testDir, 'support');
const args = process.argv.slice(2);
const sanitize = args.includes('--sanitize');
const filter = args.find((a) => !a.startsWith('--'));
const outDir = path.join(root, 'build', sanitize ? 'core-tests-san' : 'core-tests');
fs.mkdirSync(outDir, { recursive: true });

const sources = [coreDir, supportDir].flatMap((dir) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cc'))
    .map((f) => path.join(dir, f)),
);
const tests = fs
  .readdirSync(testDir)
  .filter((f) => /^test_.*\.cc$/.test(f) && (!filter || f.includes(filter)))
  .sort();
const cxx = process.env.CXX || 'g++';
const flags = ['-std=c++17', '-O2', '-g', '-pthread', '-Wall', '-Wextra', '-I', coreDir, '-I', supportDir];
if (sanitize) flags.push('-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined');

function run(argv) {
  return new Promise((resolve) => {
    const p = spawn(cxx, argv, { stdio: 'inherit' });
    p.on('exit', (code) => resolve(code === 0));
    p.on('error', () => resolve(false));
  });
}

/** Runs jobs with at most `width` at a time; resolves to true if all succeeded. */
async function pool(jobs, width) {
  let ok = true;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, jobs.length) }, async () => {
      while (next < jobs.length) ok = (await jobs[next++]()) && ok;
    }),
  );
  return ok;
}

async function main() {
  const newestHeader = Math.max(
    ...[coreDir, supportDir].flatMap((dir) =>
      fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.h'))
        .map((f) => fs.statSync(path.join(dir, f)).mtimeMs),
    ),
  );
  const objects = sources.map((src) => path.join(outDir, path.basename(src).replace(/\.cc$/, '.o')));
  const stale = sources
    .map((src, i) => ({ src, obj: objects[i] }))
    .filter(({ src, obj }) => {
      try {
        const t = fs.statSync(obj).mtimeMs;
        return t < fs.statSync(src).mtimeMs || t < newestHeader;
      } catch {
        return true;
      }
    });
  const width = Math.max(1, os.availableParallelism());
  if (
    !(await pool(
      stale.map(
        ({ src, obj }) =>
          () =>
            run([...flags, '-c', '-o', obj, src]),
      ),
      width,
    ))
  ) {
    console.error('core sources failed to compile');
    fs.writeFileSync(
      path.join(outDir, 'results.json'),
      JSON.stringify({ files: { passed: 0, failed: 1 }, cases: { passed: 0, failed: 1 } }),
    );
    process.exit(1);
  }
  const bins = tests.map((t) => path.join(outDir, t.replace(/\.cc$/, '')));
  const linked = await Promise.all(tests.map(() => false));
  await pool(
    tests.map((t, i) => async () => {
      linked[i] = await run([...flags, '-o', bins[i], path.join(testDir, t), ...objects]);
      return linked[i];
    }),
    width,
  );

  let passed = 0;
  let failed = 0;
  let casesPassed = 0;
  let casesFailed = 0;
  let casesSkipped = 0;
  const failures = []; // what CI prints above its closing line
  tests.forEach((t, i) => {
    if (!linked[i]) {
      console.error(`core test ${t}: build failed`);
      failures.push(`${t}: build failed`);
      failed++;
      casesFailed++;
      return;
    }
    const r = spawnSync(bins[i], [], { encoding: 'utf8', timeout: 300_000 });
    process.stdout.write(r.stdout || '');
    process.stderr.write(r.stderr || '');
    const m = /(\d+) passed, (\d+) failed, (\d+) skipped/.exec(r.stdout || '');
    if (m) {
      casesPassed += Number(m[1]);
      casesFailed += Number(m[2]);
      casesSkipped += Number(m[3]);
    } else {
      casesFailed++; // crashed before printing its summary
    }
    for (const line of `${r.stdout || ''}\n${r.stderr || ''}`.split('\n'))
      if (/^\s*FAIL\b/.test(line)) failures.push(`${t}: ${line.trim()}`);
    if (r.status === 0) passed++;
    else {
      console.error(`core test ${t}: exit ${r.status}${r.signal ? ` signal ${r.signal}` : ''}`);
      failures.push(`${t}: exit ${r.status}${r.signal ? ` signal ${r.signal}` : ''}`);
      failed++;
    }
  });
  console.log(`core test files: ${passed} passed, ${failed} failed`);
  console.log(`core test cases: ${casesPassed} passed, ${casesFailed} failed, ${casesSkipped} skipped`);
  fs.writeFileSync(
    path.join(outDir, 'results.json'),
    JSON.stringify({ files: { passed, failed }, cases: { passed: casesPassed, failed: casesFailed, skipped: casesSkipped }, failures }),
  );
  process.exit(failed ? 1 : 0);
}

main();
