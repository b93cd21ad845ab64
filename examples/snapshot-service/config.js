// The service's settings: command-line flags first, then environment variables, then defaults.
//   --port / PORT (0 picks a free port)      --host / HOST (127.0.0.1)
//   --pool-mib / POOL_MIB (256)              --page-size / PAGE_SIZE (4096)
//   --snapshot-interval-ms / SNAPSHOT_INTERVAL_MS (10000; 0 turns the timer off)
//   --strategy / STRATEGY (copy-batch): how snapshots copy (see copier.js)
//   --copy-loop: copy back to back from the start (the benchmark's load), --gap-ms N between copies
//   --cpu-threads N, --cpu-nice N, --cpu-policy normal|idle, --cpu-pinning auto|on|off: the
//   engine's options (default: dmacopy's own defaults)
'use strict';
const { parseArgs } = require('node:util');

const FLAGS = {
  port: { type: 'string', env: 'PORT', default: '0' },
  host: { type: 'string', env: 'HOST', default: '127.0.0.1' },
  'pool-mib': { type: 'string', env: 'POOL_MIB', default: '256' },
  'page-size': { type: 'string', env: 'PAGE_SIZE', default: '4096' },
  'snapshot-interval-ms': { type: 'string', env: 'SNAPSHOT_INTERVAL_MS', default: '10000' },
  strategy: { type: 'string', env: 'STRATEGY', default: 'copy-batch' },
  'copy-loop': { type: 'boolean', env: 'COPY_LOOP', default: false },
  'gap-ms': { type: 'string', env: 'GAP_MS', default: '0' },
  'cpu-threads': { type: 'string', env: 'CPU_THREADS' },
  'cpu-nice': { type: 'string', env: 'CPU_NICE' },
  'cpu-policy': { type: 'string', env: 'CPU_POLICY' },
  'cpu-pinning': { type: 'string', env: 'CPU_PINNING' },
  backend: { type: 'string', env: 'BACKEND' },
};

function number(name, text, min) {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(String(text)) || !(n >= min)) throw new RangeError(`--${name} must be a number >= ${min}, got '${text}'`);
  return n;
}

/** @returns the parsed settings; throws RangeError with the flag's name on a bad value */
function loadConfig(argv = process.argv.slice(2), env = process.env) {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([k, v]) => [k, { type: v.type }]));
  const { values } = parseArgs({ args: argv, options, strict: true });
  const get = (name) => {
    const f = FLAGS[name];
    if (values[name] !== undefined) return values[name];
    if (env[f.env] !== undefined) return f.type === 'boolean' ? env[f.env] === '1' || env[f.env] === 'true' : env[f.env];
    return f.default;
  };
  const engineOptions = {};
  if (get('cpu-threads') !== undefined) engineOptions.cpuThreads = number('cpu-threads', get('cpu-threads'), 1);
  if (get('cpu-nice') !== undefined) engineOptions.cpuNice = number('cpu-nice', get('cpu-nice'), 0);
  if (get('cpu-policy') !== undefined) engineOptions.cpuPolicy = get('cpu-policy'); // openEngine checks it
  if (get('cpu-pinning') !== undefined) engineOptions.cpuPinning = get('cpu-pinning'); // so does this
  if (get('backend') !== undefined) engineOptions.backend = get('backend');
  return {
    port: number('port', get('port'), 0),
    host: get('host'),
    poolBytes: Math.round(number('pool-mib', get('pool-mib'), 1 / 256) * 1024 * 1024),
    pageSize: number('page-size', get('page-size'), 64),
    snapshotIntervalMs: number('snapshot-interval-ms', get('snapshot-interval-ms'), 0),
    strategy: get('strategy'),
    copyLoop: get('copy-loop'),
    gapMs: number('gap-ms', get('gap-ms'), 0),
    engineOptions,
  };
}

module.exports = { loadConfig };
