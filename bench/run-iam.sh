#!/usr/bin/env bash
# IAM authorisation cost: signed DescribeInstances req/s of an IAM user whose
# inline policy has 20 statements, divided by the account admin's req/s (the
# admin is always allowed and reads no policy), both against one
# `mallee up --no-node` in one run, in interleaved rounds at several
# concurrency levels. The goal is a ratio of at least 0.9. bench/iam.py
# creates the user and drives bench/'s ec2-load; it prints a markdown table.
#
#   bash bench/run-iam.sh          # ~1-2 min plus the release builds
#
# Knobs (environment): CONCURRENCY (default "1 4 16"), ROUNDS (rounds per
# level, each caller once per round, default 3), DURATION (s measured per
# run, default 5), WARMUP (s, default 1), CLIENT_THREADS (default 1),
# MALLEE_BIN (a prebuilt release mallee; skips building it), MALLEE_VENV
# (a venv with boto3, default the repo's .venv).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
CONCURRENCY="${CONCURRENCY:-1 4 16}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"

log() { printf '== %s\n' "$*" >&2; }

# --- build -----------------------------------------------------------------
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
log "building ec2-load (release, own workspace in bench/)"
(cd "$BENCH" && cargo build --release --quiet --locked)
LOAD="$BENCH/target/release/ec2-load"

VENV="${MALLEE_VENV:-$ROOT/.venv}"
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    log "installing requirements-test.txt (boto3) into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt"
fi

# --- server ------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mallee-iam-bench.XXXXXX")"
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

# --- run ---------------------------------------------------------------------
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/iam-$STAMP.json"
"$VENV/bin/python" "$BENCH/iam.py" \
    --endpoint "http://127.0.0.1:$PORT" --creds "$WORK/data/credentials/admin.json" \
    --load "$LOAD" --pid "$MALLEE_PID" --mallee "$MALLEE_DESC" \
    --concurrency "$CONCURRENCY" --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" \
    --client-threads "$CLIENT_THREADS" --out "$OUT" >"$WORK/table.md"
{
    jq -r '"IAM authorisation, \(.date); mallee \(.mallee); \(.cores) cores; signed DescribeInstances (no instances), \(.config.rounds) interleaved rounds of \(.config.duration_s) s after \(.config.warmup_s) s warm-up per caller and level, client threads \(.config.client_threads); the user has one inline policy of \(.config.statements) statements (\(.config.policy_size) characters); load average before \(.load_average.before), after \(.load_average.after); \(.elapsed_s) s"' "$OUT"
    echo
    cat "$WORK/table.md"
} | tee "$BENCH/results/iam-$STAMP.md"
log "results in bench/results/iam-$STAMP.{md,json}"
