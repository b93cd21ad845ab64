#!/usr/bin/env node
// Checks what `npm pack` puts in the tarball: the compiled JS with its types, the ES module entry,
// the CLI, the native sources (so `node-gyp-build` can compile where no prebuild fits), the
// prebuilds, the README with the docs/ it links to, the license; and none of the tests,
// fixtures, build output, CI files or dev scripts.
//
// Usage:
//   node scripts/check-pack.js                    lists with `npm pack --dry-run --ignore-scripts`
//                                                 (scripts are ignored: prepack would rebuild the addon)
//   node scripts/check-pack.js --require-prebuilds  also demand prebuilds/linux-x64/*.node
//   node scripts/check-pack.js --tarball x.tgz    checks a packed tarball (prebuilds demanded)
//   --json                                        prints { files, problems } instead of text
// Exits 1 when something is missing or present that should not be.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');

/** Paths that must never ship, with the reason reported. */
const FORBIDDEN = [
  [/^test\//, 'tests and fixtures'],
  [/^native\/core\/(test|bench|fuzz)\//, 'C++ core tests, benchmarks and fuzzers'],
  [/^build[^/]*\//, 'build output'],
  [/^\.ci\//, 'CI scripts'],
  [/^\.github\//, 'CI configuration'],
  [/^scripts\/(?!(install-fallback|with-node-headers)\.js$)/, 'dev-only scripts'],
  [/^node_modules\//, 'node_modules'],
  [/^coverage\//, 'coverage reports'],
  [/(^|\/)\.vitest-cache\//, 'test cache'],
  [/\.(o|a|obj|tgz|log)$/, 'build or pack junk'],
  [/(^|\/)(test_[^/]*|[^/]*_test)$/, 'core test binaries'],
  [/^(tsconfig[^/]*\.json|vitest\.config\.[mc]?[jt]s|biome\.json|\.clang-format|\.gitignore|package-lock\.json)$/, 'dev configuration'],
];

function listDir(dir, filter) {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs)
    .filter(filter)
    .map((f) => `${dir}/${f}`);
}

/**
 * The problems with a packed file list (paths relative to the package root).
 * @param {string[]} files
 * @param {{ requirePrebuilds?: boolean }} [options]
 * @returns {string[]}
 */
function checkFiles(files, options = {}) {
  const have = new Set(files);
  const problems = [];
  const need = (file, why) => {
    if (!have.has(file)) problems.push(`missing ${file} (${why})`);
  };
  need('package.json', 'the manifest');
  need('README.md', 'the docs npm shows');
  need('binding.gyp', 'compiling where no prebuild fits');
  need('bin/dmacopy.js', 'the CLI');
  need('dist/index.js', 'the CommonJS entry');
  need('dist/index.d.ts', 'the types');
  need('dist/index.mjs', 'the ES module entry');
  need('dist/index.d.mts', 'the ES module types');
  need('examples/snapshot-service/server.js', 'the service `dmacopy bench --service` runs');
  need('LICENSE', 'the license text the MIT license asks to ship');
  // The README links to docs/ and shows its charts: they must resolve in an installed package.
  for (const f of listDir('docs', (n) => /\.(md|svg)$/.test(n))) need(f, 'the README links to it');
  if (fs.existsSync(path.join(ROOT, 'CHANGELOG.md'))) need('CHANGELOG.md', 'the changelog');
  // Every compiled module has its declaration file.
  for (const f of files) {
    if (/^dist\/.*\.js$/.test(f) && !have.has(f.replace(/\.js$/, '.d.ts')))
      problems.push(`missing ${f.replace(/\.js$/, '.d.ts')} (types of ${f})`);
  }
  // Every native source binding.gyp may compile: the addon layer and the core, not their tests.
  const sources = [...listDir('native/addon', (f) => /\.(cc|h)$/.test(f)), ...listDir('native/core', (f) => /\.(cc|h)$/.test(f))];
  if (sources.length === 0) problems.push('no native sources found in the repository to compare with');
  for (const s of sources) need(s, 'compiling where no prebuild fits');
  // A prebuild for this platform, named as prebuildify --napi --tag-libc names it.
  const prebuilds = files.filter((f) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(f));
  if (options.requirePrebuilds && prebuilds.length === 0)
    problems.push('missing prebuilds/linux-x64/*.node (run `npm run prebuilds`, or pack with scripts enabled)');
  for (const f of files) {
    for (const [re, why] of FORBIDDEN) {
      if (re.test(f)) {
        problems.push(`unexpected ${f} (${why})`);
        break;
      }
    }
  }
  return problems;
}

/** Files `npm pack` would include, without running pack scripts. */
function dryRunFiles(cwd = ROOT) {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  const [info] = JSON.parse(out);
  return { files: info.files.map((f) => f.path), size: info.size, unpackedSize: info.unpackedSize };
}

/** Files inside a packed tarball (their `package/` prefix removed). */
function tarballFiles(tarball) {
  const out = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return out
    .split('\n')
    .filter((l) => l && !l.endsWith('/'))
    .map((l) => l.replace(/^package\//, ''));
}

function main(argv) {
  const json = argv.includes('--json');
  const t = argv.indexOf('--tarball');
  const tarball = t >= 0 ? argv[t + 1] : undefined;
  if (!tarball && !fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    console.error('check-pack: dist/ is not built: run `npm run build:ts` first');
    return 1;
  }
  const listed = tarball ? { files: tarballFiles(tarball) } : dryRunFiles();
  const problems = checkFiles(listed.files, { requirePrebuilds: Boolean(tarball) || argv.includes('--require-prebuilds') });
  if (json) {
    console.log(JSON.stringify({ ...listed, problems }, null, 2));
  } else {
    const size = listed.size
      ? `, ${(listed.size / 1024).toFixed(0)} KiB packed, ${(listed.unpackedSize / 1024).toFixed(0)} KiB unpacked`
      : '';
    console.log(`check-pack: ${listed.files.length} files${size}`);
    for (const p of problems) console.log(`  ${p}`);
    console.log(problems.length === 0 ? 'check-pack: ok' : `check-pack: ${problems.length} problem(s)`);
  }
  return problems.length === 0 ? 0 : 1;
}

module.exports = { checkFiles, dryRunFiles, tarballFiles, FORBIDDEN };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
