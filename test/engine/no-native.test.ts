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
  const r = runScript(SCRIPT, env, dist);
  return { out: r.out as ChildResult, stderr: r.stderr };
}

/** Runs a child script with DMACOPY_DIST set and the addon override cleared: its stdout as JSON, and its stderr. */
function runScript(script: string, env: Record<string, string>, dist = DIST): { out: unknown; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, DMACOPY_NATIVE_PATH: '', ...env, DMACOPY_DIST: dist },
  });
  expect(r.status, r.stderr).toBe(0);
  return { out: JSON.parse(r.stdout), stderr: r.stderr };
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

  it('an addon built from other sources (another ABI version): refused with a rebuild hint, the JS path runs', () => {
    // The real addon's exports, with the calling convention of another version: lib/ must not
    // call what that addon lacks (an old build/Release without openUserQueues once made 'auto'
    // quietly CPU and 'dsa' reject with a TypeError and no code).
    const stale = path.join(tmp, 'stale-abi.js');
    fs.writeFileSync(
      stale,
      `const real = require(${JSON.stringify(path.join(ROOT, 'build', 'Release', 'dmacopy.node'))});\nmodule.exports = { ...real, abiVersion: real.abiVersion - 1 };\n`,
    );
    const { out, stderr } = run({ DMACOPY_NATIVE_PATH: stale });
    expectJsFallback(out, stderr);
    expect(out.loadError).toContain('does not match this version of dmacopy');
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

// Random batches over one shared buffer, many of them overlapping, copied sync and prepared: each
// prints its outcome (the error code, or 'ok' and a checksum of the buffer). Run with and without
// the addon, the outputs must match: the native plan checks overlap, and without it the
// JavaScript path must refuse the same batches (it once copied them).
const OVERLAP_SCRIPT = `
  const d = require(process.env.DMACOPY_DIST);
  let seed = 12345;
  const rand = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  const sum = (b) => { let h = 0; for (let i = 0; i < b.length; i++) h = (Math.imul(h, 31) + b[i]) >>> 0; return h; };
  (async () => {
    const e = await d.openEngine({ backend: 'cpu' });
    const out = [];
    for (let c = 0; c < 300; c++) {
      const buf = new Uint8Array(1024).map((_, i) => (i * 7 + c) & 0xff);
      const other = new Uint8Array(1024).map((_, i) => (i * 13 + c) & 0xff);
      const view = () => { const len = 1 + rand(64); const at = rand(1024 - len); return [at, len]; };
      let dsts, srcs, opts;
      if (rand(4) === 0) {
        const len = 16 + rand(200), a = rand(1024 - len), b = rand(1024 - len);
        dsts = buf.subarray(a, a + len);
        srcs = (rand(2) ? buf : other).subarray(b, b + len);
        opts = { folioSize: 1 + rand(len) };
      } else {
        dsts = []; srcs = [];
        for (let n = 1 + rand(6); n > 0; n--) {
          const [a, len] = view();
          const b = rand(1024 - len);
          dsts.push(buf.subarray(a, a + len));
          srcs.push((rand(3) ? other : buf).subarray(b, b + len));
        }
      }
      const run = (f) => {
        const before = sum(buf);
        try { f(); return 'ok ' + sum(buf); } catch (err) { return sum(buf) === before ? err.code : 'written although refused: ' + err.code; }
      };
      out.push(run(() => e.copyBatchSync(dsts, srcs, opts)));
      out.push(run(() => { const h = e.prepare(dsts, srcs, opts); h.copySync(); h.release(); }));
    }
    console.log(JSON.stringify({ js: e.stats().jsFallback, out }));
    await e.close();
  })().catch((err) => { console.error(err); process.exit(2); });
`;

describe('overlap without the native addon', () => {
  it('the JavaScript path refuses exactly the overlapping batches the native plan refuses (300 random batches)', () => {
    const runWith = (env: Record<string, string>) => runScript(OVERLAP_SCRIPT, env).out as { js: boolean; out: string[] };
    const native = runWith({});
    const js = runWith({ DMACOPY_NATIVE_PATH: '/nonexistent/dmacopy.node' });
    expect(native.js).toBe(false);
    expect(js.js).toBe(true);
    expect(native.out.filter((o) => o === 'ERR_DMACOPY_OVERLAP').length).toBeGreaterThan(50);
    expect(native.out.filter((o) => o.startsWith('ok')).length).toBeGreaterThan(50);
    expect(js.out).toEqual(native.out);
  });
});
