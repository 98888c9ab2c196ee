#!/usr/bin/env bash
# Block storage: a guest's I/O on a volume kept on the storage host and
# attached over NBD (plain `mallee up`) against the same on a qcow2 file on
# the node (`mallee up --local-volumes`, the baseline), both clouds up side
# by side and measured in alternating rounds; then, on the storage-host
# cloud, CreateSnapshot and COUNT volumes from that snapshot, with the
# storage host's disk growth. bench/volumes.py does the measuring and
# prints markdown tables.
#
#   bash bench/run-volumes.sh          # as root; ~3-4 min plus the release build
#
# Knobs (environment): ROUNDS (rounds per cloud, default 7), IO_MIB (MiB
# per sequential dd, default 64), RAND_WRITES (4 KiB writes per random
# case, default 300, in turns of 25), FILL_MIB (random MiB in the
# snapshotted volume, default 256), COUNT (volumes from the snapshot,
# default 20), INSTANCE_TYPE (default m1.medium), LOCAL_RANGE and
# NBD_RANGE (the two clouds' public ranges, default 198.19.250.0/28 and
# 198.19.251.0/28: out of the 198.18.x.0/24 the acceptance tests take),
# ACCEL (auto | kvm | tcg), GUEST_IMAGES, MALLEE_BIN (a prebuilt release
# mallee), MALLEE_VENV.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
NAME=volumes
ROUNDS="${ROUNDS:-7}"
IO_MIB="${IO_MIB:-64}"
RAND_WRITES="${RAND_WRITES:-300}"
FILL_MIB="${FILL_MIB:-256}"
COUNT="${COUNT:-20}"
INSTANCE_TYPE="${INSTANCE_TYPE:-m1.medium}"
LOCAL_RANGE="${LOCAL_RANGE:-198.19.250.0/28}"
NBD_RANGE="${NBD_RANGE:-198.19.251.0/28}"
# shellcheck source=bench/lib/up.sh
source "$BENCH/lib/up.sh"

bench_prepare
bench_start_up --local-volumes --node-disk-gib 1000 --public-range "$LOCAL_RANGE"
LOCAL_WORK="$WORK"; LOCAL_PORT="$PORT"
bench_start_up --node-disk-gib 1000 --public-range "$NBD_RANGE"
NBD_WORK="$WORK"; NBD_PORT="$PORT"
log "waiting for the storage host"
for _ in $(seq 1 600); do
    grep -aq '"storage host started"' "$NBD_WORK/mallee.log" && break
    sleep 0.1
done
grep -aq '"storage host started"' "$NBD_WORK/mallee.log" || { log "the storage host did not start"; exit 1; }

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/volumes-$STAMP.json"
"$VENV/bin/python" "$BENCH/volumes.py" \
    --local-endpoint "http://127.0.0.1:$LOCAL_PORT" --local-creds "$LOCAL_WORK/data/credentials/admin.json" \
    --local-data-dir "$LOCAL_WORK/data" \
    --nbd-endpoint "http://127.0.0.1:$NBD_PORT" --nbd-creds "$NBD_WORK/data/credentials/admin.json" \
    --nbd-data-dir "$NBD_WORK/data" \
    --images "$GUEST_IMAGES" --accel "$ACCEL_MODE" --accel-reason "$ACCEL_REASON" --mallee "$MALLEE_DESC" \
    --rounds "$ROUNDS" --io-mib "$IO_MIB" --rand-writes "$RAND_WRITES" --fill-mib "$FILL_MIB" \
    --count "$COUNT" --instance-type "$INSTANCE_TYPE" --out "$OUT" >"$NBD_WORK/table.md"
{
    jq -r '"Block storage, \(.date); mallee \(.mallee); acceleration **\(.accel.mode)**; \(.host.cores) cores, \(.host.memory_gib) GiB, \(.host.qemu); instance type \(.config.instance_type); load average before \(.load_average.before), after \(.load_average.after); other QEMU processes on the machine before \(.other_qemu_processes.before | length), after \(.other_qemu_processes.after | length); \(.elapsed_s) s"' "$OUT"
    for cloud in "local:$LOCAL_WORK" "storage-host:$NBD_WORK"; do
        problems="$(bench_problems "${cloud#*:}" | sed 's/^ *//' | paste -sd ';' -)"
        echo "server warnings/errors, ${cloud%%:*} cloud: ${problems:-none}"
    done
    echo
    cat "$NBD_WORK/table.md"
} | tee "$BENCH/results/volumes-$STAMP.md"
log "results in bench/results/volumes-$STAMP.{md,json}"
