// Table-driven XenStore scenarios in the ocaml-xenstore style: rows of
// (connection, transaction, request, expected reply). The same tables run
// straight through the server's Connection (xenstore-server.test.ts) and
// through XenStoreClient over real unix sockets (xenstore-client.test.ts).
import type { Quota } from '../xenstore/server/quota';

/** Connections by name: dom0 is privileged; domN (and domNb, a second connection) are domain N. */
export type Who = 'dom0' | 'dom1' | 'dom1b' | 'dom2';

export function whoDomid(who: Who): number {
  return Number(/^dom(\d+)/.exec(who)?.[1]);
}

export type Request =
  | ['read', string]
  | ['write', string, string]
  | ['mkdir', string]
  | ['rm', string]
  | ['directory', string]
  | ['getPerms', string]
  | ['setPerms', string, ...string[]]
  | ['watch', string, string]
  | ['unwatch', string, string]
  | ['start']
  | ['commit']
  | ['abort']
  | ['introduce', number]
  | ['release', number]
  | ['getDomainPath', number]
  | ['isIntroduced', number]
  | ['raw', number, string]
  /** The watch events this connection received since the last 'events' row. */
  | ['events'];

export type Expected = 'OK' | string | string[] | { err: string } | [string, string][];

/** tx: a symbolic transaction name ('T1'); a 'start' row binds it. */
export type Row = [Who, string | null, Request, Expected];

export interface Scenario {
  name: string;
  quota?: Partial<Quota>;
  rows: Row[];
}

const err = (code: string) => ({ err: code });

/** What libxl does for a new domain (see xsw-sim create), as dom0 rows. */
export function libxlDomain(id: number): Row[] {
  const home = `/local/domain/${id}`;
  const ro = ['n0', `r${id}`];
  const rw = [`n${id}`];
  const rows: Row[] = [];
  const node = (p: string, v: string, perms: string[]): void => {
    rows.push(['dom0', null, ['write', p, v], 'OK']);
    rows.push(['dom0', null, ['setPerms', p, ...perms], 'OK']);
  };
  node(home, '', ro);
  node(`${home}/name`, `guest${id}`, ro);
  node(`${home}/domid`, String(id), ro);
  node(`${home}/control`, '', ro);
  node(`${home}/control/shutdown`, '', rw);
  node(`${home}/data`, '', rw);
  rows.push(['dom0', null, ['introduce', id], 'OK']);
  return rows;
}

const setup: Row[] = [...libxlDomain(1), ...libxlDomain(2)];

