// The `dmacopy` command. Each subcommand lives in lib/commands/ and is a thin wrapper over the
// library's public API, so what operators run is what services call.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import * as bench from './commands/bench';
import * as copyDemo from './commands/copy-demo';
import * as dmatest from './commands/dmatest';
import * as info from './commands/info';
import * as selftest from './commands/selftest';
import * as setup from './commands/setup';
import { strictUsage } from './commands/usage';

/** Every subcommand module exports register(program). */
const COMMANDS: { register(program: Command): void }[] = [copyDemo, info, setup, dmatest, selftest, bench];

/** The version in the package's package.json (dist/cli/ sits two levels below it). */
function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('dmacopy')
    .description('Batch memory-folio copies through Intel DSA or a multi-threaded native CPU copy')
    .version(packageVersion(), '-V, --version', 'print the version of dmacopy');
  // Unknown subcommands and top-level flags take the same typed error path as subcommand misuse.
  strictUsage(program);
  for (const c of COMMANDS) c.register(program);
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  // A reader that went away (`| head -1`) ends the output, not the command: setup must not stop
  // between two accel-config steps, and the exit code stays the command's own.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    console.error(`dmacopy: ${e.message}${e.code ? ` (${e.code})` : ''}`);
    process.exitCode = 2;
  }
}
