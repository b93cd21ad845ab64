// A host where the native addon cannot load (not Linux, not x86-64, no prebuild and no compiler)
// must still get a working CPU path with one clear warning, never a crash at require(). Each case
// runs in a child process, since a loaded addon cannot be unloaded.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DIST, ROOT } from '../helpers';

// Copies in both forms, sync and async, through the module-level copyBatch and two engines, and
// reports what it saw: warnings, stats, and how the device backends refuse.
const SCRIPT = `
  const warnings = [];
  process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
  const d = require(process.env.DMACOPY_DIST);
  (async () => {
    const out = { loadError: d.nativeLoadError()?.message ?? null, warningsAtRequire: warnings.length };
    const src = Buffer.alloc(1 << 20);
    for (let i = 0; i < src.length; i++) src[i] = (i * 131 + 7) & 0xff;
    const a = Buffer.alloc(src.length), b = Buffer.alloc(src.length), c = Buffer.alloc(src.length);
    const r1 = await d.copyBatch(a, src, { folioSize: 4096 });
    const engine = await d.openEngine({ backend: 'cpu' });
    const r2 = await engine.copyBatch([b.subarray(0, 4096), b.subarray(4096)], [src.subarray(0, 4096), src.subarray(4096)]);
    const r3 = engine.copyBatchSync(c, src, { folioSize: 65536 });
    const auto = await d.openEngine();
    await auto.copyBatch(Buffer.alloc(16), Buffer.alloc(16));
    out.copied = a.equals(src) && b.equals(src) && c.equals(src);
    out.reports = [r1.backend, r2.backend, r3.backend, r1.bytes, r2.folios, r3.folios];
    out.stats = { jsFallback: engine.stats().jsFallback, autoBackend: auto.stats().backend, autoJs: auto.stats().jsFallback, bytes: engine.stats().bytes };
    out.rejections = {};
    for (const backend of ['emulated', 'dsa']) {
      out.rejections[backend] = await d.openEngine({ backend }).then(() => 'opened', (e) => e.code + ' ' + e.name);
    }
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    out.warnings = warnings;
    await engine.close();
    await auto.close();
    console.log(JSON.stringify(out));
  })().catch((e) => { console.error(e); process.exit(2); });
`;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-nonative-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface ChildResult {
  loadError: string | null;
  warningsAtRequire: number;
  copied: boolean;
  reports: unknown[];
  stats: Record<string, unknown>;
  rejections: Record<string, string>;
  warnings: { code: string; message: string }[];
}

function run(env: Record<string, string>, dist = DIST) {
  const r = spawnSync(process.execPath, ['-e', SCRIPT], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, DMACOPY_NATIVE_PATH: '', ...env, DMACOPY_DIST: dist },
  });
  expect(r.status, r.stderr).toBe(0);
  return { out: JSON.parse(r.stdout) as ChildResult, stderr: r.stderr };
}

function expectJsFallback(out: ChildResult, stderr: string) {
  expect(out.loadError).toEqual(expect.any(String));
  expect(out.warningsAtRequire).toBe(0); // require() itself is silent
  expect(out.copied).toBe(true);
  expect(out.reports).toEqual(['cpu', 'cpu', 'cpu', 1 << 20, 2, 16]);
  expect(out.stats).toEqual({ jsFallback: true, autoBackend: 'cpu', autoJs: true, bytes: 2 << 20 });
  expect(out.rejections).toEqual({
    emulated: 'ERR_DMACOPY_BACKEND_UNAVAILABLE DmacopyError',
    dsa: 'ERR_DMACOPY_BACKEND_UNAVAILABLE DmacopyError',
  });
  // Exactly one warning, with a code, however many engines were opened.
  expect(out.warnings).toHaveLength(1);
  expect(out.warnings[0]?.code).toBe('DMACOPY_NO_NATIVE');
  expect(out.warnings[0]?.message).toContain('copies run in JavaScript');
  expect(stderr.match(/DMACOPY_NO_NATIVE/g)).toHaveLength(1);
}

describe('without the native addon', () => {
  it('DMACOPY_NATIVE_PATH naming a missing file: CPU path in JavaScript, one warning', () => {
    const { out, stderr } = run({ DMACOPY_NATIVE_PATH: '/nonexistent/dmacopy.node' });
    expectJsFallback(out, stderr);
    expect(out.loadError).toContain('/nonexistent/dmacopy.node');
  });

  it('the stub addon of an unsupported platform (native/addon/unsupported.cc): its reason is in the warning', () => {
    // The stub exports only { unsupported }: a CommonJS module of the same shape stands in for it.
    const stub = path.join(tmp, 'unsupported-stub.js');
    fs.writeFileSync(stub, 'module.exports = { unsupported: "dmacopy\'s native engine supports Linux on x86-64 only" };\n');
    const { out, stderr } = run({ DMACOPY_NATIVE_PATH: stub });
    expectJsFallback(out, stderr);
    expect(out.warnings[0]?.message).toContain('supports Linux on x86-64 only');
  });

  it('an installed package with no prebuild that fits and no build/: node-gyp-build finds nothing, the JS path runs', () => {
    // The layout of an install where `node-gyp-build` found no prebuild and the compile failed:
    // dist/ and package.json, no build/, no prebuilds/.
    const pkg = path.join(tmp, 'node_modules', 'dmacopy');
    fs.mkdirSync(pkg, { recursive: true });
    fs.cpSync(path.join(ROOT, 'dist'), path.join(pkg, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
    for (const dep of ['node-gyp-build']) {
      fs.cpSync(path.join(ROOT, 'node_modules', dep), path.join(tmp, 'node_modules', dep), { recursive: true });
    }
    const { out, stderr } = run({ PREBUILDS_ONLY: '1' }, path.join(pkg, 'dist', 'index.js'));
    expectJsFallback(out, stderr);
    expect(out.loadError).toMatch(/No native build was found/);
  });
});
