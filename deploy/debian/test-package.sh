#!/usr/bin/env bash
# Installs the .deb that build-deb.sh made and tries it as an operator would:
# dpkg -i, systemd-analyze verify on the unit, then the unit's own command
# line as the estd user (setpriv) in the state directory systemd would make, an
# enrolment with curl and openssl, a reload, dpkg -r and dpkg -P (which keeps the CA). Needs root, and
# the ports of the shipped configuration (8443, 9443, 8080) free.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "package test: needs root (dpkg -i, the estd user)" >&2; exit 1; }
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
# It removes the package and /var/lib/estd when done: never on a machine
# where estd is installed or has a CA.
if dpkg-query -W -f '${Status}' estd 2>/dev/null | grep -q "ok installed" || [ -e /var/lib/estd ]; then
    echo "package test: estd is installed here or /var/lib/estd exists; not touching it" >&2
    exit 1
fi
deb=$(ls -1t "$target"/debian/estd_*.deb | head -1)
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    dpkg -P estd >/dev/null 2>&1 || true
    rm -rf /var/lib/estd "$work"
}
trap cleanup EXIT
fail() { echo "package test: $*" >&2; [ -f "$work/log" ] && tail -20 "$work/log" >&2; exit 1; }

dpkg -i "$deb"
unit=/usr/lib/systemd/system/estd.service
[ -f "$unit" ] || unit=/lib/systemd/system/estd.service
[ -f "$unit" ] || fail "no unit at $unit"
systemd-analyze verify "$unit" || fail "systemd-analyze verify found problems in the unit"
getent passwd estd >/dev/null || fail "no estd user"
[ -x /usr/bin/estd ] && [ -f /etc/estd/estd.toml ] || fail "binary or configuration missing"
[ -f /usr/share/man/man1/estd.1.gz ] && [ -f /usr/share/bash-completion/completions/estd ] \
    || fail "man page or completions missing"
zcat /usr/share/man/man1/estd.1.gz | grep -q '^\.TH estd 1' || fail "the man page is not roff"

# What systemd does before it starts the unit: the state directory, then the
# command line of ExecStart as User= in WorkingDirectory=.
install -d -o estd -g estd -m 0750 /var/lib/estd
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
[ "$user" = estd ] || fail "the unit runs as $user"
# The shipped configuration has the demo off; an operator trying estd out turns it on.
sed -i 's/^enabled = false$/enabled = true/' /etc/estd/estd.toml
(cd /var/lib/estd && umask 0077 && exec setpriv --reuid estd --regid estd --init-groups -- $exec_start > "$work/log" 2>&1) &
pid=$!
for _ in $(seq 1 150); do
    grep -q '^estd: listening' "$work/log" && break
    kill -0 "$pid" 2>/dev/null || fail "estd exited"
    sleep 0.2
done
grep -q '^estd: listening' "$work/log" || fail "estd did not start"
certs=/var/lib/estd/certs
[ "$(stat -c %U "$certs/issuing-ca.key")" = estd ] || fail "the CA key is not the estd user's"
[ "$(stat -c %a "$certs/issuing-ca.key")" = 600 ] || fail "the CA key is not 0600"

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/device.key" \
    -subj "/C=DK/O=Demo Organisation ApS/organizationIdentifier=NTRDK-12345674/CN=package-test" \
    -out "$work/device.csr" 2>/dev/null
status=$(curl -s -o "$work/device.p7" -w '%{http_code}' --cacert "$certs/root-ca.pem" \
    --cert "$certs/demo-idm.pem" --key "$certs/demo-idm.key" \
    -H 'Content-Type: application/pkcs10' --data-binary @"$work/device.csr" \
    https://localhost:8443/.well-known/est/demo/simpleenroll)
[ "$status" = 200 ] || fail "enrolment answered $status"
openssl base64 -d -in "$work/device.p7" | openssl pkcs7 -inform DER -print_certs -out "$work/device.pem"
openssl verify -CAfile "$certs/ca-chain.pem" "$work/device.pem" >/dev/null \
    || openssl verify -CAfile "$certs/root-ca.pem" -untrusted "$certs/issuing-ca.pem" "$work/device.pem" \
    || fail "the certificate does not verify"

# ExecReload's signal: reloaded, and estd goes on.
kill -HUP "$pid"
for _ in $(seq 1 50); do grep -q 'configuration reloaded' "$work/log" && break; sleep 0.1; done
grep -q 'configuration reloaded' "$work/log" || fail "SIGHUP did not reload"
kill -0 "$pid" || fail "estd stopped after SIGHUP"

kill -TERM "$pid"
wait "$pid" || fail "estd did not stop cleanly"
pid=
dpkg -r estd
[ ! -e /usr/bin/estd ] || fail "dpkg -r left the binary"
# Purging removes the configuration but never the CA.
dpkg -P estd
[ ! -e /etc/estd/estd.toml ] || fail "dpkg -P left the configuration"
[ -f "$certs/issuing-ca.key" ] || fail "dpkg -P removed the CA"
echo "package test: $deb installs, its unit verifies, and estd enrols as the estd user"
