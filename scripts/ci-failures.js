#!/usr/bin/env node
// Prints every failed test CI ran, one per line, with the first line of its message: CI shows
// this block just above its closing line, so a failure's name survives when only the end of the
// output is kept. Reads the reports the runs write (core cases, vitest on each Node, the
// sanitized vitest run); a report that is missing is said, not guessed at.
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
const core = readJson('build/core-tests/results.json');
for (const f of core?.failures ?? []) lines.push(`core ${f}`);
lines.push(...vitestFailures(`Node ${process.versions.node.split('.')[0]}`, 'build/vitest-results.json'));
for (const f of fs.existsSync(path.join(root, 'build')) ? fs.readdirSync(path.join(root, 'build')) : []) {
  const m = /^vitest-results-node(\d+)\.json$/.exec(f);
  if (m) lines.push(...vitestFailures(`Node ${m[1]}`, `build/${f}`));
}
lines.push(...vitestFailures('asan', 'build-asan/vitest-results.json'));

if (lines.length === 0) {
  console.log('failed tests: none named in the reports');
} else {
  console.log(`failed tests (${lines.length}):`);
  for (const l of lines) console.log(`  ${l}`);
}
