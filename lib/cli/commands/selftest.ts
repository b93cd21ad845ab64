// `dmacopy selftest`: random batches with guard bytes, dmatest-style verification (lib/cli/selftest.ts).
// Exit code 1 on any mismatch or failed batch; the seed is printed so a failure replays.
import { type Command, InvalidArgumentError } from 'commander';
import { invalidArg } from '../../errors';
import type { Backend, EmulatorFaults } from '../../types';
import { formatSelftest, parseFaults, runSelftest } from '../selftest';
import { positiveInt } from './format';
import { applyRoots, strictUsage } from './usage';

interface SelftestCliOptions {
  backend: string;
  batches: number;
  seed?: number;
  faults?: EmulatorFaults;
  maxFolios?: number;
  maxFolioBytes?: number;
  timeoutMs?: number;
  channels?: number;
  sysfsRoot?: string;
  devRoot?: string;
  json?: boolean;
}

function seedArg(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('--seed must be a non-negative integer');
  return n;
}

/** A hung descriptor's delay when --faults names hang without hangMs (the library's 0 means forever). */
const SELFTEST_HANG_MS = 20;

function faultsArg(value: string): EmulatorFaults {
  let faults: EmulatorFaults;
  try {
    faults = parseFaults(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  // A hang that never ends is a wedged device, whose batches reject by design: asked for with
  // hangMs=0 only, so that `hang=0.02` tests what a selftest can pass, a slow descriptor.
  if (faults.hang !== undefined && faults.hangMs === undefined) faults.hangMs = SELFTEST_HANG_MS;
  return faults;
}

export function register(program: Command): void {
  const cmd = program
    .command('selftest')
    .description('copy random batches (sizes, offsets, alignments) into guarded destinations and verify every byte')
    .option('--backend <name>', 'auto | cpu | emulated | dsa', 'auto')
    .option('--batches <n>', 'batches to copy', positiveInt('--batches'), 100)
    .option('--seed <n>', 'seed of every random choice (default: random, printed)', seedArg)
    .option(
      '--faults <list>',
      `backend 'emulated': injected faults, e.g. pageFault=0.05,error=0.01,retry=0.02; keys: pageFault, backward, error, hang, hangMs (default ${SELFTEST_HANG_MS} here; 0: never, a wedged device, whose batches reject with ERR_DMACOPY_DEVICE_WEDGED), lostRecord, late, lateMs, retry, disable, realPageFaults (1 or 0)`,
      faultsArg,
    )
    .option('--max-folios <n>', 'most folios in one batch', positiveInt('--max-folios'))
    .option('--max-folio-bytes <n>', 'largest folio in bytes', positiveInt('--max-folio-bytes'))
    .option('--timeout-ms <n>', 'deadline per work on a device before the CPU finishes it', positiveInt('--timeout-ms'))
    .option('--channels <n>', 'engine channels (queues or threads)', positiveInt('--channels'))
    .option('--sysfs-root <dir>', 'directory standing for /sys (default: $DMACOPY_SYSFS_ROOT or /sys)')
    .option('--dev-root <dir>', 'directory standing for /dev (default: $DMACOPY_DEV_ROOT or /dev)')
    .option('--json', 'print the result as JSON')
    .action(async (o: SelftestCliOptions) => {
      if (!['auto', 'cpu', 'emulated', 'dsa'].includes(o.backend)) {
        throw invalidArg('--backend', `--backend must be auto, cpu, emulated or dsa, got '${o.backend}'`);
      }
      if (o.faults !== undefined && o.backend !== 'emulated')
        throw invalidArg('--faults', '--faults needs --backend emulated (the software device injects them)');
      applyRoots(o);
      const r = await runSelftest({
        backend: o.backend as Backend,
        batches: o.batches,
        seed: o.seed,
        faults: o.faults,
        maxFolios: o.maxFolios,
        maxFolioBytes: o.maxFolioBytes,
        timeoutMs: o.timeoutMs,
        channels: o.channels,
      });
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else process.stdout.write(formatSelftest(r));
      process.exitCode = r.ok ? 0 : 1;
    });
  strictUsage(cmd);
}
