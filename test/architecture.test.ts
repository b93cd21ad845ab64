// The layering of lib/ (docs/architecture.md): which layer may import which, and no import cycles,
// type imports included (a type-only cycle is one value import away from a CommonJS
// partial-exports bug). Reads the sources' import statements; nothing is executed.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers';

const LIB = path.join(ROOT, 'lib');

type Layer = 'base' | 'native' | 'host' | 'observe' | 'engine' | 'cli' | 'entry';

/** What each layer may import besides itself. The engine reaches host code only through backend selection. */
const ALLOWED: Record<Layer, Layer[]> = {
  base: [],
  native: ['base'],
  host: ['base'],
  observe: ['base'],
  engine: ['base', 'native', 'observe', 'host'],
  cli: ['base', 'native', 'host', 'observe', 'engine', 'entry'],
  entry: ['base', 'native', 'host', 'observe', 'engine'],
};
/** The one engine file that may import host code: backend selection (discovery of DSA queues). */
const ENGINE_HOST_GATE = 'engine/backends.ts';

function layerOf(rel: string): Layer {
  if (rel === 'index.ts') return 'entry';
  const top = rel.split('/')[0] as string;
  if (['native', 'host', 'observe', 'engine', 'cli'].includes(top)) return top as Layer;
  if (['errors.ts', 'types.ts', 'defaults.ts'].includes(rel)) return 'base';
  throw new Error(`lib/${rel} is in no layer: put it in one of lib/{native,host,observe,engine,cli}/ or add it to the base`);
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative module a file names: import/export … from, import type, import(), require(). */
function importsOf(text: string): string[] {
  const out: string[] = [];
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)(['"])(\.{1,2}\/[^'"]+)\1/gm;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) out.push(m[2] as string);
  return out;
}

function resolve(from: string, spec: string): string {
  const base = path.resolve(path.dirname(from), spec).replace(/\.js$/, '');
  for (const c of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c;
  throw new Error(`${path.relative(ROOT, from)}: cannot resolve '${spec}'`);
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of sources(LIB)) {
    const rel = path.relative(LIB, f);
    g.set(
      rel,
      importsOf(fs.readFileSync(f, 'utf8')).map((s) => path.relative(LIB, resolve(f, s))),
    );
  }
  return g;
}

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (g.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** Imports against the layer direction, as "from -> to (layer -> layer)". */
function violations(g: Map<string, string[]>): string[] {
  const bad: string[] = [];
  for (const [from, tos] of g) {
    const lf = layerOf(from);
    for (const to of tos) {
      const lt = layerOf(to);
      if (lf === lt) continue;
      const ok = ALLOWED[lf].includes(lt) && !(lf === 'engine' && lt === 'host' && from !== ENGINE_HOST_GATE);
      if (!ok) bad.push(`${from} -> ${to} (${lf} -> ${lt})`);
    }
  }
  return bad;
}

describe('lib/ layering', () => {
  const g = graph();

  it('has no import cycle, type imports included', () => {
    expect(cycles(g)).toEqual([]);
  });

  it('imports only along the layer direction', () => {
    expect(violations(g)).toEqual([]);
  });

  it('the checks catch what they are for', () => {
    expect(
      importsOf(
        `import type { A } from './a';\nexport { B } from "../b";\nconst c = require('./c');\ntype D = import('./d').D;\n// import x from './commented';`,
      ),
    ).toEqual(['./a', '../b', './c', './d']);
    const cyclic = new Map([
      ['engine/a.ts', ['engine/b.ts']],
      ['engine/b.ts', ['engine/a.ts']],
      ['types.ts', []],
    ]);
    expect(cycles(cyclic)).toEqual([['engine/a.ts', 'engine/b.ts']]);
    const wrong = new Map([
      ['types.ts', ['engine/policy.ts']],
      ['engine/engine.ts', ['host/discovery.ts', 'cli/main.ts']],
      ['engine/backends.ts', ['host/discovery.ts']],
      ['engine/policy.ts', []],
      ['host/discovery.ts', []],
      ['cli/main.ts', []],
    ]);
    expect(violations(wrong)).toEqual([
      'types.ts -> engine/policy.ts (base -> engine)',
      'engine/engine.ts -> host/discovery.ts (engine -> host)',
      'engine/engine.ts -> cli/main.ts (engine -> cli)',
    ]);
  });
});
