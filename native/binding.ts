// Loads the compiled product addon, typed as native/addon.ts declares it.
// XSW_ADDON overrides the path (a debug or sanitizer build); otherwise
// build/Release/xsw.node from `npm install`.
import path from 'node:path';
import type { Addon } from './addon';

export type { Addon } from './addon';

let cached: Addon | undefined;

/** Where the product addon is loaded from. */
export function addonPath(): string {
  return process.env.XSW_ADDON ?? path.join(__dirname, '..', '..', 'build', 'Release', 'xsw.node');
}

/**
 * Loads a compiled addon (`what`: "native", "bench"); a failure is one sentence naming the file
 * and the command that builds it.
 */
export function loadAddon<T>(what: string, file: string, build: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as T;
  } catch (err) {
    throw new Error(`cannot load the xsw ${what} addon at ${file}: run ${build} first (${(err as Error).message})`);
  }
}

export function addon(): Addon {
  cached ??= loadAddon<Addon>('native', addonPath(), "'npm install' (or 'npm run build')");
  return cached;
}
