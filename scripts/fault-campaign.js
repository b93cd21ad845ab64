#!/usr/bin/env node
// Fault campaign (npm run test:faults): randomized batches against the software DSA device with
// every injected fault kind on in combination, and against the CPU backend, with every byte of
// every buffer involved verified after each batch resolves:
//   - each destination holds its source's bytes,
//   - every byte outside the destinations (guard bytes around each one, gaps, tails) is unchanged,
//   - every source is unchanged,
//   - nothing lands after the batch resolved (destinations are poisoned after resolve and
//     re-checked once the engine closed),
//   - every promise settles (a watchdog reports a stuck batch instead of hanging).
// Each round derives its engine configuration and its batches from one 32-bit round seed, printed
// on failure: `--round-seed S` replays that round (timing-dependent interleavings may differ).
//
// One engine in five (at most one a round) runs the real /dev/dsa path instead, against
// dsa-agent, a stand-in device in another process behind FIFO device nodes (scripts/dsa-agent.js;
// needs g++ and ptrace access to this process, else the campaign says why and runs without it;
// --no-agent leaves it out). A round seed replays the same round only where the agent runs alike.
//
// Usage: node scripts/fault-campaign.js [--seed N] [--rounds N | --minutes M] [--batches N]
//                                       [--round-seed S] [--no-agent] [--json] [--quiet]
// Requires dist/ (npm run build:ts). Exit status 1 on any mismatch, guard hit, changed source,
// late write, unexpected rejection, stuck batch or batch left in flight.
'use strict';

const DEFAULT_BATCHES_PER_ROUND = 120;

// The project's one PRNG (lib/cli/prng.ts), from the compiled dist/.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { prng } = require('../dist/cli/prng.js');

function mix(a, b) {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x45d9f3b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Seeded helpers over one PRNG. */
function rng(seed) {
  const r = prng(seed);
  const api = {
    f: r,
    int: (lo, hi) => lo + Math.floor(r() * (hi - lo + 1)), // inclusive
    pick: (arr) => arr[Math.floor(r() * arr.length)],
    chance: (p) => r() < p,
  };
  return api;
}

/** Fills an ArrayBuffer-backed byte range with a seeded pattern (fast: 32-bit words). */
function fillBuffer(ab, seed) {
  const words = new Uint32Array(ab, 0, ab.byteLength >>> 2);
  let x = seed >>> 0 || 0x1234567;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  const bytes = new Uint8Array(ab);
  for (let i = words.length * 4; i < bytes.length; i++) bytes[i] = (x >>> (i & 3)) & 0xff;
}

function newBuffer(size, shared) {
  // Sizes rounded to 8 so any aligned typed-array view fits.
  const n = Math.max(8, (size + 7) & ~7);
  return shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n);
}

/** A view of len bytes at off in ab, of a random type that fits the alignment. */
function makeView(R, ab, off, len) {
  const kinds = ['u8', 'buf', 'dv', 'i8'];
  if (off % 2 === 0 && len % 2 === 0) kinds.push('u16');
  if (off % 4 === 0 && len % 4 === 0) kinds.push('u32', 'f32');
  if (off % 8 === 0 && len % 8 === 0) kinds.push('f64', 'bu64');
  switch (R.pick(kinds)) {
    case 'buf':
      return Buffer.from(ab, off, len);
    case 'dv':
      return new DataView(ab, off, len);
    case 'i8':
      return new Int8Array(ab, off, len);
    case 'u16':
      return new Uint16Array(ab, off, len / 2);
    case 'u32':
      return new Uint32Array(ab, off, len / 4);
    case 'f32':
      return new Float32Array(ab, off, len / 4);
    case 'f64':
      return new Float64Array(ab, off, len / 8);
    case 'bu64':
      return new BigUint64Array(ab, off, len / 8);
    default:
      return new Uint8Array(ab, off, len);
  }
}

function folioLength(R, maxFolio) {
  const k = R.f();
  if (k < 0.05) return 0;
  if (k < 0.15) return R.int(1, 63);
  if (k < 0.45) return 4096 * R.int(1, 4);
  if (k < 0.55) return 4096 * R.int(1, 4) + R.pick([-1, 1, 64, -64, 7]);
  if (k < 0.6) return R.int(64 * 1024, Math.max(64 * 1024, maxFolio * 4));
  return R.int(1, maxFolio);
}

/**
 * Builds one batch: its views, the buffers involved and the expected image of every buffer
 * after the copy (snapshot with each destination range overwritten by its source bytes).
 */
