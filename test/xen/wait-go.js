// Runs in a test:xen guest instead of xsw-front when the kernel command line
// has xsw_wait=1: polls this guest's XenStore key data/xsw-go (dom0 writes it
// when the guest may start), so guests boot in parallel but start in order.
// Then it becomes xsw-front with its own arguments: the same CLI in the same
// node process, which saves the emulated guest a second node start-up, and the
// front end's modules are loaded while it waits.
//   node wait-go.js XSW-FRONT-ARGS...
const FRONT = '/opt/xsw/dist/frontend/cli.js';
const { XenStoreClient } = require('/opt/xsw/dist/xenstore/client');
require('pino');
require('/opt/xsw/dist/frontend/session');
require('/opt/xsw/dist/frontend/options');

(async () => {
  const xs = await XenStoreClient.connect();
  while ((await xs.tryRead('data/xsw-go')) === undefined) await new Promise((r) => setTimeout(r, 300));
  xs.close();
  process.argv = [process.argv[0], FRONT, ...process.argv.slice(2)];
  require(FRONT);
})().catch((err) => {
  console.error(`wait-go: ${err.message}`);
  process.exit(1);
});
