// Where the built commands are: the dist/ entry points of xsw-backend,
// xsw-ctl, xsw-front and xsw-sim (package.json's "bin").
import path from 'node:path';

const DIST = path.join(__dirname, '..');

export const CLI = {
  backend: path.join(DIST, 'backend', 'cli.js'),
  front: path.join(DIST, 'frontend', 'cli.js'),
  sim: path.join(DIST, 'xenstore', 'sim', 'cli.js'),
  ctl: path.join(DIST, 'ctl', 'cli.js'),
} as const;
