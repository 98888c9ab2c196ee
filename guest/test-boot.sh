#!/usr/bin/env bash
# Boot each test guest variant built by guest/build.sh under QEMU (TCG) and
# check that it gets an address by DHCP, reads its instance id and user-data
# from 169.254.169.254 (IMDSv2), runs the user-data and powers itself off.
#
#   guest/test-boot.sh OUTDIR [VARIANT...]      variants: pv initramfs hvm (default: all)
#
# Networking is QEMU user mode with restrict=on (nothing leaves the VM but the
# metadata connection): its DHCP server hands out the address, and
# 169.254.169.254:80 is forwarded to guest/imds-stub.py, run once per
# connection. (libslirp only forwards addresses inside its own network, so the
# guest network here is 169.254.169.0/24.)
#
# Environment: MALLEE_GUEST_TIMEOUT (seconds per variant, default 120),
# MALLEE_GUEST_ACCEL (default tcg), MALLEE_GUEST_KEEP=1 keeps the work dir.
# Prints PASS/FAIL per variant; exits 1 if any failed. Serial logs stay in
# OUTDIR/test-boot/<variant>.log.
set -uo pipefail

die() { printf 'guest/test-boot.sh: error: %s\n' "$*" >&2; exit 2; }
[[ $# -ge 1 ]] || die "usage: guest/test-boot.sh OUTDIR [pv|initramfs|hvm]..."
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(cd "$1" 2>/dev/null && pwd)" || die "no such directory: $1 (run guest/build.sh $1 first)"
shift
variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(pv initramfs hvm)
timeout_s="${MALLEE_GUEST_TIMEOUT:-120}"
accel="${MALLEE_GUEST_ACCEL:-tcg}"

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v python3 >/dev/null || die "python3 not found"
for f in vmlinuz initrd.img root.img hvm.qcow2 cmdline; do
    [[ -s "$out/$f" ]] || die "$out/$f missing (run guest/build.sh $out first)"
done

logdir="$out/test-boot"
rm -rf "$logdir"
mkdir -p "$logdir"

failed=0
for v in "${variants[@]}"; do
    iid="i-0$(printf '%s' "$v" | sha256sum | cut -c1-16)"
    d="$logdir/$v.imds"
    mkdir -p "$d/meta-data/public-keys/0" "$d/meta-data/placement"
    echo "$iid" > "$d/meta-data/instance-id"
    echo "ip-169-254-169-15.test.internal" > "$d/meta-data/local-hostname"
    echo "mallee-test-1a" > "$d/meta-data/placement/availability-zone"
    echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMalleeTestKeyNotARealKeyAtAll0000000000 test@mallee" \
        > "$d/meta-data/public-keys/0/openssh-key"
    cat > "$d/user-data" <<'EOF'
#!/bin/sh
echo "USERDATA-MARKER hello from user-data"
echo "USERDATA-IID $(imds -2 meta-data/instance-id)"
poweroff
EOF
    log="$logdir/$v.log"
    cmdline="$(cat "$out/cmdline")"
    net=(-netdev "user,id=n0,restrict=on,net=169.254.169.0/24,host=169.254.169.2,dns=169.254.169.3,dhcpstart=169.254.169.15,guestfwd=tcp:169.254.169.254:80-cmd:python3 $here/imds-stub.py $d"
         -device virtio-net-pci,netdev=n0)
    case "$v" in
        pv) boot=(-kernel "$out/vmlinuz" -initrd "$out/initrd.img" -append "$cmdline"
                  -drive "file=$out/root.img,if=virtio,format=raw,snapshot=on") ;;
        initramfs) boot=(-kernel "$out/vmlinuz" -initrd "$out/initrd.img"
                         -append "console=ttyS0 root=initramfs panic=-1") ;;
        hvm) boot=(-drive "file=$out/hvm.qcow2,if=virtio,format=qcow2,snapshot=on") ;;
        *) echo "FAIL $v: unknown variant"; failed=1; continue ;;
    esac
    start=$(date +%s.%N)
    timeout --kill-after=5 "$timeout_s" qemu-system-x86_64 -accel "$accel" -nodefaults -nographic \
        -m 256 -smp 1 -no-reboot -monitor none -serial "file:$log" \
        -device virtio-rng-pci "${net[@]}" "${boot[@]}" > "$logdir/$v.qemu.out" 2>&1
    rc=$?
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    problems=()
    [[ $rc -eq 0 ]] || problems+=("qemu exit $rc$([[ $rc -eq 124 ]] && echo ' (timeout: no poweroff)')")
    for want in "MALLEE-GUEST: booted" "MALLEE-GUEST: network up" "MALLEE-GUEST: metadata v2" \
                "MALLEE-GUEST: instance-id $iid" "MALLEE-GUEST: ssh-key installed" "MALLEE-GUEST: sshd started" \
                "MALLEE-GUEST: user-data start" "USERDATA-MARKER hello from user-data" "USERDATA-IID $iid" \
                "MALLEE-GUEST: shutting down" "reboot: Power down"; do
        grep -aqF "$want" "$log" 2>/dev/null || problems+=("missing '$want'")
    done
    case "$v" in
        pv) grep -aqF "MALLEE-GUEST: root /dev/vda" "$log" || problems+=("did not switch to /dev/vda") ;;
        hvm) grep -aqF "MALLEE-GUEST: root /dev/vda2" "$log" || problems+=("did not switch to /dev/vda2") ;;
        initramfs) grep -aqF "MALLEE-GUEST: root initramfs" "$log" || problems+=("did not stay in the initramfs") ;;
    esac
    grep -q "GET /latest/meta-data/instance-id token=yes" "$d/requests.log" 2>/dev/null \
        || problems+=("no IMDSv2 GET of instance-id")
    if [[ ${#problems[@]} -eq 0 ]]; then
        echo "PASS $v (${secs}s to poweroff)"
    else
        failed=1
        echo "FAIL $v (${secs}s): ${problems[*]}"
        echo "---- last lines of $log:"
        tail -n 25 "$log" 2>/dev/null | sed 's/^/    /'
        [[ -s "$logdir/$v.qemu.out" ]] && { echo "---- qemu:"; sed 's/^/    /' "$logdir/$v.qemu.out"; }
    fi
done
exit $failed
