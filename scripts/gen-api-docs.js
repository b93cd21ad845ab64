#!/usr/bin/env node
// Generates docs/api.md, the API reference, from the published declaration files (dist/*.d.ts)
// with the TypeScript compiler API: every export of the package entry, its signature as users'
// editors show it, and its doc comment. The error-code table comes from the DmacopyErrorCode
// union and the comment beside each member. Run after `npm run build:ts`:
//   node scripts/gen-api-docs.js           writes docs/api.md
//   node scripts/gen-api-docs.js --check   exits 1 when docs/api.md is out of date
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const ROOT = path.join(__dirname, '..');
const ENTRY = path.join(ROOT, 'dist', 'index.d.ts');
const OUT = path.join(ROOT, 'docs', 'api.md');

function docOf(symbol, checker) {
  const text = ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
  const tags = symbol
    .getJsDocTags(checker)
    .filter((t) => t.name !== 'internal')
    .map((t) => `@${t.name} ${ts.displayPartsToString(t.text ?? [])}`.trim());
  return [text, ...tags].filter(Boolean).join('\n\n');
}

function isInternal(symbol, checker) {
  return symbol.getJsDocTags(checker).some((t) => t.name === 'internal');
}

/** A declaration as written in the .d.ts, on one line, without `export declare` and the `;`. */
function declText(node) {
  return node
    .getText()
    .replace(/^export\s+(declare\s+)?/, '')
    .replace(/;\s*$/, '')
    .replace(/\s+/g, ' ');
}

const cell = (s) => s.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
const code = (s) => `\`${s.replace(/\s*\n\s*/g, ' ')}\``;
/** Code inside a table cell: GitHub splits cells at every unescaped `|`, even inside backticks. */
const codeCell = (s) => code(s).replace(/\|/g, '\\|');

