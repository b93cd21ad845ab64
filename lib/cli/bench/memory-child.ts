// Child process of the memory measurement (run with --expose-gc): allocates and touches the
// buffers of a large batch of 4 KiB folios and their views, settles the heap, resets the
// kernel's peak-RSS mark, copies through an 'auto' engine, and prints how far the peak rose
// above the settled RSS, as one JSON line. A child, so that nothing else of the bench is in
// its address space.
import fs from 'node:fs';
import { openEngine } from '../../engine/engine';

function statusField(name: string): number | null {
  try {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resets VmHWM to the current RSS (Linux >= 4.0); false where that is not allowed. */
function resetPeak(): boolean {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

async function main(): Promise<void> {
  const bytes = Number(process.argv[2] ?? 1024 ** 3);
  const folio = Number(process.argv[3] ?? 4096);
  const src = Buffer.allocUnsafeSlow(bytes);
  const dst = Buffer.allocUnsafeSlow(bytes);
  for (let o = 0; o < bytes; o += 4096) src.writeUInt32LE(((o / 4096) * 2654435761) >>> 0, o);
  dst.fill(0);
  const n = Math.floor(bytes / folio);
  const srcViews: Buffer[] = new Array(n);
  const dstViews: Buffer[] = new Array(n);
  for (let i = 0; i < n; i++) {
    srcViews[i] = src.subarray(i * folio, (i + 1) * folio);
    dstViews[i] = dst.subarray(i * folio, (i + 1) * folio);
  }
  const engine = await openEngine();
  // Start the engine's threads and settle its allocations on a small batch first.
  await engine.copyBatch(dst.subarray(0, 1 << 20), src.subarray(0, 1 << 20), { folioSize: folio });
  let canReset = true;
  const sampled = { peak: 0 };
  const measureOne = async (fn: () => Promise<unknown>): Promise<number | null> => {
    dst.fill(0);
    settle();
    const base = statusField('VmRSS');
    canReset = resetPeak() && canReset;
    sampled.peak = base ?? 0;
    const timer = setInterval(() => {
      const r = statusField('VmRSS');
      if (r !== null && r > sampled.peak) sampled.peak = r;
    }, 2);
    await fn();
    clearInterval(timer);
    const hwm = statusField('VmHWM');
    if (base === null) return null;
    const peak = canReset && hwm !== null ? hwm : sampled.peak;
    return Math.max(0, peak - base);
  };
  const region = await measureOne(() => engine.copyBatch(dst, src, { folioSize: folio }));
  let verified = dst.equals(src);
  const list = await measureOne(() => engine.copyBatch(dstViews, srcViews));
  verified = verified && dst.equals(src);
  await engine.close();
  process.stdout.write(
    `${JSON.stringify({ bytes, folioSize: folio, region, list, verified, method: canReset ? 'VmHWM after clear_refs=5' : 'VmRSS sampled every 2 ms' })}\n`,
  );
}

if (require.main === module) {
  main().catch((err) => {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
    process.exitCode = 1;
  });
}
