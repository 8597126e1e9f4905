// A frame generator process: sends one frame over and over on an interface
// (AF_PACKET, its thread pinned to a CPU) until SIGTERM, then prints
// {"sent": N}. Usage: node blast.js DEV SIZE DST SRC VLAN|- CPU
import { benchFrame } from './frames';
import { benchAddon } from './native';

function main(): void {
  const [dev, size, dst, src, vlan, cpu] = process.argv.slice(2);
  const frame = benchFrame(Number(size), dst, src, vlan === '-' ? undefined : Number(vlan));
  const blaster = new (benchAddon().Blaster)(dev, frame, Number(cpu));
  blaster.start();
  const stop = (): void => {
    process.stdout.write(`${JSON.stringify({ sent: blaster.stop() })}\n`);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  setInterval(() => undefined, 1 << 30);
}

try {
  main();
} catch (err) {
  process.stderr.write(`blast: ${(err as Error).message}\n`);
  process.exit(1);
}