export const scenarios: Scenario[] = [
  {
    name: 'dom0 reads, writes, lists and removes nodes',
    rows: [
      ['dom0', null, ['read', '/a'], err('ENOENT')],
      ['dom0', null, ['write', '/a/b/c', 'hello'], 'OK'],
      ['dom0', null, ['read', '/a/b/c'], 'hello'],
      ['dom0', null, ['read', '/a/b'], ''],
      ['dom0', null, ['write', '/a/b/d', ''], 'OK'],
      ['dom0', null, ['directory', '/a/b'], ['c', 'd']],
      ['dom0', null, ['directory', '/a/b/c'], []],
      ['dom0', null, ['directory', '/'], ['tool', 'a']],
      ['dom0', null, ['write', '/a/b/c', 'again'], 'OK'],
      ['dom0', null, ['read', '/a/b/c'], 'again'],
      ['dom0', null, ['mkdir', '/a/m'], 'OK'],
      ['dom0', null, ['mkdir', '/a/m'], 'OK'],
      ['dom0', null, ['read', '/a/m'], ''],
      ['dom0', null, ['rm', '/a/b/zz'], 'OK'],
      ['dom0', null, ['rm', '/a/zz/yy'], err('ENOENT')],
      ['dom0', null, ['rm', '/a/b'], 'OK'],
      ['dom0', null, ['read', '/a/b/c'], err('ENOENT')],
      ['dom0', null, ['directory', '/a'], ['m']],
      ['dom0', null, ['rm', '/'], err('EINVAL')],
      ['dom0', null, ['getPerms', '/a'], ['n0']],
      ['dom0', null, ['getDomainPath', 7], '/local/domain/7'],
    ],
  },
  {
    name: 'malformed paths are EINVAL and dom0 relative paths live under /local/domain/0',
    rows: [
      ['dom0', null, ['write', '/a/', 'x'], err('EINVAL')],
      ['dom0', null, ['write', '/a//b', 'x'], err('EINVAL')],
      ['dom0', null, ['write', '/a b', 'x'], err('EINVAL')],
      ['dom0', null, ['read', '@foo'], err('EINVAL')],
      ['dom0', null, ['write', 'rel', 'x'], 'OK'],
      ['dom0', null, ['read', '/local/domain/0/rel'], 'x'],
      ['dom0', null, ['write', `/${'x'.repeat(3100)}`, 'v'], err('EINVAL')],
    ],
  },
  {
    name: 'permissions: the first entry is owner and default, later entries name domains',
    rows: [
      ...setup,
      ['dom0', null, ['write', '/p', 'v'], 'OK'],
      ['dom0', null, ['setPerms', '/p', 'n0', 'r1', 'b2'], 'OK'],
      ['dom1', null, ['read', '/p'], 'v'],
      ['dom1', null, ['write', '/p', 'w'], err('EACCES')],
      ['dom2', null, ['write', '/p', 'w'], 'OK'],
      ['dom2', null, ['read', '/p'], 'w'],
      ['dom1', null, ['getPerms', '/p'], ['n0', 'r1', 'b2']],
      ['dom0', null, ['setPerms', '/p', 'r0', 'n2'], 'OK'],
      ['dom1', null, ['read', '/p'], 'w'],
      ['dom2', null, ['read', '/p'], err('EACCES')],
      ['dom2', null, ['getPerms', '/p'], err('EACCES')],
      ['dom2', null, ['directory', '/p'], err('EACCES')],
      ['dom0', null, ['setPerms', '/p', 'w0'], 'OK'],
      ['dom1', null, ['read', '/p'], err('EACCES')],
      ['dom1', null, ['write', '/p', 'blind'], 'OK'],
      ['dom0', null, ['read', '/p'], 'blind'],
      // A missing node is ENOENT only to those who may see its parent.
      ['dom1', null, ['read', '/local/domain/1/nothing'], err('ENOENT')],
      ['dom2', null, ['read', '/local/domain/1/nothing'], err('EACCES')],
      ['dom1', null, ['read', '/nothing'], err('EACCES')],
      ['dom1', null, ['directory', '/'], err('EACCES')],
      ['dom0', null, ['setPerms', '/p', 'x0'], err('EINVAL')],
      ['dom0', null, ['setPerms', '/missing', 'n0'], err('ENOENT')],
    ],
  },
  {
    name: 'a guest cannot touch ~/control or another domain\'s nodes (libxl layout)',
    rows: [
      ...setup,
      ['dom1', null, ['read', 'name'], 'guest1'],
      ['dom1', null, ['read', 'domid'], '1'],
      ['dom1', null, ['read', 'control'], ''],
      ['dom1', null, ['write', 'control/dpdk', 'x'], err('EACCES')],
      ['dom1', null, ['write', 'control', 'x'], err('EACCES')],
      ['dom1', null, ['write', 'name', 'evil'], err('EACCES')],
      ['dom1', null, ['write', 'control/shutdown', 'poweroff'], 'OK'],
      ['dom1', null, ['write', 'newkey', 'x'], err('EACCES')],
      ['dom1', null, ['read', '/local/domain/2/name'], err('EACCES')],
      ['dom1', null, ['write', '/local/domain/2/data/x', 'x'], err('EACCES')],
      ['dom1', null, ['rm', '/local/domain/2/data'], err('EACCES')],
      ['dom1', null, ['directory', '/local/domain'], err('EACCES')],
      ['dom1', null, ['rm', 'control'], err('EACCES')],
      ['dom1', null, ['setPerms', 'control', 'n0', 'b1'], err('EACCES')],
      ['dom1', null, ['introduce', 5], err('EACCES')],
      ['dom1', null, ['release', 2], err('EACCES')],
      ['dom1', null, ['isIntroduced', 2], err('EACCES')],
      ['dom0', null, ['read', '/local/domain/1/control/shutdown'], 'poweroff'],
    ],
  },
  {
    name: 'created nodes inherit the parent\'s perms with the creator as owner; only dom0 changes owners',
    rows: [
      ...setup,
      ['dom0', null, ['write', '/shared', ''], 'OK'],
      ['dom0', null, ['setPerms', '/shared', 'n0', 'w1', 'r2'], 'OK'],
      ['dom1', null, ['write', '/shared/x/y', 'v'], 'OK'],
      ['dom0', null, ['getPerms', '/shared/x'], ['n1', 'w1', 'r2']],
      ['dom0', null, ['getPerms', '/shared/x/y'], ['n1', 'w1', 'r2']],
      ['dom2', null, ['read', '/shared/x/y'], 'v'],
      ['dom2', null, ['write', '/shared/z', 'v'], err('EACCES')],
      ['dom1', null, ['write', 'data/mine', 'v'], 'OK'],
      ['dom0', null, ['getPerms', '/local/domain/1/data/mine'], ['n1']],
      ['dom0', null, ['write', '/local/domain/1/data/bydom0', 'v'], 'OK'],
      ['dom0', null, ['getPerms', '/local/domain/1/data/bydom0'], ['n1']],
      ['dom1', null, ['setPerms', 'data/mine', 'n2'], err('EPERM')],
      ['dom1', null, ['setPerms', 'data/mine', 'n1', 'r2'], 'OK'],
      ['dom2', null, ['read', '/local/domain/1/data/mine'], 'v'],
      ['dom2', null, ['setPerms', '/local/domain/1/data/mine', 'n1', 'b2'], err('EACCES')],
      ['dom0', null, ['setPerms', '/local/domain/1/data/mine', 'n2'], 'OK'],
      ['dom1', null, ['read', 'data/mine'], err('EACCES')],
      ['dom2', null, ['write', '/local/domain/1/data/mine', 'now mine'], 'OK'],
      ['dom2', null, ['rm', '/local/domain/1/data/mine'], 'OK'],
      ['dom2', null, ['rm', '/local/domain/1/data'], err('EACCES')],
    ],
  },
  {
    name: 'watches fire once at once, then on the path and every descendant',
    rows: [
      ...setup,
      ['dom0', null, ['watch', '/w', 'tok'], 'OK'],
      ['dom0', null, ['events'], [['/w', 'tok']]],
      ['dom0', null, ['write', '/w/a/b', '1'], 'OK'],
      ['dom0', null, ['write', '/w', '2'], 'OK'],
      ['dom0', null, ['write', '/wx', '3'], 'OK'],
      ['dom0', null, ['write', '/other', '3'], 'OK'],
      ['dom0', null, ['events'], [['/w/a/b', 'tok'], ['/w', 'tok']]],
      ['dom0', null, ['setPerms', '/w/a', 'n0', 'r1'], 'OK'],
      ['dom0', null, ['events'], [['/w/a', 'tok']]],
      ['dom0', null, ['watch', '/w', 'tok'], err('EEXIST')],
      ['dom0', null, ['watch', '/w', 'tok2'], 'OK'],
      ['dom0', null, ['unwatch', '/w', 'tok'], 'OK'],
      ['dom0', null, ['unwatch', '/w', 'tok'], err('ENOENT')],
      ['dom0', null, ['mkdir', '/w/c'], 'OK'],
      ['dom0', null, ['events'], [['/w', 'tok2'], ['/w/c', 'tok2']]],
      ['dom0', null, ['mkdir', '/w/c'], 'OK'],
      ['dom0', null, ['events'], []],
    ],
  },
  {
    name: 'removing a watched node\'s parent fires the watch with its own path',
    rows: [
      ['dom0', null, ['write', '/r/a/b/c', 'x'], 'OK'],
      ['dom0', null, ['write', '/r/a/d', 'x'], 'OK'],
      ['dom0', null, ['watch', '/r/a/b', 'deep'], 'OK'],
      ['dom0', null, ['watch', '/r', 'top'], 'OK'],
      ['dom0', null, ['watch', '/r/a/nothing', 'ghost'], 'OK'],
      ['dom0', null, ['events'], [['/r/a/b', 'deep'], ['/r', 'top'], ['/r/a/nothing', 'ghost']]],
      ['dom0', null, ['rm', '/r/a'], 'OK'],
      // Below the removed root only exact watches fire (C xenstored 4.17): deep
      // fires with its own path, top once for the root; ghost watched nothing that existed.
      ['dom0', null, ['events'], [['/r/a/b', 'deep'], ['/r/a', 'top']]],
    ],
  },
  {
    name: 'relative watches get relative event paths, and watchers only hear about nodes they may read',
    rows: [
      ...setup,
      ['dom1', null, ['watch', 'data', 'rel'], 'OK'],
      ['dom1', null, ['watch', '/local/domain/1/data', 'abs'], 'OK'],
      ['dom1', null, ['events'], [['data', 'rel'], ['/local/domain/1/data', 'abs']]],
      ['dom1', null, ['write', 'data/k', 'v'], 'OK'],
      ['dom1', null, ['events'], [['data/k', 'rel'], ['/local/domain/1/data/k', 'abs']]],
      ['dom2', null, ['watch', '/local/domain/1', 'spy'], 'OK'],
      ['dom2', null, ['events'], [['/local/domain/1', 'spy']]],
      ['dom0', null, ['write', '/local/domain/1/data/k', 'v2'], 'OK'],
      ['dom2', null, ['events'], []],
      ['dom1', null, ['events'], [['data/k', 'rel'], ['/local/domain/1/data/k', 'abs']]],
      ['dom1', null, ['setPerms', 'data/k', 'n1', 'r2'], 'OK'],
      ['dom1', null, ['write', 'data/k', 'v3'], 'OK'],
      ['dom2', null, ['events'], [['/local/domain/1/data/k', 'spy'], ['/local/domain/1/data/k', 'spy']]],
      ['dom1b', null, ['events'], []],
      ['dom1', null, ['unwatch', 'data', 'rel'], 'OK'],
      ['dom1', null, ['write', 'data/k', 'v4'], 'OK'],
      ['dom1', null, ['events'], [
        ['data/k', 'rel'], ['/local/domain/1/data/k', 'abs'],
        ['data/k', 'rel'], ['/local/domain/1/data/k', 'abs'],
        ['/local/domain/1/data/k', 'abs'],
      ]],
    ],
  },
  {
    name: '@introduceDomain and @releaseDomain fire for privileged watchers only',
    rows: [
      ['dom0', null, ['watch', '@introduceDomain', 'in'], 'OK'],
      ['dom0', null, ['watch', '@releaseDomain', 'out'], 'OK'],
      ['dom0', null, ['events'], [['@introduceDomain', 'in'], ['@releaseDomain', 'out']]],
      ...libxlDomain(1),
      ...libxlDomain(2),
      ['dom0', null, ['events'], [['@introduceDomain', 'in'], ['@introduceDomain', 'in']]],
      ['dom1', null, ['watch', '@releaseDomain', 'snoop'], 'OK'],
      ['dom1', null, ['events'], [['@releaseDomain', 'snoop']]],
      ['dom0', null, ['isIntroduced', 2], 'T'],
      ['dom0', null, ['rm', '/local/domain/2'], 'OK'],
      ['dom0', null, ['release', 2], 'OK'],
      ['dom0', null, ['isIntroduced', 2], 'F'],
      ['dom0', null, ['release', 2], err('ENOENT')],
      ['dom0', null, ['events'], [['@releaseDomain', 'out']]],
      ['dom1', null, ['events'], []],
      ['dom0', null, ['read', '/local/domain/2'], err('ENOENT')],
      ['dom0', null, ['getPerms', '@releaseDomain'], ['n0']],
      ['dom0', null, ['introduce', 0], err('EINVAL')],
    ],
  },
  {
    name: 'transactions are isolated and commit atomically; conflicts are EAGAIN',
    rows: [
      ['dom0', null, ['write', '/t/a', '1'], 'OK'],
      ['dom0', null, ['write', '/t/b', '1'], 'OK'],
      ['dom0', null, ['watch', '/t', 'w'], 'OK'],
      ['dom0', 'T1', ['start'], 'OK'],
      ['dom0', 'T1', ['write', '/t/a', '2'], 'OK'],
      ['dom0', 'T1', ['write', '/t/a/new', 'n'], 'OK'],
      ['dom0', 'T1', ['read', '/t/a'], '2'],
      ['dom0', null, ['read', '/t/a'], '1'],
      ['dom0', null, ['read', '/t/a/new'], err('ENOENT')],
      ['dom0', null, ['events'], [['/t', 'w']]],
      ['dom0', 'T1', ['commit'], 'OK'],
      ['dom0', null, ['read', '/t/a/new'], 'n'],
      ['dom0', null, ['events'], [['/t/a', 'w'], ['/t/a/new', 'w']]],
      // Conflict: someone else changes a node the transaction read.
      ['dom0', 'T2', ['start'], 'OK'],
      ['dom0', 'T2', ['read', '/t/b'], '1'],
      ['dom0', null, ['write', '/t/b', 'outside'], 'OK'],
      ['dom0', 'T2', ['read', '/t/b'], '1'],
      ['dom0', 'T2', ['write', '/t/c', 'x'], 'OK'],
      ['dom0', 'T2', ['commit'], err('EAGAIN')],
      ['dom0', null, ['read', '/t/c'], err('ENOENT')],
      ['dom0', 'T2', ['read', '/t/b'], err('ENOENT')],
      // A change made after the start to a node read later also conflicts.
      ['dom0', 'T3', ['start'], 'OK'],
      ['dom0', null, ['write', '/t/b', 'later'], 'OK'],
      ['dom0', 'T3', ['read', '/t/b'], 'later'],
      ['dom0', 'T3', ['commit'], err('EAGAIN')],
      // Abort discards.
      ['dom0', 'T4', ['start'], 'OK'],
      ['dom0', 'T4', ['rm', '/t/a'], 'OK'],
      ['dom0', 'T4', ['read', '/t/a'], err('ENOENT')],
      ['dom0', 'T4', ['abort'], 'OK'],
      ['dom0', null, ['read', '/t/a'], '2'],
      ['dom0', null, ['events'], [['/t/b', 'w'], ['/t/b', 'w']]],
      // Independent transactions on unrelated nodes both commit.
      ['dom0', 'T5', ['start'], 'OK'],
      ['dom0', 'T6', ['start'], 'OK'],
      ['dom0', 'T5', ['write', '/t/a', 'five'], 'OK'],
      ['dom0', 'T6', ['write', '/t/b', 'six'], 'OK'],
      ['dom0', 'T5', ['commit'], 'OK'],
      ['dom0', 'T6', ['commit'], 'OK'],
      ['dom0', null, ['read', '/t/a'], 'five'],
      ['dom0', null, ['read', '/t/b'], 'six'],
    ],
  },
  {
    name: 'a transaction belongs to its connection and a domain\'s transactions obey its perms',
    rows: [
      ...setup,
      ['dom1', 'T1', ['start'], 'OK'],
      ['dom1', 'T1', ['write', 'data/tx', 'v'], 'OK'],
      ['dom1', 'T1', ['write', 'control/x', 'v'], err('EACCES')],
      ['dom1', 'T1', ['commit'], 'OK'],
      ['dom1', null, ['read', 'data/tx'], 'v'],
      ['dom1', 'T1', ['commit'], err('ENOENT')],
      ['dom1', 'T2', ['start'], 'OK'],
      ['dom1b', 'T2', ['read', 'data/tx'], err('ENOENT')],
      ['dom1', 'T2', ['abort'], 'OK'],
    ],
  },
  {
    name: 'node quota: ENOSPC at the limit (as C xenstored), other domains and dom0 unaffected',
    quota: { nodes: 4 },
    rows: [
      ...setup,
      // dom1 owns control/shutdown and data already.
      ['dom1', null, ['write', 'data/a', '1'], 'OK'],
      ['dom1', null, ['write', 'data/b', '1'], 'OK'],
      ['dom1', null, ['write', 'data/c', '1'], err('ENOSPC')],
      ['dom1', null, ['write', 'data/x/y', '1'], err('ENOSPC')],
      ['dom1', null, ['write', 'data/a', 'rewrite'], 'OK'],
      ['dom2', null, ['write', 'data/a', '1'], 'OK'],
      ['dom0', null, ['write', '/many/a/b/c/d/e', '1'], 'OK'],
      ['dom1', null, ['rm', 'data/b'], 'OK'],
      ['dom1', null, ['write', 'data/c', '1'], 'OK'],
      ['dom1', null, ['read', 'data/c'], '1'],
      ['dom1', 'T1', ['start'], 'OK'],
      ['dom1', 'T1', ['write', 'data/d', '1'], err('ENOSPC')],
      ['dom1', 'T1', ['abort'], 'OK'],
    ],
  },
  {
    // C xenstored 4.17's answers: E2BIG for watches, ENOSPC for the rest, EINVAL for paths.
    name: 'watch, transaction, node size, perms and path length limits',
    quota: { watches: 2, transactions: 2, nodeSize: 128, permsPerNode: 2, pathLength: 40 },
    rows: [
      ...setup,
      ['dom1', null, ['watch', 'data/1', 'a'], 'OK'],
      ['dom1b', null, ['watch', 'data/2', 'a'], 'OK'],
      ['dom1', null, ['watch', 'data/3', 'a'], err('E2BIG')],
      ['dom2', null, ['watch', 'data/3', 'a'], 'OK'],
      ['dom0', null, ['watch', '/x1', 'a'], 'OK'],
      ['dom0', null, ['watch', '/x2', 'a'], 'OK'],
      ['dom0', null, ['watch', '/x3', 'a'], 'OK'],
      ['dom1', null, ['unwatch', 'data/1', 'a'], 'OK'],
      ['dom1', null, ['watch', 'data/3', 'a'], 'OK'],
      ['dom1', 'T1', ['start'], 'OK'],
      ['dom1b', 'T2', ['start'], 'OK'],
      ['dom1', 'T3', ['start'], err('ENOSPC')],
      ['dom2', 'T4', ['start'], 'OK'],
      ['dom1', 'T1', ['abort'], 'OK'],
      ['dom1', 'T3', ['start'], 'OK'],
      // Node size counts as C's record: 24 header + 8 per perm + value + child names: 24 + 8 + 95 = 127.
      ['dom1', null, ['write', 'data/big', 'v'.repeat(95)], 'OK'],
      ['dom1', null, ['write', 'data/big', 'v'.repeat(96)], err('ENOSPC')],
      ['dom1', null, ['read', 'data/big'], 'v'.repeat(95)],
      ['dom0', null, ['write', '/local/domain/1/data/big', 'v'.repeat(96)], 'OK'],
      ['dom1', null, ['setPerms', 'data/big', 'n1', 'r2'], err('ENOSPC')],
      ['dom1', null, ['write', 'data/small', 'x'], 'OK'],
      ['dom1', null, ['setPerms', 'data/small', 'n1', 'r2'], 'OK'],
      ['dom1', null, ['setPerms', 'data/small', 'n1', 'r2', 'r0'], err('ENOSPC')],
      // Child names count against their parent: 32 + 3 × 31 = 125 fits, a fourth does not.
      ['dom1', null, ['write', `data/d/${'a'.repeat(30)}`, ''], 'OK'],
      ['dom1', null, ['write', `data/d/${'b'.repeat(30)}`, ''], 'OK'],
      ['dom1', null, ['write', `data/d/${'c'.repeat(30)}`, ''], 'OK'],
      ['dom1', null, ['write', `data/d/${'e'.repeat(30)}`, ''], err('ENOSPC')],
      ['dom1', null, ['directory', 'data/d'], ['a'.repeat(30), 'b'.repeat(30), 'c'.repeat(30)]],
      ['dom1', null, ['rm', `data/d/${'a'.repeat(30)}`], 'OK'],
      ['dom1', null, ['write', `data/d/${'e'.repeat(30)}`, ''], 'OK'],
      ['dom1', null, ['write', `data/${'p'.repeat(35)}`, 'x'], 'OK'],
      ['dom1', null, ['write', `data/${'p'.repeat(36)}`, 'x'], err('EINVAL')],
      // The path length binds dom0 too, as in 4.17; outside /local/domain/<id>/ the whole path counts.
      ['dom0', null, ['write', `/local/domain/1/data/${'p'.repeat(36)}`, 'x'], err('EINVAL')],
      ['dom0', null, ['write', `/${'q'.repeat(39)}`, 'x'], 'OK'],
      ['dom0', null, ['write', `/${'q'.repeat(40)}`, 'x'], err('EINVAL')],
    ],
  },
  {
    name: 'unknown and server-only message types are ENOSYS; malformed arguments are EINVAL',
    rows: [
      ['dom0', null, ['raw', 20, ''], err('ENOSYS')],
      ['dom0', null, ['raw', 15, 'a\0b\0'], err('ENOSYS')],
      ['dom0', null, ['raw', 16, 'EIO\0'], err('ENOSYS')],
      ['dom0', null, ['raw', 999, ''], err('ENOSYS')],
      ['dom0', null, ['raw', 2, '/tool'], err('EINVAL')],
      ['dom0', null, ['raw', 2, '/tool\0/x\0'], err('EINVAL')],
      ['dom0', null, ['raw', 11, '/nonul'], err('EINVAL')],
      ['dom0', null, ['raw', 4, '/w\0'], err('EINVAL')],
      ['dom0', null, ['raw', 7, 'X\0'], err('EINVAL')],
      ['dom0', null, ['raw', 10, 'abc\0'], err('EINVAL')],
      ['dom0', null, ['raw', 8, '1\0'], err('EINVAL')],
      ['dom0', null, ['raw', 2, '/tool\0'], ''],
    ],
  },
];

