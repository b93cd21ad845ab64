#!/usr/bin/env node
// The service benchmark of issue 14: the example snapshot service (examples/snapshot-service)
// under autocannon, with no copy, a Buffer.copy loop, copyBatch at several engine settings,
// copyBatchSync and a worker. The same as `dmacopy bench --service`; every flag is passed on.
//
//   node scripts/bench-service.js [--short] [--duration 3] [--pool-mib 256] [--connections 4]
//                                 [--rate 0] [--reps 1] [--json] [--svg chart.svg]
'use strict';
require('../dist/cli/main.js').main([process.argv[0], 'dmacopy', 'bench', '--service', ...process.argv.slice(2)]);
