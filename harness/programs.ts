// Where the built commands are: the dist/ entry points of xsw-backend,
// xsw-front and xsw-sim (package.json's "bin"), and the environment that puts
// a process on a simulated platform.
import path from 'node:path';

const DIST = path.join(__dirname, '..');

export const CLI = {
  backend: path.join(DIST, 'backend', 'cli.js'),
  front: path.join(DIST, 'frontend', 'cli.js'),
  sim: path.join(DIST, 'xenstore', 'sim', 'cli.js'),
} as const;

/**
 * The environment of a process on the simulated platform in `dir`, talking to
 * xenstored on `socket`: dom0's, or, with `domid`, that domain's (as
 * `xsw-sim exec` runs a guest's processes).
 */
export function simEnv(dir: string, socket: string, domid?: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XSW_SIM_DIR: dir,
    XENSTORED_PATH: socket,
    XSW_PLATFORM: 'sim',
    ...(domid === undefined ? {} : { XSW_SIM_DOMID: String(domid) }),
  };
}
