// Small, defensive readers for sysfs-like trees, shared by discovery, dma-channels and dmatest.
// Nothing here throws on a bad file: a missing, unreadable, empty or binary attribute reads as undefined
// or as a value the caller can reject. Only the roots themselves are validated (ERR_DMACOPY_SYSFS).

import fs from 'node:fs';
import path from 'node:path';
import { DmacopyError, invalidArg } from '../errors';

/** The largest attribute we read: sysfs show() returns at most one page. */
const MAX_ATTR_BYTES = 4096;

export interface RootOptions {
  /** Stands for `/sys`. Default: env DMACOPY_SYSFS_ROOT, else `/sys`. */
  sysfsRoot?: string;
  /** Stands for `/dev`. Default: env DMACOPY_DEV_ROOT, else `/dev`. */
  devRoot?: string;
}

export interface ResolvedRoots {
  sysfsRoot: string;
  devRoot: string;
}

function pickRoot(value: unknown, argument: string, envName: string, fallback: string): string {
  if (value !== undefined) {
    if (typeof value !== 'string' || value.length === 0) {
      throw invalidArg(argument, `options.${argument} must be a non-empty string (a directory standing for ${fallback})`);
    }
    return value;
  }
  const env = process.env[envName];
  return env !== undefined && env.length > 0 ? env : fallback;
}

/** Resolve the `/sys` and `/dev` roots from options, then the environment, then the real paths. */
export function resolveRoots(options?: RootOptions): ResolvedRoots {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw invalidArg('options', 'options must be an object');
  }
  return {
    sysfsRoot: pickRoot(options?.sysfsRoot, 'sysfsRoot', 'DMACOPY_SYSFS_ROOT', '/sys'),
    devRoot: pickRoot(options?.devRoot, 'devRoot', 'DMACOPY_DEV_ROOT', '/dev'),
  };
}

/**
 * Check a root: a missing root is fine (returns false: nothing there); a root that exists but is not a
 * directory cannot be used (ERR_DMACOPY_SYSFS).
 */
export function checkRoot(root: string, what: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new DmacopyError(
      'ERR_DMACOPY_SYSFS',
      `Cannot use ${root} as the ${what} root (${code ?? 'error'}): point it at a readable directory.`,
      {
        path: root,
        errno: code,
        syscall: 'stat',
        cause: err,
      },
    );
  }
  if (!st.isDirectory()) {
    throw new DmacopyError(
      'ERR_DMACOPY_SYSFS',
      `The ${what} root ${root} is not a directory: point it at a directory standing for ${what === 'sysfs' ? '/sys' : '/dev'}.`,
      {
        path: root,
      },
    );
  }
  return true;
}

/**
 * Read one attribute: its text without the trailing newline, or undefined if it cannot be read.
 * sysfs attributes are regular files: anything else (a FIFO, a device node, a socket in a
 * hostile or mistaken tree) reads as undefined. Opened non-blocking, since opening a FIFO for
 * reading otherwise waits for a writer forever, and discovery runs inside openEngine().
 */
export function readAttr(dir: string, name: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(MAX_ATTR_BYTES);
    let n = 0;
    try {
      n = fs.readSync(fd, buf, 0, MAX_ATTR_BYTES, null);
    } catch {
      return undefined; // EISDIR, EOPNOTSUPP (occupancy), ENXIO (cdev_minor), EACCES...
    }
    let text = buf.toString('latin1', 0, n);
    if (text.endsWith('\n')) text = text.slice(0, -1);
    return text;
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      /* ignore */
    }
  }
}

/** Directory entries, sorted; [] when the directory is missing or unreadable. */
export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Whether `p` resolves (following links) to a directory. */
export function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Basename of a symlink's target, or null when it is not a readable link. */
export function linkBasename(p: string): string | null {
  try {
    const target = fs.readlinkSync(p);
    // Resolve physically so `../..`-style targets name the directory they reach; a dangling link falls back
    // to the last component of its target.
    let resolved = target;
    try {
      resolved = fs.realpathSync(p);
    } catch {
      /* dangling */
    }
    const base = path.basename(resolved);
    if (base === '..' || base === '.') return null;
    return base.length > 0 ? base : null;
  } catch {
    return null;
  }
}

/** Parse an unsigned decimal integer (`%u`, `%llu`, `%d` with no sign). Null for anything else or unsafe. */
export function parseUnsigned(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (!/^[0-9]{1,20}$/.test(t)) return null;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : null;
}

/** Parse a signed decimal integer (`%d`). */
export function parseSigned(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (!/^-?[0-9]{1,20}$/.test(t)) return null;
  const n = Number(t) + 0; // "-0" reads as 0, not -0
  return Number.isSafeInteger(n) ? n : null;
}

/** Parse `%#x` / `%#llx` (0x-prefixed hex; `%#x` prints plain `0` for zero) into a BigInt. */
export function parseHex(text: string | undefined): bigint | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (t === '0') return 0n;
  if (!/^0[xX][0-9a-fA-F]{1,16}$/.test(t)) return null;
  return BigInt(t);
}

/** Parse a 0/1 flag (also Y/N as module parameters print booleans). */
export function parseFlag(text: string | undefined): boolean | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (t === '1' || t === 'Y' || t === 'y') return true;
  if (t === '0' || t === 'N' || t === 'n') return false;
  return null;
}

/** A short printable rendering of a raw value, for messages. */
export function showRaw(text: string | undefined): string {
  if (text === undefined) return 'missing';
  if (text.length === 0) return 'empty';
  const clean = text.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `"${clean.length > 40 ? `${clean.slice(0, 40)}…` : clean}"`;
}
