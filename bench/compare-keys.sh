#!/usr/bin/env bash
# Compares enrolment with the issuing CA key in software (a key file) and in
# a PKCS#11 token (SoftHSM2), in one run, on the same machine and store engine
# (sled).
#
# For each key in turn, in a temporary directory with its own CA and ports:
#   software: `estd init` makes the development CA (a P-256 key file);
#   softhsm:  a SoftHSM2 token of its own (SOFTHSM2_CONF in the directory),
#             the ceremony (`estd ca init --pkcs11`, `estd ca csr`, an
#             offline P-256 root made by openssl signs, `estd ca import`),
#             then `estd init`;
# then estd serves, and estd-bench enrols for --duration seconds with
# --workers keep-alive mTLS workers, reading the server's CPU per enrolment.
# Prints a table with the ratio softhsm/software. Everything it started is
# stopped and its directory removed on exit.
#
# Usage: bench/compare-keys.sh [--duration SECS] [--workers N] [--no-build] [--keep]
# Needs: softhsm2 (softhsm2-util, libsofthsm2.so), openssl, curl.
set -euo pipefail

DURATION=20
WORKERS=16
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare-keys: unknown argument $1" >&2; exit 2 ;;
    esac
done

NAME=compare-keys
# shellcheck source=bench/common.sh
. "$(dirname "$0")/common.sh"

MODULE=$(ls /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so 2>/dev/null | head -n 1 || true)
command -v softhsm2-util >/dev/null && [ -n "$MODULE" ] || { log "SoftHSM2 is not installed (apt install softhsm2)"; exit 2; }
build_release

WORK=$(mktemp -d /tmp/estd-keys.XXXXXX)
SERVER_PID=
cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}

export ESTD_BENCH_TOKEN_PIN=bench-pin-4711
declare -A R
run_key() {
    local key=$1 dir=$WORK/$1
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
        echo "[rate_limit.client]"
        echo "enabled = false"
        echo "[rate_limit.label]"
        echo "enabled = false"
        echo "[log]"
        echo "filter = \"warn\""
        if [ "$key" = softhsm ]; then
            echo "[ca.key]"
            echo "pkcs11 = { module = \"$MODULE\", token_label = \"estd-bench\", key_label = \"estd-issuing\", pin_env = \"ESTD_BENCH_TOKEN_PIN\" }"
        fi
    } >bench.toml
    if [ "$key" = softhsm ]; then
        mkdir -p tokens
        printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir/tokens" >softhsm2.conf
        export SOFTHSM2_CONF=$dir/softhsm2.conf
        softhsm2-util --init-token --free --label estd-bench --pin "$ESTD_BENCH_TOKEN_PIN" --so-pin bench-so-pin-0815 >/dev/null
        log "$key: ceremony"
        "$ESTD" --config bench.toml ca init --pkcs11 --algorithm p256 >ceremony.log 2>&1
        "$ESTD" --config bench.toml ca csr --out issuing.csr >>ceremony.log 2>&1
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key \
            -subj "/C=DK/O=Bench Root/CN=Bench Offline Root" -days 3650 \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out root.pem 2>>ceremony.log
        printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >issuing.ext
        openssl x509 -req -in issuing.csr -CA root.pem -CAkey root.key -set_serial 1 -days 1825 \
            -extfile issuing.ext -out issuing.pem 2>>ceremony.log
        "$ESTD" --config bench.toml ca import --cert issuing.pem --chain root.pem >>ceremony.log 2>&1
    fi
    "$ESTD" --config bench.toml init >init.log 2>&1

    log "$key: serve"
    "$ESTD" --config bench.toml serve >serve.log 2>&1 &
    SERVER_PID=$!
    local i=0
    until curl -sf --cacert certs/root-ca.pem --resolve "localhost:$admin:127.0.0.1" \
        "https://localhost:$admin/readyz" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$key: estd did not become ready"; cat serve.log >&2; return 1
        fi
        sleep 0.1
    done
    sleep 1
    log "$key: enrol, $WORKERS keep-alive workers, $DURATION s"
    "$BENCH" --url "https://127.0.0.1:$est" --op enroll --conn reuse --workers "$WORKERS" \
        --duration "$DURATION" --requests 1000000 --server-pid "$SERVER_PID" \
        >enroll.txt 2>enroll.log || { cat enroll.log enroll.txt >&2; return 1; }
    local line
    line=$(grep '^RESULT' enroll.txt)
    R[$key.rate]=$(field rate <<<"$line")
    R[$key.p99]=$(field p99_ms <<<"$line")
    R[$key.verified]=$(field verified <<<"$line")
    R[$key.cpu]=$(field server_cpu_us_op <<<"$line")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || { log "$key: estd exited badly on SIGTERM"; cat serve.log >&2; return 1; }
    SERVER_PID=
    unset SOFTHSM2_CONF
    cd "$WORK"
}

run_key software
run_key softhsm

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
printf '\n%-32s %12s %12s %8s\n' "enrolment, keep-alive, sled" software softhsm ratio
for m in rate p99 cpu verified; do
    case $m in
        rate) name="enrolments/s" ;;
        p99) name="p99 latency (ms)" ;;
        cpu) name="estd CPU per enrolment (us)" ;;
        verified) name="certificates verified" ;;
    esac
    printf '%-32s %12s %12s %8s\n' "$name" "${R[software.$m]}" "${R[softhsm.$m]}" \
        "$(ratio "${R[softhsm.$m]}" "${R[software.$m]}")"
done
