// runSelftest(): passes on the CPU and the software device (with faults), replays from its seed,
// and catches every kind of corruption it claims to: destination, guard, source.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFaults, runSelftest } from '../../lib/cli/selftest';
import { ROOT } from '../helpers';

const BIN = path.join(ROOT, 'bin', 'dmacopy.js');
const small = { batches: 15, maxFolios: 12, maxFolioBytes: 32 * 1024 };

describe('runSelftest', () => {
  it('cpu: passes, counts batches, folios and bytes', async () => {
    const r = await runSelftest({ backend: 'cpu', seed: 1, ...small });
    expect(r).toMatchObject({ ok: true, backend: 'cpu', batches: 15, errors: 0, mismatches: { destination: 0, guard: 0, source: 0 } });
    expect(r.folios).toBeGreaterThanOrEqual(15);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.replay).toContain('--seed 1');
  });

  it('emulated with faults: passes, fallbacks are counted, the same seed replays the same batches', async () => {
    const faults = { pageFault: 0.1, error: 0.05, retry: 0.05 };
    const a = await runSelftest({ backend: 'emulated', seed: 42, faults, ...small, batches: 25 });
    expect(a.ok).toBe(true);
    expect(a.backend).toBe('emulated');
    expect(a.fallbacks.error + a.fallbacks.pageFault).toBeGreaterThan(0);
    expect(a.offloadedBytes).toBeGreaterThan(0);
    expect(a.replay).toBe(
      'dmacopy selftest --backend emulated --batches 25 --seed 42 --max-folios 12 --max-folio-bytes 32768 --faults pageFault=0.1,error=0.05,retry=0.05',
    );
    const b = await runSelftest({ backend: 'emulated', seed: 42, faults, ...small, batches: 25 });
    expect({ bytes: b.bytes, folios: b.folios, sync: b.syncBatches, region: b.regionBatches }).toEqual({
      bytes: a.bytes,
      folios: a.folios,
      sync: a.syncBatches,
      region: a.regionBatches,
    });
  });

  it('detects a wrong destination byte, a changed guard byte and a changed source byte', async () => {
    const dst = await runSelftest({
      backend: 'cpu',
      seed: 3,
      ...small,
      batches: 3,
      tamper: (b, d) => {
        if (b === 1) d[d.length - 64 - 1] ^= 0xff;
      }, // the last byte of the last destination
    });
    expect(dst.ok).toBe(false);
    expect(dst.mismatches.destination).toBe(1);
    expect(dst.failures[0]).toMatchObject({ batch: 1, kind: 'destination', bytes: 1 });

    const guard = await runSelftest({
      backend: 'cpu',
      seed: 3,
      ...small,
      batches: 3,
      tamper: (b, d) => {
        if (b === 2) {
          d[0] ^= 1;
          d[d.length - 1] ^= 1;
        }
      },
    });
    expect(guard.ok).toBe(false);
    expect(guard.mismatches.guard).toBe(2);
    expect(guard.failures.map((f) => f.kind).sort()).toEqual(['guard-after', 'guard-before']);

    const src = await runSelftest({
      backend: 'cpu',
      seed: 3,
      ...small,
      batches: 3,
      tamper: (b, _d, s) => {
        if (b === 0) s[0] ^= 1;
      },
    });
    expect(src.ok).toBe(false);
    expect(src.mismatches.source).toBe(1);
  });

  it('rejects bad options with typed errors', async () => {
    await expect(runSelftest({ backend: 'cpu', faults: { error: 0.1 } })).rejects.toMatchObject({ code: 'ERR_DMACOPY_INVALID_ARG' });
    await expect(runSelftest({ backend: 'nope' as never })).rejects.toMatchObject({ code: 'ERR_DMACOPY_INVALID_ARG' });
    await expect(runSelftest({ batches: 0 })).rejects.toMatchObject({ code: 'ERR_DMACOPY_OUT_OF_RANGE' });
    await expect(runSelftest({ backend: 'emulated', faults: { error: 2 } })).rejects.toMatchObject({ code: 'ERR_DMACOPY_OUT_OF_RANGE' });
    expect(parseFaults('pageFault=0.05, error=0.01,lateMs=5')).toEqual({ pageFault: 0.05, error: 0.01, lateMs: 5 });
    expect(() => parseFaults('pageFault')).toThrow(/name=value/);
    expect(() => parseFaults('nope=1')).toThrow(/unknown fault/);
    // Every fault the emulator has can be asked for (hangMs, lostRecord and realPageFaults once could not).
    expect(parseFaults('hang=0.1,hangMs=5,lostRecord=0.01,realPageFaults=1')).toEqual({
      hang: 0.1,
      hangMs: 5,
      lostRecord: 0.01,
      realPageFaults: true,
    });
    expect(() => parseFaults('realPageFaults=2')).toThrow(/1 \(on\) or 0 \(off\)/);
  });
});

describe('dmacopy selftest CLI', () => {
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, 'selftest', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  it('--backend emulated --faults … --json: valid JSON, exit 0, seed reported', () => {
    const r = cli([
      '--backend',
      'emulated',
      '--batches',
      '10',
      '--seed',
      '9',
      '--max-folios',
      '8',
      '--faults',
      'pageFault=0.05,error=0.01',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ ok: true, seed: 9, batches: 10, backend: 'emulated' });
  });
  it('text output prints the seed and the replay line', () => {
    const r = cli(['--backend', 'cpu', '--batches', '3', '--max-folios', '4']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^seed\s+\d+$/m);
    expect(r.stdout).toMatch(/^result\s+PASS$/m);
    expect(r.stdout).toMatch(/^replay\s+dmacopy selftest --backend cpu --batches 3 --seed \d+/m);
  });
  it('bad usage: exit 2, dmacopy: message (CODE), nothing on stdout', () => {
    for (const args of [
      ['--batches', '0'],
      ['--faults', 'error=0.1'],
      ['--backend', 'gpu'],
      ['--seed', '-1'],
      ['--backend', 'emulated', '--faults', 'x=1'],
    ]) {
      const r = cli(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim()).toMatch(/^dmacopy: .*\(ERR_DMACOPY_INVALID_ARG\)$/);
    }
  });
});
