#!/usr/bin/env bash
# Build the bare-metal zone's boot images from the test guest (which is
# built from Debian packages by guest/build.sh).
#
#   guest/metal/build.sh OUTDIR [GUESTDIR]
#
# GUESTDIR (default OUTDIR/../guest-images) is built or brought up to date
# with guest/build.sh first. Produces, in OUTDIR:
#   deploy-vmlinuz      the deploy agent's kernel (Debian's cloud kernel)
#   deploy-initrd.img   the deploy agent: the guest's busybox initramfs with
#                       /usr/sbin/mallee-deploy started by busybox init
#   installed.raw       the "installed system" test image: the guest's HVM
#                       disk (MBR + SYSLINUX + ext4 root labelled
#                       mallee-root), raw, whose init checks in with the
#                       URL the deploy agent writes into it
#   installed.sha256    its SHA-256
#   installer-vmlinuz   the test installer of installer profiles (a "distro"
#   installer-initrd.img  kernel + initrd): the guest's busybox initramfs
#                       with /usr/sbin/mallee-install and, on board, the base
#                       system it installs (boot partition, root file system
#                       of installed.raw) as the answer file says
#   answer.tmpl         an answer-file template for it
#   sshonly.raw         the guest's HVM disk as it is: runs dropbear on :22,
#   sshonly.sha256      never checks in (the SSH check-in fallback's test image)
#
# Nothing is mounted, no loop device is used: the root partition is edited
# with debugfs (e2fsprogs). Rebuilt only when an input changed.
set -euo pipefail

die() { printf 'guest/metal/build.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'guest/metal/build.sh: %s\n' "$*" >&2; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: guest/metal/build.sh OUTDIR [GUESTDIR]"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
guest="${2:-$out/../guest-images}"
mkdir -p "$guest"
guest="$(cd "$guest" && pwd)"
trap 'die "step failed (line $LINENO): $BASH_COMMAND"' ERR
for t in debugfs qemu-img gzip sha256sum dd od; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install e2fsprogs qemu-utils gzip coreutils)"
done

"$here/../build.sh" "$guest"
bb="$guest/.build/pkgs/busybox-static/bin/busybox"
command -v busybox >/dev/null 2>&1 && bb="$(command -v busybox)"
[[ -x "$bb" ]] || die "busybox not found (apt-get install busybox-static)"

work="$out/.build"
mkdir -p "$work"
exec 9>"$work/lock"
flock 9

outputs=(deploy-vmlinuz deploy-initrd.img installed.raw installed.sha256
         installer-vmlinuz installer-initrd.img answer.tmpl sshonly.raw sshonly.sha256)
stamp="$(
    {
        cd "$here" && find . -type f -print0 | sort -z | xargs -0 sha256sum
        sha256sum "$guest/vmlinuz" "$guest/initrd.img" "$guest/hvm.qcow2" | cut -d' ' -f1
    } | sha256sum | cut -d' ' -f1
)"
uptodate=1
for f in "${outputs[@]}"; do [[ -s "$out/$f" ]] || uptodate=0; done
if [[ $uptodate == 1 && "$(cat "$work/stamp" 2>/dev/null || true)" == "$stamp" ]]; then
    say "up to date: $out"
    exit 0
fi
rm -f "$work/stamp"
tmp="$work/tmp"
rm -rf "$tmp"
mkdir -p "$tmp"

# ------------------------------------------------------------ deploy agent
stage="$tmp/stage"
mkdir -p "$stage"
(cd "$stage" && gzip -dc "$guest/initrd.img" | "$bb" cpio -i -d -m 2>/dev/null)
[[ -x "$stage/init" && -x "$stage/bin/busybox" ]] || die "the guest initramfs has no /init"
install -m 0644 "$here/deploy/inittab" "$stage/etc/inittab"
install -m 0755 "$here/deploy/mallee-deploy" "$stage/usr/sbin/mallee-deploy"
echo mallee-deploy > "$stage/etc/hostname"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -9n > "$tmp/deploy-initrd.img"
cp "$guest/vmlinuz" "$tmp/deploy-vmlinuz"

