#!/usr/bin/env bash
# Cluster benchmarks: 30 launches to `running` on three nodes vs one, and
# TCP between two instances on different nodes vs on the same node (the
# cost of VXLAN). A `mallee controller` and three `mallee node join` hosts
# in network namespaces (the acceptance tests' lab, tests/acceptance/
# labutil.py), real QEMU guests; driven by bench/cluster.py.
#
#   bash bench/run-cluster.sh          # as root
#
# Builds the release mallee and the test guest images if missing. Knobs
# (environment): LAUNCHES (default 30), ROUNDS (default 2: each case runs
# ROUNDS times, alternated), SIZE_MIB (default 64 per transfer), REPEATS
# (default 3 transfers per sender), GUEST_IMAGES, MALLEE_BIN (a prebuilt
# release mallee), MALLEE_VENV. Everything the lab made is removed on exit.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
NAME=cluster
# shellcheck source=bench/lib/up.sh
source "$BENCH/lib/up.sh"
[[ "$(id -u)" == 0 ]] || { log "run as root: the lab makes network namespaces"; exit 1; }

bench_prepare
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/cluster-$STAMP"
MALLEE_BIN="$MALLEE" MALLEE_GUEST_IMAGES="$GUEST_IMAGES" "$VENV/bin/python" "$BENCH/cluster.py" \
    --launches "${LAUNCHES:-30}" --rounds "${ROUNDS:-2}" --size-mib "${SIZE_MIB:-64}" \
    --repeats "${REPEATS:-3}" --mallee "$MALLEE_DESC" --out "$OUT.json" | tee "$OUT.md"
log "results in $OUT.{md,json}"
