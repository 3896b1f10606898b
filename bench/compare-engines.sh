#!/usr/bin/env bash
# Compares estd on its two store engines, sled and PostgreSQL, in one run.
#
# From a fresh clone: builds release, starts a PostgreSQL cluster of its own in
# a temporary directory (fsync on; as root, its processes run as `nobody`),
# then for each engine in turn, with its own CA, store and ports:
#   1. fills the store with --count certificates (estd-bench --op fill; on
#      PostgreSQL then VACUUM ANALYZE and CHECKPOINT, as autovacuum and the
#      checkpointer would soon do, so that the timed phases do not pay for them);
#   2. measures start-up with that store (estd-bench --op start: spawn to
#      /readyz 200, and the memory then);
#   3. starts estd, reads its idle RSS, then enrols for --duration seconds
#      with 16 keep-alive workers and again with a new mTLS connection per
#      request (estd-bench --op enroll), with the server's CPU per enrolment
#      and, on PostgreSQL, the whole cluster's (postmaster and every backend);
#   4. reads RSS (VmRSS, VmHWM) after the load and stops estd.
# Then prints a table with the ratio PostgreSQL/sled. Everything it started is
# stopped and its directory removed on exit, failure or interrupt.
#
# Usage: bench/compare-engines.sh [--count N] [--duration SECS] [--workers N]
#          [--starts N] [--pg-stats] [--perf] [--no-build] [--keep] [--engines "sled postgres"]
#   --count N      certificates to fill each store with (default 1000000)
#   --duration S   seconds of each enrolment phase (default 20)
#   --pg-stats     load pg_stat_statements and print, for the keep-alive phase,
#                  the statements, round trips and transactions per enrolment
#   --perf         profile estd with `perf record -g` during each keep-alive
#                  phase and print the top threads and symbols (perturbs the rate)
#   --keep         keep the temporary directory (logs, stores) for inspection
# Environment: CARGO_TARGET_DIR (default target/), PG_BIN (default the newest
# /usr/lib/postgresql/*/bin).
set -euo pipefail

COUNT=1000000
DURATION=20
WORKERS=16
STARTS=3
PG_STATS=0
PERF=0
BUILD=1
KEEP=0
ENGINES="sled postgres"
while [ $# -gt 0 ]; do
    case "$1" in
        --count) COUNT=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --starts) STARTS=$2; shift 2 ;;
        --engines) ENGINES=$2; shift 2 ;;
        --pg-stats) PG_STATS=1; shift ;;
        --perf) PERF=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare-engines: unknown argument $1" >&2; exit 2 ;;
    esac
done

NAME=compare-engines
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

build_release

WORK=$(mktemp -d /tmp/estd-compare.XXXXXX)
chmod 755 "$WORK"
SERVER_PID=
PG_DATA=$WORK/pg
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w >/dev/null 2>&1 || true
    fi
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on loopback (nothing answers a connect to it).
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# field KEY < RESULT-line

# --- PostgreSQL ---------------------------------------------------------
PG_PORT=
PG_URL=
PG_PID=
if [[ " $ENGINES " == *" postgres "* ]]; then
    [ -x "$PG_BIN/initdb" ] || { log "no initdb under $PG_BIN (install postgresql)"; exit 2; }
    PG_PORT=$(free_port)
    mkdir -p "$PG_DATA" "$WORK/pg-sock"
    if [ "$(id -u)" = 0 ]; then chown nobody "$PG_DATA" "$WORK/pg-sock"; fi
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') in $PG_DATA on 127.0.0.1:$PG_PORT (fsync on)"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-instructions >"$WORK/initdb.log" 2>&1
    PRELOAD=
    if [ "$PG_STATS" = 1 ]; then PRELOAD="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"; fi
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -l "$WORK/pg-sock/postgres.log" \
        -o "-p $PG_PORT -k $WORK/pg-sock -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on $PRELOAD" >/dev/null
    PG_PID=$(head -n 1 "$PG_DATA/postmaster.pid")
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres estd
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/estd"
    if [ "$PG_STATS" = 1 ]; then
        psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d estd -c 'CREATE EXTENSION pg_stat_statements' >/dev/null
    fi
