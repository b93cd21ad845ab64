// Repetitions of the service benchmark fold into medians per setting and gap (pure functions:
// no service is started), and the goals are judged from those medians.
import { describe, expect, it } from 'vitest';
import { medianPoints } from '../../lib/cli/bench/service-aggregate';
import { evaluateGoals } from '../../lib/cli/bench/service-run';
import type { ServicePoint } from '../../lib/cli/bench/service-types';

function point(setting: string, gapMs: number, p99: number, gbps: number, verified = true): ServicePoint {
  return {
    setting,
    strategy: setting === 'none' ? 'none' : 'copy-batch',
    cpuThreads: 2,
    cpuNice: 19,
    gapMs,
    request: { requests: 100, errors: 0, reqPerSec: 1000, p50: p99 / 4, p99, max: p99 * 2 },
    eventLoopDelay: { p50: 0.1, p99: 1, max: 2 },
    copyGbps: gbps,
    copyCores: setting === 'none' ? null : gbps / 20,
    copies: 10,
    unloadedGbps: gapMs === 0 && setting !== 'none' ? 10 : null,
    unloadedCopyCores: gapMs === 0 && setting !== 'none' ? 0.5 : null,
    verified,
    reps: 1,
    p99s: [p99],
    gbpsSamples: [gbps],
  };
}

describe('service bench repetitions', () => {
  it('takes medians per setting and gap, in order of first appearance, and keeps every sample', () => {
    const raw = [
      point('none', 0, 2, 0),
      point('a', 0, 5, 6),
      point('a', 20, 3, 2),
      point('none', 0, 3, 0),
      point('a', 0, 1, 9),
      point('a', 20, 4, 1),
    ];
    raw.push(point('none', 0, 4, 0), point('a', 0, 3, 7, false), point('a', 20, 5, 3));
    const m = medianPoints(raw);
    expect(m.map((p) => [p.setting, p.gapMs])).toEqual([
      ['none', 0],
      ['a', 0],
      ['a', 20],
    ]);
    expect(m[1]).toMatchObject({ reps: 3, p99s: [5, 1, 3], gbpsSamples: [6, 9, 7], copyGbps: 7, verified: false, copies: 30 });
    expect(m[1]).toMatchObject({ copyCores: 7 / 20, unloadedCopyCores: 0.5 });
    expect(m[1]?.request).toMatchObject({ p99: 3, requests: 300 });
    expect(m[0]).toMatchObject({ verified: true, unloadedGbps: null, copyCores: null, unloadedCopyCores: null });
  });

  it('judges the goals at gap 0 against idle and the unloaded reference', () => {
    const pts = medianPoints([point('none', 0, 2, 0), point('a', 0, 3.9, 5.5), point('b', 0, 4.1, 9), point('a', 20, 2, 1)]);
    expect(evaluateGoals(pts, 2, 10)).toEqual([
      { setting: 'a', p99VsIdle: 1.95, gbpsVsUnloaded: 0.55, met: true },
      { setting: 'b', p99VsIdle: 2.05, gbpsVsUnloaded: 0.9, met: false },
    ]);
    expect(evaluateGoals(pts, null, 10)).toEqual([]);
  });

  it('meets no goal with copies that did not verify or a copy loop that failed, in any repetition', () => {
    // Both once met the goal on their figures alone.
    const failedLoop = { ...point('c', 0, 3, 8), loopError: 'ERR_DMACOPY_INTERNAL: boom' };
    const pts = medianPoints([point('none', 0, 2, 0), point('a', 0, 3, 8, false), point('c', 0, 3, 8), failedLoop]);
    expect(pts.find((p) => p.setting === 'c')?.loopError).toBe('ERR_DMACOPY_INTERNAL: boom'); // from its second repetition
    expect(evaluateGoals(pts, 2, 10).map((g) => [g.setting, g.met])).toEqual([
      ['a', false],
      ['c', false],
    ]);
  });
});
