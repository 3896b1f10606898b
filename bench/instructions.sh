#!/usr/bin/env bash
# The server's instructions per enrolment, counted by valgrind's callgrind:
# a figure that does not move with the load on a shared machine, so a change
# can be judged by a few hundred requests instead of many timed runs.
#
# In a temporary directory, `estd init` makes the development CA (P-256) and
# estd serves on the embedded store (sled, durability on) under callgrind.
# After a warm-up, the counters are zeroed, estd-bench enrols --requests
# times with --workers workers in connection mode --conn, and the counters
# are dumped. Prints the instructions per verified enrolment in all of the
# server's threads, and the part of it spent in:
#   csr-verify    parsing the CSR and verifying its signature (P-256);
#   cert-build    building and encoding the certificate (Ca::issue less the signature);
#   cert-sign     the CA's signature (the signer alone);
#   store-request the request's side of the store write (encoding the records);
#   committer     the committer thread (sled transaction and flush);
#   other-threads sled's own threads and anything else outside tokio's workers;
#   rest          TLS, HTTP, authentication, policy, logging, metrics.
# callgrind counts user-space instructions only: system calls, context
# switches and waiting on the disk are not in these figures (see the
# README's Performance section for the CPU time, measured by enrol-modes.sh).
#
# With --baseline PATH, the same is run against a second estd binary and the
# ratio this/baseline is printed for each line.
#
# Usage: bench/instructions.sh [--requests N] [--workers N] [--conn reuse|new|resume]
#                              [--baseline PATH] [--no-build] [--keep]
# Needs: valgrind (callgrind_annotate, callgrind_control).
set -euo pipefail

REQUESTS=400
WORKERS=1
CONN=reuse
BUILD=1
KEEP=0
BASELINE=
while [ $# -gt 0 ]; do
    case "$1" in
        --requests) REQUESTS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --conn) CONN=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "instructions: unknown argument $1" >&2; exit 2 ;;
    esac
done

NAME=instructions
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null ||
    { log "needs valgrind (callgrind_annotate, callgrind_control)"; exit 2; }
build_release
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || { log "no baseline $BASELINE"; exit 2; }
    BASELINE=$(cd "$(dirname "$BASELINE")" && pwd)/$(basename "$BASELINE")
fi

WORK=$(mktemp -d /tmp/estd-instructions.XXXXXX)
SERVER_PID=
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# measure BINARY DIR: leaves DIR/counts (name=instructions per enrolment).
measure() {
    local bin=$1 dir=$2
    mkdir -p "$dir"
    cd "$dir"
    bench_config bench.toml
    "$bin" --config bench.toml init >init.log 2>&1 || { log "estd init failed"; cat init.log >&2; exit 1; }
    # --fair-sched: valgrind runs one thread at a time, and its default
    # scheduler can leave the thread that initialises sled's I/O pool waiting
    # for minutes behind the pool's threads spinning on that initialisation.
    valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$dir/callgrind.out" \
        "$bin" --config bench.toml serve >serve.log 2>&1 &
    SERVER_PID=$!
    local i=0 est=
    until est=$(listening_port est serve.log) && [ -n "$est" ]; do
        i=$((i + 1))
        if [ $i -gt 1200 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "estd did not start under callgrind"; cat serve.log >&2; exit 1
        fi
        sleep 0.1
    done
    # Warm-up: first connections, caches, the store's first pages.
    "$BENCH" --url "https://127.0.0.1:$est" --op enroll --conn "$CONN" --workers 1 \
        --requests 50 >warm.txt 2>&1 || { cat warm.txt >&2; exit 1; }
    callgrind_control --zero "$SERVER_PID" >/dev/null 2>&1
    "$BENCH" --url "https://127.0.0.1:$est" --op enroll --conn "$CONN" --workers "$WORKERS" \
        --requests "$REQUESTS" >bench.txt 2>&1 || { cat bench.txt >&2; exit 1; }
    callgrind_control --dump "$SERVER_PID" >/dev/null 2>&1
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    local verified
    verified=$(tr ' ' '\n' <bench.txt | sed -n 's/^verified=//p' | head -n 1)
    [ -n "$verified" ] && [ "$verified" -gt 0 ] || { log "no verified enrolments"; cat bench.txt >&2; exit 1; }
    # The dump made after the load (callgrind.out.1): inclusive counts.
    callgrind_annotate --inclusive=yes --threshold=100 callgrind.out.1 >annotate.txt 2>/dev/null
    awk -v n="$verified" '
        function count(s) { gsub(",", "", s); return s + 0 }
        { line = $0 }
        /PROGRAM TOTALS/ { total = count($1) }
        index(line, "???:estd::ca::csr::parse_and_verify [") { verify += count($1) }
        index(line, "???:estd::ca::Ca::issue [") { issue += count($1) }
        index(line, "as estd::ca::signer::Signer>::sign [") { sign += count($1) }
        index(line, "as estd::store::Store>::issue::{{closure}} [") { store += count($1) }
        index(line, "???:estd::store::sled::commit::run [") { committer += count($1) }
        index(line, "???:tokio::runtime::scheduler::multi_thread::worker::run [") { workers += count($1) }
        END {
            # A renamed function would silently count as zero.
            if (!total || !verify || !issue || !sign || !store || !committer || !workers) {
                print "a function this script counts by name was not found" > "/dev/stderr"
                exit 1
            }
            other = total - workers - committer
            rest = workers - verify - issue - store
            printf "total=%d\ncsr-verify=%d\ncert-build=%d\ncert-sign=%d\nstore-request=%d\ncommitter=%d\nother-threads=%d\nrest=%d\n",
                total / n, verify / n, (issue - sign) / n, sign / n, store / n, committer / n, other / n, rest / n
        }' annotate.txt >counts || { log "see $dir/annotate.txt"; KEEP=1; exit 1; }
    cd "$WORK"
}

log "this estd: $ESTD ($REQUESTS enrolments, $WORKERS workers, --conn $CONN)"
measure "$ESTD" "$WORK/this"
if [ -n "$BASELINE" ]; then
    log "baseline: $BASELINE"
    measure "$BASELINE" "$WORK/baseline"
    printf '%-14s %12s %12s %8s\n' "instructions" baseline this ratio
    paste -d= "$WORK/baseline/counts" "$WORK/this/counts" | awk -F= '
        { r = ($2 > 0) ? sprintf("%.3f", $4 / $2) : "-"; printf "%-14s %12d %12d %8s\n", $1, $2, $4, r }'
else
    printf '%-14s %12s\n' "instructions" "per enrolment"
    awk -F= '{ printf "%-14s %12d\n", $1, $2 }' "$WORK/this/counts"
fi
