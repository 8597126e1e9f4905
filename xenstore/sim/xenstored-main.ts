// The embedded xenstored as a daemon: `node xenstored-main.js --dir DIR`.
// Started in the background by `xsw-sim up`; logs (pino) go to stderr.
import { Command } from 'commander';
import pino from 'pino';
import { parseQuotaArgs, Quota } from '../server/quota';
import { XenStored } from '../server/xenstored';

async function main(): Promise<void> {
  const program = new Command()
    .name('xsw-xenstored')
    .description('The simulated platform\'s xenstored: dom0 on DIR/socket, domain N on DIR/domN.sock.')
    .requiredOption('--dir <dir>', 'directory for the sockets')
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--quota <name=n...>', 'override a limit (docs/xenstore.md lists them), e.g. --quota nodes=2000 transactionNodes=512')
    .parse();
  const opts = program.opts<{ dir: string; logLevel: string; quota?: string[] }>();
  let quota: Partial<Quota>;
  try {
    quota = parseQuotaArgs(opts.quota ?? []);
  } catch (err) {
    throw new Error(`${(err as Error).message}.`);
  }
  const logger = pino({ level: opts.logLevel }, pino.destination(2));
  const server = new XenStored({ dir: opts.dir, quota, logger });
  await server.listen();
  const stop = (): void => {
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`xsw-xenstored: ${err.message}\n`);
  process.exit(1);
});
