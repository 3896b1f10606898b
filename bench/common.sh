# Shared by the benchmark scripts (sourced, not run): where the binaries are,
# logging, the release build, reading a RESULT line, and the configuration
# of a benchmark server on kernel-chosen ports.
#
# The sourcing script sets NAME (its name in log lines) and BUILD (1 to build)
# first; it gets ROOT, TARGET, ESTD and BENCH.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ESTD=$TARGET/release/estd
BENCH=$TARGET/release/estd-bench

log() { echo "$NAME: $*" >&2; }

# Builds estd and estd-bench in release when BUILD=1, then checks both exist.
build_release() {
    if [ "$BUILD" = 1 ]; then
        log "building release (estd, estd-bench)"
        (cd "$ROOT" && cargo build --release -p estd -p estd-bench)
    fi
    [ -x "$ESTD" ] && [ -x "$BENCH" ] || { log "no $ESTD or $BENCH"; exit 2; }
}

# field KEY < RESULT-line: one value of estd-bench's RESULT line.
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

# bench_config FILE: ports chosen by the kernel (read back from the banner
# with listening_port), the per-client and per-label rate limits off (one
# IdM certificate at full speed), warnings only in the log.
bench_config() {
    cat >"$1" <<CONFIG
[server]
est_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[revocation]
http_listen = "127.0.0.1:0"
[rate_limit.client]
enabled = false
[rate_limit.label]
enabled = false
[log]
filter = "warn"
CONFIG
}

# listening_port LISTENER LOG: the port of est, admin or public from estd's
# banner "estd: listening est=127.0.0.1:P admin=127.0.0.1:P public=127.0.0.1:P"
# in LOG; empty until the banner is there.
listening_port() {
    grep -m1 '^estd: listening ' "$2" 2>/dev/null | sed -n "s/.* $1=[0-9.]*:\([0-9]*\).*/\1/p"
}
