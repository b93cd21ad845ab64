// Node's diagnostics_channel events, so APM tools and the metrics integration can observe
// batches without wrapping the API. Messages are built only when someone subscribes.
import dc from 'node:diagnostics_channel';
import type { CopyReport, ResolvedBackend } from '../types';

/** Published when a batch is accepted: { engineId, backend, bytes, folios, path }. */
export const batchStart = dc.channel('dmacopy:batch:start');
/** Published when a batch settles: { engineId, backend, path, report } or { engineId, backend, path, error }. */
export const batchEnd = dc.channel('dmacopy:batch:end');
/** Published when any descriptor of a batch was finished by the CPU: { engineId, backend, fallbacks }. */
export const batchFallback = dc.channel('dmacopy:batch:fallback');
/** Published when a device channel gets quarantined: { engineId, backend, channel }. */
export const queueQuarantine = dc.channel('dmacopy:queue:quarantine');

export type BatchPath = 'inline' | 'threads' | 'device';

export interface BatchStartMessage {
  engineId: number;
  backend: ResolvedBackend;
  bytes: number;
  folios: number;
  path: BatchPath;
}

export interface BatchEndMessage {
  engineId: number;
  backend: ResolvedBackend;
  path: BatchPath;
  report?: CopyReport;
  error?: Error;
}

/** Whether anyone listens to batch messages now (the inline path skips building a trace otherwise). */
export function tracing(): boolean {
  return batchStart.hasSubscribers || batchEnd.hasSubscribers || batchFallback.hasSubscribers;
}

export function publishStart(m: BatchStartMessage): void {
  if (batchStart.hasSubscribers) batchStart.publish(m);
}

export function publishEnd(m: BatchEndMessage): void {
  if (batchEnd.hasSubscribers) batchEnd.publish(m);
  const f = m.report?.fallbacks;
  if (f && batchFallback.hasSubscribers && f.timeout + f.error + f.pageFault + f.submit > 0) {
    batchFallback.publish({ engineId: m.engineId, backend: m.backend, fallbacks: f });
  }
}

/**
 * One batch's diagnostics: publishes its dmacopy:batch:start when created, and exactly one
 * dmacopy:batch:end, through end() or fail(), whichever comes first, whatever path the batch took
 * and wherever it failed (validation of a later chunk, a submit, the copy itself).
 */
export class BatchTrace {
  #ended = false;
  readonly #engineId: number;
  readonly #backend: ResolvedBackend;
  readonly #path: BatchPath;

  constructor(engineId: number, backend: ResolvedBackend, path: BatchPath, bytes: number, folios: number) {
    this.#engineId = engineId;
    this.#backend = backend;
    this.#path = path;
    publishStart({ engineId, backend, bytes, folios, path });
  }

  end(report: CopyReport): void {
    if (this.#ended) return;
    this.#ended = true;
    publishEnd({ engineId: this.#engineId, backend: report.backend, path: this.#path, report });
  }

  fail(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    publishEnd({ engineId: this.#engineId, backend: this.#backend, path: this.#path, error });
  }
}

export function publishQuarantine(m: { engineId: number; backend: ResolvedBackend; channel: string }): void {
  if (queueQuarantine.hasSubscribers) queueQuarantine.publish(m);
}
