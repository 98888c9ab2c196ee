#!/usr/bin/env bash
# S3 PUT/GET benchmark: mallee against s3s-fs, side by side in one run.
#
#   bash bench/run-s3.sh
#
# Builds release binaries, installs the peer (s3s-fs, pinned, from crates.io)
# into bench/.tools if missing, starts mallee and s3s-fs on free ports on
# 127.0.0.1 with fresh data dirs under one temp dir, then for each case runs
# the same signed load against mallee and then s3s-fs, and prints a markdown
# table with ratios. Both servers are stopped and the temp dir deleted on exit,
# whatever happens.
#
# Cases: PUT and GET of 4 KiB, 1 MiB and 64 MiB objects at 1 and 16 clients;
# then 16 clients each uploading one 256 MiB object at once, with the
# server's peak RSS during that upload (reported, not asserted).
#
# Knobs (environment): DURATION (s measured per 4 KiB / 1 MiB case, default
# 5), WARMUP (s, default 1), CLIENT_THREADS (default 1), PAYLOAD (signed |
# unsigned, default signed), DATA_ROOT (where the temp dir with both servers'
# data goes; default $TMPDIR or /tmp, i.e. the disk; /dev/shm takes the disk
# and fsync out), BIG_CASE (0 skips the 16 x 256 MiB case), MALLEE_BIN (a
# prebuilt release mallee; skips building it).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
S3S_FS_VERSION="0.14.1"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"
PAYLOAD="${PAYLOAD:-signed}"
DATA_ROOT="${DATA_ROOT:-${TMPDIR:-/tmp}}"
BIG_CASE="${BIG_CASE:-1}"
PEER="s3s-fs"

log() { printf '== %s\n' "$*" >&2; }

# --- build -----------------------------------------------------------------
if [[ -n "${MALLEE_BIN:-}" ]]; then
    log "using prebuilt mallee $MALLEE_BIN (must be a release build)"
    MALLEE="$MALLEE_BIN"
    MALLEE_DESC="prebuilt $MALLEE_BIN"
else
    log "building mallee (release)"
    (cd "$ROOT" && cargo build --release --quiet -p mallee)
    MALLEE="$ROOT/target/release/mallee"
    MALLEE_DESC="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)') release build"
fi
log "building s3-load (release, own workspace in bench/)"
(cd "$BENCH" && cargo build --release --quiet --locked --bin s3-load)
LOAD="$BENCH/target/release/s3-load"

# --- s3s-fs in bench/.tools ----------------------------------------------------
S3S_FS="$BENCH/.tools/bin/s3s-fs"
if ! "$S3S_FS" --version 2>/dev/null | grep -qF "$S3S_FS_VERSION"; then
    log "installing s3s-fs $S3S_FS_VERSION into bench/.tools (cargo install, a few minutes)"
    cargo install --quiet --locked s3s-fs --version "$S3S_FS_VERSION" --features binary --root "$BENCH/.tools"
fi

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
STARTED="$(date +%s)"

# --- servers -----------------------------------------------------------------
WORK="$(mktemp -d "$DATA_ROOT/mallee-s3-bench.XXXXXX")"
MALLEE_PID=""
PEER_PID=""
cleanup() {
    local rc=$?
    for pid in $MALLEE_PID $PEER_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $MALLEE_PID $PEER_PID; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # url pid name  (any HTTP answer means ready)
    for _ in $(seq 1 300); do
        if curl -sS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then
            log "$3 exited before it was ready; its log:"; cat "$WORK/$3.log" >&2; return 1
        fi
        sleep 0.1
    done
    log "$3 not ready after 30 s; its log:"; cat "$WORK/$3.log" >&2; return 1
}

MALLEE_PORT="$(free_port)"
log "starting mallee on 127.0.0.1:$MALLEE_PORT (data dir $WORK/mallee-data)"
"$MALLEE" up --no-node --data-dir "$WORK/mallee-data" --listen "127.0.0.1:$MALLEE_PORT" >"$WORK/mallee.log" 2>&1 &
MALLEE_PID=$!
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$MALLEE_PORT/_mallee/health" 2>/dev/null && break
    kill -0 "$MALLEE_PID" 2>/dev/null || { log "mallee exited; its log:"; cat "$WORK/mallee.log" >&2; exit 1; }
    sleep 0.1
