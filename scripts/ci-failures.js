#!/usr/bin/env node
// Prints every failed test CI ran, one per line, with the first line of its message: CI shows
// this block just above its closing line, so a failure's name survives when only the end of the
// output is kept. Reads the reports the runs write (core cases, vitest on each Node, the
// sanitized core and vitest runs); .ci/run deletes them first, so a report that is missing (its
// run failed before writing it) is said, never read from an earlier run.
//
//   node scripts/ci-failures.js
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { stripVTControlCharacters } = require('node:util');

const root = path.join(__dirname, '..');

function readJson(rel) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, rel), 'utf8'));
  } catch {
    return undefined;
  }
}

function firstLine(text) {
  // Strip ANSI colours; keep the message's first non-empty line, short enough to read.
  const line = stripVTControlCharacters(String(text ?? ''))
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  if (!line) return '';
  return line.length > 240 ? `${line.slice(0, 237)}...` : line;
}

function vitestFailures(label, rel) {
  const report = readJson(rel);
  if (report === undefined) return [];
  const out = [];
  for (const file of report.testResults ?? []) {
    const name = path.relative(root, file.name ?? '');
    const failed = (file.assertionResults ?? []).filter((a) => a.status === 'failed');
    for (const a of failed) out.push(`${label} ${name} > ${a.fullName}: ${firstLine(a.failureMessages?.[0])}`);
    // A file that failed to load or crashed its worker has no failed case to name.
    if (failed.length === 0 && file.status === 'failed') out.push(`${label} ${name}: ${firstLine(file.message) || 'file failed'}`);
  }
  return out;
}

const lines = [];
const missing = [];
const core = readJson('build/core-tests/results.json');
if (core === undefined) missing.push('core tests (build/core-tests/results.json)');
for (const f of core?.failures ?? []) lines.push(`core ${f}`);
const node = process.versions.node.split('.')[0];
if (readJson('build/vitest-results.json') === undefined) missing.push(`Node ${node} vitest (build/vitest-results.json)`);
lines.push(...vitestFailures(`Node ${node}`, 'build/vitest-results.json'));
const matrix = readJson('build/node-matrix.json');
if (matrix === undefined) missing.push('the Node matrix (build/node-matrix.json)');
for (const r of matrix ?? []) {
  const rel = `build/vitest-results-node${r.major}.json`;
  if (readJson(rel) === undefined) missing.push(`Node ${r.major} vitest (${rel})`);
  lines.push(...vitestFailures(`Node ${r.major}`, rel));
}
const sanCore = readJson('build/core-tests-san/results.json');
if (sanCore === undefined) missing.push('sanitized core tests (build/core-tests-san/results.json)');
for (const f of sanCore?.failures ?? []) lines.push(`asan core ${f}`);
if (readJson('build-asan/vitest-results.json') === undefined) missing.push('sanitized vitest (build-asan/vitest-results.json)');
lines.push(...vitestFailures('asan', 'build-asan/vitest-results.json'));

if (lines.length === 0) {
  console.log('failed tests: none named in the reports');
} else {
  console.log(`failed tests (${lines.length}):`);
  for (const l of lines) console.log(`  ${l}`);
}
// A run that never wrote its report (a build that failed first) names no test: say which.
for (const m of missing) console.log(`  no report from ${m}`);
