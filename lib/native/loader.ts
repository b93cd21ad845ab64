// Loads the native addon with node-gyp-build (build/Release, then prebuilds/<platform>-<arch>).
// `bindings` cannot find prebuilds, which is why it is not used. A failed load is remembered,
// not thrown: the CPU path then runs in JavaScript and says so once.
import path from 'node:path';
import { ABI_VERSION, EVENT_FIELDS, type NativeBinding } from './abi';

let binding: NativeBinding | undefined;
let loadError: Error | undefined;
let loaded = false;

function load(): void {
  loaded = true;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    // DMACOPY_NATIVE_PATH loads a specific build (the sanitizer build of `npm run test:asan`).
    const override = process.env.DMACOPY_NATIVE_PATH;
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    const mod = (override ? require(path.resolve(override)) : nodeGypBuild(path.join(__dirname, '..', '..'))) as Partial<NativeBinding> & {
      unsupported?: string;
    };
    if (typeof mod.unsupported === 'string') throw new Error(mod.unsupported);
    if (mod.eventFields !== EVENT_FIELDS || mod.abiVersion !== ABI_VERSION)
      throw new Error('native addon does not match this version of dmacopy: rebuild it with `npm run build`');
    binding = mod as NativeBinding;
  } catch (err) {
    // The first line only: node-gyp-build appends a multi-line require stack.
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error';
    loadError = new Error(message, { cause: err });
  }
}

/** The native binding, or undefined when it cannot load on this host (see nativeLoadError()). */
export function nativeBinding(): NativeBinding | undefined {
  if (!loaded) load();
  return binding;
}

/** Why the native addon did not load, if it did not. */
export function nativeLoadError(): Error | undefined {
  if (!loaded) load();
  return loadError;
}
