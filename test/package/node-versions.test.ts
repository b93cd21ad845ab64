// Every supported Node.js version (scripts/node-matrix.js): the scripts a user writes first exit by
// themselves, copies in flight keep the process alive until they settle, and every version loads
// the one N-API build in build/Release. Also: package.json's `engines` and the README state the
// same versions as the CI matrix.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIST, ROOT } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const matrix = require('../../scripts/node-matrix.js') as { MATRIX: number[]; ensureNode(major: number): string };

// The one build every version loads: build/Release, or the build DMACOPY_NATIVE_PATH names (the
// sanitizer run of scripts/test-asan.sh points every process at its build-asan/ addon).
const BUILT = process.env.DMACOPY_NATIVE_PATH
  ? path.resolve(process.env.DMACOPY_NATIVE_PATH)
  : path.join(ROOT, 'build', 'Release', 'dmacopy.node');

// Installed (from the npm registry, into a cache outside the checkout) when missing. CI must have
// every version; elsewhere a version that cannot be installed (no registry) is skipped, saying why.
const nodes = matrix.MATRIX.map((major) => {
  try {
    return { major, bin: matrix.ensureNode(major), why: '' };
  } catch (err) {
    if (process.env.CI) throw err;
    return { major, bin: '', why: (err as Error).message };
  }
});

// What the process mapped: proves which addon file this version loaded.
const MAPPED = `
  const mapped = () => [...new Set(require('node:fs').readFileSync('/proc/self/maps', 'utf8').split('\\n')
    .filter((l) => l.endsWith('.node')).map((l) => l.slice(l.indexOf('/'))).filter((p) => /dmacopy/.test(p)))];
`;

const SCRIPTS: Record<string, string> = {
  // open, copy, close: nothing left holding the event loop.
  'openEngine, copyBatch, close (cpu)': `${MAPPED}
    const d = require(process.env.DMACOPY_DIST);
    (async () => {
      const e = await d.openEngine({ backend: 'cpu', minOffloadBytes: 0 });
      const src = Buffer.alloc(8 << 20, 7), dst = Buffer.alloc(8 << 20);
      const r = await e.copyBatch(dst, src, { folioSize: 4096 });
      await e.close();
      console.log('ok', dst.equals(src), r.bytes, JSON.stringify(mapped()));
    })();
  `,
  'openEngine, copyBatch, close (emulated)': `${MAPPED}
    const d = require(process.env.DMACOPY_DIST);
    (async () => {
      const e = await d.openEngine({ backend: 'emulated', minOffloadBytes: 0, timeoutMs: 10000 });
      const src = Buffer.alloc(8 << 20, 7), dst = Buffer.alloc(8 << 20);
      const r = await e.copyBatch(dst, src, { folioSize: 4096 });
      await e.close();
      console.log('ok', dst.equals(src), r.bytes, JSON.stringify(mapped()));
    })();
  `,
  // The default engine behind the module-level copyBatch is never closed by the user.
  'module-level copyBatch only': `${MAPPED}
    const d = require(process.env.DMACOPY_DIST);
    const src = Buffer.alloc(8 << 20, 7), dst = Buffer.alloc(8 << 20);
    d.copyBatch(dst, src, { folioSize: 4096 }).then((r) => console.log('ok', dst.equals(src), r.bytes, JSON.stringify(mapped())));
  `,
  // Nothing but the copy in flight: it alone must keep the process alive until it resolves.
  'a copy in flight keeps the process alive': `${MAPPED}
    const d = require(process.env.DMACOPY_DIST);
    d.openEngine({ backend: 'cpu', minOffloadBytes: 0 }).then((e) => {
      const src = Buffer.alloc(8 << 20, 7), dst = Buffer.alloc(8 << 20);
      e.copyBatch(dst, src, { folioSize: 4096 }).then((r) => console.log('ok', dst.equals(src), r.bytes, JSON.stringify(mapped())));
    });
  `,
};

function run(bin: string, script: string) {
  return spawnSync(bin, ['-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000, // far longer than the copy; a process that does not exit is killed and fails
    env: { ...process.env, DMACOPY_DIST: DIST },
  });
}

describe.each(nodes)('Node $major', ({ major, bin, why }) => {
  it.skipIf(bin === '')(`exits by itself after each first-use script${why ? ` (skipped: ${why})` : ''}`, () => {
    const version = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    expect(version.split('.')[0]).toBe(String(major));
    for (const [name, script] of Object.entries(SCRIPTS)) {
      const r = run(bin, script);
      expect(r.signal, `${name} on Node ${version}: killed after 30 s, it did not exit\n${r.stderr}`).toBeNull();
      expect(r.status, `${name} on Node ${version}\n${r.stderr}`).toBe(0);
      const [word, equal, bytes, mapped] = r.stdout.trim().split(' ');
      expect([word, equal, bytes], name).toEqual(['ok', 'true', String(8 << 20)]);
      // The same build/Release file under every version: one N-API build serves them all.
      expect(JSON.parse(mapped as string), name).toEqual([fs.realpathSync(BUILT)]);
      expect(r.stderr, name).toBe('');
    }
  });
});

describe('supported versions', () => {
  it("package.json's engines and the README state exactly the CI matrix", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const engines: string = pkg.engines.node;
    expect(engines).toBe(matrix.MATRIX.map((m) => `^${m}`).join(' || '));
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const line = readme.split('\n').find((l) => l.startsWith('Supported Node.js versions:'));
    expect(line, 'README has a "Supported Node.js versions:" line').toBeDefined();
    const stated = [...(line as string).matchAll(/\b(\d{2})\b/g)].map((m) => Number(m[1]));
    expect(stated).toEqual(matrix.MATRIX);
  });
});
