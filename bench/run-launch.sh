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
ACCEL="${ACCEL:-auto}"
SINGLES="${SINGLES:-10}"
BATCH="${BATCH:-20}"
BATCH_BOOT="${BATCH_BOOT:-1}"
INSTANCE_TYPE="${INSTANCE_TYPE:-t1.micro}"
NODE_CORES="${NODE_CORES:-64}"
NODE_DISK_GIB="${NODE_DISK_GIB:-200}"
BOOT_TIMEOUT="${BOOT_TIMEOUT:-600}"
GUEST_IMAGES="${GUEST_IMAGES:-$ROOT/target/guest-images}"

log() { printf '== %s\n' "$*" >&2; }

# --- build -----------------------------------------------------------------
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)')"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    COMMIT="$COMMIT+uncommitted changes"
fi
if [[ -n "${MALLEE_BIN:-}" ]]; then
    log "using prebuilt mallee $MALLEE_BIN (must be a release build)"
    MALLEE="$MALLEE_BIN"
    MALLEE_DESC="prebuilt $MALLEE_BIN (tree at $COMMIT)"
else
    log "building mallee (release)"
    (cd "$ROOT" && cargo build --release --quiet -p mallee)
    MALLEE="$ROOT/target/release/mallee"
    MALLEE_DESC="$COMMIT release build"
fi

if ! [[ -f "$GUEST_IMAGES/vmlinuz" && -f "$GUEST_IMAGES/initrd.img" && -f "$GUEST_IMAGES/root.img" ]]; then
    log "building the test guest images into $GUEST_IMAGES (guest/build.sh, a few minutes)"
    "$ROOT/guest/build.sh" "$GUEST_IMAGES"
fi

# --- boto3 in the repo's .venv (requirements-test.txt, as scripts/test) -----
VENV="${MALLEE_VENV:-$ROOT/.venv}"
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    log "installing requirements-test.txt (boto3) into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt"
fi

# --- server ------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mallee-launch-bench.XXXXXX")"
DATA="$WORK/data"
MALLEE_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$MALLEE_PID" ]]; then
        kill "$MALLEE_PID" 2>/dev/null || true
        wait "$MALLEE_PID" 2>/dev/null || true
    fi
    # VMs outlive `mallee up` by design: stop them and remove the network.
    if [[ -d "$DATA" ]]; then
        "$MALLEE" purge --data-dir "$DATA" >&2 || log "mallee purge --data-dir $DATA failed"
    fi
    if [[ "$rc" != 0 && -f "$WORK/mallee.log" ]]; then
        log "mallee log (last 40 lines):"; tail -n 40 "$WORK/mallee.log" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log "starting mallee up on 127.0.0.1:$PORT (data dir $DATA, --accel $ACCEL, --node-cores $NODE_CORES, --node-disk-gib $NODE_DISK_GIB)"
"$MALLEE" up --data-dir "$DATA" --listen "127.0.0.1:$PORT" --log-format json \
    --accel "$ACCEL" --probe-kernel "$GUEST_IMAGES/vmlinuz" --node-cores "$NODE_CORES" --node-disk-gib "$NODE_DISK_GIB" \
    >"$WORK/mallee.log" 2>&1 &
MALLEE_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/_mallee/health" 2>/dev/null && break
    kill -0 "$MALLEE_PID" 2>/dev/null || { log "mallee exited; its log:"; cat "$WORK/mallee.log" >&2; exit 1; }
    sleep 0.1
done

# The node agent logs "acceleration selected" once it has decided (an `auto`
# probe boots a guest under KVM, up to ~20 s); launches before that would
# measure the probe.
ACCEL_LINE=""
for _ in $(seq 1 1200); do
    ACCEL_LINE="$(grep -a '"acceleration selected"' "$WORK/mallee.log" | tail -n1 || true)"
    [[ -n "$ACCEL_LINE" ]] && break
    kill -0 "$MALLEE_PID" 2>/dev/null || { log "mallee exited; its log:"; cat "$WORK/mallee.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$ACCEL_LINE" ]] || { log "no 'acceleration selected' line after 120 s"; exit 1; }
ACCEL_MODE="$(jq -r .accel <<<"$ACCEL_LINE")"
ACCEL_REASON="$(jq -r '.reason | gsub("\n"; " / ")' <<<"$ACCEL_LINE")"
log "acceleration selected: $ACCEL_MODE ($ACCEL_REASON)"
for _ in $(seq 1 300); do
    grep -aq '"node registered"' "$WORK/mallee.log" && break
    sleep 0.1
done

# --- measure -------------------------------------------------------------------
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/launch-$STAMP.json"
"$VENV/bin/python" "$BENCH/launch.py" \
    --endpoint "http://127.0.0.1:$PORT" --creds "$DATA/credentials/admin.json" \
    --images "$GUEST_IMAGES" --accel "$ACCEL_MODE" --accel-reason "$ACCEL_REASON" \
    --mallee "$MALLEE_DESC" --singles "$SINGLES" --batch "$BATCH" --batch-boot "$BATCH_BOOT" \
    --instance-type "$INSTANCE_TYPE" --boot-timeout "$BOOT_TIMEOUT" --out "$OUT" >"$WORK/table.md"

PROBLEMS="$(jq -r 'select(.level == "WARN" or .level == "ERROR") | "\(.level) \(.message)"' "$WORK/mallee.log" 2>/dev/null \
    | grep -v 'acceleration selected' | sort | uniq -c | sort -rn | head -n 5 || true)"
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
