// `node scripts/bench-service.js` / `dmacopy bench --service`, short: the example service under
// autocannon for each copy strategy. Asserts completion, correctness (every snapshot equals the
// live pool byte for byte), the JSON shape, the table and the chart; never timing.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ServiceReport } from '../../lib/cli/bench/service-run';
import { serviceSettings } from '../../lib/cli/bench/service-settings';
import { formatServiceReport } from '../../lib/cli/bench/service-table';
import { DEFAULT_CPU_NICE } from '../../lib/defaults';
import { ROOT } from '../helpers';

const SCRIPT = path.join(ROOT, 'scripts', 'bench-service.js');

function run(args: string[], nodeArgs: string[] = []) {
  return spawnSync(process.execPath, [...nodeArgs, SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
}

describe('bench --service', () => {
  it('runs every strategy against the example service and reports verified points as JSON and a chart', () => {
    const svg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-svc-')), 'service.svg');
    const r = run(['--short', '--duration', '1', '--pool-mib', '8', '--connections', '2', '--json', '--svg', svg]);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as ServiceReport;
    expect(report.ok).toBe(true);
    expect(report.failures).toEqual([]);
    expect(report.points.map((p) => p.strategy)).toEqual(['none', 'buffer-copy', 'copy-batch', 'copy-batch-sync', 'worker']);
    for (const p of report.points) {
      expect(p.verified, p.setting).toBe(true);
      expect(p.request.requests, p.setting).toBeGreaterThan(0);
      expect(p.request.errors, p.setting).toBe(0);
      for (const v of [p.request.p50, p.request.p99, p.request.max, p.request.reqPerSec, p.eventLoopDelay.p50, p.eventLoopDelay.p99])
        expect(Number.isFinite(v), p.setting).toBe(true);
      expect(p.request.p50).toBeLessThanOrEqual(p.request.p99);
      expect(p.request.p99).toBeLessThanOrEqual(p.request.max);
      expect(p.reps).toBe(1);
      expect(p.p99s).toEqual([p.request.p99]);
      expect(p.gbpsSamples).toEqual([p.copyGbps]);
      if (p.strategy === 'none') {
        expect(p.copyGbps).toBe(0);
        expect(p.unloadedGbps).toBeNull();
        expect(p.copyCores).toBeNull();
      } else {
        expect(p.copies, p.setting).toBeGreaterThan(0);
        expect(p.copyGbps, p.setting).toBeGreaterThan(0);
        expect(p.unloadedGbps, p.setting).toBeGreaterThan(0);
      }
      // The copy threads' CPU time, read from /proc by the service (how much of it a 1 s point gets
      // depends on the load: test/examples/snapshot-service.test.ts checks it against work done).
      if (p.strategy !== 'none') {
        expect(p.copyCores, p.setting).toBeGreaterThanOrEqual(0);
        expect(p.unloadedCopyCores, p.setting).toBeGreaterThanOrEqual(0);
      }
    }
    expect(report.points.find((p) => p.strategy === 'copy-batch')).toMatchObject({ cpuNice: DEFAULT_CPU_NICE });
    expect(report.idleP99).toBeGreaterThan(0);
    expect(report.unloadedReferenceGbps).toBeGreaterThan(0);
    expect(report.goals.map((g) => g.setting)).toEqual(['copy-batch', 'copy-batch-sync', 'worker']);
    for (const g of report.goals)
      expect(g).toEqual({
        setting: g.setting,
        p99VsIdle: expect.any(Number),
        gbpsVsUnloaded: expect.any(Number),
        met: expect.any(Boolean),
      });
    expect(report.config).toMatchObject({ poolMib: 8, durationS: 1, connections: 2, short: true, reps: 1 });

    const chart = fs.readFileSync(svg, 'utf8');
    expect(chart).toMatch(/^<\?xml/);
    for (const p of report.points) expect(chart).toContain(`data-series="${p.setting}"`);
    expect(chart.match(/class="goal"/g)).toHaveLength(2);

    const text = formatServiceReport(report);
    for (const p of report.points) expect(text).toContain(p.setting);
    expect(text).toMatch(/req p99/);
    expect(text).toMatch(/\[(MET|NOT MET) *\] copy-batch:/);
  });

  it("measures the default with the other binding than 'auto' gives it on the host, never a duplicate point", () => {
    for (const autoBinds of [true, false]) {
      const sweep = serviceSettings(2, false, autoBinds);
      expect(new Set(sweep.map((s) => s.label)).size).toBe(sweep.length);
      const other = sweep.filter((s) => s.cpuPinning !== undefined);
      expect(other).toEqual([
        expect.objectContaining({ strategy: 'copy-batch', cpuThreads: 2, cpuNice: DEFAULT_CPU_NICE, cpuPinning: autoBinds ? 'off' : 'on' }),
      ]);
    }
    // One copy thread: nothing to bind apart.
    expect(serviceSettings(1, false, false).filter((s) => s.cpuPinning !== undefined)).toEqual([]);
  });

  it('says to install autocannon, with a typed error, when it is missing', () => {
    const hide = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-noac-')), 'hide.js');
    fs.writeFileSync(
      hide,
      `const M = require('node:module'); const r = M._resolveFilename;
       M._resolveFilename = function (req, ...a) { if (req === 'autocannon') { const e = new Error("Cannot find module 'autocannon'"); e.code = 'MODULE_NOT_FOUND'; throw e; } return r.call(this, req, ...a); };`,
    );
    const r = run(['--short', '--duration', '1'], ['-r', hide]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/npm install --save-dev autocannon/);
    expect(r.stderr).toMatch(/\(ERR_DMACOPY_MISSING_PEER\)/);
  });

  it('refuses bad service options as usage errors', () => {
    const r = run(['--duration', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--duration/);
  });
});
