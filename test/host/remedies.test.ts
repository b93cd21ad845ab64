// One remedy catalogue (lib/host/remedies.ts): every reason a queue is unusable has advice, and the
// advice about the same thing is the same text wherever it is shown.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type OpenProblemCode, openReason, permissionSteps, type RemedyCode, remedyFor, udevRule } from '../../lib/host/remedies';
import { ROOT } from '../helpers';

const ALL: RemedyCode[] = [
  'device-disabled',
  'device-halted',
  'device-state-unknown',
  'queue-disabled',
  'queue-not-enabled',
  'kernel-type',
  'not-user-type',
  'bad-sysfs-value',
  'no-pasid',
  'no-memmove',
  'memmove-not-allowed',
  'dedicated-owned',
  'no-device-node',
  'permission',
  'no-node',
  'busy',
  'no-sva',
  'open-failed',
  'not-char-device',
  'device-not-enabled',
  'portal-unavailable',
  'portal-instruction-missing',
  'probe-submit-failed',
  'probe-timeout',
  'probe-failed',
];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : /\.(ts|cc|h)$/.test(e.name) ? [p] : [];
  });
}

describe('remedy catalogue', () => {
  it('has advice for every code, naming the queue, device and node it is about', () => {
    for (const code of ALL) {
      const text = remedyFor(code, { device: 'dsa2', queue: 'wq2.1', devicePath: '/dev/dsa/wq2.1' });
      expect(text.length, code).toBeGreaterThan(10);
      expect(text, code).not.toMatch(/undefined|<dsaN|<wqN/);
    }
    expect(remedyFor('permission', { devicePath: '/dev/dsa/wq0.0', group: 'copy' })).toContain('chgrp copy /dev/dsa/wq0.0');
  });

  it('turns the native open codes and errno into a reason', () => {
    const open: OpenProblemCode[] = ['no-node', 'permission', 'busy', 'no-sva', 'open-failed', 'probe-failed'];
    for (const code of open) expect(openReason(code, 13, '/dev/dsa/wq0.0', 0x14), code).toContain('/dev/dsa/wq0.0');
    expect(openReason('permission', 13, '/dev/dsa/wq0.0')).toContain('EACCES');
    expect(openReason('busy', 16, '/dev/dsa/wq0.0')).toContain('EBUSY');
    expect(openReason('probe-failed', 0, '/dev/dsa/wq0.0', 0x14)).toContain('0x14');
    // A mistyped dev root: the reason says what the node is, the remedy which setting to fix.
    expect(openReason('not-char-device', 0, '/tmp/x/dsa/wq0.0')).toContain('is not a device node');
    expect(remedyFor('not-char-device', { devicePath: '/tmp/x/dsa/wq0.0' })).toContain('DMACOPY_DEV_ROOT');
  });

  it('gives the same udev rule in discovery and in `dmacopy setup`', () => {
    const rule = udevRule('dsa');
    expect(remedyFor('permission', { devicePath: '/dev/dsa/wq0.0' })).toContain(rule);
    expect(permissionSteps('/dev/dsa/wq0.0', 'dsa').join('\n')).toContain(rule);
  });

  it('is the only place that writes operator advice (udev rules, chmod lines)', () => {
    const offenders = [...sources(path.join(ROOT, 'lib')), ...sources(path.join(ROOT, 'native'))].filter((f) => {
      if (f.endsWith(path.join('host', 'remedies.ts'))) return false;
      return /KERNEL==|chmod 0660|udev rule/.test(fs.readFileSync(f, 'utf8'));
    });
    expect(offenders.map((f) => path.relative(ROOT, f))).toEqual([]);
  });
});
