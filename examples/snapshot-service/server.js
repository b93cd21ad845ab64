#!/usr/bin/env node
// A small snapshot service: it holds a pool of pages (256 MiB of 4 KiB pages by default), serves
// them over HTTP, and snapshots the pool into a second pool with dmacopy, on request and on a
// timer, while the event loop keeps answering. `node examples/snapshot-service/server.js`.
//
//   GET  /page/:n            page n of the live pool          PUT /page/:n   overwrite page n
//   GET  /snapshot/page/:n   page n of the last snapshot      POST /snapshot take one now
//   GET  /snapshot/verify    copy once more, then compare both pools byte for byte
//   GET  /stats              event-loop delay, copies, copy GB/s, cores used (the process's and
//                            the copy threads') since the last POST /stats/reset
//   POST /loop/start?gapMs=N back-to-back snapshots (N ms apart) until POST /loop/stop: a load to measure under
//
// On start it prints one JSON line, {"event":"listening","port":...}, for scripts that run it.
'use strict';
const http = require('node:http');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { openEngine } = require('dmacopy');
const { loadConfig } = require('./config');
const { Copier } = require('./copier');
const { cpuSince, mark } = require('./cpu-time');
const { PagePool } = require('./pool');

/** Sampling period of the event-loop delay monitor, ms: the finest perf_hooks offers. */
const DELAY_RESOLUTION_MS = 1;

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendBytes(res, bytes) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
  res.end(bytes);
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) reject(Object.assign(new Error(`body larger than a page (${limit} bytes)`), { status: 413 }));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Where the CPU counters of /stats start: at start-up, then at each POST /stats/reset. */
let cpuMark = mark();

/** Event-loop delay (ms, from perf_hooks), what the copier did and the cores used since the last reset. */
function readStats(delay, copier, engine) {
  const c = copier.counters;
  const elapsedNs = Number(process.hrtime.bigint() - c.since);
  const ms = (ns) => ns / 1e6;
  return {
    eventLoopDelay: {
      // The histogram records whole timer intervals: the delay is what exceeds the resolution.
      p50: Math.max(0, ms(delay.percentile(50)) - DELAY_RESOLUTION_MS),
      p99: Math.max(0, ms(delay.percentile(99)) - DELAY_RESOLUTION_MS),
      max: Math.max(0, ms(delay.max) - DELAY_RESOLUTION_MS),
      samples: delay.count,
    },
    copies: c.copies,
    bytes: c.bytes,
    elapsedMs: ms(elapsedNs),
    gbps: elapsedNs > 0 ? c.bytes / elapsedNs : 0,
    maxCopyMs: ms(c.maxCopyNs),
    // Cores used since the last reset: the whole process, and the copy threads alone.
    cpu: cpuSince(cpuMark),
    generation: copier.generation,
    strategy: copier.strategy,
    loopError: copier.loopError?.message,
    engine: {
      backend: engine.backend,
      cpuThreads: engine.stats().cpuThreads,
      cpuNice: engine.stats().cpuNice,
      cpuPolicy: engine.stats().cpuPolicy,
      cpuPins: engine.stats().cpuPins,
    },
  };
}