fi
psql_q() { psql -X -A -t -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d estd -c "$1"; }

rss_of() { awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' "/proc/$1/status"; }

# --- one engine ---------------------------------------------------------
declare -A R
run_engine() {
    local engine=$1 dir=$WORK/$1
    mkdir -p "$dir"
    cd "$dir"
    local est admin http
    est=$(free_port); admin=$(free_port); http=$(free_port)
    {
        echo "[server]"
        echo "est_listen = \"127.0.0.1:$est\""
        echo "admin_listen = \"127.0.0.1:$admin\""
        echo "[revocation]"
        echo "http_listen = \"127.0.0.1:$http\""
        echo "[store]"
        echo "engine = \"$engine\""
        if [ "$engine" = postgres ]; then echo "url = \"$PG_URL\""; fi
        # One IdM certificate at full speed is far past the per-client and
        # per-label limits: the benchmark measures enrolment, not the limiter.
        echo "[rate_limit.client]"
        echo "enabled = false"
        echo "[rate_limit.label]"
        echo "enabled = false"
        echo "[log]"
        echo "filter = \"warn\""
    } >bench.toml

    log "$engine: init"
    "$ESTD" --config bench.toml init >init.log 2>&1

    log "$engine: fill $COUNT certificates"
    "$BENCH" --op fill --config bench.toml --count "$COUNT" --revoked-percent 1 --serials serials.txt \
        >fill.txt 2>fill.log || { cat fill.log fill.txt >&2; return 1; }
    local line
    line=$(grep '^RESULT' fill.txt)
    R[$engine.fill_s]=$(field secs <<<"$line")
    R[$engine.fill_rate]=$(field rate <<<"$line")
    if [ "$engine" = postgres ]; then
        # A bulk load leaves the table to autovacuum and its WAL to the next
        # checkpoint; both would otherwise land in the timed phases.
        local t0=$SECONDS
        psql_q "VACUUM (ANALYZE)" >/dev/null
        psql_q "CHECKPOINT" >/dev/null
        log "$engine: VACUUM ANALYZE and CHECKPOINT after the fill: $((SECONDS - t0)) s"
        R[$engine.store_mb]=$(psql_q "SELECT round(pg_database_size('estd') / 1e6)")
    else
        R[$engine.store_mb]=$(du -sm data | cut -f1)
    fi

    log "$engine: start-up x $STARTS with $COUNT stored"
    "$BENCH" --op start --config bench.toml --estd "$ESTD" --starts "$STARTS" \
        >start.txt 2>start.log || { cat start.log start.txt >&2; return 1; }
    line=$(grep '^RESULT' start.txt)
    R[$engine.start_first]=$(field first_s <<<"$line")
    R[$engine.start_median]=$(field median_s <<<"$line")
    R[$engine.start_max]=$(field max_s <<<"$line")
    R[$engine.rss_ready]=$(field rss_ready_kb <<<"$line")

    log "$engine: serve"
    "$ESTD" --config bench.toml serve >serve.log 2>&1 &
    SERVER_PID=$!
    local i=0
    until curl -sf --cacert certs/root-ca.pem --resolve "localhost:$admin:127.0.0.1" \
        "https://localhost:$admin/readyz" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 3000 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$engine: estd did not become ready"; cat serve.log >&2; return 1
        fi
        sleep 0.1
    done
    sleep 2
    read -r R[$engine.rss_idle] _ < <(rss_of "$SERVER_PID")

    local db=()
    if [ "$engine" = postgres ]; then db=(--db-pid "$PG_PID"); fi
    if [ "$engine" = postgres ] && [ "$PG_STATS" = 1 ]; then
        psql_q "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset(); SELECT pg_stat_reset_shared('wal');" >/dev/null
    fi
    local mode
    for mode in reuse new; do
        log "$engine: enrol, $WORKERS workers, conn=$mode, $DURATION s"
        local perf_pid=
        if [ "$PERF" = 1 ] && [ "$mode" = reuse ]; then
            perf record -F 499 -g -p "$SERVER_PID" -o "perf-$mode.data" -- sleep "$DURATION" >/dev/null 2>&1 &
            perf_pid=$!
        fi
        "$BENCH" --url "https://127.0.0.1:$est" --op enroll --conn "$mode" --workers "$WORKERS" \
            --duration "$DURATION" --requests 20000 --server-pid "$SERVER_PID" "${db[@]}" \
            >"enroll-$mode.txt" 2>"enroll-$mode.log" || { cat "enroll-$mode.log" "enroll-$mode.txt" >&2; return 1; }
        if [ -n "$perf_pid" ]; then
            wait "$perf_pid" || true
            perf report -i "perf-$mode.data" --no-children -g none --sort dso,sym --percent-limit 1.5 --stdio 2>/dev/null \
                | grep -v '^#' | grep -v '^$' | grep '%' | head -n 30 >"perf-$mode.txt" || true
            perf report -i "perf-$mode.data" --no-children -g none --sort comm --stdio 2>/dev/null \
                | grep -v '^#' | grep '%' | head -n 12 >"perf-$mode-threads.txt" || true
            { echo "perf, estd on $engine, keep-alive (by thread):"; cat "perf-$mode-threads.txt";
              echo "perf, estd on $engine, keep-alive (by symbol, >= 1.5%):"; cat "perf-$mode.txt"; } >&2
        fi
        line=$(grep '^RESULT' "enroll-$mode.txt")
        R[$engine.$mode.rate]=$(field rate <<<"$line")
        R[$engine.$mode.p99]=$(field p99_ms <<<"$line")
        R[$engine.$mode.verified]=$(field verified <<<"$line")
        R[$engine.$mode.server_cpu]=$(field server_cpu_us_op <<<"$line")
        R[$engine.$mode.db_cpu]=$(field db_cpu_us_op <<<"$line")
        R[$engine.$mode.bench_cpu]=$(field bench_cpu_us_op <<<"$line")
        if [ "$engine" = postgres ] && [ "$PG_STATS" = 1 ] && [ "$mode" = reuse ]; then
            pg_stats_report "${R[$engine.reuse.verified]}" >pg-stats.txt
            cat pg-stats.txt >&2
            psql_q "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset(); SELECT pg_stat_reset_shared('wal');" >/dev/null
        fi
    done
    read -r R[$engine.rss_after] R[$engine.hwm_after] < <(rss_of "$SERVER_PID")

    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || { log "$engine: estd exited badly on SIGTERM"; cat serve.log >&2; return 1; }
    SERVER_PID=
    cd "$WORK"
}

# Statements, transactions and round trips per enrolment of the keep-alive phase.
pg_stats_report() {
    local n=$1
    echo "pg_stat_statements over the keep-alive phase ($n enrolments), per enrolment:"
    psql_q "SELECT 'transactions (commits): ' || round(xact_commit::numeric / $n, 3)
                   || ', rollbacks: ' || round(xact_rollback::numeric / $n, 3)
              FROM pg_stat_database WHERE datname = 'estd'"
    psql_q "SELECT 'statements executed: ' || round(sum(calls)::numeric / $n, 3)
                   || ', rows: ' || round(sum(rows)::numeric / $n, 3)
                   || ', statement time: ' || round((sum(total_exec_time) * 1000 / $n)::numeric, 1) || ' us'
              FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'estd')"
    echo "top statements (calls per enrolment, mean us, share of statement time):"
    psql_q "SELECT lpad(round(calls::numeric / $n, 3)::text, 8) || '  ' || lpad(round((mean_exec_time * 1000)::numeric, 1)::text, 8)
                   || '  ' || lpad(round((100 * total_exec_time / sum(total_exec_time) OVER ())::numeric, 1)::text, 5) || '%  '
                   || regexp_replace(left(query, 110), '\s+', ' ', 'g')
              FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'estd')
             ORDER BY total_exec_time DESC LIMIT 15"
    psql_q "SELECT 'WAL: ' || round(wal_bytes::numeric / $n) || ' bytes, ' || round(wal_records::numeric / $n, 2)
                   || ' records, ' || round(wal_sync::numeric / $n, 3) || ' syncs per enrolment'
              FROM pg_stat_wal" 2>/dev/null || true
}