done
CREDS="$WORK/mallee-data/credentials/admin.json"
MALLEE_AK="$(jq -r .access_key_id "$CREDS")"
MALLEE_SK="$(jq -r .secret_access_key "$CREDS")"
MALLEE_REGION="$(jq -r '.region // "mallee-1"' "$CREDS")"

PEER_PORT="$(free_port)"
PEER_AK="BENCHACCESSKEY000001"
PEER_SK="bench-secret-key-for-s3s-fs-only"
mkdir -p "$WORK/s3s-fs-data"
log "starting s3s-fs $S3S_FS_VERSION on 127.0.0.1:$PEER_PORT (root $WORK/s3s-fs-data)"
"$S3S_FS" --host 127.0.0.1 --port "$PEER_PORT" --access-key "$PEER_AK" --secret-key "$PEER_SK" \
    "$WORK/s3s-fs-data" >"$WORK/s3s-fs.log" 2>&1 &
PEER_PID=$!
wait_http "http://127.0.0.1:$PEER_PORT/" "$PEER_PID" s3s-fs

# Per server: endpoint, credentials, region. Both verify SigV4 signatures;
# s3s-fs accepts any region in the scope, mallee is signed for its own.
target() { # name -> s3-load target args
    case "$1" in
    mallee) echo "--endpoint http://127.0.0.1:$MALLEE_PORT --access-key $MALLEE_AK --secret-key $MALLEE_SK --region $MALLEE_REGION --payload $PAYLOAD" ;;
    s3s-fs) echo "--endpoint http://127.0.0.1:$PEER_PORT --access-key $PEER_AK --secret-key $PEER_SK --region us-east-1 --payload $PAYLOAD" ;;
    esac
}
pid_of() { case "$1" in mallee) echo "$MALLEE_PID" ;; s3s-fs) echo "$PEER_PID" ;; esac; }

# --- cases -------------------------------------------------------------------
# size | objects read by GET | per-concurrency run mode ("d" = $DURATION s
# after warm-up; a number = exactly that many requests, no warm-up)
SIZES=(
    "4KiB|16|d d"
    "1MiB|16|d d"
    "64MiB|4|6 16"
)
CONCURRENCY=(1 16)

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
run_case() { # server idx case-name run-args...
    local server="$1" idx="$2" name="$3"
    shift 3
    local out
    # shellcheck disable=SC2046
    out="$("$LOAD" run $(target "$server") "$@" --client-threads "$CLIENT_THREADS" \
        --server-pid "$(pid_of "$server")" --label "$server" --json)" || {
        log "run failed: $server, $name"; printf '%s\n' "$out" >&2; exit 1
    }
    head -n1 <<<"$out" >&2
    tail -n1 <<<"$out" | jq -c --arg case "$name" --arg server "$server" --argjson idx "$idx" \
        '. + {case: $case, server: $server, idx: $idx}' >>"$RESULTS"
}

idx=0
for spec in "${SIZES[@]}"; do
    IFS='|' read -r size objects modes <<<"$spec"
    read -r -a mode <<<"$modes"
    for server in mallee "$PEER"; do
        log "preparing $server: $objects objects of $size"
        # shellcheck disable=SC2046
        "$LOAD" prepare $(target "$server") --size "$size" --objects "$objects" >&2
    done
    for op in put get; do
        for ci in "${!CONCURRENCY[@]}"; do
            c="${CONCURRENCY[$ci]}"
            m="${mode[$ci]}"
            if [[ "$m" == d ]]; then
                how=(--duration "$DURATION" --warmup "$WARMUP")
            else
                how=(--requests "$m")
            fi
            for server in mallee "$PEER"; do
                run_case "$server" "$idx" "${op^^} $size" --op "$op" --size "$size" \
                    --objects "$objects" --concurrency "$c" "${how[@]}"
            done
        done
        idx=$((idx + 1))
    done
done

