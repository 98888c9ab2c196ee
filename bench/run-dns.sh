#!/usr/bin/env bash
# The VPC resolver as an instance sees it: DNS queries/s and latency
# percentiles for 1,000 instance names in one VPC, asked from a client
# namespace plugged into the VPC as an instance is (its port, the node's
# nftables rules, the VPC's dnsmasq at base + 2), against a plain dnsmasq
# serving a static hosts file of the same 1,000 names to a client over a
# bare veth pair, in interleaved rounds in one run. The VPC is built by the
# node's own code (crates/node/examples/vpc_dns_fixture.rs): 999 names are
# instances on another node, named by the overlay as a cluster's are.
#
#   sudo bash bench/run-dns.sh      # ~2 min plus the release build
#
# Two loads, both with dnsperf (Debian's package) on one thread, the 1,000
# names asked round-robin, p50/p99 from dnsperf -v's per-query latencies:
#   - throughput: as fast as it answers, up to OUTSTANDING (default 100)
#     queries in flight;
#   - latency: a steady RATE (default 2,000 q/s) both sides keep up with.
# Knobs (environment): NAMES (default 1000), ROUNDS (default 3), DURATION
# (s per run, default 5), OUTSTANDING (default 100), RATE (default 2000).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
NAMES="${NAMES:-1000}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
OUTSTANDING="${OUTSTANDING:-100}"
RATE="${RATE:-2000}"
PLAIN_SRV=mlbench-plainsrv
PLAIN_CLI=mlbench-plaincli

log() { printf '== %s\n' "$*" >&2; }
[[ $EUID -eq 0 ]] || { echo "run as root (it builds network namespaces)" >&2; exit 1; }
for tool in dnsperf dnsmasq ip nft bridge; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install dnsperf dnsmasq-base iproute2 nftables)" >&2; exit 1; }
done

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)')"
log "building the VPC fixture (release)"
(cd "$ROOT" && cargo build --release --quiet -p mallee-node --example vpc_dns_fixture)
FIXTURE="$ROOT/target/release/examples/vpc_dns_fixture"

