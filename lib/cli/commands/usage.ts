// Makes commander's own usage errors (unknown option, bad option value, excess argument) take the
// CLI's error path: `dmacopy: message (ERR_DMACOPY_INVALID_ARG)` on stderr, exit code 2 (main()).

import fs from 'node:fs';
import type { Command } from 'commander';
import { DmacopyError, DmacopyTypeError } from '../../errors';

export function strictUsage(cmd: Command): Command {
  return cmd
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => {} })
    .exitOverride((err) => {
      if (err.exitCode === 0) return; // --help, --version: commander exits 0 after this returns
      // No command given: commander printed the help and signals it with its own code.
      if (err.code === 'commander.help')
        throw new DmacopyTypeError(
          'ERR_DMACOPY_INVALID_ARG',
          'no command given, or one it does not know: run one of the commands listed above',
        );
      const message = err.message.replace(/^error: /, '');
      const where = cmd.parent ? `dmacopy ${cmd.name()}` : 'dmacopy';
      throw new DmacopyTypeError('ERR_DMACOPY_INVALID_ARG', `${message} (see \`${where} --help\`)`);
    });
}

/** Sets the discovery roots for this process, so discovery, the engine's 'auto' and 'dsa' see the same tree. */
export function applyRoots(o: { sysfsRoot?: string; devRoot?: string }): void {
  // An empty root would silently mean the real /sys or /dev: say so instead.
  for (const [flag, v] of [
    ['--sysfs-root', o.sysfsRoot],
    ['--dev-root', o.devRoot],
  ] as const) {
    if (v !== undefined && v.trim() === '')
      throw new DmacopyTypeError('ERR_DMACOPY_INVALID_ARG', `${flag} must name a directory, got an empty string`);
  }
  if (o.sysfsRoot !== undefined) process.env.DMACOPY_SYSFS_ROOT = o.sysfsRoot;
  if (o.devRoot !== undefined) process.env.DMACOPY_DEV_ROOT = o.devRoot;
  // A sysfs root someone named (flag or environment) that does not exist is a typo, not a host
  // without DSA: the library reads a missing tree as empty, and the report would say "none". (A
  // missing dev root needs no such check: every queue then names the node it did not find.)
  const sysfs = process.env.DMACOPY_SYSFS_ROOT;
  if (sysfs !== undefined && sysfs !== '' && !fs.existsSync(sysfs)) {
    throw new DmacopyError(
      'ERR_DMACOPY_SYSFS',
      `--sysfs-root / DMACOPY_SYSFS_ROOT names ${sysfs}, which does not exist: point it at the directory standing for /sys`,
      { path: sysfs, errno: 'ENOENT' },
    );
  }
}

/**
 * `--paths` of either bench: every entry must start at least one of `names`, or the run would
 * measure nothing for it and still pass (a typo once passed --check-targets).
 */
export function checkPathPrefixes(entries: readonly string[], names: readonly string[], what: string): void {
  const bad = entries.filter((p) => p === '' || !names.some((n) => n.startsWith(p)));
  if (bad.length > 0)
    throw new DmacopyTypeError(
      'ERR_DMACOPY_INVALID_ARG',
      `--paths ${bad.map((b) => JSON.stringify(b)).join(', ')}: no such ${what} (${names.join('; ')}; a prefix selects every one it starts)`,
    );
}
