// Small formatting and option-parsing helpers shared by the subcommands.
import { constants } from 'node:buffer';
import fs from 'node:fs';
import os from 'node:os';
import { InvalidArgumentError } from 'commander';

export function positiveInt(name: string) {
  return (value: string): number => {
    // Decimal digits only: Number() would also take 0x1000, 1e3, ' 12' and '0b1'.
    const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, in decimal digits`);
    return n;
  };
}

/**
 * A positive integer of MiB for a batch the bench allocates twice (a source and a destination):
 * at most one Buffer (buffer.constants.MAX_LENGTH: 4 GiB on Node 20, far more later) and a
 * quarter of this machine's memory.
 */
export function bufferMib(name: string) {
  const mib = 1024 * 1024;
  const max = Math.max(1, Math.floor(Math.min(constants.MAX_LENGTH, os.totalmem() / 4) / mib));
  return (value: string): number => {
    const n = positiveInt(name)(value);
    if (n > max)
      throw new InvalidArgumentError(
        `${name} must be from 1 to ${max} (a source and a destination of that size: at most one Buffer, and a quarter of this machine's memory), got ${n}`,
      );
    return n;
  };
}

/**
 * A progress bar hides the terminal's cursor until it stops: stop it on Ctrl-C too, then end as
 * the signal would. Returns the function that removes the handler.
 */
export function stopBarOnSigint(bar: { stop(): void } | undefined): () => void {
  if (!bar) return () => {};
  const onSigint = (): void => {
    bar.stop();
    process.off('SIGINT', onSigint);
    process.kill(process.pid, 'SIGINT');
  };
  process.on('SIGINT', onSigint);
  return () => process.off('SIGINT', onSigint);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[u]}`;
}

/**
 * Writes a bench's chart once its report is printed: a chart that cannot be written must not cost
 * the run (which may take minutes). On failure says so on stderr and sets exit code 1.
 */
export function writeChartAfterReport(file: string, render: () => string, json: boolean): void {
  try {
    fs.writeFileSync(file, render());
    if (!json) process.stdout.write(`chart written to ${file}\n`);
  } catch (err) {
    console.error(`dmacopy: the chart could not be written to ${file}: ${(err as Error).message} (the report above is complete)`);
    process.exitCode = 1;
  }
}
