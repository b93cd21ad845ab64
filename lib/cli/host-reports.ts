// Text reports of what lib/host/ reads (DSA devices and queues, dmaengine channels, a kernel
// dmatest run), for `dmacopy info` and `dmacopy dmatest`. The host layer returns data only.
import path from 'node:path';
import type { DsaDevice } from '../host/discovery';
import type { DmaChannel } from '../host/dma-channels';
import type { DmatestRun } from '../host/dmatest';
import { columnWidths } from './text-table';

function versionText(v: number | null): string {
  if (v === null) return 'version ?';
  return `DSA ${v >> 8}.${v & 0xff} (0x${v.toString(16)})`;
}

function sizeText(n: number | null): string {
  if (n === null) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && v % 1024 === 0 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v} ${units[u]}`;
}

function table(rows: string[][], indent: string): string[] {
  const widths = columnWidths(rows);
  return rows.map(
    (r) =>
      indent +
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
  );
}

/** Plain-text report of devices and queues, with the reason and remedy of each unusable queue. */
export function formatDevices(devices: readonly DsaDevice[], options: { root?: string } = {}): string {
  if (devices.length === 0) {
    const where = options.root !== undefined ? ` under ${path.join(options.root, 'bus', 'dsa', 'devices')}` : '';
    return `No Intel DSA devices found${where}.\n`;
  }
  const lines: string[] = [];
  const queues = devices.flatMap((d) => d.queues);
  const usable = queues.filter((q) => q.usable).length;
  lines.push(
    `Intel DSA: ${devices.length} device${devices.length === 1 ? '' : 's'}, ${queues.length} work queue${queues.length === 1 ? '' : 's'}, ${usable} usable by this process`,
  );
  for (const d of devices) {
    lines.push('');
    const flags = [
      d.state,
      versionText(d.version),
      `node ${d.numaNode}`,
      `pasid ${d.pasidEnabled === null ? '?' : d.pasidEnabled ? 'on' : 'off'}`,
      `memmove ${d.memmoveSupported ? 'yes' : 'no'}`,
      `batch ${d.batchSupported ? 'yes' : 'no'}`,
      `cache-control ${d.cacheControl ? 'yes' : 'no'}`,
      `max transfer ${sizeText(d.maxTransferSize)}`,
    ];
    lines.push(`${d.name}: ${flags.join(', ')}`);
    if (d.queues.length === 0) {
      lines.push('  (no work queues)');
      continue;
    }
    const rows: string[][] = [['QUEUE', 'MODE', 'TYPE', 'STATE', 'SIZE', 'CLIENTS', 'DEVICE NODE', 'USABLE']];
    const notes: string[][] = [];
    for (const q of d.queues) {
      rows.push([
        q.name,
        q.mode,
        q.type,
        q.state,
        q.size === null ? '?' : String(q.size),
        q.clients === null ? '?' : String(q.clients),
        q.devicePath + (q.nodeExists ? '' : ' (missing)'),
        q.usable ? 'yes' : 'no',
      ]);
      if (!q.usable) notes.push([q.name, q.reason ?? '', q.remedy ?? '']);
    }
    lines.push(...table(rows, '  '));
    for (const [name, reason, remedy] of notes) {
      lines.push(`  ${name}: ${reason}`);
      lines.push(`    fix: ${remedy}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Plain-text table of dmaengine channels for `dmacopy info`. */
export function formatDmaChannels(channels: readonly DmaChannel[], sysfsRoot = '/sys'): string {
  if (channels.length === 0) return `No kernel dmaengine channels (${path.join(sysfsRoot, 'class', 'dma')} is empty or absent).\n`;
  const rows: string[][] = [['CHANNEL', 'DEVICE', 'DRIVER', 'IN USE', 'MEMCPY COUNT', 'BYTES']];
  const show = (v: number | string | null): string => (v === null ? '?' : String(v));
  for (const c of channels)
    rows.push([c.name, show(c.device), show(c.driver), show(c.inUse), show(c.memcpyCount), show(c.bytesTransferred)]);
  const widths = columnWidths(rows);
  const lines = rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  return `Kernel dmaengine channels: ${channels.length}\n${lines.join('\n')}\n`;
}

/** A rate from a dmatest summary; '-' where the kernel did not log it (before v3.13). */
export function dmatestRate(v: number | null, digits = 0): string {
  return v === null ? '-' : v.toFixed(digits);
}

/** Plain-text report of a dmatest run. */
export function formatDmatestRun(run: DmatestRun): string {
  const lines: string[] = [];
  const what = run.channels.length === 0 ? 'all available channels' : run.channels.join(', ');
  const why = run.timedOut
    ? ' (DID NOT FINISH before the deadline; stopped, results may be partial)'
    : run.interrupted
      ? ' (INTERRUPTED: stopped and its parameters written back; results may be partial)'
      : '';
  lines.push(`Kernel dmatest on ${what}${why}:`);
  if (run.summaries.length === 0) {
    lines.push('  no summary lines found in the kernel log (check `dmesg | grep dmatest`)');
  } else {
    const rows: string[][] = [['THREAD', 'TESTS', 'FAILURES', 'IOPS', 'KB/S', 'STATUS']];
    for (const s of run.summaries)
      rows.push([
        s.truncated ? `${s.thread}…` : s.thread,
        String(s.tests),
        String(s.failures),
        dmatestRate(s.iops, 2),
        dmatestRate(s.kbPerSec),
        String(s.status),
      ]);
    for (const t of run.totals) {
      if (t.threads > 1)
        rows.push([
          `${t.channel} ${t.operation ?? '?'} (${t.threads} threads)`,
          String(t.tests),
          String(t.failures),
          dmatestRate(t.iops, 2),
          dmatestRate(t.kbPerSec),
          '',
        ]);
    }
    const widths = columnWidths(rows);
    for (const r of rows)
      lines.push(
        `  ${r
          .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
          .join('  ')
          .trimEnd()}`,
      );
    if (run.summaries.some((s) => s.truncated)) lines.push('  … the kernel cuts thread names to 15 characters; counted by channel');
  }
  for (const e of run.errors.slice(0, 20))
    lines.push(`  ${e.thread} test #${e.test}: ${e.message} (src_off=${e.srcOff} dst_off=${e.dstOff} len=${e.len})`);
  if (run.errors.length > 20) lines.push(`  … ${run.errors.length - 20} more errors`);
  for (const n of run.notRestored) lines.push(`  warning: could not restore dmatest parameter ${n.name}=${n.value}: ${n.error}`);
  return `${lines.join('\n')}\n`;
}
