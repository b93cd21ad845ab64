// The worker side of the 'worker' and 'worker-sync' strategies: its own engine over the same
// shared pools, one copy per 'copy' message. Whatever the copy costs, the main thread's event
// loop does not run it, and does not receive its completion events.
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { openEngine } = require('dmacopy');

const { pageSize, sync, engineOptions } = workerData;
const live = Buffer.from(workerData.live);
const snapshot = Buffer.from(workerData.snapshot);
const enginePromise = openEngine(engineOptions);

parentPort.on('message', async (message) => {
  const engine = await enginePromise;
  if (message === 'close') {
    await engine.close();
    parentPort.close();
    return;
  }
  try {
    const report = sync
      ? engine.copyBatchSync(snapshot, live, { folioSize: pageSize })
      : await engine.copyBatch(snapshot, live, { folioSize: pageSize });
    parentPort.postMessage({ report });
  } catch (err) {
    parentPort.postMessage({ error: { message: err.message, code: err.code } });
  }
});