WORK="$(mktemp -d /tmp/mallee-dns-bench.XXXXXX)"
HOLD="$WORK/hold"
mkfifo "$HOLD"
cleanup() {
    exec 9>&- 2>/dev/null || true
    [[ -n "${FIXTURE_PID:-}" ]] && wait "$FIXTURE_PID" 2>/dev/null || true
    [[ -f "$WORK/plain.pid" ]] && kill "$(cat "$WORK/plain.pid")" 2>/dev/null || true
    ip netns del "$PLAIN_SRV" 2>/dev/null || true
    ip netns del "$PLAIN_CLI" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "building a VPC with $NAMES names"
"$FIXTURE" "$NAMES" "$WORK" < "$HOLD" > "$WORK/fixture.out" 2> "$WORK/fixture.err" &
FIXTURE_PID=$!
exec 9> "$HOLD"
for _ in $(seq 100); do grep -q READY "$WORK/fixture.out" 2>/dev/null && break; sleep 0.2; done
grep -q READY "$WORK/fixture.out" || { cat "$WORK/fixture.err" >&2; exit 1; }

# The same names for the plain dnsmasq: ip-10-77-1-2.bench.internal is 10.77.1.2.
awk '{ split($1, p, "."); a = substr(p[1], 4); gsub("-", ".", a); print a, $1 }' "$WORK/names" > "$WORK/hosts"
awk '{ print $1, "A" }' "$WORK/names" > "$WORK/queries"
ip netns add "$PLAIN_SRV"
ip netns add "$PLAIN_CLI"
ip -n "$PLAIN_SRV" link set lo up
ip -n "$PLAIN_CLI" link set lo up
ip -n "$PLAIN_CLI" link add eth0 type veth peer name eth0 netns "$PLAIN_SRV"
ip -n "$PLAIN_SRV" addr add 10.88.0.2/24 dev eth0
ip -n "$PLAIN_CLI" addr add 10.88.0.4/24 dev eth0
ip -n "$PLAIN_SRV" link set eth0 up
ip -n "$PLAIN_CLI" link set eth0 up
ip netns exec "$PLAIN_SRV" dnsmasq --conf-file=/dev/null --no-resolv --no-hosts \
    --addn-hosts="$WORK/hosts" --local=/bench.internal/ --listen-address=10.88.0.2 \
    --bind-interfaces --except-interface=lo --pid-file="$WORK/plain.pid" --user=root

# Both answer every name, with its address.
probe="$(sed -n "$((NAMES / 2))p" "$WORK/names")"
want="$(awk -v n="$probe" '$2 == n { print $1 }' "$WORK/hosts")"
for target in "mlbench-client 10.77.0.2" "$PLAIN_CLI 10.88.0.2"; do
    set -- $target
    ip netns exec "$1" busybox nslookup "$probe" "$2" | grep -q "Address: *$want" \
        || { echo "$2 does not resolve $probe to $want" >&2; exit 1; }
done

# run NS SERVER DNSPERF-ARGS... -> "qps p50_ms p99_ms"
run() {
    local ns="$1" server="$2"
    shift 2
    ip netns exec "$ns" dnsperf -s "$server" -d "$WORK/queries" -l "$DURATION" -T 1 -c 1 "$@" -v \
        > "$WORK/run.out" 2>&1
    local qps lost
    qps="$(awk '/Queries per second/ { print $4 }' "$WORK/run.out")"
    lost="$(awk '/Queries lost/ { print $3 }' "$WORK/run.out")"
    [[ "$lost" == 0 ]] || { echo "$server: $lost queries lost" >&2; tail -20 "$WORK/run.out" >&2; exit 1; }
    if grep '^> ' "$WORK/run.out" | grep -vq '^> NOERROR'; then
        echo "$server: answers other than NOERROR" >&2; exit 1
    fi
    # "> NOERROR NAME A SECONDS"
    grep '^> NOERROR' "$WORK/run.out" | awk '{ print $5 * 1000 }' | sort -g > "$WORK/lat"
    local n p50 p99
    n="$(wc -l < "$WORK/lat")"
    p50="$(sed -n "$(( (n * 50 + 99) / 100 ))p" "$WORK/lat")"
    p99="$(sed -n "$(( (n * 99 + 99) / 100 ))p" "$WORK/lat")"
    echo "$qps $p50 $p99"
}

declare -A RESULTS
for round in $(seq "$ROUNDS"); do
    for load in throughput latency; do
        if [[ $load == throughput ]]; then args=(-q "$OUTSTANDING"); else args=(-q "$OUTSTANDING" -Q "$RATE"); fi
        for side in vpc plain; do
            if [[ $side == vpc ]]; then ns=mlbench-client; server=10.77.0.2; else ns=$PLAIN_CLI; server=10.88.0.2; fi
            log "round $round: $load (${args[*]}), $side"
            RESULTS["$load $side"]+="$(run "$ns" "$server" "${args[@]}")"$'\n'
        done
    done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { printf '%s' "${RESULTS[$1]}" | awk -v c="$2" 'NF { print $c }' | median; }
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$BENCH/results/dns-$STAMP.md"
{
    echo "# VPC resolver vs plain dnsmasq, $NAMES names ($STAMP, tree $COMMIT)"
    echo
    echo "dnsperf $(dnsperf -h 2>&1 | awk '/Version/ { print $2 }'), one thread, ${DURATION} s per run, median of $ROUNDS interleaved rounds; throughput: up to $OUTSTANDING queries in flight; latency: $RATE q/s; $(nproc) CPUs."
    echo
    echo "| load | VPC resolver q/s | plain q/s | ratio | VPC p50 ms | plain p50 ms | VPC p99 ms | plain p99 ms |"
    echo "|---|---|---|---|---|---|---|---|"
    for load in throughput latency; do
        vq="$(col "$load vpc" 1)"; pq="$(col "$load plain" 1)"
        printf '| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.3f | %.3f |\n' "$load" "$vq" "$pq" \
            "$(echo "$vq / $pq" | bc -l)" "$(col "$load vpc" 2)" "$(col "$load plain" 2)" \
            "$(col "$load vpc" 3)" "$(col "$load plain" 3)"
    done
} | tee "$OUT"
log "written to $OUT"
