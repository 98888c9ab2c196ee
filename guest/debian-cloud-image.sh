#!/usr/bin/env bash
# Build a Debian 12 (bookworm) image with cloud-init for mallee: the kind of
# image people run on EC2, made from Debian's own packages.
#
#   guest/debian-cloud-image.sh image OUTDIR [BASE.tar.gz]
#   guest/debian-cloud-image.sh base BASE.tar.gz
#
# `image` produces, in OUTDIR:
#   vmlinuz      the Debian cloud kernel (linux-image-cloud-amd64)
#   initrd.img   its initramfs (initramfs-tools, as Debian builds it)
#   root.qcow2   the root file system (ext4, label debian-root, 2 GiB
#                virtual), booted as a paravirtual image with root=/dev/vda
#
# Register the three as kernel, ramdisk and machine image (docs/images.md).
#
# BASE.tar.gz is a bookworm tree made by `mmdebstrap` with the packages
# below (`base` makes it once and keeps it; about two minutes, from the
# Debian mirror in MALLEE_DEBIAN_MIRROR, default http://deb.debian.org/debian);
# without it `image` makes a throwaway one. The acceptance tests share one
# base between this image and the package test's chroot, so one download
# serves both.
#
# The only configuration added to Debian's packages is what any EC2-style
# cloud that is not AWS needs: cloud-init is told to use its Ec2 data
# source (`datasource_list: [ Ec2, None ]`), because cloud-init's platform
# detection recognises AWS by DMI serials that mallee's VMs do not fake.
# Everything else (hostname, DHCP, user-data, keys) is cloud-init's own
# behaviour against mallee's metadata service.
set -euo pipefail

die() { printf 'debian-cloud-image: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'debian-cloud-image: %s\n' "$*" >&2; }

usage() { die "usage: guest/debian-cloud-image.sh image OUTDIR [BASE.tar.gz] | base BASE.tar.gz"; }
[[ "$(id -u)" == 0 ]] || die "run as root (mmdebstrap and the image tree's ownership need it)"

PACKAGES=systemd,systemd-sysv,udev,ifupdown,isc-dhcp-client,iproute2,netbase,cloud-init,python3-cffi-backend,linux-image-cloud-amd64,initramfs-tools
MIRROR="${MALLEE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOT_SIZE=2G

make_base() { # make_base BASE.tar.gz
    command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap not found (apt-get install mmdebstrap)"
    say "mmdebstrap bookworm with $PACKAGES"
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" bookworm "$1.tmp.tar.gz" "$MIRROR"
    mv "$1.tmp.tar.gz" "$1"
}

case "${1:-}" in
    base)
        [[ $# -eq 2 ]] || usage
        mkdir -p "$(dirname "$2")"
        [[ -s "$2" ]] && { say "$2 exists"; exit 0; }
        make_base "$2"
        exit 0 ;;
    image) [[ $# -ge 2 && $# -le 3 ]] || usage ;;
    *) usage ;;
esac
for t in mkfs.ext4 qemu-img tar; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install e2fsprogs qemu-utils tar)"
done

mkdir -p "$2"
out="$(cd "$2" && pwd)"
work="$(mktemp -d "$out/.tree.XXXXXX")"
trap 'rm -rf "$work"' EXIT

base="${3:-}"
if [[ -z "$base" ]]; then
    base="$work/base.tar.gz"
    make_base "$base"
fi
tree="$work/root"
mkdir "$tree"
tar -C "$tree" -xzf "$base"
for f in usr/bin/cloud-init usr/sbin/dhclient sbin/init; do
    [[ -e "$tree/$f" ]] || die "$base lacks /$f: make it with the packages $PACKAGES"
done

# cloud-init: the Ec2 data source, whatever the DMI tables say; the C
# locale (the image has no `locales` to generate others); no SSH host keys
# (the image has no sshd; add openssh-server to PACKAGES for one).
cat > "$tree/etc/cloud/cloud.cfg.d/90_mallee.cfg" <<'EOF'
# mallee serves the EC2 metadata service at 169.254.169.254.
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    strict_id: false
locale: C.UTF-8
ssh_genkeytypes: []
EOF
cat > "$tree/etc/fstab" <<'EOF'
LABEL=debian-root / ext4 rw,discard,errors=remount-ro 0 1
EOF
# The name comes from the metadata (cloud-init's set_hostname), not from
# the machine that built the image.
rm -f "$tree/etc/hostname"
: > "$tree/etc/machine-id"
# What a booted system does not need.
rm -rf "$tree"/var/cache/apt/*.bin "$tree"/var/lib/apt/lists/* "$tree"/usr/share/doc/* \
       "$tree"/usr/share/man/* "$tree"/usr/share/locale/*

kernel="$(ls "$tree"/boot/vmlinuz-* | sort -V | tail -1)"
initrd="$(ls "$tree"/boot/initrd.img-* | sort -V | tail -1)"
[[ -f "$kernel" && -f "$initrd" ]] || die "no kernel or initrd under /boot of $base"
cp "$kernel" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img.tmp" && mv "$out/initrd.img.tmp" "$out/initrd.img"

say "root file system ($ROOT_SIZE ext4 → qcow2)"
mkfs.ext4 -q -F -L debian-root -d "$tree" "$work/root.img" "$ROOT_SIZE" >/dev/null
qemu-img convert -f raw -O qcow2 "$work/root.img" "$out/root.qcow2.tmp"
mv "$out/root.qcow2.tmp" "$out/root.qcow2"
say "built $out: vmlinuz ($(basename "$kernel")), initrd.img, root.qcow2"