function memberRows(program, type, checker, decl) {
  const rows = [];
  for (const prop of checker.getPropertiesOfType(type)) {
    const name = prop.getName();
    if (name.startsWith('#') || name.startsWith('__') || isInternal(prop, checker)) continue;
    const d = prop.valueDeclaration ?? prop.declarations?.[0];
    if (d && program.isSourceFileDefaultLibrary(d.getSourceFile())) continue; // Error's name, message, stack
    if (d && ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
    let sig;
    if (d && (ts.isMethodDeclaration(d) || ts.isMethodSignature(d))) {
      sig = (prop.declarations ?? [d]).map((m) => declText(m)).join('; ');
    } else if (d && ts.isGetAccessorDeclaration(d)) {
      sig = `get ${name}: ${d.type ? d.type.getText() : checker.typeToString(checker.getTypeOfSymbolAtLocation(prop, decl))}`;
    } else {
      const optional = prop.flags & ts.SymbolFlags.Optional ? '?' : '';
      const readonly = d && ts.getCombinedModifierFlags(d) & ts.ModifierFlags.Readonly ? 'readonly ' : '';
      const typeText = d?.type ? d.type.getText() : checker.typeToString(checker.getTypeOfSymbolAtLocation(prop, decl));
      sig = `${readonly}${name}${optional}: ${typeText}`;
    }
    rows.push(`| ${codeCell(sig)} | ${cell(docOf(prop, checker))} |`);
  }
  return rows;
}

function errorCodes(dtsDecl) {
  // type DmacopyErrorCode = | 'A' // comment ...: tsc drops those comments from the .d.ts, so
  // they are read from the TypeScript source the declaration was compiled from.
  const srcPath = path.join(
    ROOT,
    path
      .relative(path.join(ROOT, 'dist'), dtsDecl.getSourceFile().fileName)
      .replace(/^/, 'lib/')
      .replace(/\.d\.ts$/, '.ts'),
  );
  const src = ts.createSourceFile(srcPath, fs.readFileSync(srcPath, 'utf8'), ts.ScriptTarget.Latest, true);
  const decl = src.statements.find((st) => ts.isTypeAliasDeclaration(st) && st.name.text === dtsDecl.name.text) ?? dtsDecl;
  const text = decl.getSourceFile().getFullText();
  const rows = [];
  if (!ts.isUnionTypeNode(decl.type)) return rows;
  for (const t of decl.type.types) {
    const ranges = ts.getTrailingCommentRanges(text, t.end) ?? [];
    const next = decl.type.types[decl.type.types.indexOf(t) + 1];
    // A trailing comment can also sit after the next `|`; take the first comment after the member.
    const comment =
      ranges.map((r) => text.slice(r.pos, r.end))[0] ??
      (next ? (ts.getLeadingCommentRanges(text, t.end) ?? []).map((r) => text.slice(r.pos, r.end))[0] : undefined);
    rows.push(`| ${codeCell(t.getText().replace(/'/g, ''))} | ${cell((comment ?? '').replace(/^\/\/\s*/, ''))} |`);
  }
  return rows;
}

function generate() {
  if (!fs.existsSync(ENTRY)) throw new Error('dist/index.d.ts is missing: run `npm run build:ts` first');
  const program = ts.createProgram([ENTRY], {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [path.join(ROOT, 'node_modules', '@types')],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(ENTRY);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  const exports = checker.getExportsOfModule(moduleSymbol).sort((a, b) => a.getName().localeCompare(b.getName()));
  const sections = { functions: [], classes: [], interfaces: [], types: [], constants: [], codes: [] };
  for (const exp of exports) {
    const symbol = exp.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exp) : exp;
    if (isInternal(symbol, checker)) continue;
    const name = exp.getName();
    const decl = symbol.valueDeclaration ?? symbol.declarations?.[0];
    if (!decl) continue;
    const doc = docOf(symbol, checker);
    const from = path
      .relative(ROOT, decl.getSourceFile().fileName)
      .replace(/^dist\//, 'lib/')
      .replace(/\.d\.ts$/, '.ts');
    const head = (title) => [`### ${title}`, '', ...(doc ? [doc, ''] : []), `<sub>Declared in ${from}</sub>`, ''];
    if (symbol.flags & ts.SymbolFlags.Function) {
      sections.functions.push(...head(code(name)), '```ts', ...symbol.declarations.map((d) => declText(d)), '```', '');
    } else if (symbol.flags & ts.SymbolFlags.Class) {
      const instance = checker.getDeclaredTypeOfSymbol(symbol);
      const rows = memberRows(program, instance, checker, decl);
      sections.classes.push(...head(`class ${code(name)}`));
      if (rows.length) sections.classes.push('| member | description |', '|---|---|', ...rows, '');
    } else if (symbol.flags & ts.SymbolFlags.Interface) {
      const rows = memberRows(program, checker.getDeclaredTypeOfSymbol(symbol), checker, decl);
      sections.interfaces.push(...head(`interface ${code(name)}`));
      if (rows.length) sections.interfaces.push('| property | description |', '|---|---|', ...rows, '');
    } else if (symbol.flags & ts.SymbolFlags.TypeAlias) {
      if (name === 'DmacopyErrorCode') {
        sections.codes.push('| code | when |', '|---|---|', ...errorCodes(decl), '');
      }
      sections.types.push(
        ...head(`type ${code(name)}`),
        '```ts',
        `type ${name} = ${decl.type
          .getText()
          .replace(/\s*\/\/[^\n]*/g, '')
          .replace(/\s+/g, ' ')
          .trim()};`,
        '```',
        '',
      );
    } else if (symbol.flags & ts.SymbolFlags.Variable) {
      sections.constants.push(
        ...head(code(name)),
        '```ts',
        `const ${name}: ${checker.typeToString(checker.getTypeOfSymbolAtLocation(symbol, decl))}`,
        '```',
        '',
      );
    }
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  return [
    `# dmacopy ${pkg.version} API reference`,
    '',
    '<!-- Generated by scripts/gen-api-docs.js from dist/*.d.ts: do not edit; run `npm run docs:api`. -->',
    '',
    "Everything `require('dmacopy')` and `import … from 'dmacopy'` export, with the doc comments of",
    'the declarations. For what to use when, see the README; for how it works, docs/architecture.md.',
    '',
    '## Functions',
    '',
    ...sections.functions,
    '## Classes',
    '',
    ...sections.classes,
    '## Interfaces',
    '',
    ...sections.interfaces,
    '## Types',
    '',
    ...sections.types,
    '## Constants',
    '',
    ...sections.constants,
    '## Error codes',
    '',
    'Every error dmacopy throws or rejects with has one of these `code`s (from `DmacopyErrorCode`).',
    '',
    ...sections.codes,
  ]
    .join('\n')
    .replace(/\n{3,}/g, '\n\n');
}

const text = generate();
if (process.argv.includes('--check')) {
  const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
  if (current !== text) {
    console.error('docs/api.md is out of date: run `npm run docs:api`');
    process.exitCode = 1;
  }
} else {
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, text);
  console.log(`wrote ${path.relative(ROOT, OUT)}`);
}
