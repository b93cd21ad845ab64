// The one catalogue of operator advice: for every reason a DSA queue cannot be used (what
// discovery reads in sysfs, and what opening /dev/dsa/wqD.Q reports from the native side as a
// code and an errno), the one line an operator can act on. Discovery, `dmacopy info`, the engine's
// open errors and `dmacopy setup` all take their words from here, so they cannot disagree.

/** Why a queue cannot be used, as discovery reads it in sysfs (most fundamental first). */
export type QueueProblemCode =
  | 'device-disabled'
  | 'device-halted'
  | 'device-state-unknown'
  | 'queue-disabled'
  | 'queue-not-enabled'
  | 'kernel-type'
  | 'not-user-type'
  | 'bad-sysfs-value'
  | 'no-pasid'
  | 'no-memmove'
  | 'memmove-not-allowed'
  | 'dedicated-owned'
  | 'no-device-node'
  | 'permission';

/** Why opening a queue's node failed, as the native side reports it (to_string(OpenErrorCode) in user_queue.cc). */
export type OpenProblemCode =
  | 'no-node'
  | 'permission'
  | 'busy'
  | 'no-sva'
  | 'open-failed'
  | 'not-char-device'
  | 'queue-not-enabled'
  | 'device-not-enabled'
  | 'portal-unavailable'
  | 'portal-instruction-missing'
  | 'probe-submit-failed'
  | 'probe-timeout'
  | 'probe-failed';

export type RemedyCode = QueueProblemCode | OpenProblemCode;

/** What a remedy may name: the device (dsaN), the queue (wqN.M) and its node (/dev/dsa/wqN.M). */
export interface RemedyContext {
  device?: string;
  queue?: string;
  devicePath?: string;
  /** The group the permission advice gives access to. Default 'dsa'. */
  group?: string;
}

/** The udev rule that gives a group the /dev/dsa queue nodes, permanently. */
export function udevRule(group = 'dsa'): string {
  return `SUBSYSTEM=="dsa", KERNEL=="*wq*", GROUP="${group}", MODE="0660"`;
}

/** The accel-config line that makes a queue a shared user queue named dmacopy (as `dmacopy setup`'s default profile). */
/**
 * A disabled queue made a shared user queue again, keeping its size and group (which the kernel
 * lets change only while the device is disabled). Every setting a disable or a type change
 * clears is given: the name (enable-wq refuses a queue without one), the mode, the threshold (a
 * shared queue needs one, at most its size) and the priority.
 */
function reconfigureUserWq(where: string): string {
  return `accel-config config-wq --type=user --mode=shared --driver-name=user --name=dmacopy --threshold=<at most its size> --priority=10 ${where}`;
}

/** `dmacopy setup` for one queue: the whole configuration, in the order the kernel accepts. */
function setupFor(where: string): string {
  const m = /^(dsa\d+)\/(wq\d+\.\d+)$/.exec(where);
  return m ? `dmacopy setup --device ${m[1]} --wq ${m[2]}` : 'dmacopy setup --device <dsaN> --wq <wqN.M>';
}

