// Shared test helpers: deterministic byte patterns and child-process runners.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.join(__dirname, '..');
export const DIST = path.join(ROOT, 'dist', 'index.js');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

/** Fills a buffer with a pattern that differs per seed and per offset (no two folios alike). */
export function fillPattern(buf: Uint8Array, seed: number): void {
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < buf.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
}

export function bytesOf(v: ArrayBufferView): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Runs a CommonJS script in a fresh node process (it can require DIST); returns status and output. */
export function runNode(script: string, args: string[] = [], timeoutMs = 60_000, nodeArgs: string[] = []) {
  const r = spawnSync(process.execPath, ['--expose-gc', ...nodeArgs, '-e', script, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, DMACOPY_DIST: DIST },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
