#!/usr/bin/env bash
# Enrolment over each connection mode, in one run against one server: the
# figures of the README's Performance section.
#
# In a temporary directory, `estd init` makes the development CA (P-256),
# estd serves on the embedded store (sled, durability on) with the
# per-client and per-label rate limits off, and estd-bench enrols for
# --duration seconds with --workers mutual-TLS workers in each mode:
#   reuse         one kept-alive connection per worker;
#   new           a new connection and a full handshake per request;
#   resume        a new connection per request that resumes (TLS 1.3 ticket);
#   new-tls12     a full TLS 1.2 handshake per request;
#   resume-tls12  TLS 1.2 resumption by session id.
# For each it prints the verified enrolments per second, p50/p99 latency,
# the server's CPU per verified enrolment (from /proc/<pid>/stat), the
# handshakes made (full, resumed) and the server's peak resident set. Everything it started is stopped and its
# directory removed on exit.
#
# With --baseline PATH (another estd binary, say one built from an earlier
# commit), each mode is measured against both, one after the other on fresh
# stores, so that a change's effect is a ratio from one run on one machine.
#
# Usage: bench/enrol-modes.sh [--duration SECS] [--workers N] [--modes "reuse new …"]
#                             [--baseline PATH] [--csrs N] [--no-build] [--keep]
# --csrs: CSRs generated before each timed phase and used round-robin (200000).
set -euo pipefail

DURATION=15
WORKERS=16
MODES="reuse new resume new-tls12 resume-tls12"
BUILD=1
KEEP=0
BASELINE=
CSRS=200000
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --modes) MODES=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        --csrs) CSRS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "enrol-modes: unknown argument $1" >&2; exit 2 ;;
    esac
done

NAME=enrol-modes
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

build_release
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { log "no baseline $BASELINE"; exit 2; }
    # Absolute: the servers run in their own directories.
    BASELINE=$(cd "$(dirname "$BASELINE")" && pwd)/$(basename "$BASELINE")
fi

WORK=$(mktemp -d /tmp/estd-modes.XXXXXX)
SERVER_PID=
cleanup() {
    local rc=$?
    stop_server
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM


cd "$WORK"
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        # 30 s to shut down, then SIGKILL.
        local i=0
        while kill -0 "$SERVER_PID" 2>/dev/null && [ $i -lt 300 ]; do
            sleep 0.1; i=$((i + 1))
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

# start_server BINARY DIR: a new CA and store in DIR, served by BINARY.
start_server() {
    local bin=$1 dir=$2
    mkdir -p "$dir"
    cd "$dir"
    bench_config bench.toml
    "$bin" --config bench.toml init >init.log 2>&1 || { log "estd init failed"; cat init.log >&2; exit 1; }
    "$bin" --config bench.toml serve >serve.log 2>&1 &
    SERVER_PID=$!
    # The ports are the kernel's choice (port 0), read from estd's banner.
    local i=0
    until EST=$(listening_port est serve.log) && ADMIN=$(listening_port admin serve.log) &&
        [ -n "$EST" ] && [ -n "$ADMIN" ] &&
        curl -sf --cacert certs/root-ca.pem --resolve "localhost:$ADMIN:127.0.0.1" \
            "https://localhost:$ADMIN/readyz" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "estd did not become ready"; cat serve.log >&2; exit 1
        fi
        sleep 0.1
    done
    sleep 1
    cd "$WORK"
}

printf '%-14s %-9s %10s %8s %8s %16s %8s %8s %8s\n' mode estd "enrol/s" "p50 ms" "p99 ms" "server CPU us/op" full resumed "peak MB"
run=0
for mode in $MODES; do
    case $mode in
        reuse) args=(--conn reuse) ;;
        new) args=(--conn new) ;;
        resume) args=(--conn resume) ;;
        new-tls12) args=(--conn new --tls12) ;;
        resume-tls12) args=(--conn resume --tls12) ;;
        *) log "unknown mode $mode"; exit 2 ;;
    esac
    if [ -n "$BASELINE" ]; then which="baseline this"; else which="this"; fi
    for who in $which; do
        if [ "$who" = baseline ]; then bin=$BASELINE; else bin=$ESTD; fi
        run=$((run + 1))
        start_server "$bin" "$WORK/$run-$who"
        out="$WORK/$run-$who/$mode"
        # From the server's directory: the benchmark reads certs/ there.
        (cd "$WORK/$run-$who" && "$BENCH" --url "https://127.0.0.1:$EST" --op enroll "${args[@]}" --workers "$WORKERS" \
            --duration "$DURATION" --requests "$CSRS" --server-pid "$SERVER_PID" \
            >"$out.txt" 2>"$out.log") || { cat "$out.log" "$out.txt" >&2; exit 1; }
        # The server's peak resident set (VmHWM), read before it stops.
        peak=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?")
        stop_server
        line=$(grep '^RESULT' "$out.txt") || { log "no RESULT line"; cat "$out.log" "$out.txt" >&2; exit 1; }
        printf '%-14s %-9s %10s %8s %8s %16s %8s %8s %8s\n' "$mode" "$who" "$(field rate <<<"$line")" \
            "$(field p50_ms <<<"$line")" "$(field p99_ms <<<"$line")" \
            "$(field server_cpu_us_op <<<"$line")" "$(field full_handshakes <<<"$line")" \
            "$(field resumed_handshakes <<<"$line")" "$peak"
    done
done
