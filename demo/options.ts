// `npm start`'s command line (npm start -- --duration 10 --frames 500).
import { Command, CommanderError, InvalidArgumentError } from 'commander';

export interface DemoOptions {
  /** Seconds from start until the demo ends by itself (it always runs the scenarios to the end first). */
  duration: number;
  /** Frames per scenario. */
  frames: number;
  /** Use the veth wire when root (false: the guests-only path even as root). */
  wire: boolean;
  /** Hide the back end's live stats table. */
  quiet: boolean;
}

export class DemoOptionError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
  }
}

function seconds(text: string): number {
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < 0 || v > 3600) {
    throw new InvalidArgumentError('--duration takes a number of seconds from 0 to 3600, e.g. --duration 10.');
  }
  return v;
}

function frames(text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > 100000) {
    throw new InvalidArgumentError('--frames takes a whole number from 1 to 100000, e.g. --frames 1000.');
  }
  return Number(text);
}

export function parseDemoOptions(args: string[]): DemoOptions {
  let help = '';
  const program = new Command('npm start --')
    .description(
      'The xsw demo on the simulated platform: xenstored, the back end (--vm2vm --stats 5), two guests running xsw-front ' +
        'in mac forwarding mode, and traffic through them (a veth wire in a network namespace as root; a third guest otherwise).',
    )
    .option('--duration <s>', 'end by itself this many seconds after starting (the scenarios always finish first)', seconds, 20)
    .option('--frames <n>', 'frames per scenario', frames, 1000)
    .option('--no-wire', 'as root too, drive the traffic from a third guest instead of the veth wire')
    .option('--quiet', 'do not show the back end\'s stats table')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => (help += s), writeErr: () => {} });
  try {
    program.parse(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) throw new DemoOptionError(help, 0);
      const text = err.message.replace(/^error: /, '');
      throw new DemoOptionError(`${text.charAt(0).toUpperCase()}${text.slice(1)} (see npm start -- --help).`);
    }
    throw err;
  }
  const o = program.opts();
  return { duration: o.duration, frames: o.frames, wire: o.wire !== false, quiet: Boolean(o.quiet) };
}
