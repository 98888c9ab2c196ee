#!/usr/bin/env bash
# Bare-metal provisioning time: run-instances → running under TCG for 1, 2
# and 3 QEMU machines provisioned in parallel, each count on a fresh
# `mallee up` (temp data dir, free port on 127.0.0.1) and a fresh lab: a
# network namespace with a provisioning bridge, empty qcow2 disks, PXE.
# No peer runs here (no Cobbler/Ironic on this machine): the numbers stand
# alone, and the 2- and 3-machine rows are compared with the 1-machine row.
# Time is dominated by QEMU under TCG (2 shared cores), not by mallee: a
# debug build is fine and is the default.
#
#   bash bench/run-metal.sh
#
# Knobs (environment): COUNTS (default "1 2 3"), TIMEOUT (s per count,
# default 1200), MALLEE_BIN (default: target/debug/mallee, built if missing).
# Needs root, qemu-system-x86_64, dnsmasq, ip, debugfs; the deploy agent and
# the installed test image are built by guest/metal/build.sh (cached).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
COUNTS="${COUNTS:-1 2 3}"
TIMEOUT="${TIMEOUT:-1200}"
if [[ -z "${MALLEE_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --quiet -p mallee)
    MALLEE_BIN="$ROOT/target/debug/mallee"
fi
export MALLEE_BIN
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/metal-$STAMP.json"
python3 "$BENCH/metal.py" --mallee "$MALLEE_BIN" --counts "$COUNTS" --timeout "$TIMEOUT" \
    --out "$OUT" | tee "$BENCH/results/metal-$STAMP.md"
echo "raw numbers: $OUT" >&2
