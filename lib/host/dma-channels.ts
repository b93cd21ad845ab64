// Kernel dmaengine channels from /sys/class/dma/dma<N>chan<M> (drivers/dma/dmaengine.c): the interface the
// in-kernel users (dmatest, the dcbm migration offload driver) go through, and the only one for engines such
// as AMD PTDMA/AE4DMA or DSA work queues of type `kernel`. Garbage-tolerant: unreadable values are null.

import path from 'node:path';
import { checkRoot, isDir, linkBasename, listDir, parseUnsigned, readAttr, resolveRoots } from './sysfs';

export interface DmaChannel {
  /** `dma<N>chan<M>` */
  name: string;
  /** Device the channel belongs to: basename of the channel's `device` link (e.g. `0000:c1:00.2`); null if absent. */
  device: string | null;
  /** Driver of that device: basename of `device/driver` (e.g. `ptdma`, `idxd`, `ioatdma`); null if unbound or absent. */
  driver: string | null;
  /** `in_use`: number of clients holding the channel; null when unreadable. */
  inUse: number | null;
  /** `memcpy_count` (only legacy helpers update it; usually 0); null when unreadable. */
  memcpyCount: number | null;
  /** `bytes_transferred` (same caveat); null when unreadable. */
  bytesTransferred: number | null;
}

const CHANNEL_RE = /^dma(\d{1,9})chan(\d{1,9})$/;

/** List the dmaengine channels. A missing root or class directory yields []; a root that is not a directory throws ERR_DMACOPY_SYSFS. */
export function listDmaChannels(options?: { sysfsRoot?: string }): DmaChannel[] {
  const { sysfsRoot } = resolveRoots(options === undefined ? undefined : { sysfsRoot: options.sysfsRoot });
  if (!checkRoot(sysfsRoot, 'sysfs')) return [];
  const classDir = path.join(sysfsRoot, 'class', 'dma');
  const out: Array<DmaChannel & { n: number; m: number }> = [];
  for (const e of listDir(classDir)) {
    const match = CHANNEL_RE.exec(e);
    if (!match) continue;
    const dir = path.join(classDir, e);
    if (!isDir(dir)) continue;
    const deviceLink = path.join(dir, 'device');
    out.push({
      name: e,
      device: linkBasename(deviceLink),
      driver: linkBasename(path.join(deviceLink, 'driver')),
      inUse: parseUnsigned(readAttr(dir, 'in_use')),
      memcpyCount: parseUnsigned(readAttr(dir, 'memcpy_count')),
      bytesTransferred: parseUnsigned(readAttr(dir, 'bytes_transferred')),
      n: Number(match[1]),
      m: Number(match[2]),
    });
  }
  out.sort((a, b) => a.n - b.n || a.m - b.m);
  return out.map(({ n: _n, m: _m, ...c }) => c);
}
