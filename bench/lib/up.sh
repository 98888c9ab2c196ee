# Shared by the bench/run-*.sh scripts that measure a `mallee up` with the
# test guest: build (or take) a release mallee, the guest images and the
# boto3 venv, start `mallee up` on a fresh temp data dir and a free port,
# wait until its node agent has chosen an acceleration and registered, and
# clean everything up on exit (server stopped, `mallee purge`, temp dir
# removed). Source it after setting BENCH, ROOT and NAME; then call
# bench_prepare and bench_start_up [extra `mallee up` arguments…].
# bench_start_up may be called again for a second cloud beside the first
# (give each its own --public-range): WORK, DATA, PORT and MALLEE_PID then
# name the latest, and the exit cleans up every one.
#
# Sets: MALLEE, MALLEE_DESC, VENV, WORK, DATA, PORT, MALLEE_PID,
# ACCEL_MODE, ACCEL_REASON. Reads ACCEL (default auto), GUEST_IMAGES,
# MALLEE_BIN, MALLEE_VENV.

ACCEL="${ACCEL:-auto}"
GUEST_IMAGES="${GUEST_IMAGES:-$ROOT/target/guest-images}"

log() { printf '== %s\n' "$*" >&2; }

bench_prepare() {
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
    # boto3 in the repo's .venv (requirements-test.txt, as scripts/test).
    VENV="${MALLEE_VENV:-$ROOT/.venv}"
    if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
        log "installing requirements-test.txt (boto3) into $VENV"
        [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-test.txt"
    fi
}

# Every cloud bench_start_up started: "pid work-dir" lines.
BENCH_CLOUDS=()

bench_cleanup() {
    local rc=$?
    local cloud pid work left
    for cloud in "${BENCH_CLOUDS[@]}"; do
        pid="${cloud%% *}"
        kill "$pid" 2>/dev/null || true
    done
    for cloud in "${BENCH_CLOUDS[@]}"; do
        pid="${cloud%% *}"; work="${cloud#* }"
        wait "$pid" 2>/dev/null || true
        # VMs (and a storage host's export daemons) outlive `mallee up` by
        # design: stop them and remove the network.
        if [[ -d "$work/data" ]]; then
            "$MALLEE" purge --data-dir "$work/data" >&2 || log "mallee purge --data-dir $work/data failed"
        fi
        # Anything still running from this data dir is a purge bug: say so,
        # and stop it (by pid) so the machine is left clean.
        left="$(pgrep -f -- "$work/data" || true)"
        if [[ -n "$left" ]]; then
            log "still running after purge of $work/data: $(tr '\n' ' ' <<<"$left")— killing them"
            # shellcheck disable=SC2086
            kill $left 2>/dev/null || true
        fi
        if [[ "$rc" != 0 && -f "$work/mallee.log" ]]; then
            log "mallee log of $work (last 40 lines):"; tail -n 40 "$work/mallee.log" >&2
        fi
        rm -rf "$work"
    done
    exit "$rc"
}

bench_start_up() {
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/mallee-$NAME-bench.XXXXXX")"
    DATA="$WORK/data"
    MALLEE_PID=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    log "starting mallee up on 127.0.0.1:$PORT (data dir $DATA, --accel $ACCEL $*)"
    "$MALLEE" up --data-dir "$DATA" --listen "127.0.0.1:$PORT" --log-format json \
        --accel "$ACCEL" --probe-kernel "$GUEST_IMAGES/vmlinuz" "$@" \
        >"$WORK/mallee.log" 2>&1 &
    MALLEE_PID=$!
    BENCH_CLOUDS+=("$MALLEE_PID $WORK")
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://127.0.0.1:$PORT/_mallee/health" 2>/dev/null && break
        kill -0 "$MALLEE_PID" 2>/dev/null || { log "mallee exited; its log:"; cat "$WORK/mallee.log" >&2; exit 1; }
        sleep 0.1
    done
    # The node agent logs "acceleration selected" once it has decided (an
    # `auto` probe boots a guest under KVM, up to ~20 s); work started
    # before that would measure the probe.
    local line=""
    for _ in $(seq 1 1200); do
        line="$(grep -a '"acceleration selected"' "$WORK/mallee.log" | tail -n1 || true)"
        [[ -n "$line" ]] && break
        kill -0 "$MALLEE_PID" 2>/dev/null || { log "mallee exited; its log:"; cat "$WORK/mallee.log" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$line" ]] || { log "no 'acceleration selected' line after 120 s"; exit 1; }
    ACCEL_MODE="$(jq -r .accel <<<"$line")"
    ACCEL_REASON="$(jq -r '.reason | gsub("\n"; " / ")' <<<"$line")"
    log "acceleration selected: $ACCEL_MODE ($ACCEL_REASON)"
    for _ in $(seq 1 300); do
        grep -aq '"node registered"' "$WORK/mallee.log" && break
        sleep 0.1
    done
}

# The server's distinct warnings and errors, most frequent first (of the
# latest cloud, or of the work dir given).
bench_problems() {
    jq -r 'select(.level == "WARN" or .level == "ERROR") | "\(.level) \(.message)"' "${1:-$WORK}/mallee.log" 2>/dev/null \
        | grep -v 'acceleration selected' | sort | uniq -c | sort -rn | head -n 5 || true
}
