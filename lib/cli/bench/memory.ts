// Peak memory of a large batch (issue 5: 1 GiB of 4 KiB folios, at most 64 MiB above the
// buffers), measured in a child process run with --expose-gc (memory-child.ts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { MemoryResult } from './targets';

/** The compiled child script: next to this file in dist/, or dist/cli/bench/ when run from the TS sources. */
export function memoryChildScript(): string {
  const here = path.join(__dirname, 'memory-child.js');
  if (fs.existsSync(here)) return here;
  return path.join(__dirname, '..', '..', '..', 'dist', 'cli', 'bench', 'memory-child.js');
}

export function measureMemory(bytes = 1024 ** 3, folioSize = 4096): Promise<MemoryResult> {
  const script = memoryChildScript();
  return new Promise((resolve) => {
    const fail = (error: string): void =>
      resolve({ bytes, folioSize, region: null, list: null, verified: false, method: 'child process', error });
    if (!fs.existsSync(script)) {
      fail(`${script} not found (run npx tsc -p tsconfig.json)`);
      return;
    }
    const child = spawn(process.execPath, ['--expose-gc', script, String(bytes), String(folioSize)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => fail(e.message));
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        const r = JSON.parse(line) as Partial<MemoryResult> & { error?: string };
        if (r.error !== undefined) return fail(r.error);
        resolve({
          bytes,
          folioSize,
          region: r.region ?? null,
          list: r.list ?? null,
          verified: r.verified === true,
          method: r.method ?? 'child process',
        });
      } catch {
        fail(`child exited with ${code}: ${(err || out).trim().slice(0, 300)}`);
      }
    });
  });
}
