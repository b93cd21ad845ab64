// `dmacopy info` on every fixture sysfs tree and on an empty root: the CLI's JSON agrees with
// listDevices()/listDmaChannels() on the same tree, the text names every queue and every reason,
// and 'auto' is predicted from the usable queues. Submission-path and capability logic is unit-tested.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatInfo, gatherInfo, readCapSysRawio, readCpuFeatures, submissionFor } from '../../lib/cli/commands/info';
import { currentNumaNode } from '../../lib/engine/backends';
import { listDevices, selectQueues } from '../../lib/host/discovery';
import { listDmaChannels } from '../../lib/host/dma-channels';
import { FIXTURES, ROOT } from '../helpers';

const FIX = path.join(FIXTURES, 'sysfs');
const BIN = path.join(ROOT, 'bin', 'dmacopy.js');
const SHAPES = fs
  .readdirSync(FIX)
  .filter((d) => fs.existsSync(path.join(FIX, d, 'sys')))
  .sort();
const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const e = { ...process.env, ...env };
  for (const k of ['DMACOPY_SYSFS_ROOT', 'DMACOPY_DEV_ROOT']) if (!(k in env)) delete e[k];
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: e });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function roots(shape: string) {
  const devRoot = path.join(FIX, shape, 'dev');
  return { sysfsRoot: path.join(FIX, shape, 'sys'), devRoot: fs.existsSync(devRoot) ? devRoot : path.join(FIX, shape, 'no-dev') };
}

describe('dmacopy info --json on every fixture tree', () => {
  it('has fixtures to run on', () => expect(SHAPES.length).toBeGreaterThanOrEqual(10));
  for (const shape of SHAPES) {
    it(shape, () => {
      const r = roots(shape);
      const res = cli(['info', '--json', '--sysfs-root', r.sysfsRoot, '--dev-root', r.devRoot]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(0);
      const info = JSON.parse(res.stdout);
      // Same answer as the library on the same tree (the child is root here, so access checks pass in both).
      expect(info.devices).toEqual(JSON.parse(JSON.stringify(listDevices(r))));
      expect(info.dmaChannels).toEqual(JSON.parse(JSON.stringify(listDmaChannels({ sysfsRoot: r.sysfsRoot }))));
      const usable = selectQueues(listDevices(r), { numaNode: currentNumaNode(r.sysfsRoot), spread: false }).map((q) => q.name);
      expect(info.submission.length).toBe(info.devices.flatMap((d: { queues: unknown[] }) => d.queues).length);
      if (info.native.loaded) {
        expect(info.auto.backend).toBe(usable.length > 0 ? 'dsa' : 'cpu');
        if (usable.length > 0) expect(info.auto.queues).toEqual(usable);
        else expect(info.auto.channels).toBeGreaterThanOrEqual(1);
      }
    });
  }

  it('honours DMACOPY_SYSFS_ROOT and DMACOPY_DEV_ROOT', () => {
    const r = roots('spr-4dev');
    const viaEnv = JSON.parse(cli(['info', '--json'], { DMACOPY_SYSFS_ROOT: r.sysfsRoot, DMACOPY_DEV_ROOT: r.devRoot }).stdout);
    const viaFlags = JSON.parse(cli(['info', '--json', '--sysfs-root', r.sysfsRoot, '--dev-root', r.devRoot]).stdout);
    expect(viaEnv.devices).toEqual(viaFlags.devices);
    expect(viaEnv.sysfsRoot).toBe(r.sysfsRoot);
    expect(viaEnv.devices.length).toBe(4);
  });
});

describe('dmacopy info text', () => {
  for (const shape of SHAPES) {
    it(`${shape}: names every queue, every unusable queue's reason and remedy, and what auto uses`, () => {
      const r = roots(shape);
      const info = gatherInfo({ ...r, cpuThreads: 3, nativeLoaded: true });
      const text = formatInfo(info);
      for (const d of info.devices) {
        for (const q of d.queues) {
          expect(text).toContain(q.name);
          if (!q.usable) {
            expect(text).toContain(q.reason as string);
            expect(text).toContain(q.remedy as string);
          }
        }
      }
      for (const c of info.dmaChannels) expect(text).toContain(c.name);
      expect(text).toMatch(
        info.auto.backend === 'dsa' ? /backend 'auto' will use: dsa, \d+ queues?/ : /backend 'auto' will use: cpu, 3 threads/,
      );
      expect(text).toMatch(/CPU features: MOVDIR64B (yes|no), ENQCMD (yes|no), WAITPKG (yes|no)/);
    });
  }

  it('an empty root: says plainly there is no DSA and names what auto uses', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-info-'));
    tmp.push(empty);
    const res = cli(['info', '--sysfs-root', empty, '--dev-root', empty]);
    expect(res.status).toBe(0);
    expect(res.stdout).toContain(`Intel DSA: none under ${empty}: no devices under ${path.join(empty, 'bus/dsa/devices')}`);
    expect(res.stdout).toMatch(/backend 'auto' will use: cpu, \d+ threads? \(native multi-threaded copy\)/);
    expect(res.stdout).toContain('No kernel dmaengine channels');
    const json = JSON.parse(cli(['info', '--json', '--sysfs-root', empty]).stdout);
    expect(json.devices).toEqual([]);
    expect(json.auto).toMatchObject({ backend: 'cpu', jsFallback: false });
  });

  it('a missing native addon: auto is the JavaScript copy', () => {
    const info = gatherInfo({ sysfsRoot: roots('spr-4dev').sysfsRoot, devRoot: roots('spr-4dev').devRoot, nativeLoaded: false });
    expect(info.auto).toMatchObject({ backend: 'cpu', jsFallback: true });
    expect(formatInfo(info)).toContain("backend 'auto' will use: cpu (JavaScript copy on the calling thread)");
  });
});

