#!/usr/bin/env bash
# SSE-S3 throughput: PUT/GET MiB/s with SSE-S3 ÷ without, side by side in
# one run against one `mallee up --no-node` (see bench/sse.py).
#
#   bash bench/run-sse.sh
#
# Knobs (environment): SIZE_MIB (default 64), COUNT (objects per case,
# default 4), ROUNDS (default 3), DATA_ROOT (where the data dir goes;
# default $TMPDIR or /tmp, i.e. the disk), MALLEE_BIN (a prebuilt release
# mallee; skips building it).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
SIZE_MIB="${SIZE_MIB:-64}"
COUNT="${COUNT:-4}"
ROUNDS="${ROUNDS:-3}"
DATA_ROOT="${DATA_ROOT:-${TMPDIR:-/tmp}}"

log() { printf '== %s\n' "$*" >&2; }

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)')"
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
VENV="${MALLEE_VENV:-$ROOT/.venv}"
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    log "installing requirements-test.txt (boto3) into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt"
fi

WORK="$(mktemp -d "$DATA_ROOT/mallee-sse-bench.XXXXXX")"
MALLEE_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$MALLEE_PID" ]]; then
        kill "$MALLEE_PID" 2>/dev/null || true
        wait "$MALLEE_PID" 2>/dev/null || true
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
log "starting mallee up --no-node on 127.0.0.1:$PORT (data dir $WORK/data)"
"$MALLEE" up --no-node --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/mallee.log" 2>&1 &
MALLEE_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/_mallee/health" 2>/dev/null && break
    kill -0 "$MALLEE_PID" 2>/dev/null || { log "mallee exited before it was ready"; exit 1; }
    sleep 0.1
done

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/sse-$STAMP.json"
"$VENV/bin/python" "$BENCH/sse.py" --endpoint "http://127.0.0.1:$PORT" \
    --creds "$WORK/data/credentials/admin.json" --size-mib "$SIZE_MIB" --count "$COUNT" \
    --rounds "$ROUNDS" --mallee "$MALLEE_DESC" --out "$OUT" | tee "$BENCH/results/sse-$STAMP.md"
log "results in bench/results/sse-$STAMP.{md,json}"
