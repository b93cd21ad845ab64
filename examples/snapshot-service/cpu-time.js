// CPU time of the whole process and of dmacopy's copy threads (named dmacopy-cpuN by the engine,
// in this thread's engine and any worker's), in seconds: how many cores the copy took while the
// service served, next to how many the process took. Linux only (/proc/self/task); elsewhere the
// copy threads' share is null.
'use strict';
const fs = require('node:fs');

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux x86-64 and arm64). */
const USER_HZ = 100;

function copyThreadSeconds() {
  let tasks;
  try {
    tasks = fs.readdirSync('/proc/self/task');
  } catch {
    return null;
  }
  let ticks = 0;
  for (const tid of tasks) {
    try {
      if (!fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').startsWith('dmacopy-cpu')) continue;
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Fields after "(comm)": state is field 3, utime 14, stime 15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // the thread ended between the listing and the read: its time is gone with it
    }
  }
  return ticks / USER_HZ;
}

/** A point to measure from: cpuSince(mark()) gives the cores used since. */
function mark() {
  const u = process.cpuUsage();
  return { at: process.hrtime.bigint(), process: (u.user + u.system) / 1e6, copy: copyThreadSeconds() };
}

/** Cores used since `from` (CPU seconds per second): the process's, and its copy threads'. */
function cpuSince(from) {
  const now = mark();
  const s = Number(now.at - from.at) / 1e9;
  if (s <= 0) return { processCores: 0, copyCores: null };
  const copy = now.copy !== null && from.copy !== null ? (now.copy - from.copy) / s : null;
  return { processCores: (now.process - from.process) / s, copyCores: copy };
}

module.exports = { mark, cpuSince };
