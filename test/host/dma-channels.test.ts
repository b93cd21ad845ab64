import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { formatDmaChannels } from '../../lib/cli/host-reports';
import { listDmaChannels } from '../../lib/host/dma-channels';
import { FIXTURES } from '../helpers';

const SYS = path.join(FIXTURES, 'sysfs', 'dma-channels', 'sys');
const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

describe('listDmaChannels', () => {
  it('reads channels, their device and driver links, in numeric order', () => {
    expect(listDmaChannels({ sysfsRoot: SYS })).toEqual([
      { name: 'dma0chan0', device: '0000:c1:00.2', driver: 'ptdma', inUse: 1, memcpyCount: 0, bytesTransferred: 0 },
      { name: 'dma0chan1', device: '0000:c1:00.2', driver: 'ptdma', inUse: 0, memcpyCount: 0, bytesTransferred: 0 },
      { name: 'dma1chan0', device: '0000:6a:01.0', driver: 'idxd', inUse: 0, memcpyCount: 12, bytesTransferred: 49152 },
      { name: 'dma2chan0', device: null, driver: null, inUse: null, memcpyCount: null, bytesTransferred: null },
      { name: 'dma3chan0', device: '0000:00:04.1', driver: null, inUse: 0, memcpyCount: 0, bytesTransferred: 0 },
    ]);
  });

  it('a missing root or class directory yields []; a file root throws ERR_DMACOPY_SYSFS', () => {
    expect(listDmaChannels({ sysfsRoot: '/nonexistent-dmacopy' })).toEqual([]);
    expect(listDmaChannels({ sysfsRoot: path.join(FIXTURES, 'sysfs', 'spr-4dev', 'sys') })).toEqual([]);
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-dma-')), 'f');
    tmp.push(path.dirname(f));
    fs.writeFileSync(f, '');
    expect(() => listDmaChannels({ sysfsRoot: f })).toThrow(expect.objectContaining({ code: 'ERR_DMACOPY_SYSFS' }));
  });

  it('honours DMACOPY_SYSFS_ROOT', () => {
    const saved = process.env.DMACOPY_SYSFS_ROOT;
    process.env.DMACOPY_SYSFS_ROOT = SYS;
    try {
      expect(listDmaChannels().length).toBe(5);
    } finally {
      if (saved === undefined) delete process.env.DMACOPY_SYSFS_ROOT;
      else process.env.DMACOPY_SYSFS_ROOT = saved;
    }
  });

  it('property: random bytes in the attribute files never throw', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmacopy-dma-'));
    tmp.push(dir);
    fs.cpSync(SYS, dir, { recursive: true, verbatimSymlinks: true });
    const chans = ['dma0chan0', 'dma1chan0', 'dma3chan0'];
    const attrs = ['in_use', 'memcpy_count', 'bytes_transferred'];
    fc.assert(
      fc.property(fc.constantFrom(...chans), fc.constantFrom(...attrs), fc.uint8Array({ maxLength: 40 }), (c, a, bytes) => {
        fs.writeFileSync(path.join(dir, 'class', 'dma', c, a), bytes);
        const list = listDmaChannels({ sysfsRoot: dir });
        expect(list.length).toBe(5);
        for (const ch of list) expect(ch.inUse === null || Number.isSafeInteger(ch.inUse)).toBe(true);
        formatDmaChannels(list);
      }),
      { numRuns: 100 },
    );
  });

  it('formats a table', () => {
    const text = formatDmaChannels(listDmaChannels({ sysfsRoot: SYS }));
    expect(text).toMatch(/^Kernel dmaengine channels: 5\n/);
    expect(text).toMatch(/dma0chan0\s+0000:c1:00\.2\s+ptdma\s+1/);
    expect(text).toMatch(/dma2chan0\s+\?\s+\?/);
    expect(formatDmaChannels([])).toMatch(/No kernel dmaengine channels/);
  });
});