function buildBatch(R, seed) {
  const buffers = []; // { ab, bytes, snapshot, dstRanges: [[off, len]] }
  const addBuf = (size) => {
    const ab = newBuffer(size, R.chance(0.15));
    fillBuffer(ab, mix(seed, buffers.length + 1));
    const b = { ab, bytes: new Uint8Array(ab), dstRanges: [], srcRanges: [] };
    buffers.push(b);
    return b;
  };
  const region = R.chance(0.3);
  const maxFolio = R.pick([512, 4096, 16 * 1024, 40 * 1024, 128 * 1024]);
  if (region) {
    const folio = R.pick([1, 64, 100, 512, 4096, 4096, 4096, 8192, 65536, 4095, 4097, 2 * 1024 * 1024]);
    const folios = R.int(0, folio >= 65536 ? 8 : 300);
    const total = Math.max(0, folio * folios - (R.chance(0.5) ? R.int(0, Math.min(folio - 1, 4095)) : 0));
    const cap = Math.min(total, 8 * 1024 * 1024);
    const guard = R.int(1, 200);
    const srcOff = R.int(0, 64);
    const dstOff = guard + R.int(0, 64);
    const slack = R.chance(0.2) ? R.int(1, 100) : 0; // dst longer than src: the tail stays as it was
    const same = R.chance(0.2); // dst and src in one ArrayBuffer, disjoint
    let src;
    let dst;
    if (same) {
      const b = addBuf(dstOff + cap + slack + guard + srcOff + cap + guard);
      dst = [b, dstOff, cap + slack];
      src = [b, dstOff + cap + slack + guard + srcOff, cap];
    } else {
      const s = addBuf(srcOff + cap + R.int(0, 64));
      const d = addBuf(dstOff + cap + slack + guard);
      dst = [d, dstOff, cap + slack];
      src = [s, srcOff, cap];
    }
    // Element-typed views need lengths that divide: fall back to bytes when they do not.
    const dv = makeView(R, dst[0].ab, dst[1], dst[2]);
    const sv = makeView(R, src[0].ab, src[1], src[2]);
    dst[0].dstRanges.push([dst[1], src[2], src[0], src[1]]);
    return {
      buffers,
      dsts: dv,
      srcs: sv,
      options: { folioSize: folio },
      bytes: cap,
      folios: cap === 0 ? 0 : Math.ceil(cap / folio),
      form: 'region',
    };
  }
  // List form.
  const many = R.chance(0.08);
  const n = many ? R.int(500, 5000) : R.int(0, 48);
  const lens = Array.from({ length: n }, () => (many ? R.pick([4096, 4096, 1, 512, 8192, R.int(0, 4096)]) : folioLength(R, maxFolio)));
  const total = lens.reduce((a, x) => a + x, 0);
  const nSrcBufs = R.int(1, Math.min(4, Math.max(1, n)));
  const nDstBufs = R.int(1, Math.min(4, Math.max(1, n)));
  const shareSrcDst = R.chance(0.15);
  const maxGuard = many ? 16 : 200;
  // Lay out sources: each source buffer gets a share; some folios reuse an earlier source range.
  const srcPlan = [];
  const dstPlan = [];
  const srcSizes = new Array(nSrcBufs).fill(0);
  const dstSizes = new Array(nDstBufs).fill(0);
  for (let i = 0; i < n; i++) {
    const len = lens[i];
    const sb = R.int(0, nSrcBufs - 1);
    if (i > 0 && R.chance(0.05) && srcPlan[i - 1].len >= len) {
      srcPlan.push({ b: srcPlan[i - 1].b, off: srcPlan[i - 1].off, len }); // sources may share bytes
    } else {
      const off = srcSizes[sb] + R.int(0, 16);
      srcPlan.push({ b: sb, off, len });
      srcSizes[sb] = off + len;
    }
    const db = R.int(0, nDstBufs - 1);
    const slack = R.chance(0.05) ? R.int(1, 32) : 0;
    const off = dstSizes[db] + R.int(1, maxGuard) + (R.chance(0.3) ? R.int(0, 7) : 0);
    dstPlan.push({ b: db, off, len, slack });
    dstSizes[db] = off + len + slack;
  }
  // Destinations in random order within their buffer? Shuffle the folio order (not the layout).
  const order = Array.from({ length: n }, (_, i) => i);
  if (R.chance(0.3)) {
    for (let i = n - 1; i > 0; i--) {
      const j = R.int(0, i);
      [order[i], order[j]] = [order[j], order[i]];
    }
  }
  const srcBufs = srcSizes.map((s) => s + R.int(0, 64));
  const dstBufs = dstSizes.map((s) => s + R.int(1, maxGuard));
  let srcB;
  let dstB;
  const srcBase = 0;
  if (shareSrcDst) {
    // One buffer: all destinations first, then all sources.
    const dTotal = dstBufs.reduce((a, x) => a + x, 0);
    const sTotal = srcBufs.reduce((a, x) => a + x, 0);
    const b = addBuf(dTotal + sTotal + 64);
    const dBase = [];
    let acc = 0;
    for (const s of dstBufs) {
      dBase.push(acc);
      acc += s;
    }
    const sBase = [];
    for (const s of srcBufs) {
      sBase.push(acc);
      acc += s;
    }
    dstB = dBase.map((base) => ({ b, base }));
    srcB = sBase.map((base) => ({ b, base }));
  } else {
    srcB = srcBufs.map((s) => ({ b: addBuf(s), base: 0 }));
    dstB = dstBufs.map((s) => ({ b: addBuf(s), base: 0 }));
  }
  void srcBase;
  const dsts = [];
  const srcs = [];
  for (const i of order) {
    const sp = srcPlan[i];
    const dp = dstPlan[i];
    const s = srcB[sp.b];
    const d = dstB[dp.b];
    srcs.push(makeView(R, s.b.ab, s.base + sp.off, sp.len));
    dsts.push(makeView(R, d.b.ab, d.base + dp.off, dp.len + dp.slack));
    d.b.dstRanges.push([d.base + dp.off, sp.len, s.b, s.base + sp.off]);
  }
  void total;
  return { buffers, dsts, srcs, options: undefined, bytes: total, folios: n, form: many ? 'list-large' : 'list' };
}

