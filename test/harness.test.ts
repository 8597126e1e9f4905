// The harness the demo, the bench and the tests share (harness/): a child's
// output is complete when it is reported ended, a command that cannot start
// says so, waits name what they waited for, stop() takes the whole process
// group, and the CLI table points at package.json's commands.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Child, exitStatus, mustRun, run, WaitError } from '../harness/child';
import { CLI } from '../harness/cli-paths';

const node = (script: string): [string, string[]] => [process.execPath, ['-e', script]];

test('exited resolves only once the output is read to the end, an unterminated last line included', async (t) => {
  // The shell exits at once; what its background job prints 300 ms later still belongs to the run.
  const c = new Child('sh', ['-c', "(sleep 0.3; echo late; printf 'last') & echo first; echo e1 >&2; exit 0"]);
  const exit = await c.exited;
  t.deepEqual(exit, { code: 0, signal: null });
  t.deepEqual(c.out, ['first', 'late', 'last']);
  t.is(c.stdout, 'first\nlate\nlast');
  t.deepEqual(c.err, ['e1']);
  t.false(c.running);
});

test('a command that cannot start ends with status 127 and says why; mustRun throws one sentence', async (t) => {
  const c = new Child('/nonexistent/xsw-tool', []);
  const exit = await c.exited;
  t.is(exit.code, 127);
  t.regex(exit.error?.message ?? '', /ENOENT/);
  const r = await run('/nonexistent/xsw-tool', ['a']);
  t.is(r.code, 127);
  await t.throwsAsync(mustRun('/nonexistent/xsw-tool', ['a']), { message: /^cannot run \/nonexistent\/xsw-tool: .*ENOENT/ });
  await t.throwsAsync(mustRun(...node('process.stderr.write("no such thing\\n"); process.exit(3)')), {
    message: /^.* -e .* failed \(status 3\): no such thing$/,
  });
});

test('a signal shows as 128 + its number', async (t) => {
  const c = new Child(...node('setInterval(() => {}, 1000)'));
  await c.waitFor('the process to start', () => c.pid, 5000);
  c.kill('SIGKILL');
  const exit = await c.exited;
  t.is(exit.signal, 'SIGKILL');
  t.is(exitStatus(exit), 137);
});

test('waitLine finds a line after `from`, and a process that ends first fails the wait with its last words', async (t) => {
  const c = new Child(...node('console.log("a"); console.log("b"); console.log("a"); console.error("giving up"); process.exit(4)'), { name: 'quitter' });
  t.is(await c.waitLine('out', /^a$/, { from: 1 }), 2);
  const err = await t.throwsAsync(c.waitLine('out', /never/), { instanceOf: WaitError });
  t.regex(err?.message ?? '', /^quitter exited \(status 4\) before quitter to print a line matching \/never\/; last lines of quitter's stderr:\n {4}giving up$/);
});

test('a wait that runs out of time says how long it waited', async (t) => {
  const c = new Child(...node('setTimeout(() => {}, 5000)'), { name: 'sleeper' });
  await t.throwsAsync(c.waitLine('err', /x/, { timeoutMs: 200 }), { message: /^timed out after 0.2 s waiting for sleeper to print a line matching \/x\// });
  c.kill('SIGKILL');
  await c.exited;
});

test('stop() ends the whole process group, a grandchild that ignores SIGTERM included', async (t) => {
  const c = new Child('sh', ['-c', "trap '' TERM; sleep 60 & echo $!; wait"], { group: true });
  const line = await c.waitLine('out', /^[0-9]+$/);
  const grandchild = Number(c.out[line]);
  await c.stop(300);
  t.false(c.running);
  // Gone, or a zombie waiting for whoever reaps orphans.
  const alive = (): boolean => {
    try {
      const stat = fs.readFileSync(`/proc/${grandchild}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 20));
  t.false(alive(), `grandchild ${grandchild} survived`);
});

test("the CLI table names package.json's commands", (t) => {
  const root = path.join(__dirname, '..', '..');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.deepEqual(
    { backend: CLI.backend, front: CLI.front, sim: CLI.sim },
    { backend: path.join(root, pkg.bin['xsw-backend']), front: path.join(root, pkg.bin['xsw-front']), sim: path.join(root, pkg.bin['xsw-sim']) },
  );
  for (const file of Object.values(CLI)) t.true(fs.existsSync(file), file);
});