if [[ "$BIG_CASE" != 0 ]]; then
    # 16 clients each upload one 256 MiB object at once (after one unmeasured
    # 256 MiB PUT that checks the request shape); peak RSS of the server over
    # the upload is in the table's RSS columns.
    for server in mallee "$PEER"; do
        run_case "$server" "$idx" "PUT 256MiB, 16 uploads at once" --op put --size 256MiB \
            --concurrency 16 --requests 16
    done
fi

# --- table -------------------------------------------------------------------
# s3-load resets VmHWM before each case, so the largest per-case peak is the
# peak over all measured load.
max_rss() { jq -rs --arg s "$1" 'map(select(.server == $s) | .server_peak_rss_mib) | max | round | "\(.) MiB"' "$RESULTS"; }
MALLEE_RSS="$(max_rss mallee)"
PEER_RSS="$(max_rss "$PEER")"

TABLE="$(jq -rs --arg peer "$PEER" '
  def r0: round;
  def r1: (. * 10 | round) / 10;
  def r2: (. * 100 | round) / 100;
  def ms: if . >= 100 then r0 elif . >= 10 then r1 else r2 end;
  # 4 KiB objects are reported in ops/s, larger ones in MiB/s.
  def rate: if .size < 1048576 then .ops_per_s else .mib_per_s end;
  def fmt: if . >= 100 then r0 else r1 end;
  def lat: "\(.p50_ms | ms) / \(.p99_ms | ms)";
  def rss: if .server_peak_rss_mib then "\(.server_peak_rss_mib | r0)" else "?" end;
  (group_by([.idx, .concurrency])) as $groups
  | "| case | c | unit | mallee (n) | \($peer) (n) | mallee/\($peer) | mallee p50 / p99 ms | \($peer) p50 / p99 ms | peak RSS MiB mallee / \($peer) | errors |",
    "|---|---:|---|---:|---:|---:|---|---|---|---:|",
    ($groups[] |
      (map(select(.server == "mallee")) | .[0]) as $m |
      (map(select(.server != "mallee")) | .[0]) as $o |
      "| \($m.case) | \($m.concurrency) | \(if $m.size < 1048576 then "ops/s" else "MiB/s" end) | " +
      "\($m | rate | fmt) (\($m.ok)) | " +
      (if $o then "\($o | rate | fmt) (\($o.ok)) | \((($m | rate) / ($o | rate)) | r2)x | \($m | lat) | \($o | lat) | \($m | rss) / \($o | rss)"
       else "n/a | n/a | \($m | lat) | n/a | \($m | rss) / n/a" end) +
      " | \(($m.errors) + (if $o then $o.errors else 0 end)) |")
' "$RESULTS")"

# Warnings and errors the servers logged (their logs go with the temp dir),
# except s3s-fs's two AccessDenied lines for the unsigned readiness probe.
log_problems() { # name
    local lines
    lines="$(grep -E 'WARN|ERROR' "$WORK/$1.log" | grep -v 'Signature is required' || true)"
    echo "$1 logged $(grep -c . <<<"$lines" || true) warning/error line(s)"
    head -n 5 <<<"$lines" >&2
}
SERVER_LOGS="$(log_problems mallee); $(log_problems s3s-fs)"

ELAPSED=$(( $(date +%s) - STARTED ))
mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
cp "$RESULTS" "$BENCH/results/s3-$STAMP.jsonl"
{
    echo "S3 PUT/GET, SigV4 (payload: $PAYLOAD), ${DURATION} s per 4 KiB / 1 MiB case after ${WARMUP} s warm-up, 64 MiB and 256 MiB by request count; $(nproc) cores, client threads $CLIENT_THREADS"
    echo "data on $(df -P "$WORK" | awk 'NR == 2 {print $1 " (" $6 ")"}'); mallee $MALLEE_DESC; s3s-fs $S3S_FS_VERSION"
    echo "largest peak RSS of any case: mallee $MALLEE_RSS, s3s-fs $PEER_RSS; load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg); cases took ${ELAPSED} s"
    echo "$SERVER_LOGS"
    echo
    echo "$TABLE"
} | tee "$BENCH/results/s3-$STAMP.md"
log "results in bench/results/s3-$STAMP.{md,jsonl}"
