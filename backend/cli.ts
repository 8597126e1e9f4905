#!/usr/bin/env node
// xsw-backend: the dom0 switch. See docs/backend.md.
import { OptionError, parseOptions } from './options';
import { makeLogger, RunningBackend, startBackend, StartupError } from './service';

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof OptionError) {
      if (err.exitCode === 0) process.stdout.write(err.output);
      else process.stderr.write(`xsw-backend: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  const log = makeLogger(opts.logLevel);
  // Handlers go in before the back end starts: a signal that arrives while it
  // starts (after its "watching" line, say) stops it once it is up, instead of
  // killing the process with devices mapped.
  let backend: RunningBackend | undefined;
  let pending: string | undefined;
  const onSignal = (sig: string): void => {
    if (!backend) {
      pending = sig;
      return;
    }
    log.info(`${sig}: detaching every device`);
    void backend.shutdown();
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  try {
    backend = await startBackend(opts, log);
  } catch (err) {
    if (err instanceof StartupError) {
      process.stderr.write(`xsw-backend: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  if (pending) onSignal(pending);
  await backend.done;
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`xsw-backend: unexpected failure: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(70);
  },
);
