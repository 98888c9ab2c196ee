#!/usr/bin/env bash
# Describe calls at scale: DescribeInstances (all, one VPC's, one subnet's
# running ones, one tag's, a first page),
# DescribeNetworkInterfaces and DescribeSecurityGroups with 2,000 instances
# in 50 VPCs, in mallee (controller + one simulated node agent) and in
# moto_server, side by side in one run. bench/vpcs.py starts both, seeds
# them through boto3 and drives bench/'s ec2-load; it prints a markdown
# table and keeps the run as JSON in bench/results/.
#
#   bash bench/run-vpcs.sh          # ~5 min plus the release builds
#
# Knobs (environment): CONCURRENCY (default "1 16"), DURATION (s measured
# per run, default 10), WARMUP (s, default 2), MALLEE_BIN (a prebuilt
# release mallee; skips building it), MALLEE_VENV (a venv with boto3,
# default the repo's .venv), BASELINE_BIN (another release mallee, e.g. of
# main: it replaces moto as the peer, seeded and loaded the same way, to
# measure a change side by side), VPCS and PER_VPC (the scale, default 50
# and 40: VPCS=250 gives 10,000 instances), LOAD_BIN (a prebuilt ec2-load;
# skips building bench/).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
MOTO_VERSION="5.2.5"
log() { printf '== %s\n' "$*" >&2; }

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)')"
if [[ -n "${MALLEE_BIN:-}" ]]; then
    MALLEE="$MALLEE_BIN"; MALLEE_DESC="prebuilt $MALLEE_BIN (tree at $COMMIT)"
else
    log "building mallee (release)"
    (cd "$ROOT" && cargo build --release --quiet -p mallee)
    MALLEE="$ROOT/target/release/mallee"; MALLEE_DESC="$COMMIT release build"
fi
LOAD="${LOAD_BIN:-$BENCH/target/release/ec2-load}"
if [[ -z "${LOAD_BIN:-}" ]]; then
    log "building ec2-load (release, own workspace in bench/)"
    (cd "$BENCH" && cargo build --release --quiet --locked)
fi
MOTO_VENV="$BENCH/.venv"
if [[ -z "${BASELINE_BIN:-}" ]] && ! "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    log "installing moto[server]==$MOTO_VERSION into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
VENV="${MALLEE_VENV:-$ROOT/.venv}"

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
"$VENV/bin/python" "$BENCH/vpcs.py" --mallee "$MALLEE" --mallee-desc "$MALLEE_DESC" \
    --load "$LOAD" --moto-server "$MOTO_VENV/bin/moto_server" \
    --moto-version "$MOTO_VERSION" --concurrency "${CONCURRENCY:-1 16}" \
    --duration "${DURATION:-10}" --warmup "${WARMUP:-2}" \
    --vpcs "${VPCS:-50}" --per-vpc "${PER_VPC:-40}" \
    ${BASELINE_BIN:+--baseline "$BASELINE_BIN" --baseline-desc "prebuilt $BASELINE_BIN"} \
    --out "$BENCH/results/vpcs-$STAMP.json" | tee "$BENCH/results/vpcs-$STAMP.md"
log "results in bench/results/vpcs-$STAMP.{md,json}"
