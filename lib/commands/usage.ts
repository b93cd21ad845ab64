// Makes commander's own usage errors (unknown option, bad option value, excess argument) take the
// CLI's error path: `dmacopy: message (ERR_DMACOPY_INVALID_ARG)` on stderr, exit code 2 (main()).
import type { Command } from 'commander';
import { DmacopyTypeError } from '../errors';

export function strictUsage(cmd: Command): Command {
  return cmd
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => {} })
    .exitOverride((err) => {
      if (err.exitCode === 0) return; // --help: commander exits 0 after this returns
      const message = err.message.replace(/^error: /, '');
      throw new DmacopyTypeError('ERR_DMACOPY_INVALID_ARG', `${message} (see \`dmacopy ${cmd.name()} --help\`)`);
    });
}

/** Sets the discovery roots for this process, so discovery, the engine's 'auto' and 'dsa' see the same tree. */
export function applyRoots(o: { sysfsRoot?: string; devRoot?: string }): void {
  if (o.sysfsRoot !== undefined) process.env.DMACOPY_SYSFS_ROOT = o.sysfsRoot;
  if (o.devRoot !== undefined) process.env.DMACOPY_DEV_ROOT = o.devRoot;
}
