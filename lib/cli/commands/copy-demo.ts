// `dmacopy copy-demo`: copy a batch, verify every byte, print the report.
import { constants as bufferConstants } from 'node:buffer';
import os from 'node:os';
import type { Command } from 'commander';
import { openEngine } from '../../engine/engine';
import { DmacopyRangeError, DmacopyTypeError } from '../../errors';
import type { Backend, CopyReport } from '../../types';
import { formatBytes, positiveInt } from './format';
import { strictUsage } from './usage';

export function formatReport(r: CopyReport): string {
  const gbps = r.elapsedNs > 0 ? r.bytes / r.elapsedNs : 0;
  return [
    `backend         ${r.backend}`,
    `bytes           ${r.bytes} (${formatBytes(r.bytes)})`,
    `folios          ${r.folios}`,
    `descriptors     ${r.descriptors}`,
    `channels        ${r.channels}`,
    `offloaded bytes ${r.offloadedBytes}`,
    `cpu bytes       ${r.cpuBytes}`,
    `fallbacks       timeout ${r.fallbacks.timeout}, error ${r.fallbacks.error}, page fault ${r.fallbacks.pageFault}, submit ${r.fallbacks.submit}`,
    `out of order    ${r.outOfOrder}`,
    `elapsed         ${(r.elapsedNs / 1e6).toFixed(2)} ms (${gbps.toFixed(2)} GB/s)`,
  ].join('\n');
}

interface CopyDemoOptions {
  sizeMib: number;
  folio: number;
  backend: Backend;
  form: 'region' | 'list';
  json?: boolean;
}

const MiB = 1024 * 1024;

/**
 * The largest --size-mib this process can run, read from the runtime and the machine: each of the
 * two buffers within Node's Buffer limit (4 GiB on Node 20, 2^53 - 1 bytes since Node 22, where
 * memory is the only real bound), and both together within this machine's memory.
 */
export function maxSizeMib(): number {
  return Math.floor(Math.min(bufferConstants.MAX_LENGTH, os.totalmem() / 2) / MiB);
}

/** Buffer.alloc* with the allocation failure (a plain RangeError) turned into the CLI's usage error. */
function allocate(size: number, unsafe: boolean): Buffer {
  try {
    return unsafe ? Buffer.allocUnsafe(size) : Buffer.alloc(size);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new DmacopyRangeError(
      'ERR_DMACOPY_OUT_OF_RANGE',
      `could not allocate the ${formatBytes(size)} buffers for --size-mib ${size / MiB} (${err.message}): choose a smaller --size-mib`,
    );
  }
}

async function copyDemo(o: CopyDemoOptions): Promise<number> {
  const size = o.sizeMib * MiB;
  const src = allocate(size, true);
  // A pattern that differs in every 4 KiB page, so a folio copied to the wrong place shows.
  for (let off = 0; off < size; off += 4) src.writeUInt32LE(((off >>> 2) * 2654435761) >>> 0, off);
  const dst = allocate(size, false);
  // Touch every destination page first, so the report times the copy, not first-touch page faults.
  dst.fill(1);
  const engine = await openEngine({ backend: o.backend });
  try {
    let report: CopyReport;
    if (o.form === 'list') {
      const n = Math.ceil(size / o.folio);
      const dsts = new Array<Buffer>(n);
      const srcs = new Array<Buffer>(n);
      for (let i = 0; i < n; i++) {
        const b = i * o.folio;
        const e = Math.min(size, b + o.folio);
        dsts[i] = dst.subarray(b, e);
        srcs[i] = src.subarray(b, e);
      }
      report = await engine.copyBatch(dsts, srcs);
    } else {
      report = await engine.copyBatch(dst, src, { folioSize: o.folio });
    }
    const verified = dst.equals(src);
    if (o.json) {
      console.log(JSON.stringify({ ...report, form: o.form, verified }, null, 2));
    } else {
      console.log(`copied ${formatBytes(size)} as ${o.form === 'list' ? 'a list of' : 'a region of'} ${formatBytes(o.folio)} folios`);
      console.log(formatReport(report));
      console.log(`verified        ${verified ? 'yes: every byte matches the source' : 'NO: the destination differs from the source'}`);
    }
    return verified ? 0 : 1;
  } finally {
    await engine.close();
  }
}

export function register(program: Command): void {
  const cmd = program.command('copy-demo');
  strictUsage(cmd)
    .description('copy a batch of folios, verify every byte and print the report')
    .option('--size-mib <n>', 'total bytes to copy, in MiB', positiveInt('--size-mib'), 256)
    .option('--folio <bytes>', 'folio size in bytes', positiveInt('--folio'), 4096)
    .option('--backend <name>', 'auto | cpu | emulated | dsa', 'auto')
    .option('--form <form>', 'region (one buffer + folioSize) or list (one view per folio)', 'region')
    .option('--json', 'print the report as JSON')
    .action(async (opts: CopyDemoOptions) => {
      if (opts.form !== 'region' && opts.form !== 'list') {
        throw new DmacopyTypeError('ERR_DMACOPY_INVALID_ARG', `--form must be region or list, got '${opts.form}'`);
      }
      const maxMib = maxSizeMib();
      if (opts.sizeMib > maxMib)
        throw new DmacopyRangeError(
          'ERR_DMACOPY_OUT_OF_RANGE',
          `--size-mib must be at most ${maxMib} (a source and a destination of that size must fit in one Buffer each and together in this machine's memory), got ${opts.sizeMib}`,
        );
      process.exitCode = await copyDemo(opts);
    });
}
