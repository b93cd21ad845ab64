// A copy of the CLI that another user can run. Tests that run bin/dmacopy.js as an unprivileged user
// (setpriv --reuid=65534) cannot use the checkout itself: a clone under /root, or in a `mktemp -d`
// directory (mode 0700), cannot be entered by that user, and node fails with `Cannot find module
// …/bin/dmacopy.js`. So the test creates what it needs: a minimal self-contained tree (bin/, dist/,
// package.json, the built addon, and the runtime dependency closure from node_modules) in a fresh
// directory under the temp dir, readable by everyone along the whole path.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './helpers';

export interface OtherUserCopy {
  /** The copy's root directory (delete it when done). */
  dir: string;
  /** The copy's bin/dmacopy.js. */
  bin: string;
}

/** Whether every directory from `/` down to `dir` lets others search it (mode o+x). */
function searchableByOthers(dir: string): boolean {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) return false;
    if (path.dirname(d) === d) return true;
  }
}

/** The package's runtime dependencies and theirs (never devDependencies), as node_modules directories. */
function dependencyClosure(): string[] {
  const seen = new Set<string>();
  const visit = (pkgJson: string): void => {
    const deps = Object.keys((JSON.parse(fs.readFileSync(pkgJson, 'utf8')) as { dependencies?: object }).dependencies ?? {});
    for (const name of deps) {
      const dir = path.join(ROOT, 'node_modules', name);
      if (seen.has(dir) || !fs.existsSync(dir)) continue; // optional peers (prom-client) are not dependencies
      seen.add(dir);
      visit(path.join(dir, 'package.json'));
    }
  };
  visit(path.join(ROOT, 'package.json'));
  return [...seen];
}

/** chmod a tree so others can read it: directories 0755, files 0644 (0755 when the owner may execute). */
function openToOthers(p: string): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    fs.chmodSync(p, 0o755);
    for (const e of fs.readdirSync(p)) openToOthers(path.join(p, e));
  } else {
    fs.chmodSync(p, st.mode & 0o100 ? 0o755 : 0o644);
  }
}

/**
 * Makes the copy, or returns why it cannot be made (a stated reason for it.skip): no temp directory
 * that others can reach, or a node binary that `uid` cannot execute.
 */
export function copyForOtherUser(setpriv: string, uid = 65534): OtherUserCopy | { skip: string } {
  const base = [os.tmpdir(), '/tmp', '/var/tmp'].find((d) => fs.existsSync(d) && searchableByOthers(d));
  if (base === undefined) return { skip: `no temp directory (${os.tmpdir()}, /tmp, /var/tmp) that uid ${uid} can enter` };
  const dir = fs.mkdtempSync(path.join(base, 'dmacopy-other-user-'));
  for (const p of ['bin', 'dist', 'package.json', 'build/Release/dmacopy.node', 'prebuilds']) {
    if (fs.existsSync(path.join(ROOT, p))) fs.cpSync(path.join(ROOT, p), path.join(dir, p), { recursive: true });
  }
  for (const dep of dependencyClosure()) fs.cpSync(dep, path.join(dir, path.relative(ROOT, dep)), { recursive: true });
  openToOthers(dir);
  const bin = path.join(dir, 'bin', 'dmacopy.js');
  const probe = spawnSync(setpriv, [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, bin, '--help'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (probe.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { skip: `uid ${uid} cannot run ${process.execPath} ${bin}: ${(probe.stderr || probe.error?.message || '').trim()}` };
  }
  return { dir, bin };
}
