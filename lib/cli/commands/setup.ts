// `dmacopy setup`: configure one DSA user work queue through the real accel-config tool from a
// profile, printing every command it runs; then print (never do) the permission and capability
// steps. --dry-run prints the plan only. The runner, root check and tool lookup are injectable.
import path from 'node:path';
import type { Command } from 'commander';
import { DmacopyError, invalidArg } from '../../errors';
import {
  commandLine,
  defaultRunner,
  findAccelConfig,
  loadProfileFile,
  missingToolError,
  notRootError,
  PROFILES,
  planSetup,
  type Runner,
  type SetupPlan,
  type SetupProfile,
} from '../../host/accel-config';
import { listDevices, resolveRoots } from '../../host/discovery';
import { applyRoots, strictUsage } from './usage';

export interface SetupCliOptions {
  profile?: string;
  file?: string;
  device?: string;
  wq?: string;
  group?: string;
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
  sysfsRoot?: string;
  devRoot?: string;
}

export interface SetupDeps {
  runner?: Runner;
  isRoot?: () => boolean;
  /** Path of accel-config, or undefined when not installed. Default: PATH lookup. */
  tool?: () => string | undefined;
  out?: (text: string) => void;
}

export interface SetupOutcome {
  dryRun: boolean;
  tool: string | null;
  plan: SetupPlan;
  /** Commands run, in order, with their exit status. */
  ran: Array<{ command: string; status: number; stdout: string; stderr: string }>;
  ok: boolean;
}

/** Plans and (unless dry-run) runs the setup. Throws typed errors on refusals; returns the outcome otherwise. */
export async function runSetup(o: SetupCliOptions, deps: SetupDeps = {}): Promise<SetupOutcome> {
  const out = deps.out ?? ((t: string) => process.stdout.write(t));
  const print = (t: string): void => {
    if (!o.json) out(`${t}\n`);
  };
  if (o.profile !== undefined && o.file !== undefined) throw invalidArg('--file', 'give --profile or --file, not both');
  let profile: SetupProfile | undefined;
  if (o.file !== undefined) profile = loadProfileFile(o.file);
  else {
    const name = o.profile ?? 'shared';
    profile = PROFILES[name];
    if (!profile)
      throw invalidArg(
        '--profile',
        `unknown profile '${name}': expected one of ${Object.keys(PROFILES).join(', ')} (or --file profile.json)`,
      );
  }
  if (o.group !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(o.group))
    throw invalidArg('--group', `--group must be a group name, got '${o.group}'`);
  const roots = resolveRoots({ sysfsRoot: o.sysfsRoot, devRoot: o.devRoot });
  const devices = listDevices(roots);
  const plan = planSetup({
    profile,
    device: o.device,
    wq: o.wq,
    devices,
    sysfsRoot: roots.sysfsRoot,
    devRoot: roots.devRoot,
    group: o.group,
  });
  const tool = (deps.tool ?? (() => findAccelConfig()))();
  const isRoot = deps.isRoot ?? (() => typeof process.getuid === 'function' && process.getuid() === 0);
  const toolName = tool ?? 'accel-config'; // run by full path, printed as accel-config
  const dryRun = o.dryRun === true;

  if (!dryRun) {
    if (!isRoot()) throw notRootError();
    if (tool === undefined) throw missingToolError();
    if (path.resolve(roots.sysfsRoot) !== '/sys' && !deps.runner) {
      // accel-config always works on the real /sys: a plan made from another tree must not run against it.
      throw invalidArg(
        '--sysfs-root',
        `accel-config configures the real /sys, but the plan was made from ${roots.sysfsRoot}: use --dry-run with --sysfs-root/DMACOPY_SYSFS_ROOT`,
      );
    }
    if (!devices.some((d) => d.name === plan.device)) {
      throw new DmacopyError(
        'ERR_DMACOPY_DEVICE',
        `${plan.device} does not exist under ${path.join(roots.sysfsRoot, 'bus', 'dsa', 'devices')}: nothing to configure (\`dmacopy info\` lists the devices; is the idxd driver loaded?)`,
      );
    }
    if (plan.disruptive && !o.force) {
      throw new DmacopyError(
        'ERR_DMACOPY_DEVICE',
        `${plan.device} is enabled: configuring it means disabling it first, which stops every queue of it and clears their configuration (accel-config refuses while a process has one open). Re-run with --force to do that, or --dry-run to see the plan`,
      );
    }
  }

  print(`Profile ${profile.name}: ${profile.description}`);
  print(`Target: ${plan.wq} (${plan.devicePath})`);
  for (const w of plan.warnings) print(`warning: ${w}`);
  if (dryRun && tool === undefined)
    print('note: accel-config is not installed: install it with `apt-get install accel-config` before running this for real');
  print(dryRun ? '\nPlan (dry run: nothing is run):' : '\nRunning:');

  const ran: SetupOutcome['ran'] = [];
  let ok = true;
  for (const step of plan.steps) {
    const line = commandLine('accel-config', step.args);
    if (dryRun) {
      print(`  ${line}`);
      print(`      # ${step.why}`);
      continue;
    }
    print(`  $ ${line}`);
    const r = await (deps.runner ?? defaultRunner)(toolName, step.args);
    ran.push({ command: line, ...r });
    for (const l of `${r.stdout}${r.stderr}`.split('\n').filter((x) => x.trim())) print(`    ${l}`);
    if (r.status !== 0) {
      ok = false;
      print(
        `\nFAILED: \`${line}\` ${r.ended ?? `exited with ${r.status}`}; stopped. Check \`dmesg | grep idxd\` and \`accel-config list\`.`,
      );
      break;
    }
  }
  if (ok) {
    print(`\n${dryRun ? 'After running the plan, as root' : 'Done. Now, as root'} (dmacopy does not do these for you):`);
    for (const l of plan.permissionSteps) print(l);
  }
  const outcome: SetupOutcome = { dryRun, tool: tool ?? null, plan, ran, ok };
  if (o.json) out(`${JSON.stringify(outcome, null, 2)}\n`);
  if (!ok)
    throw new DmacopyError(
      'ERR_DMACOPY_DEVICE',
      `accel-config failed at \`${ran[ran.length - 1]?.command}\` (exit ${ran[ran.length - 1]?.status})`,
    );
  return outcome;
}

export function register(program: Command): void {
  const cmd = program
    .command('setup')
    .description('configure a DSA user work queue through accel-config from a profile, then print the permission and capability steps')
    .option('--profile <name>', `profile: ${Object.keys(PROFILES).join(' | ')} (default shared)`)
    .option('--file <profile.json>', 'a profile as JSON (fields of the built-in profiles)')
    .option('--device <dsaN>', 'device to configure (default: the first DSA device found, else dsa0)')
    .option('--wq <wqN.Q>', 'work queue of that device (default: its queue 0)')
    .option('--group <name>', 'group the printed permission steps give access to /dev/dsa', 'dsa')
    .option('--dry-run', 'print the plan only; run nothing')
    .option('--force', 'allow disabling an enabled device: its other queues stop and lose their configuration')
    .option('--json', 'print the plan and what ran as JSON')
    .option('--sysfs-root <dir>', 'directory standing for /sys (default: $DMACOPY_SYSFS_ROOT or /sys)')
    .option('--dev-root <dir>', 'directory standing for /dev (default: $DMACOPY_DEV_ROOT or /dev)')
    .action(async (o: SetupCliOptions) => {
      applyRoots(o);
      await runSetup(o);
    });
  strictUsage(cmd);
}