/** Snapshot every buffer and compute its expected image. */
function expectImages(batch) {
  for (const b of batch.buffers) b.snapshot = Buffer.from(b.bytes); // copy
  for (const b of batch.buffers) {
    const exp = Buffer.from(b.snapshot);
    for (const [dOff, len, srcBuf, sOff] of b.dstRanges) srcBuf.snapshot.copy(exp, dOff, sOff, sOff + len);
    b.expected = exp;
  }
}

/** Compares every byte of every buffer with its expected image; classifies differences. */
function verify(batch, t, where) {
  let bad = 0;
  for (const b of batch.buffers) {
    const actual = Buffer.from(b.ab, 0, b.ab.byteLength);
    t.bytesVerified += actual.length;
    if (actual.equals(b.expected)) continue;
    // Localize: inside a destination range → mismatch; else guard hit (or changed source).
    const inDst = new Uint8Array(actual.length);
    for (const [dOff, len] of b.dstRanges) inDst.fill(1, dOff, dOff + len);
    let first = -1;
    let mism = 0;
    let guard = 0;
    for (let i = 0; i < actual.length; i++) {
      if (actual[i] !== b.expected[i]) {
        if (first < 0) first = i;
        if (inDst[i]) mism++;
        else guard++;
      }
    }
    if (mism) t.mismatches += mism;
    if (guard) t.guardHits += guard;
    bad++;
    if (t.failures.length < 20)
      t.failures.push({ ...where, buffer: batch.buffers.indexOf(b), firstOffset: first, mismatchedBytes: mism, outsideBytes: guard });
  }
  return bad === 0;
}

const FAULT_PRESETS = [
  // name, faults
  [
    'all',
    (R) => ({
      pageFault: R.f() * 0.15,
      backward: R.f(),
      error: R.f() * 0.05,
      hang: R.f() * 0.01,
      hangMs: R.int(1, 80),
      lostRecord: R.f() * 0.01,
      late: R.f() * 0.02,
      lateMs: R.int(1, 40),
      retry: R.f() * 0.2,
      disable: R.f() * 0.004,
    }),
  ],
  ['pagefault-heavy', (R) => ({ pageFault: 0.3 + R.f() * 0.6, backward: R.f() })],
  ['errors-hangs', (R) => ({ error: R.f() * 0.3, hang: R.f() * 0.05, hangMs: R.int(1, 120), late: R.f() * 0.05, lateMs: R.int(1, 60) })],
  ['lost-records', (R) => ({ lostRecord: 0.01 + R.f() * 0.2, pageFault: R.f() * 0.05 })],
  // Wedged: hangs that never end. Those batches must reject with ERR_DMACOPY_DEVICE_WEDGED, bytes
  // in place, and close() must stay within its bound.
  ['wedge', (R) => ({ hang: R.f() * 0.01, pageFault: R.f() * 0.05 })],
  ['retry-storm', (R) => ({ retry: 0.5 + R.f() * 0.5, pageFault: R.f() * 0.1 })],
  ['disable', (R) => ({ disable: R.f() * 0.05, pageFault: R.f() * 0.05, error: R.f() * 0.02 })],
  ['none', () => ({})],
];

/**
 * An engine on the real /dev/dsa path (the `dsa` backend) against dsa-agent, a stand-in device in
 * another process behind FIFO device nodes (scripts/dsa-agent.js): write() submission, records
 * written into this process from outside, page faults on pages not resident, hardware errors,
 * slow descriptors that pass their deadline, and a device that wedges. The agent's settings are
 * part of the configuration: it is started for the round.
 */
