// The sweep: which (folio size, batch size, form) cells a run measures. Small batches (at most
// LATENCY_MAX_FOLIOS folios) are latency cells: many iterations, one batch awaited at a time,
// p50/p99 reported. Larger ones are throughput cells: a warm-up and a few repetitions, medians.
import { KiB, MiB } from './stats';

export type Form = 'region' | 'list';
export type Mode = 'await' | 'sync';
export type CellKind = 'latency' | 'throughput';

export interface Cell {
  folioSize: number;
  folios: number;
  bytes: number;
  form: Form;
  kind: CellKind;
  /**
   * A probe cell: measured only by these engine paths (with Buffer.copy and the bounds), and
   * left out of the chart. The prepared per-folio probe is one.
   */
  onlyPaths?: string[];
}

/**
 * The per-folio probe: 65,536 folios of 64 bytes (list form), re-run as a prepared batch. The
 * copy itself is small, so the time beyond the bound (64-byte copies on 1..N threads) and the
 * fixed cost is what the engine spends per folio.
 */
export const PER_FOLIO_PROBE = { folioSize: 64, folios: 65536 } as const;

export const LATENCY_MAX_FOLIOS = 64;
/** A small batch larger than this is measured as a throughput cell (a few repetitions). */
export const LATENCY_MAX_BYTES = 4 * 1024 * 1024;
export const DEFAULT_FOLIO_SIZES = [4 * KiB, 64 * KiB, 2 * MiB];
export const DEFAULT_BATCHES = [1, 8, 64, 512];
export const DEFAULT_TOTAL_BYTES = 256 * MiB;
/** --quick: folio sizes other than 4 KiB run their large cell over this many bytes at most. */
export const QUICK_OTHER_TOTAL_BYTES = 64 * MiB;

export interface SweepConfig {
  quick: boolean;
  /** Folio sizes in bytes (defaults plus --folio-sizes, deduplicated). */
  folioSizes: number[];
  /** Batch sizes in folios; the large total is added per folio size. */
  batches: number[];
  /** The large batch, in bytes (256 MiB by default). */
  totalBytes: number;
  forms: Form[];
}

export function sweepConfig(o: {
  quick?: boolean;
  folioSizes?: number[];
  totalBytes?: number;
  batches?: number[];
  forms?: Form[];
}): SweepConfig {
  const sizes = [...new Set([...DEFAULT_FOLIO_SIZES, ...(o.folioSizes ?? [])])].sort((a, b) => a - b);
  return {
    quick: o.quick ?? false,
    folioSizes: sizes,
    batches: o.batches ?? DEFAULT_BATCHES,
    totalBytes: o.totalBytes ?? DEFAULT_TOTAL_BYTES,
    forms: o.forms ?? ['region', 'list'],
  };
}

export function cellKey(c: { folioSize: number; folios: number; form: Form }): string {
  return `${c.folioSize}/${c.folios}/${c.form}`;
}

/**
 * The cells of a run. Full run: every folio size with 1, 8, 64, 512 folios and the large total
 * (a batch is skipped when it is larger than the total). Quick: the small batches (1, 8, 64)
 * of 4 KiB only, the large total of 4 KiB (256 MiB: the targets are about it) and the large
 * cell of every other size over at most 64 MiB.
 */
export function planCells(cfg: SweepConfig, probePaths: string[] = []): Cell[] {
  const cells: Cell[] = [];
  if (probePaths.length && cfg.forms.includes('list')) {
    const { folioSize, folios } = PER_FOLIO_PROBE;
    cells.push({ folioSize, folios, bytes: folioSize * folios, form: 'list', kind: 'throughput', onlyPaths: probePaths });
  }
  for (const folioSize of cfg.folioSizes) {
    let total = cfg.totalBytes;
    if (cfg.quick && folioSize !== 4 * KiB) total = Math.min(total, QUICK_OTHER_TOTAL_BYTES);
    const totalFolios = Math.max(1, Math.floor(total / folioSize));
    let counts: number[];
    if (cfg.quick) counts = folioSize === 4 * KiB ? cfg.batches.filter((b) => b <= LATENCY_MAX_FOLIOS) : [];
    else counts = cfg.batches.filter((b) => b * folioSize <= total);
    counts = [...new Set([...counts, totalFolios])].sort((a, b) => a - b);
    for (const folios of counts) {
      for (const form of cfg.forms) {
        const bytes = folios * folioSize;
        const latency = folios !== totalFolios && folios <= LATENCY_MAX_FOLIOS && bytes <= LATENCY_MAX_BYTES;
        cells.push({ folioSize, folios, bytes, form, kind: latency ? 'latency' : 'throughput' });
      }
    }
  }
  return cells;
}