export type Result = { ok: string | string[] } | { err: string };

/** How a scenario reaches a server: straight through Connection, or through the client over sockets. */
export interface Runner {
  exec(who: Who, txId: number, req: Request): Promise<Result>;
  /** Watch events received by `who` since the last call. */
  events(who: Who): Promise<[string, string][]>;
  close(): Promise<void>;
}

interface Asserts {
  deepEqual(actual: unknown, expected: unknown, message?: string): void;
}

/** Runs every row, asserting each reply (and each 'events' row) against the table. */
export async function runScenario(t: Asserts, scenario: Scenario, runner: Runner): Promise<void> {
  const txIds = new Map<string, number>();
  try {
    for (const [i, row] of scenario.rows.entries()) {
      const [who, txName, req, expected] = row;
      const where = `row ${i}: ${JSON.stringify(row)}`;
      if (req[0] === 'events') {
        t.deepEqual(await runner.events(who), expected, where);
        continue;
      }
      const txId = txName && req[0] !== 'start' ? txIds.get(txName) ?? 0 : 0;
      const result = await runner.exec(who, txId, req);
      if (req[0] === 'start' && 'ok' in result && txName) {
        txIds.set(txName, Number(result.ok));
        t.deepEqual('OK', expected, where);
        continue;
      }
      t.deepEqual(result, typeof expected === 'object' && !Array.isArray(expected) ? expected : { ok: expected }, where);
    }
  } finally {
    await runner.close();
  }
}
