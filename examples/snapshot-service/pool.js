// The service's state: a live pool of pages that requests read and write, and a snapshot pool
// that holds a consistent copy of it. Both sit on SharedArrayBuffers so a worker thread can copy
// between them while the main thread serves.
'use strict';

class PagePool {
  /**
   * @param {number} bytes total size of each pool (a multiple of pageSize)
   * @param {number} pageSize bytes per page (the folio size of every copy)
   * @param {{ live: SharedArrayBuffer, snapshot: SharedArrayBuffer }} [shared] reuse existing memory (a worker's view)
   */
  constructor(bytes, pageSize, shared) {
    if (!Number.isSafeInteger(pageSize) || pageSize < 64) throw new RangeError(`page size must be an integer >= 64, got ${pageSize}`);
    if (!Number.isSafeInteger(bytes) || bytes < pageSize || bytes % pageSize !== 0)
      throw new RangeError(`pool size must be a positive multiple of the page size (${pageSize}), got ${bytes}`);
    this.pageSize = pageSize;
    this.pages = bytes / pageSize;
    this.liveMemory = shared ? shared.live : new SharedArrayBuffer(bytes);
    this.snapshotMemory = shared ? shared.snapshot : new SharedArrayBuffer(bytes);
    this.live = Buffer.from(this.liveMemory);
    this.snapshot = Buffer.from(this.snapshotMemory);
  }

  /** Distinct content per page (its index, then a byte pattern), so a misplaced page is visible. */
  fill() {
    for (let i = 0; i < this.pages; i++) {
      const off = i * this.pageSize;
      this.live.fill((i * 31 + 7) & 0xff, off, off + this.pageSize);
      this.live.writeUInt32LE(i, off);
    }
  }

  /** @returns {Buffer | undefined} a view of page n of the given pool, or undefined when n is out of range */
  page(which, n) {
    if (!Number.isSafeInteger(n) || n < 0 || n >= this.pages) return undefined;
    const pool = which === 'snapshot' ? this.snapshot : this.live;
    return pool.subarray(n * this.pageSize, (n + 1) * this.pageSize);
  }

  /** Marks page n (wrapping) with a generation number: each snapshot then has something new to copy. */
  stamp(n, generation) {
    const off = (n % this.pages) * this.pageSize;
    this.live.writeDoubleLE(generation, off + 8);
  }

  /** True when the snapshot pool holds exactly the live pool's bytes. */
  snapshotEqualsLive() {
    return this.live.equals(this.snapshot);
  }
}

module.exports = { PagePool };
