#!/usr/bin/env bash
# Build mallee's test guest images from Debian packages only.
#
#   guest/build.sh OUTDIR
#
# Produces, in OUTDIR:
#   vmlinuz      Debian cloud kernel (linux-image-cloud-amd64)
#   initrd.img   busybox-static + dropbear + guest init + virtio/storage modules
#                (cpio newc, gzip)
#   root.img     64 MiB ext4 (label mallee-root), the same userland with busybox
#                init as /sbin/init: the paravirtual "kernel + ramdisk + root
#                disk" image, booted with root=/dev/vda
#   hvm.qcow2    BIOS-bootable disk: MBR + SYSLINUX on a FAT boot partition
#                (kernel, initrd) + ext4 root partition; no -kernel needed
#   cmdline      the kernel command line for the paravirtual image
#   build-info.txt  package versions and what was built
#
# Needs: apt-get (with package lists: apt-get update), dpkg-deb, mkfs.ext4
# (e2fsprogs >= 1.43, for -d), qemu-img, gzip, coreutils. Everything else
# (busybox for cpio/depmod, mtools + syslinux for the boot partition) comes
# out of downloaded .debs, extracted with dpkg-deb -x; nothing is installed on
# the host, nothing is mounted, no loop devices.
#
# Cached: downloaded .debs stay in OUTDIR/.build/debs (delete them, or set
# MALLEE_GUEST_REFRESH=1, to fetch current versions); the images are rebuilt
# only when the guest sources or the .debs changed.
set -euo pipefail

