#!/usr/bin/env node
// Builds and runs the plain C++ core unit tests (native/core/test/test_*.cc), without Node-API.
// Each test file links against every core source; binaries go to build/core-tests/.
// Usage: node scripts/run-core-tests.js [--sanitize] [filter]
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const coreDir = path.join(root, 'native', 'core');
const testDir = path.join(coreDir, 'test');
const args = process.argv.slice(2);
const sanitize = args.includes('--sanitize');
const filter = args.find((a) => !a.startsWith('--'));
const outDir = path.join(root, 'build', sanitize ? 'core-tests-san' : 'core-tests');
fs.mkdirSync(outDir, { recursive: true });

const sources = fs.readdirSync(coreDir).filter((f) => f.endsWith('.cc')).map((f) => path.join(coreDir, f));
const tests = fs
  .readdirSync(testDir)
  .filter((f) => /^test_.*\.cc$/.test(f) && (!filter || f.includes(filter)))
  .sort();
const cxx = process.env.CXX || 'g++';
const flags = ['-std=c++17', '-O2', '-g', '-pthread', '-Wall', '-Wextra', '-I', coreDir];
if (sanitize) flags.push('-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined');

let passed = 0;
let failed = 0;
let casesPassed = 0;
let casesFailed = 0;
for (const t of tests) {
  const bin = path.join(outDir, t.replace(/\.cc$/, ''));
  try {
    execFileSync(cxx, [...flags, '-o', bin, path.join(testDir, t), ...sources], { stdio: 'inherit' });
  } catch {
    console.error(`core test ${t}: build failed`);
    failed++;
    continue;
  }
  const r = spawnSync(bin, [], { encoding: 'utf8', timeout: 300_000 });
  process.stdout.write(r.stdout || '');
  process.stderr.write(r.stderr || '');
  const m = /(\d+) passed, (\d+) failed/.exec(r.stdout || '');
  if (m) {
    casesPassed += Number(m[1]);
    casesFailed += Number(m[2]);
  } else {
    casesFailed++; // crashed before printing its summary
  }
  if (r.status === 0) passed++;
  else {
    console.error(`core test ${t}: exit ${r.status}${r.signal ? ` signal ${r.signal}` : ''}`);
    failed++;
  }
}
console.log(`core test files: ${passed} passed, ${failed} failed`);
fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ files: { passed, failed }, cases: { passed: casesPassed, failed: casesFailed } }));
process.exit(failed ? 1 : 0);
