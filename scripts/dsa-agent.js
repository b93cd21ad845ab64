// dsa-agent, the stand-in DSA device of native/core/test/dsa_agent.cc, for the tests and the fault
// campaign: builds it (g++), makes a fixture sysfs tree whose queue nodes are FIFOs, and starts it
// for a client process. Everything here is for machines without DSA; nothing of it ships.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const CORE = path.join(ROOT, 'native', 'core');

/** Builds the agent into dir: { agent } (its path), or { skip } saying why it cannot be built. */
function buildAgent(dir) {
  const agent = path.join(dir, 'dsa-agent');
  const cc = spawnSync(
    'g++',
    ['-O2', '-std=c++17', '-I', CORE, '-I', path.join(CORE, 'test'), '-o', agent, path.join(CORE, 'test', 'dsa_agent.cc')],
    { encoding: 'utf8' },
  );
  if (cc.error || cc.status !== 0) return { skip: `no C++ compiler to build dsa-agent with (${cc.error?.message ?? cc.stderr})` };
  return { agent };
}

/**
 * A copy of test/fixtures/sysfs/<fixture> in dir whose queue nodes are FIFOs: { sysfsRoot, devRoot,
 * specs } (specs: each FIFO with its device's 'errors' file, the agent's arguments), or { skip }.
 */
function fifoTree(dir, fixture = 'spr-4dev') {
  const root = path.join(dir, fixture);
  fs.cpSync(path.join(ROOT, 'test', 'fixtures', 'sysfs', fixture), root, { recursive: true, verbatimSymlinks: true });
  const dsaDir = path.join(root, 'dev', 'dsa');
  const devices = path.join(root, 'sys', 'bus', 'dsa', 'devices');
  const specs = [];
  for (const wq of fs.readdirSync(dsaDir)) {
    const m = /^wq(\d+)\.\d+$/.exec(wq);
    if (!m) continue;
    const node = path.join(dsaDir, wq);
    fs.rmSync(node);
    const mk = spawnSync('mkfifo', [node], { encoding: 'utf8' });
    if (mk.error || mk.status !== 0) return { skip: `mkfifo failed: ${mk.error?.message ?? mk.stderr}` };
    specs.push(`${node}=${path.join(fs.realpathSync(path.join(devices, `dsa${m[1]}`)), 'errors')}`);
  }
  return { sysfsRoot: path.join(root, 'sys'), devRoot: path.join(root, 'dev'), specs };
}

/**
 * Starts the agent serving `specs` for process `client` with extra `args` (--pagemap-faults,
 * --fail-every N, --wedge-after N, --latency-us N, ...). Resolves once it is serving, with
 * { stop() } (SIGTERM; resolves when it ended), or with { denied } when it has no ptrace access
 * to the client (exit 3, before serving).
 */
function startAgent(agent, client, specs, args = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(agent, ['--client', String(client), ...args, ...specs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let serving = false;
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    const ended = new Promise((res) => p.once('exit', res));
    p.once('error', reject);
    p.stdout.on('data', (d) => {
      if (serving || !String(d).includes('ready')) return;
      serving = true;
      resolve({
        stop: async () => {
          p.kill('SIGTERM');
          await ended;
        },
        stderr: () => stderr,
      });
    });
    ended.then((code) => {
      if (serving) return;
      if (code === 3) resolve({ denied: stderr.trim() });
      else reject(new Error(`dsa-agent exited with ${code} before serving: ${stderr.trim()}`));
    });
  });
}

module.exports = { buildAgent, fifoTree, startAgent };