die() { printf 'guest/build.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'guest/build.sh: %s\n' "$*" >&2; }

[[ $# -eq 1 ]] || die "usage: guest/build.sh OUTDIR"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1" || die "cannot create $1"
out="$(cd "$1" && pwd)"
work="$out/.build"
debs="$work/debs"
mkdir -p "$debs"
trap 'die "step failed (line $LINENO): $BASH_COMMAND"' ERR
# One build at a time per OUTDIR (parallel test runners share it).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$work/lock"
    flock 9
fi

for t in apt-get dpkg-deb mkfs.ext4 qemu-img gzip sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install apt dpkg e2fsprogs qemu-utils gzip coreutils)"
done

# Packages. The kernel metapackage is resolved to the real image package.
# dropbear-bin is dynamically linked: its libraries come from their packages.
KERNEL_META=linux-image-cloud-amd64
PKGS=(busybox-static dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g)
TOOL_PKGS=(syslinux syslinux-common mtools)
# Modules copied into the guest (with their dependencies). ext4, ACPI,
# af_packet, the serial console and the hw_random core are built in.
MODULES=(virtio_pci virtio_blk virtio_net virtio-rng virtio_scsi virtio_console
         sd_mod ata_piix)

ROOT_MB=64
BOOT_MB=48
HVM_EXTRA_MB=0
CMDLINE="console=ttyS0 root=/dev/vda rootfstype=ext4 rw panic=-1"
HVM_CMDLINE="console=ttyS0 root=LABEL=mallee-root rootfstype=ext4 rw panic=-1"

# ------------------------------------------------------------ download
deb_of() { # deb_of PKG: path of the cached .deb for PKG ('' if none)
    local f
    for f in "$debs/$1"_*.deb; do [[ -e "$f" ]] && { echo "$f"; return; }; done
    echo ""
}
fetch() { # fetch PKG...: apt-get download what is not cached yet
    local p missing=()
    for p in "$@"; do
        if [[ "${MALLEE_GUEST_REFRESH:-0}" == 1 ]]; then rm -f "$debs/$p"_*.deb; fi
        [[ -n "$(deb_of "$p")" ]] || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    say "apt-get download ${missing[*]}"
    # apt drops privileges to _apt for downloads; it warns (harmlessly) when
    # that user cannot write here.
    (cd "$debs" && apt-get download -q "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) \
        || true
    for p in "${missing[@]}"; do
        [[ -n "$(deb_of "$p")" ]] || die "could not download $p (no network to the Debian mirror, or stale package lists: run apt-get update)"
    done
}

fetch "$KERNEL_META"
kdep="$(dpkg-deb -f "$(deb_of "$KERNEL_META")" Depends)"
KERNEL_PKG="$(printf '%s\n' "$kdep" | tr ',' '\n' | sed -n 's/^ *\(linux-image-[^ (]*\).*/\1/p' | head -1)"
[[ -n "$KERNEL_PKG" ]] || die "cannot find the kernel package in $KERNEL_META's Depends: $kdep"
fetch "$KERNEL_PKG" "${PKGS[@]}" "${TOOL_PKGS[@]}"

# ------------------------------------------------------------ up to date?
outputs=(vmlinuz initrd.img root.img hvm.qcow2 cmdline build-info.txt)
stamp="$(
    {
        cd "$here" && find build.sh init rootfs -type f -print0 | sort -z | xargs -0 sha256sum
        for p in "$KERNEL_PKG" "${PKGS[@]}" "${TOOL_PKGS[@]}"; do basename "$(deb_of "$p")"; done
        printf '%s\n' "${MODULES[@]}" "$ROOT_MB" "$BOOT_MB" "$CMDLINE" "$HVM_CMDLINE"
    } | sha256sum | cut -d' ' -f1
)"
uptodate=1
for f in "${outputs[@]}"; do [[ -s "$out/$f" ]] || uptodate=0; done
if [[ $uptodate == 1 && "$(cat "$work/stamp" 2>/dev/null || true)" == "$stamp" ]]; then
    say "up to date: $out"
    exit 0
fi
rm -f "$work/stamp"

# ------------------------------------------------------------ extract
ext="$work/pkgs"
rm -rf "$ext" "$work/tools"
mkdir -p "$ext"
for p in "$KERNEL_PKG" "${PKGS[@]}"; do
    dpkg-deb -x "$(deb_of "$p")" "$ext/$p" || die "cannot extract $(deb_of "$p")"
done
tools="$work/tools"
mkdir -p "$tools"
for p in "${TOOL_PKGS[@]}"; do
    dpkg-deb -x "$(deb_of "$p")" "$tools" || die "cannot extract $(deb_of "$p")"
done
bb="$ext/busybox-static/bin/busybox"
[[ -x "$bb" ]] || die "busybox-static has no /bin/busybox"

kdir="$ext/$KERNEL_PKG"
KVER="$(ls "$kdir/lib/modules" | head -1)"
[[ -n "$KVER" && -f "$kdir/boot/vmlinuz-$KVER" ]] || die "no kernel found in $KERNEL_PKG"
say "kernel $KVER"

# ------------------------------------------------------------ staging tree
# One userland for both the initramfs and the root disk.
stage="$work/stage"
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,var,mnt,lib/x86_64-linux-gnu,etc/dropbear}
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"
ln -s ../run "$stage/var/run"
cp -a "$here/rootfs/." "$stage/"
ln -sf ../run/resolv.conf "$stage/etc/resolv.conf"
cp "$bb" "$stage/bin/busybox"
# busybox applets as symlinks at their usual paths.
while read -r applet; do
    [[ -z "$applet" || "$applet" == busybox ]] && continue
    rel="${applet#/}"
    [[ -e "$stage/$rel" || -L "$stage/$rel" ]] && continue
    mkdir -p "$stage/$(dirname "$rel")"
    depth="$(awk -F/ '{ print NF - 1 }' <<<"$rel")"
    up=""; for ((i = 0; i < depth; i++)); do up="../$up"; done
    ln -s "${up}bin/busybox" "$stage/$rel"
done < <("$bb" --list-full)
[[ -L "$stage/sbin/init" && -L "$stage/bin/sh" ]] || die "busybox did not provide /sbin/init and /bin/sh"

# dropbear and the libraries it links to.
db="$ext/dropbear-bin"
cp "$db/usr/sbin/dropbear" "$stage/usr/sbin/"
cp "$db/usr/bin/dropbearkey" "$db/usr/bin/dbclient" "$db/usr/bin/dropbearconvert" "$stage/usr/bin/"
ln -s dbclient "$stage/usr/bin/ssh"
libs=(ld-linux-x86-64.so.2 libc.so.6 libcrypt.so.1 libtomcrypt.so.1 libtommath.so.1 libgmp.so.10 libz.so.1)
for l in "${libs[@]}"; do
    src="$(find "$ext"/{libc6,libcrypt1,libtomcrypt1,libtommath1,libgmp10,zlib1g} -path "*/x86_64-linux-gnu/$l" 2>/dev/null | head -1)"
    [[ -n "$src" ]] || die "library $l not found in the downloaded packages"
    cp -L "$src" "$stage/lib/x86_64-linux-gnu/$l"
done
mkdir -p "$stage/lib64"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$stage/lib64/ld-linux-x86-64.so.2"

# Kernel modules: the closure of MODULES over modules.dep.
kmods="$work/kmods"
rm -rf "$kmods"
mkdir -p "$kmods/lib/modules"
cp -a "$kdir/lib/modules/$KVER" "$kmods/lib/modules/"
"$bb" depmod -b "$kmods" "$KVER" || die "depmod failed on the full module tree"
dep="$kmods/lib/modules/$KVER/modules.dep"
declare -A want=()
for m in "${MODULES[@]}"; do
    alt="${m//_/-}"; alt2="${m//-/_}"
    line="$(grep -E "/(${m}|${alt}|${alt2})\.ko:" "$dep" | head -1 || true)"
    if [[ -z "$line" ]]; then say "note: module $m is not in $KVER (built in or absent), skipped"; continue; fi
    for f in ${line/:/ }; do want["$f"]=1; done
done
for f in "${!want[@]}"; do
    mkdir -p "$stage/lib/modules/$KVER/$(dirname "$f")"
    cp "$kmods/lib/modules/$KVER/$f" "$stage/lib/modules/$KVER/$f"
done
cp "$kdir/lib/modules/$KVER"/modules.{builtin,builtin.modinfo,order} "$stage/lib/modules/$KVER/" 2>/dev/null || true
"$bb" depmod -b "$stage" "$KVER" || die "depmod failed on the guest module tree"
rm -rf "$kmods"
say "modules: $(cd "$stage/lib/modules/$KVER" && find . -name '*.ko' | sed 's,.*/,,; s,\.ko$,,' | sort | tr '\n' ' ')"

cat > "$stage/etc/mallee-guest-release" <<EOF
mallee test guest
kernel $KVER ($KERNEL_PKG $(dpkg-deb -f "$(deb_of "$KERNEL_PKG")" Version))
busybox $(dpkg-deb -f "$(deb_of busybox-static)" Version)
dropbear $(dpkg-deb -f "$(deb_of dropbear-bin)" Version)
EOF

# ------------------------------------------------------------ outputs
tmp="$work/tmp"
rm -rf "$tmp"
mkdir -p "$tmp"

cp "$kdir/boot/vmlinuz-$KVER" "$tmp/vmlinuz"

# initramfs: the staging tree plus /init. busybox's cpio writes newc.
cp "$here/init" "$stage/init"
chmod 0755 "$stage/init"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -9n > "$tmp/initrd.img" \
    || die "cannot write the initramfs"
rm -f "$stage/init"

# root disk: ext4 from the staging tree, no mounts.
mkfs.ext4 -q -F -L mallee-root -E root_owner=0:0 -d "$stage" "$tmp/root.img" "${ROOT_MB}M" >/dev/null \
    || die "mkfs.ext4 -d failed (needs e2fsprogs >= 1.43)"

# HVM disk: MBR | part1 FAT16 (SYSLINUX, vmlinuz, initrd.img) | part2 ext4 root.
# Built as a raw file with mtools + the syslinux installer (both work on image
# files, no mounts), then converted to qcow2.
slx="$tools/usr/lib/syslinux"
mbr="$slx/mbr/mbr.bin"
[[ -f "$mbr" && -x "$tools/usr/bin/syslinux" && -x "$tools/usr/bin/mformat" ]] || die "syslinux/mtools not found in the extracted packages"
export PATH="$tools/usr/bin:$PATH" MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1
boot_start=2048                                   # sectors (1 MiB)
boot_sectors=$((BOOT_MB * 2048))
root_start=$((boot_start + boot_sectors))
root_sectors=$((ROOT_MB * 2048))
total_sectors=$((root_start + root_sectors + HVM_EXTRA_MB * 2048))

fat="$tmp/boot.fat"
rm -f "$fat"
truncate -s $((boot_sectors * 512)) "$fat"
# -H: hidden sectors = partition start, so the FAT boot sector finds itself.
mformat -i "$fat" -v MALLEEBOOT -H "$boot_start" -T "$boot_sectors" -h 64 -s 32 ::
cat > "$tmp/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT mallee
PROMPT 0
TIMEOUT 0
LABEL mallee
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $HVM_CMDLINE
EOF
mcopy -i "$fat" "$tmp/vmlinuz" "$tmp/initrd.img" "$tmp/syslinux.cfg" ::/
syslinux --install "$fat" || die "syslinux --install failed"

hvmraw="$tmp/hvm.raw"
rm -f "$hvmraw"
truncate -s $((total_sectors * 512)) "$hvmraw"
dd if="$mbr" of="$hvmraw" bs=440 count=1 conv=notrunc status=none
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
part() { # part BOOTFLAG TYPE START SECTORS: one MBR entry, LBA only (CHS = max)
    printf "\\x$1\\xfe\\xff\\xff\\x$2\\xfe\\xff\\xff"; le32 "$3"; le32 "$4"
}
{
    part 80 06 "$boot_start" "$boot_sectors"
    part 00 83 "$root_start" "$root_sectors"
    printf '\0%.0s' $(seq 32)
    printf '\x55\xaa'
} | dd of="$hvmraw" bs=1 seek=446 conv=notrunc status=none
dd if="$fat" of="$hvmraw" bs=1M seek=$((boot_start / 2048)) conv=notrunc,sparse status=none
dd if="$tmp/root.img" of="$hvmraw" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
qemu-img convert -q -f raw -O qcow2 "$hvmraw" "$tmp/hvm.qcow2" || die "qemu-img convert failed"
rm -f "$hvmraw" "$fat" "$tmp/syslinux.cfg"

echo "$CMDLINE" > "$tmp/cmdline"
{
    echo "mallee test guest images, built $(date -u +%Y-%m-%dT%H:%M:%SZ) by guest/build.sh"
    cat "$stage/etc/mallee-guest-release"
    echo "modules: $(cd "$stage/lib/modules/$KVER" && find . -name '*.ko' | sed 's,.*/,,; s,\.ko$,,' | sort | tr '\n' ' ')"
    echo "paravirtual cmdline: $CMDLINE"
    echo "hvm cmdline (in syslinux.cfg): $HVM_CMDLINE"
    echo "debs:"
    for p in "$KERNEL_PKG" "${PKGS[@]}" "${TOOL_PKGS[@]}"; do echo "  $(basename "$(deb_of "$p")")"; done
} > "$tmp/build-info.txt"

for f in "${outputs[@]}"; do mv -f "$tmp/$f" "$out/$f"; done
rm -rf "$tmp" "$stage" "$ext" "$tools"
echo "$stamp" > "$work/stamp"
say "built in $out: $(cd "$out" && ls -s --block-size=K "${outputs[@]}" | tr '\n' ' ')"