function agentConfig(R) {
  const wedgeAfter = R.chance(0.15) ? R.int(5, 400) : 0;
  const failEvery = R.pick([0, 0, 7, 50]);
  const latencyUs = R.pick([0, 0, 20, 200]);
  const pagemapFaults = R.chance(0.3);
  const agentArgs = [
    ...(pagemapFaults ? ['--pagemap-faults'] : []),
    ...(failEvery ? ['--fail-every', String(failEvery)] : []),
    ...(latencyUs ? ['--latency-us', String(latencyUs)] : []),
    ...(wedgeAfter ? ['--wedge-after', String(wedgeAfter)] : []),
  ];
  const preset = wedgeAfter ? 'wedge' : failEvery ? 'errors' : latencyUs ? 'slow' : pagemapFaults ? 'pagefault' : 'clean';
  return {
    label: `dsa-agent/${preset}`,
    agentArgs,
    wedge: wedgeAfter > 0,
    options: {
      backend: 'dsa',
      spread: true,
      channels: R.chance(0.5) ? R.int(1, 5) : undefined,
      minOffloadBytes: R.pick([0, 0, 8192, undefined]),
      timeoutMs: R.pick([10, 50, 200, 1000]),
      drainTimeoutMs: wedgeAfter ? R.pick([20, 50, 100]) : 2000,
      cpuThreads: R.int(1, 3),
      cpuShare: R.chance(0.25) ? R.pick([0, 0.1, 0.3, 'auto']) : undefined,
    },
  };
}

/** An engine configuration from the round's PRNG (`agent`: dsa-agent can serve one of them). */
function engineConfig(R, shared, agent) {
  if (agent && R.chance(0.2)) return agentConfig(R);
  if (R.chance(0.2)) {
    return {
      label: 'cpu',
      options: {
        backend: 'cpu',
        cpuThreads: R.int(1, 4),
        channels: R.chance(0.5) ? R.int(1, 8) : undefined,
        minOffloadBytes: R.pick([0, 0, 4096, 65536, undefined]),
        nonTemporalMinBytes: R.pick([0, 4096, 1 << 20, undefined]),
      },
    };
  }
  const [preset, gen] = R.pick(FAULT_PRESETS);
  const mode = R.chance(0.5) ? 'shared' : 'dedicated';
  const faults = gen(R);
  if (mode !== 'shared') delete faults.retry;
  // Engines of a round share one emulated device half the time: each one's software errors then
  // show on the others' queues too, and must not be blamed on them.
  const options = {
    backend: 'emulated',
    minOffloadBytes: R.pick([0, 0, 0, 8192, undefined]),
    timeoutMs: R.pick([2, 10, 50, 200]),
    // Live devices get twice the library default: no hang there outlasts it, and a one-entry queue
    // (which waits half of it before it sends a Drain behind a lost record) stays cheap.
    drainTimeoutMs: preset === 'wedge' ? R.pick([20, 50, 100]) : 2000,
    cpuThreads: R.int(1, 3),
    cpuShare: R.chance(0.25) ? R.pick([0.1, 0.3, 0.5, 'auto']) : undefined,
    emulator: {
      device: shared ? `campaign-${shared}` : undefined,
      seed: R.int(1, 2 ** 31),
      mode,
      queues: R.int(1, 4),
      engines: R.int(1, 3),
      wqSize: R.pick([1, 2, 4, 16, 64, 128]),
      maxTransferSize: R.pick([64, 4096, 8192, 65536, 2 * 1024 * 1024]),
      jitterUs: R.pick([0, 0, 10, 50]),
      latencyUs: R.pick([0, 0, 5]),
      faults,
    },
  };
  return { label: `emulated/${mode}/${preset}`, options, wedge: preset === 'wedge' };
}

function stripUndefined(o) {
  if (o && typeof o === 'object' && !Array.isArray(o)) {
    for (const k of Object.keys(o)) {
      if (o[k] === undefined) delete o[k];
      else stripUndefined(o[k]);
    }
  }
  return o;
}