for e in $ENGINES; do
    run_engine "$e"
done

# --- table ----------------------------------------------------------------
ratio() {
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
row() { # label key [unit]
    local s=${R[sled.$2]:--} p=${R[postgres.$2]:--}
    printf '| %-44s | %12s | %12s | %7s |\n' "$1" "$s" "$p" "$(ratio "$p" "$s")"
}
mb() { awk -v k="${1:-}" 'BEGIN { if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
for e in sled postgres; do
    for k in rss_ready rss_idle rss_after hwm_after; do
        R[$e.${k}_mb]=$(mb "${R[$e.$k]:-}")
    done
done
echo
echo "estd on sled and on PostgreSQL ($PG_BIN, same machine, fsync on); $(nproc) CPUs; $COUNT certificates filled per store;"
echo "enrolment: P-256, $WORKERS workers, $DURATION s per phase; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
printf '| %-44s | %12s | %12s | %7s |\n' "figure" "sled" "postgres" "PG/sled"
printf '|%s|%s|%s|%s|\n' "----------------------------------------------" "--------------" "--------------" "---------"
row "fill: certificates/s" fill_rate
row "store size, MB" store_mb
row "start-up with the store, s (first)" start_first
row "start-up, s (median of $STARTS)" start_median
row "start-up, s (max)" start_max
row "RSS at ready, MB" rss_ready_mb
row "RSS idle (2 s after ready), MB" rss_idle_mb
row "enrolments/s, keep-alive" reuse.rate
row "p99 ms, keep-alive" reuse.p99
row "server CPU us/enrolment, keep-alive" reuse.server_cpu
row "database CPU us/enrolment, keep-alive" reuse.db_cpu
row "bench CPU us/enrolment, keep-alive" reuse.bench_cpu
# What the rates would be if the machine did nothing else and were CPU-bound:
# all its cores divided by the CPU one enrolment costs (server, database and
# this client, which shares the machine). On a machine busy with other work the
# measured rates say more about the scheduler than about the engines.
for e in sled postgres; do
    for m in reuse new; do
        R[$e.$m.ceiling]=$(awk -v s="${R[$e.$m.server_cpu]:-}" -v d="${R[$e.$m.db_cpu]:-}" \
            -v b="${R[$e.$m.bench_cpu]:-}" -v n="$(nproc)" \
            'BEGIN { if (s == "" || s == "-" || b == "" || b == "-") { print "-"; exit }
                     if (d == "" || d == "-") d = 0; printf "%.0f", n * 1e6 / (s + d + b) }')
    done
done
row "CPU-bound ceiling/s, keep-alive (see doc)" reuse.ceiling
row "enrolments/s, new connection" new.rate
row "p99 ms, new connection" new.p99
row "server CPU us/enrolment, new connection" new.server_cpu
row "database CPU us/enrolment, new connection" new.db_cpu
row "bench CPU us/enrolment, new connection" new.bench_cpu
row "CPU-bound ceiling/s, new connection" new.ceiling
row "RSS after load, MB" rss_after_mb
row "peak RSS (VmHWM), MB" hwm_after_mb
if [ -f "$WORK/postgres/pg-stats.txt" ]; then
    echo
    cat "$WORK/postgres/pg-stats.txt"
fi
