#!/bin/sh
# Builds the tiny probe guest used by mallee-qemu's tests: Debian's cloud
# kernel plus a busybox initramfs whose init prints `MALLEE-GUEST: booted` on
# ttyS0, lists its virtio disks, and powers off when the ACPI power button is
# pressed (QMP system_powerdown).
#
# Usage: build.sh OUTDIR   -> OUTDIR/vmlinuz, OUTDIR/initrd.img
# Idempotent: does nothing when both files exist. Needs busybox-static
# (/bin/busybox, statically linked) and apt-get (to download
# linux-image-cloud-amd64; nothing is installed on the host).
set -eu
OUT=${1:?usage: build.sh OUTDIR}
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ]; then exit 0; fi
BUSYBOX=${BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || { echo "build.sh: $BUSYBOX missing: apt-get install busybox-static" >&2; exit 1; }
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "build.sh: $BUSYBOX is dynamically linked: install busybox-static" >&2; exit 1
fi
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# Kernel: linux-image-cloud-amd64 is a meta package; fetch what it depends on.
apt-get download linux-image-cloud-amd64 >/dev/null 2>&1 || { echo "build.sh: apt-get download linux-image-cloud-amd64 failed" >&2; exit 1; }
DEP=$(dpkg-deb -f linux-image-cloud-amd64_*.deb Depends | sed 's/ .*//')
apt-get download "$DEP" >/dev/null 2>&1 || { echo "build.sh: apt-get download $DEP failed" >&2; exit 1; }
mkdir pkg && dpkg-deb -x "$DEP"_*.deb pkg
KVER=${DEP#linux-image-}
MODS=pkg/lib/modules/$KVER/kernel

mkdir -p root/bin root/lib/modules root/proc root/sys root/dev root/tmp
cp "$BUSYBOX" root/bin/busybox
for m in virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev \
         virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk \
         acpi/button input/evdev; do
  cp "$MODS/drivers/$m.ko" root/lib/modules/
done
cat > root/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk button evdev; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
echo "MALLEE-GUEST: booted" > /dev/ttyS0
for i in 1 2 3 4 5 6 7 8 9 10; do
  [ -e /sys/bus/pci/drivers/virtio-pci ] && ls /sys/block | grep -q vd && break
  sleep 0.1
done
for b in /sys/block/vd*; do
  [ -e "$b" ] && echo "MALLEE-PROBE: disk ${b##*/}" > /dev/ttyS0
done
pwr=
for i in 1 2 3 4 5 6 7 8 9 10; do
  for e in /sys/class/input/event*; do
    [ -e "$e/device/name" ] || continue
    if grep -q "Power Button" "$e/device/name"; then pwr=/dev/input/${e##*/}; fi
  done
  [ -n "$pwr" ] && [ -e "$pwr" ] && break
  sleep 0.2
done
if [ -n "$pwr" ]; then
  # Open the device before announcing it, so no button press is missed.
  exec 3< "$pwr"
  echo "MALLEE-PROBE: waiting for power button on $pwr" > /dev/ttyS0
  head -c 1 <&3 > /dev/null
  echo "MALLEE-PROBE: powering off" > /dev/ttyS0
  poweroff -f
fi
echo "MALLEE-PROBE: no power button" > /dev/ttyS0
while true; do sleep 3600; done
INIT
chmod 755 root/init
(cd root && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) > initrd.img
cp "pkg/boot/vmlinuz-$KVER" vmlinuz
mv initrd.img "$OUT/initrd.img.tmp" && mv vmlinuz "$OUT/vmlinuz.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "build.sh: probe guest ($KVER) in $OUT"
