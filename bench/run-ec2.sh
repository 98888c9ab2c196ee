#!/usr/bin/env bash
# EC2 Query API benchmark: mallee against moto_server, side by side in one run.
#
#   bash bench/run-ec2.sh
#
# Builds release binaries, starts mallee (fresh temp data dir, free port) and
# moto_server (pinned, in bench/.venv), seeds both with 200 key pairs × 50 tags
# = 10,000 tags, then for each case and concurrency runs the same signed load
# against mallee and then moto, and prints a markdown table. Traffic goes to
# 127.0.0.1 only. Both servers are stopped on exit, whatever happens.
#
# Knobs (environment): DURATION (s measured per case, default 10), WARMUP (s,
# default 2), CONCURRENCY (default "1 16"), CLIENT_THREADS (default 1),
# MALLEE_BIN (a prebuilt release mallee; skips building it), BASELINE_BIN
# (another release mallee, e.g. of an earlier commit: it replaces moto as the
# peer, seeded and loaded the same way, to measure a change side by side),
# LOAD_BIN (a prebuilt ec2-load; skips building bench/).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
MOTO_VERSION="5.2.5"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONCURRENCY="${CONCURRENCY:-1 16}"
CLIENT_THREADS="${CLIENT_THREADS:-1}"

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
if [[ -n "${LOAD_BIN:-}" ]]; then
    LOAD="$LOAD_BIN"
else
    log "building ec2-load (release, own workspace in bench/)"
    (cd "$BENCH" && cargo build --release --quiet --locked)
    LOAD="$BENCH/target/release/ec2-load"
fi

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- moto in bench/.venv -----------------------------------------------------
VENV="$BENCH/.venv"
PEER_LABEL="moto"
if [[ -n "${BASELINE_BIN:-}" ]]; then
    PEER_LABEL="baseline"
elif ! "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    log "installing moto[server]==$MOTO_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# --- servers -----------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mallee-bench.XXXXXX")"
MALLEE_PID=""
MOTO_PID=""
cleanup() {
    local rc=$?
    for pid in $MALLEE_PID $MOTO_PID; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $MALLEE_PID $MOTO_PID; do
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

wait_http() { # url pid name
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
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
wait_http "http://127.0.0.1:$MALLEE_PORT/_mallee/health" "$MALLEE_PID" mallee
CREDS="$WORK/mallee-data/credentials/admin.json"
MALLEE_AK="$(jq -r .access_key_id "$CREDS")"
MALLEE_SK="$(jq -r .secret_access_key "$CREDS")"
MALLEE_REGION="$(jq -r '.region // "mallee-1"' "$CREDS")"

MOTO_PORT="$(free_port)"
if [[ -n "${BASELINE_BIN:-}" ]]; then
    log "starting the baseline mallee $BASELINE_BIN on 127.0.0.1:$MOTO_PORT"
    "$BASELINE_BIN" up --no-node --data-dir "$WORK/baseline-data" --listen "127.0.0.1:$MOTO_PORT" \
        --public-range 198.19.254.0/24 >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    wait_http "http://127.0.0.1:$MOTO_PORT/_mallee/health" "$MOTO_PID" moto
    BASE_CREDS="$WORK/baseline-data/credentials/admin.json"
    PEER_TARGET="--endpoint http://127.0.0.1:$MOTO_PORT/ --access-key $(jq -r .access_key_id "$BASE_CREDS") --secret-key $(jq -r .secret_access_key "$BASE_CREDS") --region $(jq -r '.region // "mallee-1"' "$BASE_CREDS")"
else
log "starting moto_server $MOTO_VERSION on 127.0.0.1:$MOTO_PORT"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
wait_http "http://127.0.0.1:$MOTO_PORT/moto-api/" "$MOTO_PID" moto
PEER_TARGET="--endpoint http://127.0.0.1:$MOTO_PORT/ --access-key bench --secret-key bench --region us-east-1"
fi

# Per server: endpoint, credentials, region. moto accepts any credentials and
# only regions it knows, so it is signed for us-east-1; the request shapes are
# otherwise identical. With BASELINE_BIN, "moto" is the baseline mallee.
target() { # name -> ec2-load target args
    case "$1" in
    mallee) echo "--endpoint http://127.0.0.1:$MALLEE_PORT/ --access-key $MALLEE_AK --secret-key $MALLEE_SK --region $MALLEE_REGION" ;;
    moto) echo "$PEER_TARGET" ;;
    esac
}

