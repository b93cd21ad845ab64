// Copies the live pool into the snapshot pool, one copy at a time: a snapshot request, the timer
// and the benchmark's back-to-back loop all queue here, so two copies never write the snapshot
// pool at once. The strategy is how the copy runs, and is what the benchmark compares.
'use strict';
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const { Worker } = require('node:worker_threads');

const STRATEGIES = ['buffer-copy', 'copy-batch', 'copy-batch-sync', 'worker', 'worker-sync'];

/** A Buffer.copy per page on the event loop's thread: what a Node service does without dmacopy. */
function bufferCopy(pool) {
  const { live, snapshot, pageSize } = pool;
  for (let off = 0; off < live.length; off += pageSize) live.copy(snapshot, off, off, off + pageSize);
}

/** The copy runs in a worker thread with its own engine; this thread only exchanges one message per copy. */
class WorkerCopy {
  constructor(pool, engineOptions, sync) {
    this.worker = new Worker(path.join(__dirname, 'copy-worker.js'), {
      workerData: {
        live: pool.liveMemory,
        snapshot: pool.snapshotMemory,
        pageSize: pool.pageSize,
        engineOptions,
        sync,
      },
    });
    this.pending = undefined;
    this.failure = undefined;
    this.worker.on('message', (m) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else p.resolve(m.report);
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      this.pending?.reject(err);
      this.pending = undefined;
    });
  }

  copy() {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage('copy');
    });
  }

  async close() {
    this.worker.postMessage('close');
    await new Promise((resolve) => this.worker.once('exit', resolve));
  }
}

class Copier {
  /**
   * @param {import('./pool').PagePool} pool
   * @param {{ strategy: string, engine?: import('dmacopy').Engine, engineOptions?: object, gapMs?: number }} options
   *   engine: the main thread's engine (copy-batch, copy-batch-sync and every snapshot request);
   *   engineOptions: what a worker opens its own engine with; gapMs: pause between loop copies
   */
  constructor(pool, options) {
    if (!STRATEGIES.includes(options.strategy))
      throw new RangeError(`copy strategy must be one of ${STRATEGIES.join(', ')}, got '${options.strategy}'`);
    this.pool = pool;
    this.strategy = options.strategy;
    this.engine = options.engine;
    this.gapMs = options.gapMs ?? 0;
    this.worker = options.strategy.startsWith('worker')
      ? new WorkerCopy(pool, options.engineOptions ?? {}, options.strategy === 'worker-sync')
      : undefined;
    this.generation = 0;
    this.queue = Promise.resolve();
    this.looping = false;
    this.loopDone = Promise.resolve();
    this.resetCounters();
  }

  resetCounters() {
    this.counters = { copies: 0, bytes: 0, copyNs: 0, maxCopyNs: 0, since: process.hrtime.bigint() };
  }

  /** Resolves when no copy is running or queued: a write to the live pool then cannot tear a snapshot. */
  async idle() {
    for (let q = this.queue; ; q = this.queue) {
      await q;
      if (q === this.queue) return;
    }
  }

  /** Copies with the given strategy after every copy queued before it; resolves with what it did. */
  snapshot(strategy = this.strategy) {
    const run = this.queue.then(() => this.#copyOnce(strategy));
    this.queue = run.catch(() => {});
    return run;
  }

  async #copyOnce(strategy) {
    const pool = this.pool;
    const generation = ++this.generation;
    pool.stamp(generation, generation);
    const t0 = process.hrtime.bigint();
    if (strategy === 'buffer-copy') bufferCopy(pool);
    else if (strategy === 'copy-batch') await this.engine.copyBatch(pool.snapshot, pool.live, { folioSize: pool.pageSize });
    else if (strategy === 'copy-batch-sync') this.engine.copyBatchSync(pool.snapshot, pool.live, { folioSize: pool.pageSize });
    else await this.worker.copy();
    const ns = Number(process.hrtime.bigint() - t0);
    const c = this.counters;
    c.copies++;
    c.bytes += pool.live.length;
    c.copyNs += ns;
    c.maxCopyNs = Math.max(c.maxCopyNs, ns);
    return { generation, bytes: pool.live.length, ms: ns / 1e6, strategy };
  }

  /** Back-to-back copies (gapMs apart) until stopLoop(): the benchmark's continuous load. */
  startLoop() {
    if (this.looping) return;
    this.looping = true;
    this.loopError = undefined;
    this.loopDone = (async () => {
      while (this.looping) {
        await this.snapshot();
        // Even with no gap, yield a turn: a synchronous strategy would otherwise never let a request in.
        if (this.gapMs > 0) await sleep(this.gapMs);
        else await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    // A failed copy ends the loop; /stats reports why, and the benchmark counts it as a failure.
    this.loopDone = this.loopDone.catch((err) => {
      this.looping = false;
      this.loopError = err;
    });
  }

  async stopLoop() {
    this.looping = false;
    await this.loopDone;
    await this.queue;
  }

  async close() {
    await this.stopLoop();
    await this.worker?.close();
  }
}

module.exports = { Copier, STRATEGIES };
