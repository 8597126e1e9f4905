#!/bin/bash
# Builds (or reuses) the small Linux VM that test/vhost-qemu.test.ts boots
# under QEMU (TCG) as a vhost-user client of xsw: Debian bookworm's
# linux-image-6.1 kernel and an initramfs of busybox-static, the virtio
# modules (virtio_pci, virtio_net and their dependencies) and test/vm/init.
# Debian's packages only, fetched with `apt-get download` (nothing is
# installed on the host). Prints the image directory on its last line.
#
#   test/vm/build-image.sh            (cache: $XSW_VM_CACHE, default /var/tmp/xsw-vm)
#
# Cache layout: pkgs/ the two .debs; vm-<key>/ vmlinuz and initrd.gz, where
# the key hashes the package versions, this script and init, so a new Debian
# point release or a changed init rebuilds. The kernel .deb is taken from the
# real-Xen test's cache ($XSW_XEN_CACHE/pkgs) when the same version is there.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XSW_VM_CACHE:-/var/tmp/xsw-vm}
SEED=${XSW_XEN_CACHE:-/var/tmp/xsw-xen}/pkgs
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
say() { echo "[vm build] $*" >&2; }
die() { echo "vm build: $*" >&2; exit 1; }

for tool in apt-cache apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is missing: this builder needs Debian's apt and dpkg"
done
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1/{print $2; exit}')
[ -n "$KPKG" ] || die "apt-cache knows no linux-image-6.1 package: run apt-get update (Debian bookworm's archive must be reachable)"
version() { apt-cache policy "$1" | awk '/Candidate:/{print $2}'; }
KVERSION=$(version "$KPKG")
BVERSION=$(version busybox-static)
[ -n "$BVERSION" ] && [ "$BVERSION" != "(none)" ] || die "apt-cache knows no busybox-static package: run apt-get update"

mkdir -p "$CACHE/pkgs"
deb() {  # deb PACKAGE VERSION: the cached .deb of that version, downloaded if missing
  local v=${2//:/%3a} f  # apt-get download names an epoch's colon %3a
  f=$(ls "$CACHE/pkgs/${1}_${v}_"*.deb 2>/dev/null | tail -1 || true)
  if [ -z "$f" ] && ls "$SEED/${1}_${v}_"*.deb >/dev/null 2>&1; then
    cp "$(ls "$SEED/${1}_${v}_"*.deb | tail -1)" "$CACHE/pkgs/"
    f=$(ls "$CACHE/pkgs/${1}_${v}_"*.deb | tail -1)
  fi
  if [ -z "$f" ]; then
    say "apt-get download $1=$2"
    chown _apt "$CACHE/pkgs" 2>/dev/null || true
    (cd "$CACHE/pkgs" && apt-get download -q "$1=$2" >/dev/null) || die "apt-get download $1=$2 failed: check that Debian's archive is reachable"
    f=$(ls "$CACHE/pkgs/${1}_${v}_"*.deb 2>/dev/null | tail -1 || true)
    [ -n "$f" ] || die "apt-get download $1=$2 left no .deb in $CACHE/pkgs"
  fi
  echo "$f"
}
KDEB=$(deb "$KPKG" "$KVERSION")
BDEB=$(deb busybox-static "$BVERSION")

KEY=$( (echo "$KPKG $KVERSION $BVERSION $MODULES"; cat "$0" "$HERE/init") | sha1sum | cut -c1-12)
IMG=$CACHE/vm-$KEY
if [ -e "$IMG/.complete" ]; then
  echo "$IMG"
  exit 0
fi
say "building $IMG from $(basename "$KDEB") and $(basename "$BDEB")"
rm -rf "$CACHE"/vm-* "$CACHE/work"
mkdir -p "$IMG" "$CACHE/work/x" "$CACHE/work/root"/{bin,dev,proc,sys,lib/modules}
W=$CACHE/work
# Only the kernel image and the modules named above come out of the kernel package.
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$W/x" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' \
  './lib/modules/*/kernel/drivers/net/virtio_net.ko' './lib/modules/*/kernel/drivers/net/net_failover.ko' './lib/modules/*/kernel/net/core/failover.ko'
cp "$W"/x/boot/vmlinuz-* "$IMG/vmlinuz"
for m in $MODULES; do
  f=$(find "$W/x/lib/modules" -name "$m.ko" | head -1)
  [ -n "$f" ] || die "the kernel package $KPKG has no $m.ko (is it built in now? then drop it from MODULES)"
  cp "$f" "$W/root/lib/modules/"
done
dpkg-deb --fsys-tarfile "$BDEB" | tar -x -C "$W/x" ./bin/busybox
install -m 755 "$W/x/bin/busybox" "$W/root/bin/busybox"
ln -s busybox "$W/root/bin/sh"
install -m 755 "$HERE/init" "$W/root/init"
# busybox's own cpio writes the archive: no host cpio needed.
(cd "$W/root" && find . | "$W/root/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 > "$IMG/initrd.gz"
rm -rf "$W"
touch "$IMG/.complete"
say "done: $(du -sh "$IMG" | cut -f1)"
echo "$IMG"