for server in mallee moto; do
    log "seeding $server: 200 key pairs (ImportKeyPair, ed25519) x 50 tags (CreateTags)"
    # shellcheck disable=SC2046
    "$LOAD" seed $(target "$server") --key-pairs 200 --tags-per-key-pair 50 >&2
done

# --- cases -------------------------------------------------------------------
# name | action | params (space separated) | expected count in a response | servers
CASES=(
    "DescribeKeyPairs (200)|DescribeKeyPairs||<keyName>=200|mallee moto"
    "DescribeTags, all 10,000|DescribeTags||<resourceId>=10000|mallee moto"
    "DescribeTags key=k7* (1,111)|DescribeTags|Filter.1.Name=key Filter.1.Value.1=k7*|<resourceId>=1111|mallee moto"
    "DescribeTags MaxResults=1000 (first page)|DescribeTags|MaxResults=1000|<resourceId>=1000|mallee"
    "DescribeTags key=k1234 (1)|DescribeTags|Filter.1.Name=key Filter.1.Value.1=k1234|<resourceId>=1|mallee moto"
    "DescribeKeyPairs key-name=bench-key-001* (10)|DescribeKeyPairs|Filter.1.Name=key-name Filter.1.Value.1=bench-key-001*|<keyName>=10|mallee moto"
)

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
for idx in "${!CASES[@]}"; do
    spec="${CASES[$idx]}"
    IFS='|' read -r name action params expect servers <<<"$spec"
    # A baseline mallee answers every case mallee does.
    [[ -n "${BASELINE_BIN:-}" ]] && servers="mallee moto"
    read -r -a plist <<<"$params"
    param_args=()
    for p in "${plist[@]}"; do param_args+=(--param "$p"); done
    for c in $CONCURRENCY; do
        for server in $servers; do
            # shellcheck disable=SC2046
            out="$("$LOAD" run $(target "$server") --action "$action" "${param_args[@]}" \
                --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
                --client-threads "$CLIENT_THREADS" --expect-count "$expect" \
                --label "$server" --json)" || {
                log "run failed: $server, $name, c=$c"; printf '%s\n' "$out" >&2; exit 1
            }
            head -n1 <<<"$out" >&2
            tail -n1 <<<"$out" | jq -c --arg case "$name" --arg server "$server" --argjson idx "$idx" \
                '. + {case: $case, server: $server, idx: $idx}' >>"$RESULTS"
        done
    done
done

# --- table -------------------------------------------------------------------
peak_rss() { awk '/VmHWM/ {printf "%d MiB", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
MALLEE_RSS="$(peak_rss "$MALLEE_PID")"
MOTO_RSS="$(peak_rss "$MOTO_PID")"

TABLE="$(jq -rs --arg dur "$DURATION" --arg peer "$PEER_LABEL" '
  def r1: (. * 10 | round) / 10;
  def r2: (. * 100 | round) / 100;
  def lat: "\(.p50_ms | r2) / \(.p90_ms | r2) / \(.p99_ms | r2)";
  (group_by([.idx, .concurrency])) as $groups
  | "| case | c | mallee req/s (n) | \($peer) req/s (n) | mallee/\($peer) | mallee p50/p90/p99 ms | \($peer) p50/p90/p99 ms | errors |",
    "|---|---:|---:|---:|---:|---|---|---:|",
    ($groups[] |
      (map(select(.server == "mallee")) | .[0]) as $m |
      (map(select(.server == "moto")) | .[0]) as $o |
      "| \($m.case) | \($m.concurrency) | \($m.rps | r1) (\($m.ok)) | " +
      (if $o then "\($o.rps | r1) (\($o.ok)) | \(($m.rps / $o.rps) | r1)x | \($m | lat) | \($o | lat)"
       else "n/a | n/a | \($m | lat) | n/a" end) +
      " | \(($m.errors) + (if $o then $o.errors else 0 end)) |")
' "$RESULTS")"

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
cp "$RESULTS" "$BENCH/results/ec2-$STAMP.jsonl"
{
    echo "EC2 Query API, signed SigV4, ${DURATION} s per case after ${WARMUP} s warm-up, $(nproc) cores, client threads $CLIENT_THREADS"
    if [[ -n "${BASELINE_BIN:-}" ]]; then
        echo "mallee $MALLEE_DESC; baseline: $BASELINE_BIN"
    else
        echo "mallee $MALLEE_DESC; moto_server $MOTO_VERSION"
    fi
    echo "peak RSS: mallee $MALLEE_RSS, $PEER_LABEL $MOTO_RSS; load average before the run $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "$TABLE"
} | tee "$BENCH/results/ec2-$STAMP.md"
log "results in bench/results/ec2-$STAMP.{md,jsonl}"
