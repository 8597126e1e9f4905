#!/bin/bash
# Builds (or reuses) the cached Xen images for `npm run test:xen`, from
# Debian's packages only. Called by test/xen/run.sh; usable alone:
#
#   XSW_XEN_CACHE=/var/tmp/xsw-xen test/xen/build-images.sh
#
# Cache layout ($XSW_XEN_CACHE, default /var/tmp/xsw-xen):
#   pkgs/            linux-image-6.1 and xen-hypervisor-4.17 .debs (apt-get download)
#   kernel/          those two packages extracted (+ depmod)
#   base-<key>/      debootstrap bookworm minbase + xen-utils-4.17 + xenstore-utils
#   images-<key>/    xen (ELF multiboot), vmlinux (plain ELF), dom0.cpio,
#                    domu/ (the guests' root: busybox + node + its libs + Xen modules;
#                    run.sh adds test/xen/init-domu and the project),
#                    netfront/ (a stock netfront guest's root: busybox, the
#                    xen-netfront module, xenstore-read/-write, iperf3 and their
#                    libraries; run.sh adds test/xen/init-netfront)
# Keys are hashes of the package versions and of the inputs (these scripts,
# node), so a new Debian point release or a changed init script rebuilds.
# The project itself is not in these images: run.sh packs it per run.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XSW_XEN_CACHE:-/var/tmp/xsw-xen}
SUITE=bookworm
MIRROR=${XSW_XEN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
NODE=$(command -v node)
say() { echo "[xen build] $*"; }

mkdir -p "$CACHE/pkgs"

# ---- kernel + hypervisor packages (version-pinned by the archive's candidates)
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1/{print $2; exit}')
[ -n "$KPKG" ] || { echo "xen build: apt-cache knows no linux-image-6.1 package: run apt-get update (Debian bookworm's archive must be reachable)" >&2; exit 1; }
XPKG=xen-hypervisor-4.17-amd64
version() { apt-cache policy "$1" | awk '/Candidate:/{print $2}'; }
KVERSION=$(version "$KPKG"); XVERSION=$(version "$XPKG"); UVERSION=$(version xen-utils-4.17)
for p in "$KPKG" "$XPKG"; do
  if ! ls "$CACHE/pkgs/${p}_"*.deb >/dev/null 2>&1; then
    say "apt-get download $p"
    chown _apt "$CACHE/pkgs" 2>/dev/null || true
    (cd "$CACHE/pkgs" && apt-get download -q "$p" >/dev/null)
  fi
done
# iperf3 for the netfront guests (with the two libraries debootstrap's tree lacks)
NF_PKGS="iperf3 libiperf0 libsctp1"
for p in $NF_PKGS; do
  if ! ls "$CACHE/pkgs/${p}_"*.deb >/dev/null 2>&1; then
    say "apt-get download $p"
    chown _apt "$CACHE/pkgs" 2>/dev/null || true
    (cd "$CACHE/pkgs" && apt-get download -q "$p" >/dev/null) \
      || { echo "xen build: apt-get download $p failed: run apt-get update (Debian bookworm's archive must be reachable)" >&2; exit 1; }
  fi
done
NF_DEBS=$(for p in $NF_PKGS; do ls "$CACHE/pkgs/${p}_"*.deb | tail -1; done)
KDEB=$(ls "$CACHE/pkgs/${KPKG}_"*.deb | tail -1)
XDEB=$(ls "$CACHE/pkgs/${XPKG}_"*.deb | tail -1)
KEX=$CACHE/kernel
stamp="$(basename "$KDEB") $(basename "$XDEB")"
if [ "$(cat "$KEX/.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "extracting $stamp"
  rm -rf "$KEX"; mkdir -p "$KEX"
  dpkg-deb -x "$KDEB" "$KEX"; dpkg-deb -x "$XDEB" "$KEX"
  depmod -b "$KEX" "$(ls "$KEX/lib/modules" | head -1)"
  echo "$stamp" > "$KEX/.stamp"
fi
KVER=$(ls "$KEX/lib/modules" | head -1)

# ---- debootstrap tree (dom0's root; the domU takes libraries from it)
BASE_KEY=$(echo "$SUITE $UVERSION $XVERSION minbase xen-utils-4.17 xenstore-utils kmod procps busybox-static" | sha1sum | cut -c1-12)
BASE=$CACHE/base-$BASE_KEY
if [ ! -e "$BASE/.complete" ]; then
  rm -rf "$CACHE"/base-*
  say "debootstrap $SUITE from $MIRROR (about a minute)"
  debootstrap --variant=minbase --include=xen-utils-4.17,xenstore-utils,kmod,procps,busybox-static \
    "$SUITE" "$BASE" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; echo "xen build: debootstrap failed (log: $CACHE/debootstrap.log): check that $MIRROR is reachable" >&2; exit 1; }
  rm -rf "$BASE"/usr/share/{doc,man,info,locale}/* "$BASE"/var/cache/apt/* "$BASE"/var/lib/apt/lists/* \
         "$BASE"/usr/lib/udev/hwdb.bin "$BASE"/usr/lib/x86_64-linux-gnu/gconv
  touch "$BASE/.complete"
fi

# ---- images
IMG_KEY=$( (echo "$BASE_KEY $KVERSION $XVERSION"; basename -a $NF_DEBS; sha1sum "$NODE" "$HERE/build-images.sh" "$HERE/init-dom0") | sha1sum | cut -c1-12)
IMG=$CACHE/images-$IMG_KEY
if [ -e "$IMG/.complete" ]; then
  say "images cached ($IMG)"
  echo "$IMG" > "$CACHE/current"
  exit 0
fi
rm -rf "$CACHE"/images-* "$CACHE/work"
mkdir -p "$IMG" "$CACHE/work"

zcat "$KEX/boot/xen-4.17-amd64.gz" > "$IMG/xen"
# The bzImage's XZ payload as a plain ELF: Xen's dom0 builder and libxenguest
# would otherwise decompress it at emulated-CPU speed (seconds per boot).
python3 - "$KEX/boot/vmlinuz-$KVER" "$IMG/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
if elf[:4] != b"\x7fELF":
    sys.exit("xen build: the kernel's XZ payload is not an ELF image")
open(sys.argv[2], "wb").write(elf)
EOF

# add_modules ROOT MODULE... : the modules and their dependencies, then depmod
add_modules() {
  local root=$1; shift
  local m f
  for m in "$@"; do
    modprobe -d "$KEX" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}' | while read -r f; do
      install -D -m 644 "$f" "$root/${f#"$KEX"/}"
    done
  done
  cp "$KEX/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$KVER/"
  depmod -b "$root" "$KVER"
}

# dom0: the debootstrap tree + node + the Xen and virtio/9p modules + our /init
D0=$CACHE/work/dom0
cp -a "$BASE" "$D0"
rm -f "$D0/.complete"
# node without its debug symbols (binutils' strip, when there): 12 MB less
# for dom0's boot and every guest's ramdisk to carry.
install_node() { install -m 755 "$NODE" "$1"; command -v strip >/dev/null && strip "$1"; return 0; }
install_node "$D0/usr/local/bin/node"
add_modules "$D0" xenfs xen-evtchn xen-privcmd xen-gntdev xen-gntalloc virtio_pci 9pnet_virtio 9p tun vhost_net
install -m 755 "$HERE/init-dom0" "$D0/init"
# xsw-backend serves the vifs: the kernel's netback must never claim them
# (it is not in this image anyway, and nothing here autoloads modules).
mkdir -p "$D0/etc/modprobe.d"
echo 'install xen-netback /bin/false' > "$D0/etc/modprobe.d/xsw-no-netback.conf"
mkdir -p "$D0/mnt/xsw" "$D0/var/lib/xenstored" "$D0/var/log/xen"
(cd "$D0" && find . -print0 | cpio --null -o -H newc --quiet) > "$IMG/dom0.cpio"

# domU: busybox + node and its libraries from the bookworm tree + Xen modules
DU=$CACHE/work/domu
mkdir -p "$DU"/{bin,dev,proc,sys,tmp,run,root,usr/local/bin,lib64,lib/x86_64-linux-gnu}
install -m 755 "$BASE/bin/busybox" "$DU/bin/busybox"   # busybox-static
for a in $("$DU/bin/busybox" --list); do [ -e "$DU/bin/$a" ] || ln -s busybox "$DU/bin/$a"; done
install_node "$DU/usr/local/bin/node"
ldd "$NODE" | grep -o '/[^ ]*' | while read -r l; do install -D "$BASE$l" "$DU$l"; done
add_modules "$DU" xenfs xen-evtchn xen-gntdev xen-gntalloc tun
mv "$DU" "$IMG/domu"   # run.sh adds the project and makes the ramdisk

# netfront guest: a stock Linux guest with no xsw inside (busybox, the kernel's
# xen-netfront, xenstore-read/-write for dom0's commands, iperf3)
NF=$CACHE/work/netfront
mkdir -p "$NF"/{bin,dev,proc,sys,tmp,run,root,usr/bin,lib64,lib/x86_64-linux-gnu}
install -m 755 "$BASE/bin/busybox" "$NF/bin/busybox"
for a in $("$NF/bin/busybox" --list); do [ -e "$NF/bin/$a" ] || ln -s busybox "$NF/bin/$a"; done
NFX=$CACHE/work/netfront-debs
for d in $NF_DEBS; do dpkg-deb -x "$d" "$NFX"; done
install -m 755 "$NFX/usr/bin/iperf3" "$NF/usr/bin/iperf3"
install -m 755 "$BASE/usr/bin/xenstore-read" "$NF/usr/bin/xenstore-read"
install -m 755 "$BASE/usr/bin/xenstore-write" "$NF/usr/bin/xenstore-write"
# Their libraries by soname, from the iperf3 packages or the bookworm tree.
for so in $(LD_LIBRARY_PATH="$NFX/usr/lib/x86_64-linux-gnu:$BASE/usr/lib/x86_64-linux-gnu" \
            ldd "$NF/usr/bin/iperf3" "$NF/usr/bin/xenstore-read" | awk '$1 ~ /^lib.*\.so/ {print $1}' | sort -u); do
  f=
  for dir in "$NFX/usr/lib/x86_64-linux-gnu" "$BASE/usr/lib/x86_64-linux-gnu"; do
    [ -e "$dir/$so" ] && { f=$dir/$so; break; }
  done
  [ -n "$f" ] || { echo "xen build: the netfront guest needs $so, found neither in the iperf3 packages nor in $BASE" >&2; exit 1; }
  cp -L "$f" "$NF/lib/x86_64-linux-gnu/$so"
done
cp -L "$BASE/lib64/ld-linux-x86-64.so.2" "$NF/lib64/"
add_modules "$NF" xenfs xen-netfront
mv "$NF" "$IMG/netfront"   # run.sh adds test/xen/init-netfront and makes the ramdisk
rm -rf "$CACHE/work"
touch "$IMG/.complete"
echo "$IMG" > "$CACHE/current"
say "images built: $(du -sh "$IMG" | cut -f1) in $IMG (kernel $KVER, $(basename "$XDEB" .deb))"
