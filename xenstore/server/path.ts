// Node names: validation as Xen's is_valid_nodename, relative → absolute
// resolution, and tree relations between paths.
import { ABS_PATH_MAX } from '../wire';
import { InvalidArgument } from './errors';

/** The special nodes that only exist for watches and their permissions. */
export const SPECIAL_PATHS = ['@introduceDomain', '@releaseDomain'] as const;
export type SpecialPath = (typeof SPECIAL_PATHS)[number];

export function isSpecial(path: string): path is SpecialPath {
  return (SPECIAL_PATHS as readonly string[]).includes(path);
}

/** /local/domain/<domid>: the home of a domain, and the base of its relative paths. */
export function domainPath(domid: number): string {
  return `/local/domain/${domid}`;
}

/** Resolves a path as the given domain sees it: relative paths live under its domain path. */
export function resolve(domid: number, path: string): string {
  if (path.startsWith('/') || path.startsWith('@')) return path;
  return `${domainPath(domid)}/${path}`;
}

const VALID_CHARS = /^[A-Za-z0-9\-/_@]*$/;

/**
 * Throws InvalidArgument unless `path` (already resolved) is a valid node
 * name: starts with '/', no trailing or double '/', only [A-Za-z0-9-/_@],
 * at most ABS_PATH_MAX bytes, and at most `relMax` bytes below
 * /local/domain/<id>/ (the whole path elsewhere). Like Xen 4.17's
 * is_valid_nodename, the length limit binds dom0 too.
 */
export function checkNodePath(path: string, relMax: number): void {
  if (!path.startsWith('/')) throw new InvalidArgument(`path ${JSON.stringify(path)} must be absolute`);
  if (path !== '/' && path.endsWith('/')) throw new InvalidArgument('path ends in /');
  if (path.includes('//')) throw new InvalidArgument('path contains //');
  if (!VALID_CHARS.test(path)) throw new InvalidArgument('path has characters other than A-Za-z0-9-/_@');
  if (path.length > ABS_PATH_MAX) throw new InvalidArgument('path too long');
  const m = /^\/local\/domain\/\d{1,5}\//.exec(path);
  const rel = m ? path.length - m[0].length : path.length;
  if (rel > relMax) throw new InvalidArgument('path too long');
}

/** The parent of an absolute path ("/" has none). */
export function parentOf(path: string): string | undefined {
  if (path === '/') return undefined;
  const i = path.lastIndexOf('/');
  return i === 0 ? '/' : path.slice(0, i);
}

/** The last component of an absolute path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The absolute path of a child. */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** True if `path` is `ancestor` or lies below it (Xen's is_child). */
export function isSelfOrBelow(path: string, ancestor: string): boolean {
  if (ancestor === '/') return path.startsWith('/');
  return path === ancestor || (path.startsWith(ancestor) && path[ancestor.length] === '/');
}
