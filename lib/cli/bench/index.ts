// `dmacopy bench` as a library: runBench() returns a report; the CLI and the scripts format it.

export { type BoundFigure, boundOf, type CellBound, cellBounds, selectBound } from './bound';
export { type Cell, type Form, type Mode, planCells, type SweepConfig, sweepConfig } from './cells';
export { type HostRecord, hostLine, hostRecord } from './host';
export { measureMemory } from './memory';
export {
  type BenchPath,
  type BoundCopyKind,
  boundPathName,
  bufferCopyPath,
  type CellBuffers,
  enginePath,
  memcpyBoundPath,
  PREPARED_PATH,
  preparedPath,
  typedArraySetPath,
} from './paths';
export { type BenchOptions, type BenchReport, boundNotes, fillRatios, perRepRatio, planTasks, runBench } from './run';
export { median, parseSize, quantile, sizeLabel } from './stats';
export { chartPanels, type Panel, renderSvg, seriesColor, seriesColors } from './svg';
export { formatBounds, formatReport, formatRows, formatTargets } from './table';
export { evaluateTargets, type MemoryResult, type TargetResult } from './targets';
