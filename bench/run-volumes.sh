#!/usr/bin/env bash
# Block storage on one `mallee up`: guest sequential MiB/s on a volume vs
# on the root disk, CreateSnapshot time and stored size, and the time and
# disk space to create COUNT volumes from that snapshot at once
# (bench/volumes.py does the measuring and prints a markdown table).
#
#   bash bench/run-volumes.sh
#
# Knobs (environment): FILL_MIB (random MiB written to the 1 GiB volume
# before the snapshot, default 1024), IO_MIB (MiB per dd measurement,
# default 32: the test guest's root file system is 64 MiB), COUNT (default
# 20), ACCEL (auto | kvm | tcg), GUEST_IMAGES, MALLEE_BIN. No peer runs on
# this machine: the numbers stand alone.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
NAME=volumes
FILL_MIB="${FILL_MIB:-1024}"
IO_MIB="${IO_MIB:-32}"
COUNT="${COUNT:-20}"
# shellcheck source=bench/lib/up.sh
source "$BENCH/lib/up.sh"

bench_prepare
bench_start_up --node-disk-gib 1000

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/volumes-$STAMP.json"
"$VENV/bin/python" "$BENCH/volumes.py" \
    --endpoint "http://127.0.0.1:$PORT" --creds "$DATA/credentials/admin.json" \
    --images "$GUEST_IMAGES" --data-dir "$DATA" --accel "$ACCEL_MODE" --accel-reason "$ACCEL_REASON" \
    --mallee "$MALLEE_DESC" --fill-mib "$FILL_MIB" --io-mib "$IO_MIB" --count "$COUNT" --out "$OUT" >"$WORK/table.md"
PROBLEMS="$(bench_problems)"
{
    jq -r '"Block storage, \(.date); mallee \(.mallee); acceleration **\(.accel.mode)**; \(.host.cores) cores, \(.host.memory_gib) GiB, \(.host.qemu); load average before \(.load_average.before), after \(.load_average.after); \(.elapsed_s) s"' "$OUT"
    echo "server warnings/errors: ${PROBLEMS:-none}"
    echo
    cat "$WORK/table.md"
} | tee "$BENCH/results/volumes-$STAMP.md"
log "results in bench/results/volumes-$STAMP.{md,json}"