/** The one line of advice for a problem code. */
export function remedyFor(code: RemedyCode, ctx: RemedyContext = {}): string {
  const dev = ctx.device ?? '<dsaN>';
  const where = ctx.device && ctx.queue ? `${ctx.device}/${ctx.queue}` : (ctx.queue ?? '<dsaN/wqN.M>');
  const node = ctx.devicePath ?? '/dev/dsa/<wqN.M>';
  const group = ctx.group ?? 'dsa';
  switch (code) {
    case 'device-disabled':
      return `configure and enable it with accel-config (e.g. \`accel-config load-config -c <profile> -e\`, or \`accel-config enable-device ${dev}\` then enable its queues); \`dmacopy setup\` prints the steps`;
    case 'device-halted':
      return `check \`dmesg\` for idxd errors, then reset it: \`accel-config disable-device ${dev}\` and \`accel-config enable-device ${dev}\`; the reset clears the configuration of its groups, engines and queues, so configure them again (\`dmacopy setup --device ${dev} --force\` for the queue dmacopy uses), or reload the idxd driver or reboot`;
    case 'device-state-unknown':
    case 'device-not-enabled':
      return `check \`dmesg\` and \`accel-config list\`; re-enable the device with \`accel-config enable-device ${dev}\``;
    case 'queue-disabled':
      return `configure it as a user queue with \`${setupFor(where)}\` (it prints the accel-config steps; a queue's size and group change only while its device is disabled, so an enabled device needs --force, which stops its other queues); or, if the queue already has a size and a group, \`${reconfigureUserWq(where)}\` then \`accel-config enable-wq ${where}\``;
    case 'queue-not-enabled':
      return `wait for it to settle; if it stays, check \`dmesg\` and configure it again with \`${setupFor(where)}\` (\`accel-config disable-wq\` alone clears its name, threshold and priority, and enable-wq then fails)`;
    case 'kernel-type':
      return `use a user queue, or reconfigure this one: \`accel-config disable-wq ${where}\`, \`${reconfigureUserWq(where)}\`, \`accel-config enable-wq ${where}\` (the disable and the type change clear its name, threshold and priority: all are given again); kernel queues can be exercised with \`dmacopy dmatest\``;
    case 'not-user-type':
      return `configure it as a user queue: \`accel-config disable-wq ${where}\` if it is enabled, \`${reconfigureUserWq(where)}\`, then \`accel-config enable-wq ${where}\` (or \`${setupFor(where)}\`)`;
    case 'bad-sysfs-value':
      return "the idxd sysfs tree looks inconsistent: check `accel-config list`, `dmesg` and the kernel's idxd driver; reconfigure the queue with accel-config";
    case 'no-pasid':
    case 'no-sva':
      return 'boot with `intel_iommu=on,sm_on` (scalable mode, kernel built with CONFIG_INTEL_IOMMU_SVM), then enable the device and queue again';
    case 'no-memmove':
      return 'use a queue on another device';
    case 'memmove-not-allowed':
      return `allow MEMMOVE (operation bit 3) in the queue's op_config: \`accel-config disable-wq ${where}\`, \`${reconfigureUserWq(where)} --op-config=<mask with bit 3 set>\`, then \`accel-config enable-wq ${where}\` (the disable clears its name, threshold and priority: all are given again); or use another queue`;
    case 'dedicated-owned':
    case 'busy':
      return `use a shared queue, stop the process holding ${node} (\`fuser -v ${node}\`), or configure another dedicated queue`;
    case 'no-device-node':
    case 'no-node':
      return `the queue must be enabled as a user queue bound to the "user" driver for the kernel to create it; check udev, and in a container pass the node through (e.g. \`--device ${node}\`); DMACOPY_DEV_ROOT (or --dev-root) must name the directory holding dsa/wqD.Q, normally /dev`;
    case 'permission':
      return `grant access with a group: \`chgrp ${group} ${node} && chmod 0660 ${node}\` and add the user to ${group}, made permanent by the udev rule \`${udevRule(group)}\`; or run as root`;
    case 'open-failed':
      return 'check `dmesg` for idxd errors and the queue with `accel-config list`';
    case 'not-char-device':
      return `DMACOPY_DEV_ROOT (or --dev-root) must name the directory holding the real dsa/wqD.Q device nodes, normally /dev; ${node} is a file or directory, not the queue`;
    case 'portal-unavailable':
      return "mapping the portal needs CAP_SYS_RAWIO: use submission 'auto' or 'write' (write() works unprivileged), or see `dmacopy setup` for the capability and its trade-off";
    case 'portal-instruction-missing':
      return "this CPU lacks MOVDIR64B/ENQCMD: use submission 'auto' or 'write'";
    case 'probe-submit-failed':
    case 'probe-timeout':
    case 'probe-failed':
      return 'check the queue and device state (`accel-config list`) and `dmesg` for idxd errors; a halted device needs a reset (`accel-config disable-device`/`enable-device`)';
  }
}

