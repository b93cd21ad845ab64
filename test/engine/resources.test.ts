// The system may refuse threads: a service under a task limit (ulimit -u, systemd TasksMax, a
// container's pids limit). openEngine must then reject with ERR_DMACOPY_RESOURCES, never abort
// the process (a std::system_error that escaped the addon did: "terminate called after throwing
// an instance of 'std::system_error'"), and leave no thread behind, so a smaller engine still
// opens. RLIMIT_NPROC binds only an unprivileged user: the test runs a copy of the package as
// uid 65534 (see other-user-copy.ts).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyForOtherUser } from '../other-user-copy';

const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
const isRoot = process.getuid?.() === 0;
// The sanitizer run (scripts/test-asan.sh) preloads libasan and points DMACOPY_NATIVE_PATH at a
// build another user cannot read: the child would run without the addon, which proves nothing.
const copy = process.env.DMACOPY_ASAN
  ? { skip: 'the sanitizer build is not one another user can load' }
  : isRoot && setpriv
    ? withShell(copyForOtherUser(setpriv))
    : { skip: 'needs root and setpriv' };

/**
 * The limit is set by a shell running as that user, which then runs node: node must be a binary
 * that user can reach without privileges (setpriv's own exec may still pass where the shell's
 * cannot, e.g. a node under /root on the Node version matrix). Else skip, saying so.
 */
function withShell(c: ReturnType<typeof copyForOtherUser>): ReturnType<typeof copyForOtherUser> {
  if ('skip' in c) return c;
  const probe = spawnSync(
    setpriv as string,
    ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', '-c', 'exec "$0" --version', process.execPath],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (probe.status === 0) return c;
  fs.rmSync(c.dir, { recursive: true, force: true });
  return { skip: `uid 65534 cannot run ${process.execPath} from a shell: ${(probe.stderr || '').trim()}` };
}
afterAll(() => {
  if ('dir' in copy) fs.rmSync(copy.dir, { recursive: true, force: true });
});

const SCRIPT = `
  const d = require(process.env.DMACOPY_DIST);
  (async () => {
    const out = { native: d.nativeLoadError() === undefined };
    for (const backend of ['cpu', 'emulated']) {
      out[backend] = await d.openEngine({ backend, cpuThreads: 200 }).then(
        (e) => e.close().then(() => 'opened'),
        (err) => err.name + ' ' + err.code + ' ' + /task limit/.test(err.message),
      );
    }
    // The software device's threads refused (2 copy threads fit, 64 device engines do not): the
    // message names them, not the copy threads.
    out.device = await d.openEngine({ backend: 'emulated', cpuThreads: 2, emulator: { engines: 64 } }).then(
      (e) => e.close().then(() => 'opened'),
      (err) => err.code + ' ' + /software device's engine threads/.test(err.message),
    );
    // The bench's bound starts its own threads: refused, coded (it once aborted the process).
    try {
      const { nativeBinding } = require(require('path').join(require('path').dirname(process.env.DMACOPY_DIST), 'native', 'loader.js'));
      nativeBinding().memcpyBound(Buffer.alloc(1 << 20), Buffer.alloc(1 << 20), 200, 4096, 0);
      out.bound = 'ran';
    } catch (err) {
      out.bound = err.code;
    }
    const e = await d.openEngine({ backend: 'cpu', cpuThreads: 2 });
    const src = Buffer.alloc(4 << 20, 7), dst = Buffer.alloc(4 << 20);
    await e.copyBatch(dst, src, { folioSize: 4096 });
    out.small = dst.equals(src);
    await e.close();
    console.log(JSON.stringify(out));
  })().catch((err) => { console.error(err); process.exit(2); });
`;

describe('threads the system refuses', () => {
  it.skipIf('skip' in copy)('openEngine rejects with ERR_DMACOPY_RESOURCES, the process lives, a smaller engine opens', () => {
    const { dir } = copy as { dir: string };
    const r = spawnSync(
      setpriv as string,
      ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', '-c', `ulimit -u 64 && exec "$0" -e "$1"`, process.execPath, SCRIPT],
      { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, DMACOPY_DIST: path.join(dir, 'dist', 'index.js') } },
    );
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      native: true, // without the addon nothing starts threads, and the test would prove nothing
      cpu: 'DmacopyError ERR_DMACOPY_RESOURCES true',
      emulated: 'DmacopyError ERR_DMACOPY_RESOURCES true',
      device: 'ERR_DMACOPY_RESOURCES true',
      bound: 'ERR_DMACOPY_RESOURCES',
      small: true,
    });
  });
});