function newTotals() {
  return {
    rounds: 0,
    batches: 0,
    asyncBatches: 0,
    syncBatches: 0,
    preparedReruns: 0,
    byForm: { list: 0, 'list-large': 0, region: 0 },
    byBackend: { cpu: 0, emulated: 0, dsa: 0 },
    folios: 0,
    bytesCopied: 0,
    bytesVerified: 0,
    offloadedBytes: 0,
    cpuBytes: 0,
    descriptors: 0,
    outOfOrder: 0,
    fallbacks: { timeout: 0, error: 0, pageFault: 0, submit: 0 },
    faults: {
      pageFaults: 0,
      pageFaultRetries: 0,
      errors: 0,
      retries: 0,
      timeouts: 0,
      quarantines: 0,
      drains: 0,
      lostRecords: 0,
      foreignErrors: 0,
      wedged: 0,
    },
    faultRoundsByPreset: {},
    agentRoundsByPreset: {},
    agent: false,
    agentSkipped: '',
    lateWriteChecks: 0,
    mismatches: 0,
    guardHits: 0,
    lateWrites: 0,
    recordsReused: 0,
    closePastBound: 0,
    closeMaxMs: 0,
    wedgedBatches: 0,
    rejected: 0,
    stuck: 0,
    leftInFlight: 0,
    failures: [],
    seeds: [],
  };
}

const POISON = 0xe7;

/** One round: 1-3 engines, a batch count, a concurrency; every batch verified. */
async function runRound(lib, roundSeed, batchesPerRound, t, log, agent) {
  const R = rng(roundSeed);
  const nEngines = R.int(1, 3);
  const shared = R.chance(0.5) ? roundSeed : 0;
  const configs = [];
  // At most one engine a round on dsa-agent: one agent serves the process's queues.
  for (let i = 0; i < nEngines; i++) configs.push(engineConfig(R, shared, agent && !configs.some((c) => c.agentArgs)));
  const reusedBefore = lastAudit;
  const engines = [];
  let served;
  try {
    for (const c of configs) {
      if (c.agentArgs) {
        served = await agent.start(c.agentArgs);
        engines.push(await agent.open(lib, stripUndefined(JSON.parse(JSON.stringify(c.options)))));
        t.agentRoundsByPreset[c.label.split('/')[1]] = (t.agentRoundsByPreset[c.label.split('/')[1]] || 0) + 1;
        continue;
      }
      engines.push(await lib.openEngine(stripUndefined(JSON.parse(JSON.stringify(c.options)))));
      if (c.options.backend === 'emulated') {
        const p = c.label.split('/')[2];
        t.faultRoundsByPreset[p] = (t.faultRoundsByPreset[p] || 0) + 1;
      }
    }
    await runBatches({ R, roundSeed, batchesPerRound, t, log, configs, engines, reusedBefore });
  } finally {
    await Promise.all(engines.map((e) => e.close()));
    await served?.stop();
  }
}

