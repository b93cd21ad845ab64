// The docs say what the code does: every error code they name is one the library declares and
// throws, and every repository path they or the sources' comments cite exists.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

function files(dir: string, ext: RegExp): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' || e.name === 'node_modules' ? [] : files(p, ext);
    return ext.test(e.name) ? [p] : [];
  });
}

const DOCS = [path.join(ROOT, 'README.md'), ...files(path.join(ROOT, 'docs'), /\.md$/)];
const SOURCES = [...files(path.join(ROOT, 'lib'), /\.ts$/), ...files(path.join(ROOT, 'native'), /\.(cc|h)$/)];

describe('docs and comments', () => {
  it('name only error codes the library declares and throws', () => {
    const declared = new Set(fs.readFileSync(path.join(ROOT, 'lib', 'errors.ts'), 'utf8').match(/ERR_DMACOPY_[A-Z_]+/g));
    const thrownText = SOURCES.filter((f) => !f.endsWith(path.join('lib', 'errors.ts')))
      .map((f) => fs.readFileSync(f, 'utf8'))
      .join('\n');
    const bad: string[] = [];
    for (const doc of DOCS) {
      for (const code of new Set(fs.readFileSync(doc, 'utf8').match(/ERR_DMACOPY_[A-Z_]+/g) ?? [])) {
        if (!declared.has(code)) bad.push(`${path.relative(ROOT, doc)}: ${code} is not declared in lib/errors.ts`);
        else if (!thrownText.includes(`'${code}'`) && !thrownText.includes(`"${code}"`))
          bad.push(`${path.relative(ROOT, doc)}: ${code} is never raised by lib/ or native/`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('docs/api.md is generated from the declarations as they are (npm run docs:api)', () => {
    // It is built from dist/*.d.ts: a doc comment changed in lib/ without regenerating it left the
    // reference behind (the tuned minOffloadBytes range, cpuShare 'auto' starting at 0.1).
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'gen-api-docs.js'), '--check'], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('cite only repository paths that exist', () => {
    const cited = /\b((?:lib|docs|scripts|test|native|bin|shared)\/[\w./-]+\.(?:ts|md|js|cc|h|json))\b/g;
    const bad: string[] = [];
    for (const f of [...DOCS, ...SOURCES]) {
      const text = fs.readFileSync(f, 'utf8');
      for (const m of text.matchAll(cited)) {
        const p = m[1] as string;
        if (/[*<>]/.test(p)) continue;
        if (!fs.existsSync(path.join(ROOT, p))) bad.push(`${path.relative(ROOT, f)}: ${p}`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe('the README quick start', () => {
  it('runs as written, as an ES module importing the package', () => {
    // It once mixed require() with top-level await and used views it never defined.
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quick start'));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toBeDefined();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-quickstart-'));
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'));
      fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'dmacopy'), 'dir');
      fs.writeFileSync(path.join(dir, 'quick-start.mjs'), code as string);
      const r = spawnSync(process.execPath, ['quick-start.mjs'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^268435456 (cpu|dsa)\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
