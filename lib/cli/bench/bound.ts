// The bound: what this machine can copy, measured in the same run as the paths. For every cell
// (folio size, batch) the native yardstick copies the same bytes, each thread its share in one
// run, with memcpy and with streaming stores, each on 1..N threads; the fastest of those figures is the
// cell's bound, and every row's throughput is stated as a fraction of it (x bound). A plain
// memcpy alone is not the limit: streaming stores skip the read-for-ownership of every
// destination line, and on large batches they are much faster.
import type { Row } from './measure';
import type { BoundCopyKind } from './paths';

export interface BoundFigure {
  kind: BoundCopyKind;
  threads: number;
  /** The bound path's name, e.g. "streaming x2". */
  path: string;
  gbps: number;
  medianNs: number;
  verified: boolean;
}

export interface CellBound {
  folioSize: number;
  folios: number;
  bytes: number;
  kind: Row['kind'];
  /** Every kind x threads figure measured on this cell, kinds in order, threads ascending. */
  figures: BoundFigure[];
  /** The fastest verified figure; null when none verified. */
  bound: BoundFigure | null;
}

function boundKindOf(r: Row): BoundCopyKind {
  return r.boundKind ?? (r.path.startsWith('streaming') ? 'streaming' : 'memcpy');
}

/** The fastest verified figure with a finite throughput: the max across kinds and threads. */
export function selectBound(figures: readonly BoundFigure[]): BoundFigure | null {
  let best: BoundFigure | null = null;
  for (const f of figures) {
    if (!f.verified || !Number.isFinite(f.gbps) || f.gbps <= 0) continue;
    if (!best || f.gbps > best.gbps) best = f;
  }
  return best;
}

/** The bound of every cell that has bound rows, in the order the cells were measured. */
export function cellBounds(rows: readonly Row[]): CellBound[] {
  const cells = new Map<string, CellBound>();
  for (const r of rows) {
    if (r.pathKind !== 'bound') continue;
    const key = `${r.folioSize}/${r.folios}`;
    let c = cells.get(key);
    if (!c) {
      c = { folioSize: r.folioSize, folios: r.folios, bytes: r.bytes, kind: r.kind, figures: [], bound: null };
      cells.set(key, c);
    }
    c.figures.push({ kind: boundKindOf(r), threads: r.threads, path: r.path, gbps: r.gbps, medianNs: r.medianNs, verified: r.verified });
  }
  const order: BoundCopyKind[] = ['memcpy', 'streaming'];
  for (const c of cells.values()) {
    c.figures.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || a.threads - b.threads);
    c.bound = selectBound(c.figures);
  }
  return [...cells.values()];
}

/** Looks a row's cell up in cellBounds(). */
export function boundOf(bounds: readonly CellBound[], r: { folioSize: number; folios: number }): CellBound | undefined {
  return bounds.find((b) => b.folioSize === r.folioSize && b.folios === r.folios);
}
