#!/usr/bin/env bash
# Launch burst on one node: COUNT (20) RunInstances at once, time to all
# `running`, and the lag from the node's own state change to
# DescribeInstances saying `running`; this tree's mallee and a baseline
# mallee (BASELINE_BIN, e.g. a release build of main) side by side in one
# run, one after the other on the same machine.
#
#   bash bench/run-burst.sh                          # simulated node
#   MODE=vm BASELINE_BIN=/path/to/main/mallee bash bench/run-burst.sh
#
# MODE=sim (default): per binary, `mallee controller` and one simulated
# node agent (`mallee node join --simulate`, VMs boot after BOOT_MS, 50 ms)
# on fresh temp data dirs and free loopback ports; ROUNDS (5) bursts.
# Needs no root, QEMU or network namespace.
# MODE=vm: per binary, `mallee up` (controller + real node agent, QEMU,
# TCG here) with the test guest (guest/build.sh) via bench/lib/up.sh;
# ROUNDS (1) bursts of tiny `t1.micro` guests, terminated as soon as all
# are `running` (the guests' boot is not waited for). Needs root.
#
# bench/burst.py drives each cloud (boto3) and reads the node's log for
# its `instance state` Running lines (see there for what is measured).
# Prints a markdown table; results in bench/results/burst-STAMP.{md,json}
# (git-ignored). Everything started is stopped on exit (VMs purged).
#
# Knobs (environment): MODE, COUNT, ROUNDS, BOOT_MS, BASELINE_BIN (none:
# this tree only), MALLEE_BIN (a prebuilt release mallee; skips building),
# GUEST_IMAGES (MODE=vm), ACCEL (MODE=vm, default auto).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
NAME=burst
MODE="${MODE:-sim}"
COUNT="${COUNT:-20}"
BOOT_MS="${BOOT_MS:-50}"
if [[ "$MODE" == vm ]]; then ROUNDS="${ROUNDS:-1}"; else ROUNDS="${ROUNDS:-5}"; fi
# shellcheck source=bench/lib/up.sh
source "$BENCH/lib/up.sh"

if [[ "$MODE" == vm ]]; then
    bench_prepare
else
    # No guest images needed: bench_prepare's binary and venv steps only.
    if [[ -n "${MALLEE_BIN:-}" ]]; then
        MALLEE="$MALLEE_BIN"; MALLEE_DESC="prebuilt $MALLEE_BIN"
    else
        log "building mallee (release)"
        (cd "$ROOT" && cargo build --release --quiet -p mallee)
        MALLEE="$ROOT/target/release/mallee"
        MALLEE_DESC="$(git -C "$ROOT" rev-parse --short HEAD) release build"
    fi
    VENV="${MALLEE_VENV:-$ROOT/.venv}"
    "$VENV/bin/python" -c 'import boto3' || { log "boto3 missing in $VENV (pip install -r requirements-test.txt)"; exit 1; }
fi
CANDIDATE="$MALLEE"
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/burst-$STAMP.json"
: >"$OUT"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Simulated clouds: "pid…" of their processes and work dirs, stopped on exit.
SIM_PIDS=()
SIM_WORKS=()
sim_cleanup() {
    local rc=$?
    for pid in "${SIM_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${SIM_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for work in "${SIM_WORKS[@]}"; do rm -rf "$work"; done
    exit "$rc"
}