describe('submission path, CPU features, CAP_SYS_RAWIO', () => {
  const all = { movdir64b: true, enqcmd: true, waitpkg: true, source: 'x' };
  const none = { movdir64b: false, enqcmd: false, waitpkg: false, source: 'x' };
  const dq = { name: 'wq0.0', mode: 'dedicated' as const, usable: true };
  const sq = { name: 'wq0.1', mode: 'shared' as const, usable: true };

  it('portal only with CAP_SYS_RAWIO and the instruction of the queue mode', () => {
    expect(submissionFor(dq, all, true)).toMatchObject({ path: 'portal', instruction: 'MOVDIR64B' });
    expect(submissionFor(sq, all, true)).toMatchObject({ path: 'portal', instruction: 'ENQCMD' });
    expect(submissionFor(dq, all, false)).toMatchObject({ path: 'write' });
    expect(submissionFor(dq, all, false).why).toMatch(/CAP_SYS_RAWIO.*EPERM/);
    expect(submissionFor(dq, all, null).path).toBe('write');
    expect(submissionFor(sq, { ...all, enqcmd: false }, true)).toMatchObject({ path: 'write' });
    expect(submissionFor(sq, { ...all, enqcmd: false }, true).why).toContain('lacks ENQCMD');
    expect(submissionFor(dq, { ...none, enqcmd: true }, true).why).toContain('lacks MOVDIR64B');
    expect(submissionFor({ name: 'wq0.2', mode: 'unknown', usable: false }, all, true).path).toBe('write');
  });

  it('reads CapEff bit 17 and cpuinfo flags; unreadable files are not a crash', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-proc-'));
    tmp.push(dir);
    const st = path.join(dir, 'status');
    fs.writeFileSync(st, 'Name:\tnode\nCapEff:\t0000000000020000\n');
    expect(readCapSysRawio(st)).toBe(true);
    fs.writeFileSync(st, 'CapEff:\t000001fffffdffff\n');
    expect(readCapSysRawio(st)).toBe(false);
    fs.writeFileSync(st, 'CapEff:\tgarbage\n');
    expect(readCapSysRawio(st)).toBeNull();
    expect(readCapSysRawio(path.join(dir, 'none'))).toBeNull();
    const ci = path.join(dir, 'cpuinfo');
    fs.writeFileSync(ci, 'processor\t: 0\nflags\t\t: fpu sse2 movdiri movdir64b enqcmd avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n');
    expect(readCpuFeatures(ci)).toEqual({ movdir64b: true, enqcmd: true, waitpkg: false, source: ci });
    expect(readCpuFeatures(path.join(dir, 'none'))).toMatchObject({ movdir64b: false, source: null });
    const info = gatherInfo({ ...roots('spr-4dev'), cpuinfoPath: ci, statusPath: path.join(dir, 'none') });
    expect(info.capSysRawio).toBeNull();
    expect(info.submission.every((s) => s.path === 'write')).toBe(true);
    fs.writeFileSync(st, 'CapEff:\t0000000000020000\n');
    const withCap = gatherInfo({ ...roots('spr-4dev'), cpuinfoPath: ci, statusPath: st });
    expect(withCap.submission.find((s) => s.queue === 'wq0.0')).toMatchObject({ path: 'portal', instruction: 'MOVDIR64B' });
    expect(withCap.submission.find((s) => s.queue === 'wq0.1')).toMatchObject({ path: 'portal', instruction: 'ENQCMD' });
    expect(formatInfo(withCap)).toMatch(/wq0\.0\s+portal \(MOVDIR64B\)/);
  });
});

describe('dmacopy info usage errors', () => {
  it('unknown option: dmacopy: message (ERR_DMACOPY_INVALID_ARG), exit 2, nothing on stdout', () => {
    const r = cli(['info', '--bogus']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(/^dmacopy: unknown option '--bogus'.*\(ERR_DMACOPY_INVALID_ARG\)$/);
  });
  it('a sysfs root that is a file: ERR_DMACOPY_SYSFS, exit 2', () => {
    const r = cli(['info', '--json', '--sysfs-root', BIN]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(/^dmacopy: .*\(ERR_DMACOPY_SYSFS\)$/);
  });
});