function createHandler({ pool, copier, engine, delay }) {
  const routes = [
    ['GET', /^\/page\/(\d+)$/, (_req, res, m) => page(res, 'live', m)],
    ['GET', /^\/snapshot\/page\/(\d+)$/, (_req, res, m) => page(res, 'snapshot', m)],
    [
      'PUT',
      /^\/page\/(\d+)$/,
      async (req, res, m) => {
        const target = pool.page('live', Number(m[1]));
        if (!target) return sendJson(res, 404, { error: 'no such page' });
        const body = await readBody(req, pool.pageSize);
        // Between copies, never during one: each snapshot holds the page as before or after the write.
        await copier.idle();
        body.copy(target);
        sendJson(res, 200, { page: Number(m[1]), bytes: body.length });
      },
    ],
    ['POST', /^\/snapshot$/, async (_req, res) => sendJson(res, 200, await copier.snapshot('copy-batch'))],
    [
      'GET',
      /^\/snapshot\/verify$/,
      async (_req, res) => {
        // Queued behind any copy in flight, so nothing writes either pool while they are compared.
        const report = await copier.snapshot('copy-batch');
        sendJson(res, 200, { equal: pool.snapshotEqualsLive(), generation: report.generation, bytes: pool.live.length });
      },
    ],
    [
      'POST',
      /^\/loop\/start(?:\?gapMs=([^&]*))?$/,
      (_req, res, m) => {
        if (m[1] !== undefined) {
          // A bad value is the client's mistake, said as such (it once fell through to 404).
          if (!/^\d+$/.test(m[1])) return sendJson(res, 400, { error: `gapMs must be a whole number of milliseconds, got '${m[1]}'` });
          copier.gapMs = Number(m[1]);
        }
        copier.startLoop();
        sendJson(res, 200, { looping: true, gapMs: copier.gapMs });
      },
    ],
    [
      'POST',
      /^\/loop\/stop$/,
      async (_req, res) => {
        await copier.stopLoop();
        sendJson(res, 200, { looping: false, generation: copier.generation });
      },
    ],
    ['GET', /^\/stats$/, (_req, res) => sendJson(res, 200, readStats(delay, copier, engine))],
    [
      'POST',
      /^\/stats\/reset$/,
      (_req, res) => {
        delay.reset();
        copier.resetCounters();
        cpuMark = mark();
        sendJson(res, 200, { reset: true });
      },
    ],
  ];
  function page(res, which, m) {
    const bytes = pool.page(which, Number(m[1]));
    if (!bytes) return sendJson(res, 404, { error: `no such page: the pool has ${pool.pages}` });
    sendBytes(res, bytes);
  }
  return (req, res) => {
    const url = req.url ?? '/';
    for (const [method, re, fn] of routes) {
      const m = re.exec(url);
      if (!m || req.method !== method) continue;
      Promise.resolve(fn(req, res, m)).catch((err) => sendJson(res, err.status ?? 500, { error: err.message, code: err.code }));
      return;
    }
    sendJson(res, 404, { error: 'not found' });
  };
}

async function start(config = loadConfig()) {
  const pool = new PagePool(config.poolBytes, config.pageSize);
  pool.fill();
  const engine = await openEngine(config.engineOptions);
  const copier = new Copier(pool, {
    strategy: config.strategy,
    engine,
    engineOptions: config.engineOptions,
    gapMs: config.gapMs,
  });
  // The first snapshot also faults in every page of the snapshot pool, before anyone measures.
  await copier.snapshot('copy-batch');
  const delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  delay.enable();
  const server = http.createServer(createHandler({ pool, copier, engine, delay }));
  server.keepAliveTimeout = 10_000;
  await new Promise((resolve) => server.listen(config.port, config.host, resolve));
  const timer = config.snapshotIntervalMs > 0 ? setInterval(() => copier.snapshot().catch(() => {}), config.snapshotIntervalMs) : undefined;
  timer?.unref();
  if (config.copyLoop) copier.startLoop();
  copier.resetCounters();
  async function close() {
    if (timer) clearInterval(timer);
    server.closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
    await copier.close();
    delay.disable();
    await engine.close();
  }
  return { server, port: server.address().port, pool, copier, engine, close };
}

if (require.main === module) {
  // Started with an IPC channel (the service benchmark): go when the parent goes, from the start.
  let stop = () => process.exit(0);
  if (process.send) process.once('disconnect', () => stop());
  start().then(
    (s) => {
      console.log(JSON.stringify({ event: 'listening', port: s.port, pid: process.pid, pages: s.pool.pages, pageSize: s.pool.pageSize }));
      stop = () => s.close().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      // Started by a script with an IPC channel (the service benchmark): go when it goes, even if
      // it died without stopping us.
      if (process.send && !process.connected) stop();
    },
    (err) => {
      console.error(`snapshot-service: ${err.message}${err.code ? ` (${err.code})` : ''}`);
      process.exit(1);
    },
  );
}

module.exports = { start };