/** A round's batches on its open engines, then their close and the checks after it. */
async function runBatches({ R, roundSeed, batchesPerRound, t, log, configs, engines, reusedBefore }) {
  const concurrency = R.pick([1, 2, 4, 8, 16]);
  const batches = Math.max(1, Math.round(batchesPerRound * (0.5 + R.f())));
  const poisoned = []; // batches whose destinations were poisoned after resolve
  let next = 0;
  const runOne = async (b) => {
    const bseed = mix(roundSeed, b + 1);
    const BR = rng(bseed);
    const ei = BR.int(0, engines.length - 1);
    const engine = engines[ei];
    const batch = buildBatch(BR, bseed);
    expectImages(batch);
    const sync = BR.chance(0.2);
    // One batch in four is prepared and run two or three times (on a device backend its
    // descriptors are built once and resubmitted as built): between runs its destinations are
    // scrubbed, so a run that wrote nothing, or wrote stale bytes, fails the check after it.
    const runs = BR.chance(0.25) ? BR.int(2, 3) : 1;
    const where = {
      roundSeed,
      batch: b,
      batchSeed: bseed,
      engine: configs[ei].label,
      form: batch.form,
      folios: batch.folios,
      bytes: batch.bytes,
      sync,
      runs,
    };
    let report;
    let timer;
    let prepared;
    try {
      if (runs > 1) prepared = engine.prepare(batch.dsts, batch.srcs, batch.options);
      for (let run = 0; run < runs; run++) {
        if (run > 0) {
          if (!verify(batch, t, { ...where, run: run - 1 })) return;
          t.preparedReruns++;
          for (const b of batch.buffers) for (const [dOff, len] of b.dstRanges) b.bytes.fill(POISON ^ run, dOff, dOff + len);
        }
        if (sync) report = prepared ? prepared.copySync() : engine.copyBatchSync(batch.dsts, batch.srcs, batch.options);
        else {
          const watchdog = new Promise((_, rej) => {
            timer = setTimeout(() => rej(Object.assign(new Error('batch did not settle within 60 s'), { stuck: true })), 60_000);
          });
          const copying = prepared ? prepared.copy() : engine.copyBatch(batch.dsts, batch.srcs, batch.options);
          report = await Promise.race([copying, watchdog]);
          clearTimeout(timer);
        }
      }
    } catch (err) {
      if (err?.code === 'ERR_DMACOPY_DEVICE_WEDGED' && configs[ei].wedge) {
        // The promised outcome on a wedged device: every byte in place, and the rejection says
        // the device may still write them (so they are not poisoned and checked for late writes).
        t.wedgedBatches++;
        verify(batch, t, { ...where, phase: 'wedged rejection' });
        return;
      }
      if (err?.stuck) t.stuck++;
      else t.rejected++;
      if (t.failures.length < 20) t.failures.push({ ...where, error: `${err?.code ? `${err.code}: ` : ''}${err?.message}` });
      return;
    } finally {
      clearTimeout(timer);
      prepared?.release();
    }
    t.batches++;
    if (sync) t.syncBatches++;
    else t.asyncBatches++;
    t.byForm[batch.form]++;
    t.byBackend[report.backend]++;
    t.folios += batch.folios;
    t.bytesCopied += report.bytes;
    t.offloadedBytes += report.offloadedBytes;
    t.cpuBytes += report.cpuBytes;
    t.descriptors += report.descriptors;
    t.outOfOrder += report.outOfOrder;
    for (const k of Object.keys(t.fallbacks)) t.fallbacks[k] += report.fallbacks[k];
    if (report.bytes !== batch.bytes && t.failures.length < 20)
      t.failures.push({ ...where, error: `report.bytes ${report.bytes} != ${batch.bytes}` });
    // Checked the moment the batch settled: every byte must be there and nothing else touched.
    const ok = verify(batch, t, where);
    if (ok && poisoned.length < 24 && BR.chance(0.25)) {
      // Poison the destinations: a device write landing after resolve would disturb the poison.
      for (const b of batch.buffers) {
        for (const [dOff, len] of b.dstRanges) {
          b.bytes.fill(POISON, dOff, dOff + len);
          b.expected.fill(POISON, dOff, dOff + len);
        }
      }
      poisoned.push({ batch, where });
    }
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batches) {
        const b = next++;
        await runOne(b);
        if (b % 8 === 7) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  for (const [i, e] of engines.entries()) {
    const s = e.stats();
    if (s.inFlight !== 0) {
      t.leftInFlight += s.inFlight;
      if (t.failures.length < 20)
        t.failures.push({ roundSeed, engine: configs[i].label, error: `${s.inFlight} batches still in flight after all settled` });
    }
    const d = s.native?.dsa;
    if (d) for (const k of Object.keys(t.faults)) t.faults[k] += Number(d[k] ?? sumChannels(d, k));
  }
  await Promise.all(
    engines.map(async (e, i) => {
      // close() is bounded: the fences (drainTimeoutMs), the CPU copies, the releases it waits
      // for (drainTimeoutMs again), plus slack for a loaded machine.
      const bound = 2 * (configs[i].options.drainTimeoutMs ?? 1000) + 3000;
      const t0 = performance.now();
      await e.close();
      const ms = performance.now() - t0;
      t.closeMaxMs = Math.max(t.closeMaxMs, ms);
      if (ms > bound) {
        t.closePastBound++;
        if (t.failures.length < 20)
          t.failures.push({ roundSeed, engine: configs[i].label, error: `close() took ${ms.toFixed(0)} ms, bound ${bound} ms` });
      }
    }),
  );
  lastAudit = Math.max(lastAudit, ...engines.map(recordsReused));
  const reused = lastAudit - reusedBefore;
  if (reused > 0) {
    t.recordsReused += reused;
    if (t.failures.length < 20)
      t.failures.push({ roundSeed, error: `${reused} completion records written by the device after the engine let go of them` });
  }
  // After close every device thread is quiet: a late write would have landed by now.
  if (poisoned.length) await new Promise((r) => setTimeout(r, R.pick([0, 5, 20])));
  for (const { batch, where } of poisoned) {
    t.lateWriteChecks++;
    const before = t.mismatches + t.guardHits;
    verify(batch, t, { ...where, phase: 'after close (late write)' });
    if (t.mismatches + t.guardHits !== before) t.lateWrites++;
  }
  t.rounds++;
  const bad = t.mismatches + t.guardHits + t.rejected + t.stuck + t.leftInFlight + t.lateWrites + t.recordsReused + t.closePastBound;
  if (log)
    log(
      `round seed ${roundSeed}: ${configs.map((c) => c.label).join(' + ')}, ${batches} batches x${concurrency}${bad ? ' FAILURES SO FAR' : ''}`,
    );
}

/**
 * dsa-agent set up once for a campaign (scripts/dsa-agent.js): built, a FIFO tree made, and tried
 * once on this process (it needs ptrace access to it). Each round that draws a dsa engine starts
 * it with that round's settings, opens the engine against the FIFO tree, and stops it at the end.
 */
class AgentDevice {
  static async setup() {
    const { buildAgent, fifoTree, startAgent } = require('./dsa-agent.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-campaign-agent-'));
    const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
    const built = buildAgent(dir);
    const tree = 'skip' in built ? built : fifoTree(dir);
    if ('skip' in tree) {
      dispose();
      return { skip: tree.skip };
    }
    const device = new AgentDevice(built.agent, tree, startAgent, dispose);
    const tried = await device.start([]);
    if (tried.denied) {
      dispose();
      return { skip: tried.denied };
    }
    await tried.stop();
    return device;
  }

  constructor(agent, tree, startAgent, dispose) {
    this.agent = agent;
    this.tree = tree;
    this.startAgent = startAgent;
    this.dispose = dispose;
  }

  start(args) {
    return this.startAgent(this.agent, process.pid, this.tree.specs, args);
  }

  /** openEngine with discovery pointed at the FIFO tree (only for this call: the queues keep their paths). */
  async open(lib, options) {
    const saved = [process.env.DMACOPY_SYSFS_ROOT, process.env.DMACOPY_DEV_ROOT];
    process.env.DMACOPY_SYSFS_ROOT = this.tree.sysfsRoot;
    process.env.DMACOPY_DEV_ROOT = this.tree.devRoot;
    try {
      return await lib.openEngine(options);
    } finally {
      for (const [k, v] of [
        ['DMACOPY_SYSFS_ROOT', saved[0]],
        ['DMACOPY_DEV_ROOT', saved[1]],
      ]) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }
}

/** The software device's process-wide record audit (CompletionArena::reused_while_owned), as an emulated engine reports it. */
let lastAudit = 0;
function recordsReused(engine) {
  const v = engine.stats().native?.dsa?.recordsReusedWhileOwned;
  return typeof v === 'number' ? v : 0;
}

function sumChannels(d, k) {
  return (d.channels || []).reduce((a, c) => a + Number(c[k] || 0), 0);
}

/**
 * Runs the campaign. opts: { seed, rounds, minutes, batchesPerRound, roundSeed, lib, log }.
 * Returns the totals (see newTotals); ok is true when nothing went wrong.
 */
async function runCampaign(opts = {}) {
  const lib = opts.lib || require('../dist/index.js');
  const seed = opts.seed ?? (Date.now() ^ (process.pid << 8)) >>> 0;
  const t = newTotals();
  t.seed = seed;
  const started = Date.now();
  const deadline = opts.minutes ? started + opts.minutes * 60_000 : Number.POSITIVE_INFINITY;
  const rounds = opts.roundSeed !== undefined ? 1 : (opts.rounds ?? (opts.minutes ? Number.POSITIVE_INFINITY : 12));
  const per = opts.batchesPerRound ?? DEFAULT_BATCHES_PER_ROUND;
  const agent = opts.agent ? await AgentDevice.setup() : { skip: 'left out (--no-agent, or not asked for)' };
  t.agent = !('skip' in agent);
  t.agentSkipped = 'skip' in agent ? agent.skip : '';
  try {
    for (let r = 0; r < rounds && Date.now() < deadline; r++) {
      const roundSeed = opts.roundSeed !== undefined ? opts.roundSeed >>> 0 : mix(seed, r);
      t.seeds.push(roundSeed);
      if (t.seeds.length > 50) t.seeds.shift();
      await runRound(lib, roundSeed, per, t, opts.log, t.agent ? agent : undefined);
      if (opts.stopOnFailure !== false && !ok(t)) break;
    }
  } finally {
    if (t.agent) agent.dispose();
  }
  t.elapsedS = (Date.now() - started) / 1000;
  t.ok = ok(t);
  return t;
}

function ok(t) {
  return (
    t.mismatches === 0 &&
    t.guardHits === 0 &&
    t.rejected === 0 &&
    t.stuck === 0 &&
    t.leftInFlight === 0 &&
    t.lateWrites === 0 &&
    t.recordsReused === 0 &&
    t.closePastBound === 0 &&
    t.failures.length === 0
  );
}

function fmt(n) {
  return Number(n).toLocaleString('en-US');
}

function table(t) {
  const GiB = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  const rows = [
    ['seed', String(t.seed)],
    ['elapsed', `${t.elapsedS.toFixed(1)} s`],
    ['rounds (engine configs)', fmt(t.rounds)],
    ['batches run', `${fmt(t.batches)} (async ${fmt(t.asyncBatches)}, sync ${fmt(t.syncBatches)})`],
    ['prepared re-runs', `${fmt(t.preparedReruns)} (each verified after scrubbing the destinations)`],
    ['  by form', `list ${fmt(t.byForm.list)}, large list ${fmt(t.byForm['list-large'])}, region ${fmt(t.byForm.region)}`],
    ['  by backend', `emulated ${fmt(t.byBackend.emulated)}, cpu ${fmt(t.byBackend.cpu)}, dsa (dsa-agent) ${fmt(t.byBackend.dsa)}`],
    ['folios', fmt(t.folios)],
    ['bytes copied', `${fmt(t.bytesCopied)} (${GiB(t.bytesCopied)})`],
    ['bytes verified', `${fmt(t.bytesVerified)} (${GiB(t.bytesVerified)})`],
    ['device / cpu bytes', `${fmt(t.offloadedBytes)} / ${fmt(t.cpuBytes)}`],
    ['descriptors', fmt(t.descriptors)],
    ['out-of-order completions', fmt(t.outOfOrder)],
    ['faults seen: page faults', `${fmt(t.faults.pageFaults)} (continuations ${fmt(t.faults.pageFaultRetries)})`],
    ['faults seen: error statuses', fmt(t.faults.errors)],
    ['faults seen: retries (shared)', fmt(t.faults.retries)],
    ['faults seen: timeouts (hang/late)', fmt(t.faults.timeouts)],
    [
      'faults seen: quarantines',
      `${fmt(t.faults.quarantines)} (Drain fences ${fmt(t.faults.drains)}, wedged queues ${fmt(t.faults.wedged)})`,
    ],
    ['faults seen: lost records / foreign errors', `${fmt(t.faults.lostRecords)} / ${fmt(t.faults.foreignErrors)}`],
    [
      'fault presets (emulated engines)',
      Object.entries(t.faultRoundsByPreset)
        .map(([k, v]) => `${k} ${v}`)
        .join(', '),
    ],
    [
      'dsa-agent rounds',
      t.agent
        ? Object.entries(t.agentRoundsByPreset)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ') || 'none drawn'
        : `not run: ${t.agentSkipped}`,
    ],
    [
      'fallbacks by reason',
      `timeout ${fmt(t.fallbacks.timeout)}, error ${fmt(t.fallbacks.error)}, pageFault ${fmt(t.fallbacks.pageFault)}, submit ${fmt(t.fallbacks.submit)}`,
    ],
    ['late-write checks', fmt(t.lateWriteChecks)],
    ['MISMATCHES (dst bytes)', fmt(t.mismatches)],
    ['bytes changed outside dsts', fmt(t.guardHits)],
    ['device writes after resolve', fmt(t.lateWrites)],
    ['records reused while owned', fmt(t.recordsReused)],
    ['close() past its bound', `${fmt(t.closePastBound)} (slowest close ${t.closeMaxMs.toFixed(0)} ms)`],
    ['wedged batches (rejected as promised, bytes verified)', fmt(t.wedgedBatches)],
    ['rejected / stuck / left in flight', `${fmt(t.rejected)} / ${fmt(t.stuck)} / ${fmt(t.leftInFlight)}`],
    ['result', t.ok ? 'PASS' : 'FAIL'],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

function parseArgs(argv) {
  const o = { json: false, quiet: false, agent: true };
  const num = (i, name) => {
    const v = Number(argv[i + 1]);
    if (argv[i + 1] === undefined || !Number.isFinite(v) || v < 0) {
      console.error(`fault-campaign: ${name} needs a non-negative number`);
      process.exit(2);
    }
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '--seed') o.seed = num(i++, a) >>> 0;
    else if (a === '--round-seed') o.roundSeed = num(i++, a) >>> 0;
    else if (a === '--rounds') o.rounds = Math.floor(num(i++, a));
    else if (a === '--minutes') o.minutes = num(i++, a);
    else if (a === '--batches') o.batchesPerRound = Math.max(1, Math.floor(num(i++, a)));
    else if (a === '--no-agent') o.agent = false;
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: node scripts/fault-campaign.js [--seed N] [--rounds N | --minutes M] [--batches N] [--round-seed S] [--no-agent] [--json] [--quiet]',
      );
      process.exit(0);
    } else {
      console.error(`fault-campaign: unknown argument ${a}`);
      process.exit(2);
    }
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const seed = o.seed ?? (Date.now() ^ (process.pid << 8)) >>> 0;
  if (!o.json) console.log(`fault campaign: seed ${seed}${o.minutes ? `, ${o.minutes} min` : ''} (replay: --seed ${seed})`);
  const t = await runCampaign({ ...o, seed, log: o.quiet || o.json ? undefined : (s) => console.log(s) });
  if (o.json) {
    console.log(JSON.stringify(t, null, 2));
  } else {
    console.log(`\n${table(t)}`);
    if (t.failures.length) {
      console.log('\nfailures (replay a round with --round-seed):');
      for (const f of t.failures) console.log(`  ${JSON.stringify(f)}`);
    }
  }
  process.exitCode = t.ok ? 0 : 1;
}

module.exports = { runCampaign, table, mix };

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