# ------------------------------------------------------------ installed system
raw="$tmp/installed.raw"
qemu-img convert -q -f qcow2 -O raw "$guest/hvm.qcow2" "$raw"
cp "$raw" "$tmp/sshonly.raw"
sha256sum "$tmp/sshonly.raw" | cut -d' ' -f1 > "$tmp/sshonly.sha256"
le32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
part=""
for i in 0 1 2 3; do
    base=$((446 + 16 * i))
    type="$(od -An -tx1 -j $((base + 4)) -N1 "$raw" | tr -d ' ')"
    if [[ "$type" == 83 ]]; then part="$i"; break; fi
done
[[ -n "$part" ]] || die "no Linux partition in $guest/hvm.qcow2"
start="$(le32 "$raw" $((446 + 16 * part + 8)))"
count="$(le32 "$raw" $((446 + 16 * part + 12)))"
rootfs="$tmp/root.ext4"
dd if="$raw" of="$rootfs" bs=512 skip="$start" count="$count" status=none
cat > "$tmp/debugfs.cmds" <<CMDS
mkdir /etc/mallee-metal
rm /etc/inittab
write $here/installed/inittab /etc/inittab
write $here/installed/mallee-metal-checkin /usr/sbin/mallee-metal-checkin
set_inode_field /usr/sbin/mallee-metal-checkin mode 0100755
CMDS
debugfs -w -f "$tmp/debugfs.cmds" "$rootfs" >/dev/null 2>"$tmp/debugfs.err" || die "debugfs: $(cat "$tmp/debugfs.err")"
debugfs -R "cat /usr/sbin/mallee-metal-checkin" "$rootfs" 2>/dev/null | grep -q mallee-metal/checkin-url \
    || die "debugfs did not write the check-in script"
dd if="$rootfs" of="$raw" bs=512 seek="$start" conv=notrunc status=none
sha256sum "$raw" | cut -d' ' -f1 > "$tmp/installed.sha256"

# ------------------------------------------------------------ test installer
# Its base system: the MBR boot code and the boot partition of the guest's
# HVM disk, and installed.raw's root file system (which checks in).
istage="$tmp/istage"
mkdir -p "$istage"
(cd "$istage" && gzip -dc "$guest/initrd.img" | "$bb" cpio -i -d -m 2>/dev/null)
install -m 0644 "$here/installer/inittab" "$istage/etc/inittab"
install -m 0755 "$here/installer/mallee-install" "$istage/usr/sbin/mallee-install"
echo mallee-install > "$istage/etc/hostname"
bpart=""
for i in 0 1 2 3; do
    type="$(od -An -tx1 -j $((446 + 16 * i + 4)) -N1 "$raw" | tr -d ' ')"
    if [[ "$type" == 06 ]]; then bpart="$i"; break; fi
done
[[ -n "$bpart" ]] || die "no FAT boot partition in $guest/hvm.qcow2"
bstart="$(le32 "$raw" $((446 + 16 * bpart + 8)))"
bcount="$(le32 "$raw" $((446 + 16 * bpart + 12)))"
[[ "$bstart" == 2048 ]] || die "the boot partition starts at sector $bstart, the installer writes it at 2048"
pl="$istage/usr/share/mallee-install"
mkdir -p "$pl"
dd if="$raw" of="$pl/mbr.bin" bs=440 count=1 status=none
dd if="$raw" bs=512 skip="$bstart" count="$bcount" status=none | gzip -6n > "$pl/boot.fat.gz"
gzip -6n < "$rootfs" > "$pl/root.ext4.gz"
printf 'boot_sectors=%s\nroot_bytes=%s\n' "$bcount" "$(stat -c %s "$rootfs")" > "$pl/sizes"
(cd "$istage" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -1n > "$tmp/installer-initrd.img"
rm -rf "$istage"
cp "$guest/vmlinuz" "$tmp/installer-vmlinuz"
cp "$here/installer/answer.tmpl" "$tmp/answer.tmpl"
rm -f "$rootfs"

for f in "${outputs[@]}"; do mv -f "$tmp/$f" "$out/$f"; done
rm -rf "$tmp"
echo "$stamp" > "$work/stamp"
say "built in $out: $(cd "$out" && ls -s --block-size=K "${outputs[@]}" | tr '\n' ' ')"