# run_sim LABEL BINARY: controller + simulated node, then the bursts.
run_sim() {
    local label="$1" bin="$2" work port node_port token
    work="$(mktemp -d "${TMPDIR:-/tmp}/mallee-burst-bench.XXXXXX")"
    SIM_WORKS+=("$work")
    port="$(free_port)"; node_port="$(free_port)"
    log "$label: mallee controller on 127.0.0.1:$port ($bin)"
    "$bin" controller --data-dir "$work/controller" --listen "127.0.0.1:$port" \
        --node-listen "127.0.0.1:$node_port" --max-instances-per-account 1000 \
        >"$work/controller.log" 2>&1 &
    SIM_PIDS+=("$!")
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/_mallee/health" 2>/dev/null && break
        sleep 0.1
    done
    token="$("$bin" admin node token create --zone mallee-1a --data-dir "$work/controller" 2>/dev/null)"
    "$bin" node join "https://127.0.0.1:$node_port" --simulate --simulate-boot-ms "$BOOT_MS" \
        --token "$token" --data-dir "$work/node" --listen "127.0.0.1:$(free_port)" \
        --node-cores 4000 --node-memory-mib 2000000 --node-disk-gib 100000 >"$work/node.log" 2>&1 &
    SIM_PIDS+=("$!")
    for _ in $(seq 1 300); do
        grep -qs "simulated node agent running" "$work/node.log" && break
        sleep 0.1
    done
    sleep 1 # its registration reaches the controller
    "$VENV/bin/python" "$BENCH/burst.py" --endpoint "http://127.0.0.1:$port" \
        --creds "$work/controller/credentials/admin.json" --node-log "$work/node.log" \
        --count "$COUNT" --rounds "$ROUNDS" --instance-type m1.small --label "$label" >>"$OUT"
}

# run_vm LABEL BINARY RANGE: `mallee up` with the real agent, then the burst.
run_vm() {
    local label="$1" bin="$2" range="$3"
    MALLEE="$bin"
    bench_start_up --node-cores 64 --node-disk-gib 200 --public-range "$range"
    "$VENV/bin/python" "$BENCH/burst.py" --endpoint "http://127.0.0.1:$PORT" \
        --creds "$DATA/credentials/admin.json" --node-log "$WORK/mallee.log" \
        --guest-images "$GUEST_IMAGES" --count "$COUNT" --rounds "$ROUNDS" \
        --instance-type t1.micro --timeout 600 --label "$label" >>"$OUT"
    kill "$MALLEE_PID" 2>/dev/null || true
    wait "$MALLEE_PID" 2>/dev/null || true
    "$bin" purge --data-dir "$DATA" >&2 || true
    MALLEE="$CANDIDATE"
}

LABELS=("this tree:$CANDIDATE")
[[ -n "${BASELINE_BIN:-}" ]] && LABELS=("baseline:$BASELINE_BIN" "${LABELS[@]}")
case "$MODE" in
sim)
    trap sim_cleanup EXIT
    trap 'exit 130' INT TERM
    for entry in "${LABELS[@]}"; do run_sim "${entry%%:*}" "${entry#*:}"; done
    ;;
vm)
    n=0
    for entry in "${LABELS[@]}"; do
        run_vm "${entry%%:*}" "${entry#*:}" "198.19.$((240 + n)).0/24"
        n=$((n + 1))
    done
    ;;
*) log "MODE must be sim or vm"; exit 2 ;;
esac

{
    echo "Launch burst, $(date -u +'%Y-%m-%d %H:%M UTC'); MODE=$MODE, $COUNT at once x $ROUNDS round(s)$([[ $MODE == sim ]] && echo ", simulated boot $BOOT_MS ms"); this tree: $MALLEE_DESC; baseline: ${BASELINE_BIN:-none}"
    echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| mallee | all $COUNT running p50 / max ms | RunInstances → running p50 / p99 ms | node state change → DescribeInstances running p50 / p99 ms (n) |"
    echo "|---|---:|---:|---:|"
    jq -r '"| \(.label) | \(.all_running.p50_ms) / \(.all_running.max_ms) | \(.to_running.p50_ms) / \(.to_running.p99_ms) | "
        + (if .lag then "\(.lag.p50_ms) / \(.lag.p99_ms) (\(.lag.n))" else "n/a (the node does not log its state changes)" end) + " |"' "$OUT"
} | tee "$BENCH/results/burst-$STAMP.md"
log "results in bench/results/burst-$STAMP.{md,json}"
