// Loads the compiled addon. XSW_ADDON overrides the path (a debug or
// sanitizer build); otherwise build/Release/xsw.node from `npm install`.
import path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Addon = Record<string, any>;

let cached: Addon | undefined;

export function addon(): Addon {
  if (cached) return cached;
  const file = process.env.XSW_ADDON ?? path.join(__dirname, '..', '..', 'build', 'Release', 'xsw.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = require(file) as Addon;
  } catch (err) {
    throw new Error(`cannot load the xsw native addon at ${file}: run 'npm install' (or 'npm run build') first (${(err as Error).message})`);
  }
  return cached;
}
