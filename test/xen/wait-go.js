// Runs in a test:xen guest before xsw-front when the kernel command line has
// xsw_wait=1: polls this guest's XenStore key data/xsw-go (dom0 writes it when
// the guest may start), so guests boot in parallel but start in order.
const { XenStoreClient } = require('/opt/xsw/dist/xenstore/client');

(async () => {
  const xs = await XenStoreClient.connect();
  while ((await xs.tryRead('data/xsw-go')) === undefined) await new Promise((r) => setTimeout(r, 300));
  xs.close();
})().catch((err) => {
  console.error(`wait-go: ${err.message}`);
  process.exit(1);
});