/** What the open of a queue's node reported, in words: the native side gives a code and an errno only. */
export function openReason(code: OpenProblemCode, errno: number, devicePath: string, probeStatus = 0): string {
  const err = errno > 0 ? ` (${errnoName(errno)})` : '';
  switch (code) {
    case 'no-node':
      return `the device node ${devicePath} does not exist${err}`;
    case 'permission':
      return `this process may not open ${devicePath} for reading and writing${err}`;
    case 'busy':
      return `${devicePath} is a dedicated queue already opened by another process${err}`;
    case 'no-sva':
      return `opening ${devicePath} failed to bind shared virtual addressing (PASID)${err}`;
    case 'open-failed':
      return `opening ${devicePath} failed${err}`;
    case 'not-char-device':
      return `${devicePath} is not a device node (a regular file or a directory): nothing was written to it`;
    case 'queue-not-enabled':
      return `the queue behind ${devicePath} is not enabled`;
    case 'device-not-enabled':
      return `the device behind ${devicePath} is not enabled (disabled or halted)`;
    case 'portal-unavailable':
      return `the portal of ${devicePath} could not be mapped${err}`;
    case 'portal-instruction-missing':
      return 'the portal path was forced but this CPU has no MOVDIR64B/ENQCMD';
    case 'probe-submit-failed':
      return `the NOOP probe could not be submitted to ${devicePath}${err}`;
    case 'probe-timeout':
      return `the NOOP probe on ${devicePath} did not complete in time`;
    case 'probe-failed':
      return `the NOOP probe on ${devicePath} completed with status 0x${probeStatus.toString(16)}`;
    default:
      return `${devicePath}: ${code}${err}`;
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  6: 'ENXIO',
  11: 'EAGAIN',
  13: 'EACCES',
  16: 'EBUSY',
  19: 'ENODEV',
  20: 'ENOTDIR',
  22: 'EINVAL',
  95: 'EOPNOTSUPP',
};

function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** The permission and capability steps `dmacopy setup` prints after configuring (it never runs them). */
export function permissionSteps(devicePath: string, group: string): string[] {
  return [
    `1. Let a group open the queue (the node is root-only by default). Once, until the queue is re-enabled or the host reboots:`,
    `     groupadd -f ${group} && usermod -aG ${group} <user>`,
    `     chgrp ${group} ${devicePath} && chmod 0660 ${devicePath}`,
    `   Permanently, with a udev rule (e.g. /etc/udev/rules.d/90-dmacopy-dsa.rules), then \`udevadm control --reload && udevadm trigger\`:`,
    `     ${udevRule(group)}`,
    `   In a container, pass the node through (e.g. \`--device ${devicePath}\`).`,
    `2. Optional, the portal path: mmap of the queue's portal needs CAP_SYS_RAWIO (kernels with the INTEL-SA-01084 fix). Without it dmacopy submits with write(), which works unprivileged:`,
    `     setcap cap_sys_rawio+ep "$(readlink -f "$(which node)")"`,
    `   Trade-off: the portal saves one system call per group of descriptors (MOVDIR64B/ENQCMD straight to the device),`,
    `   but the capability goes to EVERY script that node binary runs, and CAP_SYS_RAWIO is close to root (raw I/O ports, MSRs, /dev/mem).`,
    `   Node also runs in secure mode with a file capability (NODE_OPTIONS and similar variables are ignored). Prefer a dedicated copy of`,
    `   the node binary for the service, or systemd \`AmbientCapabilities=CAP_SYS_RAWIO\` on its unit; keep write() when in doubt.`,
    `3. Check: \`dmacopy info\` should list the queue as usable, and \`dmacopy selftest --backend dsa\` should pass.`,
  ];
}
