#!/usr/bin/env node
// xsw-front: the guest side of xsw (DPDK's net_xenvirt PMD plus testpmd's
// forwarding modes). Grants the mempool and each device's rings and flag page
// to dom0, publishes them under control/dpdk, runs one engine thread per
// device, prints stats, and on SIGINT/SIGTERM stops, drops the flag byte,
// removes its keys, frees its grants and exits 0.
import pino from 'pino';
import { FrontError } from './errors';
import { deriveMac, formatMac } from './mac';
import { FrontConfig, parseArgs, peerFor } from './options';
import { DeviceHandle, FrontSession } from './session';
import { DeviceReport, statsJson, statsLine } from './stats';

// How long cleanup may take before we exit anyway (the flag bytes are
// already 0 by then, so a back end detaches regardless).
const CLEANUP_TIMEOUT_MS = 3000;

function fail(message: string): never {
  process.stderr.write(`xsw-front: ${message}\n`);
  process.exit(1);
}

function reports(devs: readonly DeviceHandle[]): DeviceReport[] {
  return devs.map((d) => ({ dev: d.index, mac: formatMac(d.mac), stats: d.native.stats() }));
}

function printStats(cfg: FrontConfig, devs: readonly DeviceHandle[], final: boolean): void {
  const r = reports(devs);
  if (cfg.json) process.stdout.write(statsJson(r, new Date(), final) + '\n');
  else for (const line of r.map(statsLine)) process.stdout.write(line + '\n');
}

async function main(): Promise<void> {
  const cfg = parseArgs(process.argv);
  const log = pino({ name: 'xsw-front', level: cfg.logLevel }, pino.destination({ fd: 2, sync: true }));

  const session = await FrontSession.open({ platform: cfg.platform, logger: log });
  const devs: DeviceHandle[] = [];
  let stopping = false;

  const shutdown = async (reason: string, code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    for (const d of devs) d.native.stop();
    log.info({ reason }, 'stopping');
    printStats(cfg, devs, true);
    const timer = setTimeout(() => {
      log.warn('cleanup took too long; exiting with the flag bytes already cleared');
      process.exit(code);
    }, CLEANUP_TIMEOUT_MS);
    try {
      await session.close();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not remove every key from XenStore');
    }
    clearTimeout(timer);
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));

  try {
    const pool = await session.addPool(cfg.nbMbuf);
    const perDevice = Math.floor(cfg.nbMbuf / cfg.devices);
    for (let i = 0; i < cfg.devices; i++) {
      const mac = cfg.macs[i] ?? deriveMac(session.domid, i);
      devs.push(session.addDevice(pool, { mac, ringSize: cfg.ringSize, nbBufs: perDevice, maxPktLen: cfg.maxPktLen, notify: cfg.notify }));
    }
    // Engines start first (they fill their RX rings; tap opens its
    // interface), so a device is announced only once it can move packets.
    for (const d of devs) {
      d.native.start({
        mode: cfg.fwd,
        poll: cfg.poll,
        burst: cfg.burst,
        peer: peerFor(cfg, d.index),
        txpkts: cfg.txpkts,
        rate: cfg.rate,
        count: cfg.count,
        verify: cfg.verify,
        tap: cfg.tap,
      });
    }
    for (const d of devs) await session.publish(d);
  } catch (err) {
    stopping = true;
    await session.close().catch(() => undefined);
    throw err;
  }
  log.info(
    { domid: session.domid, devices: devs.map((d) => formatMac(d.mac)), fwd: cfg.fwd, poll: cfg.poll },
    'xsw-front running',
  );
  if (cfg.stats > 0) setInterval(() => printStats(cfg, devs, false), cfg.stats * 1000);
  if (cfg.duration !== undefined) setTimeout(() => void shutdown('duration', 0), cfg.duration * 1000);
  // Keep the event loop alive while the engines run on their own threads.
  setInterval(() => undefined, 1 << 30);
}

main().catch((err: unknown) => {
  if (err instanceof FrontError) fail(err.message);
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string' && typeof e.message === 'string') fail(e.message);
  fail(`unexpected error: ${(err as Error)?.stack ?? String(err)}`);
});
