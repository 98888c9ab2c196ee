#!/usr/bin/env bash
# Compute launch latency: RunInstances → QEMU process running → guest user
# space, on one `mallee up`, with the acceleration mode it selected.
#
#   bash bench/run-launch.sh
#
# Builds the release mallee and the test guest images (guest/build.sh) if
# missing, starts `mallee up` on a fresh temp data dir and a free port on
# 127.0.0.1, registers the guest (kernel, ramdisk, paravirtual machine image)
# through S3 and RegisterImage with boto3, then bench/launch.py measures one
# cold launch, SINGLES launches one at a time and one batch of BATCH
# RunInstances calls sent at once, and prints a markdown table. There is no
# peer: no other cloud runs on this machine, so the numbers stand alone.
# On exit, whatever happens: instances terminated, server stopped, `mallee
# purge` (the VMs and the node's network namespace), temp dir deleted.
#
# Knobs (environment): ACCEL (auto | kvm | tcg, default auto: the server
# boots a probe guest under KVM and falls back to TCG), SINGLES (default 10),
# BATCH (default 20; 0 skips), BATCH_BOOT (0: do not wait for the batch
# guests' user space), INSTANCE_TYPE (default t1.micro: 1 vCPU, 256 MiB),
# NODE_CORES and NODE_DISK_GIB (what the node offers, default 64 cores and
# 200 GiB so BATCH fits: t1.micro books 5 GiB of disk each, while a real
# overlay of the test guest is a few MiB; the default offer is the free
# space of the disk, shared with whatever else runs here), BOOT_TIMEOUT
# (s per launch or batch, default 600), GUEST_IMAGES (default
# target/guest-images), MALLEE_BIN (a prebuilt release mallee; skips
# building it).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
NAME=launch
SINGLES="${SINGLES:-10}"
BATCH="${BATCH:-20}"
BATCH_BOOT="${BATCH_BOOT:-1}"
INSTANCE_TYPE="${INSTANCE_TYPE:-t1.micro}"
NODE_CORES="${NODE_CORES:-64}"
NODE_DISK_GIB="${NODE_DISK_GIB:-200}"
BOOT_TIMEOUT="${BOOT_TIMEOUT:-600}"
# shellcheck source=bench/lib/up.sh
source "$BENCH/lib/up.sh"

bench_prepare
bench_start_up --node-cores "$NODE_CORES" --node-disk-gib "$NODE_DISK_GIB"

# --- measure -------------------------------------------------------------------
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/launch-$STAMP.json"
"$VENV/bin/python" "$BENCH/launch.py" \
    --endpoint "http://127.0.0.1:$PORT" --creds "$DATA/credentials/admin.json" \
    --images "$GUEST_IMAGES" --accel "$ACCEL_MODE" --accel-reason "$ACCEL_REASON" \
    --mallee "$MALLEE_DESC" --singles "$SINGLES" --batch "$BATCH" --batch-boot "$BATCH_BOOT" \
    --instance-type "$INSTANCE_TYPE" --boot-timeout "$BOOT_TIMEOUT" --out "$OUT" >"$WORK/table.md"

PROBLEMS="$(bench_problems)"
{
    jq -r '"Launch latency, \(.date); mallee \(.mallee); acceleration **\(.accel.mode)** (\(.accel.reason | gsub("\n"; " / ")))",
        "\(.host.cores) cores, \(.host.memory_gib) GiB, kernel \(.host.kernel), \(.host.qemu); instance type \(.config.instance_type); load average before \(.load_average.before), after \(.load_average.after); \(.elapsed_s) s",
        (if .cases.batch then "batch of \(.config.batch): all QEMU processes up \(.cases.batch.all_process_up_s * 100 | round / 100) s, all running \(.cases.batch.all_running_s * 100 | round / 100) s"
            + (if .cases.batch.all_user_data_s then ", all user-data ran \(.cases.batch.all_user_data_s * 10 | round / 10) s" else "" end)
            + " after the calls went out" else empty end)' "$OUT"
    echo "server warnings/errors: ${PROBLEMS:-none}"
    echo
    cat "$WORK/table.md"
} | tee "$BENCH/results/launch-$STAMP.md"
log "results in bench/results/launch-$STAMP.{md,json}"
