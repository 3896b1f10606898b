#!/usr/bin/env bash
# estd conformance run: drives the real server binary with curl and openssl.
#
#   conformance/run.sh                 # uses <repo>/target/release/estd
#   ESTD_BIN=/path/to/estd conformance/run.sh
#   KEEP_TMP=1 conformance/run.sh      # keep the temp dir (printed) for debugging
#
# Builds nothing. Talks only to 127.0.0.1. Prints `ok - name` / `FAIL - name`
# per check and ends with `N passed, M failed`; exits non-zero if M > 0.

set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ESTD_BIN=${ESTD_BIN:-$REPO/target/release/estd}

for tool in curl openssl python3 timeout; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run.sh: $tool is required" >&2
        exit 2
    fi
done
if [ ! -x "$ESTD_BIN" ]; then
    echo "run.sh: no estd binary at $ESTD_BIN (build it with: cargo build --release, or set ESTD_BIN)" >&2
    exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/estd-conformance.XXXXXX") || exit 2
CERTS=$TMP/certs
W=$TMP/work
mkdir -p "$W"
SERVER_PID=
RUN=0 # how many times the server has been started

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "# kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- reporting

PASSED=0
FAILED=0

ok() {
    PASSED=$((PASSED + 1))
    echo "ok - $1"
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL - $1"
    shift
    local line
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/    # /'
    done
}

# check NAME CONDITION-STATUS DETAIL...: pass if the status is 0.
check() {
    local name=$1 status=$2
    shift 2
    if [ "$status" -eq 0 ]; then ok "$name"; else fail "$name" "$@"; fi
}

summary() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# -------------------------------------------------------------- the server

cat >"$TMP/estd.toml" <<EOF
[server]
est_listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[revocation]
http_listen = "127.0.0.1:0"

[paths]
certs_dir = "$CERTS"
data_dir = "$TMP/data"
EOF

EST_PORT=
ADMIN_PORT=
PUBLIC_PORT=

# start_server: starts estd in the background and waits (30 s at most) for its
# banner; sets SERVER_PID, EST_PORT, ADMIN_PORT. Returns non-zero on failure.
start_server() {
    RUN=$((RUN + 1))
    SERVER_OUT=$TMP/server.$RUN.out
    SERVER_ERR=$TMP/server.$RUN.err
    "$ESTD_BIN" --config "$TMP/estd.toml" serve >"$SERVER_OUT" 2>"$SERVER_ERR" &
    SERVER_PID=$!
    local line=
    for _ in $(seq 1 300); do
        line=$(grep -m1 '^estd: listening ' "$SERVER_OUT" 2>/dev/null)
        [ -n "$line" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    local ports
    ports=$(printf '%s\n' "$line" |
        sed -n 's/^estd: listening est=127\.0\.0\.1:\([0-9][0-9]*\) admin=127\.0\.0\.1:\([0-9][0-9]*\) public=127\.0\.0\.1:\([0-9][0-9]*\)$/\1 \2 \3/p')
    if [ -z "$ports" ]; then
        echo "# server did not print its banner; stdout:" >&2
        sed 's/^/#   /' "$SERVER_OUT" >&2
        echo "# stderr:" >&2
        tail -n 20 "$SERVER_ERR" | sed 's/^/#   /' >&2
        return 1
    fi
    read -r EST_PORT ADMIN_PORT PUBLIC_PORT <<<"$ports"
    return 0
}

# stop_server: SIGTERM, then wait (15 s at most). Sets STOP_STATUS to the exit
# status, or to "timeout" if it had to be killed.
stop_server() {
    STOP_STATUS=none
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    local gone=0
    for _ in $(seq 1 150); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then gone=1; break; fi
        sleep 0.1
    done
    if [ "$gone" = 1 ]; then
        wait "$SERVER_PID" 2>/dev/null
        STOP_STATUS=$?
    else
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        STOP_STATUS=timeout
    fi
    SERVER_PID=
}

# ------------------------------------------------------------ HTTP helpers

ROOT=$CERTS/root-ca.pem
IDM_CERT=$CERTS/demo-idm.pem
IDM_KEY=$CERTS/demo-idm.key
CR=$(printf '\r')

est_url() { echo "https://localhost:$EST_PORT/.well-known/est/$1"; }

# req TAG [curl args...]: one request; sets CODE, HDR (raw headers), BODY, CERR.
req() {
    local tag=$1
    shift
    HDR=$W/$tag.hdr
    BODY=$W/$tag.body
    CERR=$W/$tag.curlerr
    : >"$HDR"
    : >"$BODY"
    CODE=$(curl -sS --max-time 10 --cacert "$ROOT" \
        --resolve "localhost:$EST_PORT:127.0.0.1" \
        -D "$HDR" -o "$BODY" -w '%{http_code}' "$@" 2>"$CERR")
    [ -n "$CODE" ] || CODE=000
}

# Detail lines about the last request, for failure messages.
last() {
    echo "status: $CODE"
    if [ -s "$CERR" ]; then echo "curl: $(head -c 300 "$CERR")"; fi
    if [ -s "$HDR" ]; then echo "headers:"; tr -d '\r' <"$HDR" | sed 's/^/  /'; fi
    if [ -s "$BODY" ]; then echo "body: $(head -c 400 "$BODY" | tr -d '\r')"; fi
}

# has_header FILE "Name: value": the exact header line (case-sensitive) is there.
has_header() { grep -qxF -- "$2$CR" "$1"; }

# enroll TAG URL-PATH BODY-FILE [extra curl args]: POST as the demo IdM system.
enroll_as_idm() {
    local tag=$1 path=$2 body=$3
    shift 3
    req "$tag" --cert "$IDM_CERT" --key "$IDM_KEY" \
        -H 'Content-Type: application/pkcs10' --data-binary "@$body" "$@" "$(est_url "$path")"
}

# api TAG METHOD PATH [JSON-BODY]: one admin API call (under /api/v1) with the
# operator's bearer token, over TLS checked against the root.
api() {
    local tag=$1 method=$2 path=$3
    shift 3
    local args=(-X "$method" -H "Authorization: Bearer $ADMIN_TOKEN")
    if [ $# -gt 0 ]; then
        printf '%s' "$1" >"$W/$tag.json"
        args+=(-H 'Content-Type: application/json' --data-binary "@$W/$tag.json")
    fi
    req "$tag" "${args[@]}" "https://127.0.0.1:$ADMIN_PORT/api/v1$path"
}

# jget FILE KEY.PATH: a value from a JSON document (empty if absent or not JSON).
jget() {
    python3 - "$1" "$2" <<'EOF' 2>/dev/null
import json, sys
try:
    v = json.load(open(sys.argv[1], encoding='utf-8'))
    for k in sys.argv[2].split('.'):
        v = v[int(k)] if isinstance(v, list) else v[k]
except Exception:
    sys.exit(0)
print(json.dumps(v) if isinstance(v, (dict, list)) else ('' if v is None else v))
EOF
}

# enroll_with_code TAG LABEL REFERENCE:CODE BODY-FILE [extra curl args]: POST
# simpleenroll with HTTP Basic credentials and no client certificate.
enroll_with_code() {
    local tag=$1 label=$2 creds=$3 body=$4
    shift 4
    req "$tag" --user "$creds" -H 'Content-Type: application/pkcs10' \
        --data-binary "@$body" "$@" "$(est_url "$label/simpleenroll")"
}

public_url() { echo "http://127.0.0.1:$PUBLIC_PORT$1"; }

# ocsp_query OUT [openssl ocsp args...]: asks the OCSP responder over POST,
# verifying the answer against the /cacerts chain; output (both streams) in OUT.
ocsp_query() {
    local out=$1
    shift
    timeout 15 openssl ocsp -issuer "$W/issuing.pem" -CAfile "$W/chain.pem" \
        -url "$(public_url /ocsp)" "$@" >"$out" 2>&1
}

# crl_fetch TAG: GET the CRL into TAG.body (DER), TAG.pem and TAG.txt.
crl_fetch() {
    req "$1" "$(public_url /crl/issuing-ca.crl)"
    openssl crl -inform DER -in "$BODY" -outform PEM -out "$W/$1.pem" 2>/dev/null
    openssl crl -inform DER -in "$BODY" -noout -text >"$W/$1.txt" 2>&1
}

# crl_number TXT: the CRL Number in `openssl crl -text` output, in decimal.
crl_number() {
    python3 - "$1" <<'EOF' 2>/dev/null
import re, sys
m = re.search(r'X509v3 CRL Number:\s*\n\s*(\S+)', open(sys.argv[1]).read())
if m:
    v = m.group(1).replace(':', '')
    print(int(v, 16) if v.lower().startswith('0x') or re.search('[a-fA-F]', v) else int(v))
EOF
}

# crl_lists TXT SERIAL: the CRL text lists SERIAL (hex as openssl prints it).
crl_lists() { [ -n "$2" ] && grep -qi -- "Serial Number: $2\$" "$1"; }

# ---------------------------------------------------------- crypto helpers

ORG_SUBJ='/C=DK/O=Demo Organisation ApS/organizationIdentifier=NTRDK-12345674'

# mkcsr NAME SUBJECT: new P-256 key NAME.key, DER CSR NAME.der, base64 NAME.b64.
mkcsr() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$W/$1.key" -subj "$2" -outform DER -out "$W/$1.der" 2>"$W/$1.csrerr" &&
        openssl base64 -e -in "$W/$1.der" -out "$W/$1.b64"
}

# p7_to_pem IN OUT: base64 certs-only PKCS#7 → PEM certificates.
p7_to_pem() {
    openssl base64 -d -in "$1" 2>/dev/null | openssl pkcs7 -inform DER -print_certs -out "$2" 2>/dev/null
}

ncerts() { grep -c -- '-----BEGIN CERTIFICATE-----' "$1" 2>/dev/null || true; }

# split_pem IN PREFIX: PREFIX1.pem, PREFIX2.pem, ...
split_pem() {
    awk -v p="$2" '
        /-----BEGIN CERTIFICATE-----/ { n++; on = 1 }
        on { print > (p n ".pem") }
        /-----END CERTIFICATE-----/ { on = 0 }' "$1"
}

fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" 2>/dev/null | sed 's/.*=//'; }
serial_of() { openssl x509 -noout -serial -in "$1" 2>/dev/null | sed 's/.*=//'; }
subject_of() { openssl x509 -noout -subject -nameopt RFC2253 -in "$1" 2>/dev/null | sed 's/^subject=//'; }
csr_subject_of() { openssl req -inform DER -noout -subject -nameopt RFC2253 -in "$1" 2>/dev/null | sed 's/^subject=//'; }

# ================================================================== checks

echo "# estd: $ESTD_BIN"
echo "# temp: $TMP"

if start_server; then
    ok "server starts and prints its listening line (est=$EST_PORT admin=$ADMIN_PORT)"
else
    fail "server starts and prints its listening line"
    summary
    exit 1
fi

# --------------------------------------------------------- 1. /cacerts
req cacerts "$(est_url cacerts)"
if [ "$CODE" = 200 ] && has_header "$HDR" 'Content-Type: application/pkcs7-mime' &&
    has_header "$HDR" 'Content-Transfer-Encoding: base64'; then
    ok "cacerts: 200 application/pkcs7-mime, base64"
else
    fail "cacerts: 200 application/pkcs7-mime, base64" "$(last)"
fi
p7_to_pem "$BODY" "$W/chain.pem"
n=$(ncerts "$W/chain.pem")
check "cacerts: certs-only PKCS#7 with 2 certificates" "$([ "$n" = 2 ]; echo $?)" \
    "certificates found: ${n:-0}" "$(last)"
split_pem "$W/chain.pem" "$W/cacert"
ROOT_FP=$(fp "$ROOT")
CACERTS_ROOT=
CACERTS_ISSUING=
for f in "$W"/cacert*.pem; do
    [ -e "$f" ] || continue
    if [ "$(fp "$f")" = "$ROOT_FP" ]; then CACERTS_ROOT=$f; else CACERTS_ISSUING=$f; fi
done
check "cacerts: the root in it equals certs/root-ca.pem" "$([ -n "$CACERTS_ROOT" ]; echo $?)" \
    "root-ca.pem sha256: $ROOT_FP" \
    "cacerts holds: $(for f in "$W"/cacert*.pem; do [ -e "$f" ] && echo "$(subject_of "$f") $(fp "$f")"; done)"
if [ -n "$CACERTS_ROOT" ] && [ -n "$CACERTS_ISSUING" ]; then
    out=$(openssl verify -CAfile "$CACERTS_ROOT" "$CACERTS_ISSUING" 2>&1)
    check "cacerts: issuing CA verifies against the root" $? "$out"
else
    fail "cacerts: issuing CA verifies against the root" "no root/issuing pair in /cacerts"
fi

# ------------------------------------------- 2. enrol under label demo
DEV_SUBJ="$ORG_SUBJ/CN=conformance-device-1"
mkcsr dev1 "$DEV_SUBJ"
enroll_as_idm enroll-demo demo/simpleenroll "$W/dev1.b64"
if [ "$CODE" = 200 ] &&
    has_header "$HDR" 'Content-Type: application/pkcs7-mime; smime-type=certs-only' &&
    has_header "$HDR" 'Content-Transfer-Encoding: base64'; then
    ok "simpleenroll (label demo): 200 pkcs7-mime certs-only, base64"
else
    fail "simpleenroll (label demo): 200 pkcs7-mime certs-only, base64" "$(last)"
fi
p7_to_pem "$BODY" "$W/dev1.pem"
n=$(ncerts "$W/dev1.pem")
check "simpleenroll: answer holds the issued certificate" "$([ "$n" -ge 1 ] 2>/dev/null; echo $?)" \
    "certificates found: ${n:-0}" "$(last)"
out=$(openssl verify -CAfile "$W/chain.pem" "$W/dev1.pem" 2>&1)
check "simpleenroll: issued certificate verifies against the /cacerts chain" $? "$out"
want=$(csr_subject_of "$W/dev1.der")
got=$(subject_of "$W/dev1.pem")
check "simpleenroll: issued subject is the requested subject" \
    "$([ -n "$want" ] && [ "$want" = "$got" ]; echo $?)" "requested: $want" "issued:    $got"
openssl x509 -noout -text -in "$W/dev1.pem" >"$W/dev1.txt" 2>&1
grep -q 'TLS Web Client Authentication' "$W/dev1.txt"
check "simpleenroll: EKU TLS Web Client Authentication" $? "$(grep -A1 'Extended Key Usage' "$W/dev1.txt")"
grep -q 'X509v3 CRL Distribution Points' "$W/dev1.txt" && grep -q 'URI:http' "$W/dev1.txt"
check "simpleenroll: CRL Distribution Points present" $? "$(sed -n '/X509v3 extensions/,$p' "$W/dev1.txt" | head -40)"
grep -q 'OCSP - URI:' "$W/dev1.txt"
check "simpleenroll: Authority Information Access has OCSP" $? "$(sed -n '/X509v3 extensions/,$p' "$W/dev1.txt" | head -40)"
DEV1_SERIAL=$(serial_of "$W/dev1.pem")

# ------------------------------------------------- 3. enrol, no label
mkcsr nolabel "$ORG_SUBJ/CN=conformance-nolabel"
enroll_as_idm enroll-nolabel simpleenroll "$W/nolabel.b64"
p7_to_pem "$BODY" "$W/nolabel.pem"
check "simpleenroll without a label (organisation default profile): 200" \
    "$([ "$CODE" = 200 ] && [ "$(ncerts "$W/nolabel.pem")" -ge 1 ]; echo $?)" "$(last)"

# ---------------------------------------------------------- 4. reenrol
mkcsr dev1new "$DEV_SUBJ" # same subject, new key
req reenroll --cert "$W/dev1.pem" --key "$W/dev1.key" \
    -H 'Content-Type: application/pkcs10' --data-binary "@$W/dev1new.b64" "$(est_url demo/simplereenroll)"
if [ "$CODE" = 200 ] &&
    has_header "$HDR" 'Content-Type: application/pkcs7-mime; smime-type=certs-only'; then
    ok "simplereenroll with the device cert and a new key: 200"
else
    fail "simplereenroll with the device cert and a new key: 200" "$(last)"
fi
p7_to_pem "$BODY" "$W/dev2.pem"
cp "$W/dev1new.key" "$W/dev2.key"
DEV2_SERIAL=$(serial_of "$W/dev2.pem")
check "simplereenroll: new serial differs from the old" \
    "$([ -n "$DEV2_SERIAL" ] && [ "$DEV2_SERIAL" != "$DEV1_SERIAL" ]; echo $?)" \
    "old serial: $DEV1_SERIAL" "new serial: $DEV2_SERIAL"
check "simplereenroll: same subject" \
    "$([ -n "$got" ] && [ "$(subject_of "$W/dev2.pem")" = "$got" ]; echo $?)" \
    "old: $got" "new: $(subject_of "$W/dev2.pem")"
newpub=$(openssl x509 -noout -pubkey -in "$W/dev2.pem" 2>/dev/null)
keypub=$(openssl pkey -pubout -in "$W/dev2.key" 2>/dev/null)
check "simplereenroll: certificate carries the new key" \
    "$([ -n "$newpub" ] && [ "$newpub" = "$keypub" ]; echo $?)"
out=$(openssl verify -CAfile "$W/chain.pem" "$W/dev2.pem" 2>&1)
check "simplereenroll: renewed certificate verifies against the chain" $? "$out"

mkcsr other "$ORG_SUBJ/CN=conformance-someone-else"
req reenroll-other --cert "$W/dev1.pem" --key "$W/dev1.key" \
    -H 'Content-Type: application/pkcs10' --data-binary "@$W/other.b64" "$(est_url demo/simplereenroll)"
check "simplereenroll with a different subject: 403" "$([ "$CODE" = 403 ]; echo $?)" "$(last)"

# -------------------------------------------------------- 5. csrattrs
req csrattrs "$(est_url demo/csrattrs)"
if [ "$CODE" = 200 ] && has_header "$HDR" 'Content-Type: application/csrattrs' &&
    has_header "$HDR" 'Content-Transfer-Encoding: base64'; then
    ok "csrattrs (label demo): 200 application/csrattrs, base64"
else
    fail "csrattrs (label demo): 200 application/csrattrs, base64" "$(last)"
fi
openssl base64 -d -in "$BODY" -out "$W/csrattrs.der" 2>/dev/null
asn=$(openssl asn1parse -inform DER -in "$W/csrattrs.der" 2>&1)
st=$?
missing=
for want in id-ecPublicKey commonName organizationName; do
    printf '%s\n' "$asn" | grep -q ":$want\$" || missing="$missing $want"
done
printf '%s\n' "$asn" | grep -Eq ':(2\.5\.4\.97|organizationIdentifier)$' || missing="$missing 2.5.4.97"
check "csrattrs: DER parses and names id-ecPublicKey, CN, O, organizationIdentifier" \
    "$([ "$st" = 0 ] && [ -z "$missing" ]; echo $?)" "missing:$missing" "$asn"
# Anonymous without a label (libest cannot send one): what holds for every
# organisation, namely the key algorithms and the subject's attributes.
req csrattrs-anon "$(est_url csrattrs)"
openssl base64 -d -in "$BODY" -out "$W/csrattrs-anon.der" 2>/dev/null
asn=$(openssl asn1parse -inform DER -in "$W/csrattrs-anon.der" 2>&1)
st=$?
missing=
for want in id-ecPublicKey rsaEncryption ED25519 commonName organizationName; do
    printf '%s\n' "$asn" | grep -q ":$want\$" || missing="$missing $want"
done
printf '%s\n' "$asn" | grep -Eq ':(2\.5\.4\.97|organizationIdentifier)$' || missing="$missing 2.5.4.97"
check "csrattrs without a label, anonymous: 200 naming the key algorithms, CN, O, organizationIdentifier" \
    "$([ "$CODE" = 200 ] && [ "$st" = 0 ] && [ -z "$missing" ]; echo $?)" "missing:$missing" "$(last)" "$asn"

# ----------------------------------------------------- 6. error cases
mkcsr err "$ORG_SUBJ/CN=conformance-errors"

req noauth -H 'Content-Type: application/pkcs10' --data-binary "@$W/err.b64" "$(est_url demo/simpleenroll)"
if [ "$CODE" = 401 ] && grep -qix -- "WWW-Authenticate: Basic realm=\"estd\"$CR" "$HDR"; then
    ok "simpleenroll without a client certificate: 401 with a Basic realm=\"estd\" challenge"
else
    fail "simpleenroll without a client certificate: 401 with a Basic realm=\"estd\" challenge" "$(last)"
fi
# Header names go out in their registered spellings, compared byte for byte:
# libest looks the challenge up as "WWW-Authenticate" (RFC 9110 11.6.1) and
# sends credentials only after it, so Title-Case "Www-Authenticate" fails it.
# (Go clients canonicalise received names, so either spelling serves them.)
n=$(curl -sS --max-time 10 -D - -o /dev/null --cacert "$ROOT" --resolve "localhost:$EST_PORT:127.0.0.1" \
    -H 'Content-Type: application/pkcs10' \
    --data-binary "@$W/err.b64" "$(est_url demo/simpleenroll)" | grep -c '^WWW-Authenticate: Basic realm="estd"')
check "401: challenge header spelled exactly 'WWW-Authenticate' (registered spelling)" \
    "$([ "$n" = 1 ] && has_header "$HDR" 'WWW-Authenticate: Basic realm="estd"'; echo $?)" \
    "got: $(grep -i '^www-authenticate:' "$HDR" | tr -d '\r')"

req noauth-problem -H 'Content-Type: application/pkcs10' -H 'Accept: application/problem+json' \
    --data-binary "@$W/err.b64" "$(est_url demo/simpleenroll)"
python3 - "$BODY" >"$W/noauth-problem.check" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == 401 and d["title"] == "Unauthorized" and d["type"] and d["detail"], d
EOF
py_st=$?
check "401 with Accept: application/problem+json: an RFC 9457 document (type, title, status, detail)" \
    "$([ "$CODE" = 401 ] && [ "$py_st" = 0 ] &&
        grep -qix -- "Content-Type: application/problem+json$CR" "$HDR"; echo $?)" \
    "$(last)" "$(cat "$W/noauth-problem.check")"

req wrongtype --cert "$IDM_CERT" --key "$IDM_KEY" \
    -H 'Content-Type: text/plain' --data-binary "@$W/err.b64" "$(est_url demo/simpleenroll)"
check "simpleenroll with Content-Type text/plain: 415" "$([ "$CODE" = 415 ]; echo $?)" "$(last)"

printf '%%%% this is not base64 !!! %%%%\n' >"$W/notb64.txt"
enroll_as_idm notb64 demo/simpleenroll "$W/notb64.txt"
check "simpleenroll with a body that is not base64: 400" "$([ "$CODE" = 400 ]; echo $?)" "$(last)"

mkcsr tamper "$ORG_SUBJ/CN=sigbreak-A"
python3 - "$W/tamper.der" "$W/tampered.der" <<'EOF'
import sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'sigbreak-A')
assert i >= 0, 'marker not found in CSR'
d = d[:i + 9] + b'B' + d[i + 10:]
open(sys.argv[2], 'wb').write(d)
EOF
tamper_st=$?
openssl base64 -e -in "$W/tampered.der" -out "$W/tampered.b64" 2>/dev/null
# (openssl req -verify exits 0 either way in OpenSSL 3.0, so read what it says.)
if [ "$tamper_st" = 0 ] &&
    ! openssl req -inform DER -in "$W/tampered.der" -noout -verify 2>&1 | grep -q 'verify OK'; then
    enroll_as_idm tampered demo/simpleenroll "$W/tampered.b64"
    check "simpleenroll with a CSR whose signature is broken (subject byte changed): 400" \
        "$([ "$CODE" = 400 ]; echo $?)" "$(last)"
else
    fail "simpleenroll with a CSR whose signature is broken (subject byte changed): 400" \
        "could not produce a CSR with a broken signature"
fi

head -c 70000 /dev/zero | tr '\0' 'A' >"$W/big.txt"
enroll_as_idm toolarge demo/simpleenroll "$W/big.txt"
check "simpleenroll with a 70000-byte body: 413" "$([ "$CODE" = 413 ]; echo $?)" "$(last)"

mkcsr foreign-o "/C=DK/O=Another Company A/S/organizationIdentifier=NTRDK-12345674/CN=conformance-foreign"
enroll_as_idm foreign-o demo/simpleenroll "$W/foreign-o.b64"
check "simpleenroll with a CSR naming another organisation (O): 403" "$([ "$CODE" = 403 ]; echo $?)" "$(last)"

mkcsr foreign-oi "/C=DK/O=Demo Organisation ApS/organizationIdentifier=NTRDK-87654311/CN=conformance-foreign"
enroll_as_idm foreign-oi demo/simpleenroll "$W/foreign-oi.b64"
check "simpleenroll with a CSR naming another organisation (organizationIdentifier): 403" \
    "$([ "$CODE" = 403 ]; echo $?)" "$(last)"

req get-enroll --cert "$IDM_CERT" --key "$IDM_KEY" "$(est_url demo/simpleenroll)"
check "GET simpleenroll: 405" "$([ "$CODE" = 405 ]; echo $?)" "$(last)"

req unknown "$(est_url no-such-operation)"
check "unknown path under /.well-known/est/: 404" "$([ "$CODE" = 404 ]; echo $?)" "$(last)"

# ------------------------------------------------ 7. CRLF base64 body
mkcsr crlf "$ORG_SUBJ/CN=conformance-crlf"
sed 's/$/\r/' "$W/crlf.b64" >"$W/crlf.crlf.b64"
if grep -q "$CR\$" "$W/crlf.crlf.b64" && [ "$(wc -l <"$W/crlf.crlf.b64")" -ge 2 ]; then
    enroll_as_idm crlf demo/simpleenroll "$W/crlf.crlf.b64"
    check "simpleenroll with base64 in CRLF-terminated lines: 200" "$([ "$CODE" = 200 ]; echo $?)" "$(last)"
else
    fail "simpleenroll with base64 in CRLF-terminated lines: 200" "could not build a multi-line CRLF body"
fi

# ---------------------------------------------------- 8. chunked upload
mkcsr chunked "$ORG_SUBJ/CN=conformance-chunked"
enroll_as_idm chunked demo/simpleenroll "$W/chunked.b64" -H 'Transfer-Encoding: chunked' -v
sent_chunked=1
grep -qi '^> Transfer-Encoding: chunked' "$CERR" && sent_chunked=0
check "simpleenroll with a chunked body: 200" \
    "$([ "$CODE" = 200 ] && [ "$sent_chunked" = 0 ]; echo $?)" \
    "curl sent Transfer-Encoding: chunked: $([ "$sent_chunked" = 0 ] && echo yes || echo no)" "$(last)"

# ------------------------------------------------------ 9. TLS versions
mkcsr tls12 "$ORG_SUBJ/CN=conformance-tls12"
enroll_as_idm tls12 demo/simpleenroll "$W/tls12.b64" --tls-max 1.2 -v
proto=$(grep -o 'SSL connection using TLSv1\.[0-9]' "$CERR" | head -n1)
check "TLS 1.2-only client (curl --tls-max 1.2) enrols: 200" \
    "$([ "$CODE" = 200 ] && [ "$proto" = 'SSL connection using TLSv1.2' ]; echo $?)" \
    "negotiated: ${proto:-unknown}" "status: $CODE" "$(grep -v '^[<>{}*] *$' "$CERR" | grep -E '^\* (SSL|TLS)|curl:' | head -n 8)"

# openssl s_client, with the client's own floor lowered (security level 0 and
# no system MinProtocol) so that a refusal is the server's doing. A TLS 1.2
# handshake with the same settings is the control.
s_client() {
    OPENSSL_CONF=/dev/null timeout 10 openssl s_client -connect "127.0.0.1:$EST_PORT" \
        -servername localhost -cipher 'DEFAULT:@SECLEVEL=0' "$@" </dev/null 2>&1
}
ctl=$(s_client -tls1_2)
if printf '%s\n' "$ctl" | grep -Eq 'Protocol *: TLSv1\.2'; then
    old_ok=1
    for v in tls1_1 tls1; do
        out=$(s_client "-$v")
        if ! printf '%s\n' "$out" | grep -Eq 'written [1-9][0-9]* bytes'; then
            # The client never sent a ClientHello: says nothing about the server.
            old_ok=0
            fail "openssl s_client -$v: handshake refused" "inconclusive: the client sent nothing" "$out"
        elif printf '%s\n' "$out" | grep -Eq 'Cipher is [A-Z0-9]' ||
            ! printf '%s\n' "$out" | grep -Eq 'Cipher is \(NONE\)|alert|errno|error'; then
            old_ok=0
            fail "openssl s_client -$v: handshake refused" "the server completed a -$v handshake:" "$out"
        fi
    done
    [ "$old_ok" = 1 ] && ok "openssl s_client -tls1_1 and -tls1: handshake refused"
else
    fail "openssl s_client -tls1_1 and -tls1: handshake refused" \
        "control handshake with -tls1_2 did not succeed, so the test proves nothing:" "$ctl"
fi

# ----------------------------------------- 10. empty Basic credentials
mkcsr basic "$ORG_SUBJ/CN=conformance-basic"
enroll_as_idm basic demo/simpleenroll "$W/basic.b64" -H 'Authorization: Basic Og=='
check "simpleenroll with Authorization: Basic Og== and a client cert: 200" \
    "$([ "$CODE" = 200 ]; echo $?)" "$(last)"

# ------------------------------------ 11. one-time code (admin API + EST)
ADMIN_TOKEN=$(tr -d ' \r\n' <"$CERTS/admin-token" 2>/dev/null)
check "admin token file certs/admin-token is there" "$([ -n "$ADMIN_TOKEN" ]; echo $?)"
OTC_TAG=$(date +%s)-$$
OTC_LABEL=conf-otc-$OTC_TAG
OTC_NAME=conformance-otc-$OTC_TAG
OTC_SUBJ="$ORG_SUBJ/CN=$OTC_NAME"
OTC_PROFILE=
OTC_REF=
OTC_CODE=
api otc-profile POST /profiles "$(python3 -c '
import json, sys
print(json.dumps({
    "cvr": "12345674",
    "name": sys.argv[1],
    "kind": "system",
    "contact": {"name": "Conformance Contact", "email": "conformance@demo.example"},
    "identification": "one-time-code",
    "issuance": "est",
    "est_label": sys.argv[2],
    "order": {},
}))' "$OTC_NAME" "$OTC_LABEL")"
OTC_PROFILE=$(jget "$BODY" profile.id)
OTC_REF=$(jget "$BODY" order.reference)
OTC_CODE=$(jget "$BODY" order.code)
check "admin API: POST /profiles (one-time-code, est) with \"order\": {} → 201, reference number and code" \
    "$([ "$CODE" = 201 ] && [ -n "$OTC_PROFILE" ] && [ -n "$OTC_REF" ] && [ -n "$OTC_CODE" ]; echo $?)" \
    "profile id: $OTC_PROFILE" "reference: $OTC_REF" "code present: $([ -n "$OTC_CODE" ] && echo yes || echo no)" "$(last)"
[ -n "$OTC_REF" ] || OTC_REF=none
[ -n "$OTC_CODE" ] || OTC_CODE=none

mkcsr otc1 "$OTC_SUBJ"
# What curl --anyauth relies on: without credentials the server challenges.
req otc-nocreds -H 'Content-Type: application/pkcs10' --data-binary "@$W/otc1.b64" \
    "$(est_url "$OTC_LABEL/simpleenroll")"
if [ "$CODE" = 401 ] && grep -qi '^WWW-Authenticate: *Basic ' "$HDR"; then
    ok "one-time code: simpleenroll without credentials → 401 with a Basic challenge"
else
    fail "one-time code: simpleenroll without credentials → 401 with a Basic challenge" "$(last)"
fi

enroll_with_code otc-collect "$OTC_LABEL" "$OTC_REF:$OTC_CODE" "$W/otc1.b64"
p7_to_pem "$BODY" "$W/otc1.pem"
check "one-time code: collect with curl --user REFERENCE:CODE (no client cert) → 200 with the certificate" \
    "$([ "$CODE" = 200 ] && [ "$(ncerts "$W/otc1.pem")" -ge 1 ]; echo $?)" "$(last)"
out=$(openssl verify -CAfile "$W/chain.pem" "$W/otc1.pem" 2>&1)
check "one-time code: collected certificate verifies against the /cacerts chain" $? "$out"
got=$(subject_of "$W/otc1.pem")
want=$(csr_subject_of "$W/otc1.der")
check "one-time code: collected certificate has the requested subject (CN = profile name)" \
    "$([ -n "$want" ] && [ "$want" = "$got" ]; echo $?)" "requested: $want" "issued:    $got"
OTC1_SERIAL=$(serial_of "$W/otc1.pem")

api otc-order GET "/orders/$OTC_REF"
st=$(jget "$BODY" status)
ser=$(jget "$BODY" serial)
check "admin API: GET /orders/<reference> → issued, serial = openssl x509 -serial" \
    "$([ "$CODE" = 200 ] && [ "$st" = issued ] && [ -n "$OTC1_SERIAL" ] &&
        [ "$(echo "$ser" | tr a-f A-F)" = "$OTC1_SERIAL" ]; echo $?)" \
    "status: $st" "order serial:  $ser" "openssl x509 -serial: $OTC1_SERIAL" "$(last)"

mkcsr otc-again "$OTC_SUBJ"
enroll_with_code otc-again "$OTC_LABEL" "$OTC_REF:$OTC_CODE" "$W/otc-again.b64"
check "one-time code: the same code again → 401" "$([ "$CODE" = 401 ]; echo $?)" "$(last)"

# curl --anyauth end to end, with a second order for the same profile: the
# first request goes without credentials, the 401's Basic challenge makes curl
# send them.
api otc-order2 POST /orders "{\"profile_id\": \"$OTC_PROFILE\"}"
ref2=$(jget "$BODY" reference)
code2=$(jget "$BODY" code)
if [ "$CODE" = 201 ] && [ -n "$ref2" ] && [ -n "$code2" ]; then
    mkcsr otc-any "$OTC_SUBJ"
    enroll_with_code otc-anyauth "$OTC_LABEL" "$ref2:$code2" "$W/otc-any.b64" --anyauth -v
    p7_to_pem "$BODY" "$W/otc-any.pem"
    first=$(grep -m1 '^< HTTP/' "$CERR" | tr -d '\r')
    check "one-time code: curl --anyauth: 401 Basic challenge, then Basic credentials → 200" \
        "$([ "$CODE" = 200 ] && [ "$(ncerts "$W/otc-any.pem")" -ge 1 ] &&
            echo "$first" | grep -q ' 401' &&
            grep -qi '^< WWW-Authenticate: *Basic' "$CERR" &&
            grep -qi '^> Authorization: Basic ' "$CERR"; echo $?)" \
        "first answer: $first" "$(last)" "$(grep -E '^[<>] (HTTP|[Aa]uthorization|[Ww]ww-[Aa]uthenticate)' "$CERR" | sed 's/Basic .*/Basic …/')"
else
    fail "one-time code: curl --anyauth: 401 Basic challenge, then Basic credentials → 200" \
        "could not order a second certificate (POST /orders):" "$(last)"
fi

mkcsr otc2 "$OTC_SUBJ" # same subject, new key
req otc-reenroll --cert "$W/otc1.pem" --key "$W/otc1.key" \
    -H 'Content-Type: application/pkcs10' --data-binary "@$W/otc2.b64" "$(est_url "$OTC_LABEL/simplereenroll")"
p7_to_pem "$BODY" "$W/otc2.pem"
OTC2_SERIAL=$(serial_of "$W/otc2.pem")
check "one-time code: simplereenroll with the collected cert and a new key → 200" \
    "$([ "$CODE" = 200 ] && [ -n "$OTC2_SERIAL" ] && [ "$OTC2_SERIAL" != "$OTC1_SERIAL" ]; echo $?)" \
    "old serial: $OTC1_SERIAL" "new serial: $OTC2_SERIAL" "$(last)"

api otc-revoke POST "/certificates/${OTC2_SERIAL:-none}/revoke" '{"reason":"suspected-misuse"}'
check "admin API: POST /certificates/<serial>/revoke {\"reason\":\"suspected-misuse\"} → 200, revoked" \
    "$([ "$CODE" = 200 ] && [ "$(jget "$BODY" status)" = revoked ]; echo $?)" "$(last)"
mkcsr otc3 "$OTC_SUBJ"
req otc-reenroll-revoked --cert "$W/otc2.pem" --key "$W/otc2.key" \
    -H 'Content-Type: application/pkcs10' --data-binary "@$W/otc3.b64" "$(est_url "$OTC_LABEL/simplereenroll")"
check "simplereenroll with the revoked certificate → 403" "$([ "$CODE" = 403 ]; echo $?)" "$(last)"
api otc-cert GET "/certificates/${OTC2_SERIAL:-none}"
check "admin API: GET /certificates/<serial> shows revoked (suspected-misuse)" \
    "$([ "$CODE" = 200 ] && [ "$(jget "$BODY" status)" = revoked ] &&
        [ "$(jget "$BODY" revocation_reason)" = suspected-misuse ]; echo $?)" "$(last)"

api otc-aeoeaa POST /profiles "$(python3 -c '
import json, sys
print(json.dumps({
    "cvr": "12345674",
    "name": sys.argv[1],
    "kind": "system",
    "contact": {"name": "Søren Ærø", "email": "søren.ærø@demo.example"},
    "identification": "one-time-code",
    "issuance": "est",
    "est_label": sys.argv[2],
}, ensure_ascii=False))' "$OTC_NAME-aeoeaa" "$OTC_LABEL-aeoeaa")"
check "admin API: profile contact e-mail with Æ/Ø/Å → 400, detail says it must be changed first" \
    "$([ "$CODE" = 400 ] && [ "$(jget "$BODY" field)" = contact.email ] &&
        jget "$BODY" detail | grep -q 'must be changed first'; echo $?)" "$(last)"

# ------------- 11a. a user certificate under an API profile (issue 15)
# The administrator orders a user certificate under the demo profile
# (identification api); the IdM system collects it with its own client
# certificate by enrolling, at the profile's label, a CSR naming the user:
# CN = the user's name, the e-mail address as subjectAltName rfc822Name.
USER_NAME="Conformance User $OTC_TAG"
USER_MAIL="conformance.user.$OTC_TAG@demo.example"
api demo-profiles GET "/profiles?cvr=12345674&per_page=500"
DEMO_PROFILE=$(python3 - "$BODY" <<'EOF' 2>/dev/null
import json, sys
def walk(v):
    if isinstance(v, dict):
        if v.get("est_label") == "demo" and "id" in v:
            print(v["id"]); sys.exit(0)
        for x in v.values(): walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
walk(json.load(open(sys.argv[1], encoding='utf-8')))
EOF
)
api user-order POST /orders "$(python3 -c '
import json, sys
print(json.dumps({"profile_id": sys.argv[1], "user": {"name": sys.argv[2], "email": sys.argv[3]}}))' \
    "$DEMO_PROFILE" "$USER_NAME" "$USER_MAIL")"
USER_REF=$(jget "$BODY" reference)
check "admin API: POST /orders for a user under the API profile demo → 201, pending, identification api, no one-time code" \
    "$([ "$CODE" = 201 ] && [ -n "$USER_REF" ] && [ "$(jget "$BODY" status)" = pending ] &&
        [ "$(jget "$BODY" identification)" = api ] && [ -z "$(jget "$BODY" code)" ]; echo $?)" \
    "demo profile: $DEMO_PROFILE" "$(last)"
[ -n "$USER_REF" ] || USER_REF=none

# mkusercsr NAME: a CSR naming the user, with a new P-256 key, in NAME.der/.b64/.key.
mkusercsr() {
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$W/$1.key" -subj "$ORG_SUBJ/CN=$USER_NAME" \
        -addext "subjectAltName=email:$USER_MAIL" \
        -outform DER -out "$W/$1.der" 2>"$W/$1.csrerr" &&
        openssl base64 -e -in "$W/$1.der" -out "$W/$1.b64"
}
mkusercsr user1
enroll_as_idm user-enrol demo/simpleenroll "$W/user1.b64"
p7_to_pem "$BODY" "$W/user1.pem"
openssl x509 -noout -text -in "$W/user1.pem" >"$W/user1.txt" 2>&1
check "API user certificate: curl with the IdM system's client certificate posts an openssl CSR naming the user → 200" \
    "$([ "$CODE" = 200 ] && [ "$(ncerts "$W/user1.pem")" -ge 1 ]; echo $?)" "$(cat "$W/user1.csrerr")" "$(last)"
grep -qF "email:$USER_MAIL" "$W/user1.txt"
check "API user certificate: openssl x509 -text shows the user's e-mail (email:$USER_MAIL)" $? \
    "$(sed -n '/Subject:/p;/Alternative Name/,+1p' "$W/user1.txt")"
USER1_SERIAL=$(serial_of "$W/user1.pem")
api user-order-issued GET "/orders/$USER_REF"
ser=$(jget "$BODY" serial)
check "admin API: GET /orders/<reference> of the user order → issued, serial = openssl x509 -serial" \
    "$([ "$CODE" = 200 ] && [ "$(jget "$BODY" status)" = issued ] && [ -n "$USER1_SERIAL" ] &&
        [ "$(echo "$ser" | tr a-f A-F)" = "$USER1_SERIAL" ]; echo $?)" \
    "order serial: $ser" "openssl x509 -serial: $USER1_SERIAL" "$(last)"
mkusercsr user-again
enroll_as_idm user-again demo/simpleenroll "$W/user-again.b64"
check "API user certificate: the same user again, with no pending order → 403 naming why" \
    "$([ "$CODE" = 403 ] && grep -q 'no pending order' "$BODY"; echo $?)" "$(last)"

# Renewal (issue 15, item 4): the admin API orders it (shown in-progress for
# a user), and re-enrolment with the user certificate fulfils it.
api user-renew POST "/certificates/${USER1_SERIAL:-none}/renew" '{}'
RENEW_REF=$(jget "$BODY" reference)
check "admin API: POST /certificates/<serial>/renew of the API user certificate → 201, in-progress" \
    "$([ "$CODE" = 201 ] && [ -n "$RENEW_REF" ] && [ "$(jget "$BODY" status)" = in-progress ]; echo $?)" "$(last)"
mkusercsr user2
req user-reenroll --cert "$W/user1.pem" --key "$W/user1.key" \
    -H 'Content-Type: application/pkcs10' --data-binary "@$W/user2.b64" "$(est_url demo/simplereenroll)"
p7_to_pem "$BODY" "$W/user2.pem"
USER2_SERIAL=$(serial_of "$W/user2.pem")
api user-renewed GET "/orders/${RENEW_REF:-none}"
check "simplereenroll with the user certificate fulfils the renewal order: issued, serial = openssl x509 -serial" \
    "$([ "$CODE" = 200 ] && [ "$(jget "$BODY" status)" = issued ] && [ -n "$USER2_SERIAL" ] &&
        [ "$(jget "$BODY" serial | tr a-f A-F)" = "$USER2_SERIAL" ] &&
        [ "$(jget "$BODY" renews | tr a-f A-F)" = "$USER1_SERIAL" ]; echo $?)" \
    "renewed serial: $USER2_SERIAL" "$(last)"

# ------------------------------- 11b. serverkeygen (RFC 7030 4.4, curl)
# split_keygen TAG: splits TAG's multipart answer into TAG.key.der (PKCS#8)
# and TAG.p7.b64; prints the parts that lack Content-Transfer-Encoding: base64.
split_keygen() {
    python3 - "$W/$1.hdr" "$W/$1.body" "$W/$1" <<'EOF' 2>&1
import base64, re, sys
head = open(sys.argv[1], encoding='latin-1').read()
m = re.search(r'(?im)^content-type:\s*multipart/mixed;\s*boundary="?([^";\r\n]+)', head)
if not m:
    print('not multipart/mixed'); sys.exit(0)
body = open(sys.argv[2], encoding='latin-1', newline='').read()  # keep the CRLFs
for part in body.split('--' + m.group(1))[1:]:
    if part.startswith('--'):
        break
    headers, blank, data = part.lstrip('\r\n').partition('\r\n\r\n')
    if not blank:
        print('a part without a blank line after its headers'); continue
    lines = [l.strip().lower() for l in headers.split('\r\n')]
    if 'content-transfer-encoding: base64' not in lines:
        print('a part without Content-Transfer-Encoding: base64: ' + ' | '.join(lines))
    raw = base64.b64decode(''.join(data.split()))
    if 'content-type: application/pkcs8' in lines:
        open(sys.argv[3] + '.key.der', 'wb').write(raw)
    elif any(l.startswith('content-type: application/pkcs7-mime') for l in lines):
        b64 = base64.b64encode(raw).decode()  # in 64-column lines, as openssl base64 -d wants
        open(sys.argv[3] + '.p7.b64', 'w').write(''.join(b64[i:i + 64] + '\n' for i in range(0, len(b64), 64)))
EOF
}

KG_NAME=conformance-keygen-$OTC_TAG
KG_LABEL=conf-keygen-$OTC_TAG
api kg-profile POST /profiles "$(python3 -c '
import json, sys
print(json.dumps({
    "cvr": "12345674",
    "name": sys.argv[1],
    "kind": "system",
    "contact": {"name": "Conformance Contact", "email": "conformance@demo.example"},
    "identification": "one-time-code",
    "issuance": "browser",
    "est_label": sys.argv[2],
    "order": {},
}))' "$KG_NAME" "$KG_LABEL")"
KG_PROFILE=$(jget "$BODY" profile.id)
KG_REF=$(jget "$BODY" order.reference)
KG_CODE=$(jget "$BODY" order.code)
check "admin API: a one-time-code profile with issuance browser, and an order → 201" \
    "$([ "$CODE" = 201 ] && [ -n "$KG_REF" ] && [ -n "$KG_CODE" ]; echo $?)" "$(last)"

# libest's kind of CSR: only a CN, and an RSA key.
openssl req -new -newkey rsa:2048 -nodes -keyout "$W/kg-cn.throwaway.key" -subj "/CN=$KG_NAME" \
    -outform DER -out "$W/kg-cn.der" 2>/dev/null && openssl base64 -e -in "$W/kg-cn.der" -out "$W/kg-cn.b64"
req kg-cn --user "$KG_REF:$KG_CODE" -H 'Content-Type: application/pkcs10' \
    --data-binary "@$W/kg-cn.b64" "$(est_url "$KG_LABEL/serverkeygen")"
bad_parts=$(split_keygen kg-cn)
p7_to_pem "$W/kg-cn.p7.b64" "$W/kg-cn.pem"
check "serverkeygen with a CN-only RSA CSR: 200 multipart/mixed, each part with Content-Transfer-Encoding: base64" \
    "$([ "$CODE" = 200 ] && [ -z "$bad_parts" ] && [ -s "$W/kg-cn.key.der" ] && [ "$(ncerts "$W/kg-cn.pem")" = 1 ]; echo $?)" \
    "$bad_parts" "$(last)"
got=$(subject_of "$W/kg-cn.pem")
check "serverkeygen, CN-only CSR: the certificate's subject has O and organizationIdentifier from the order" \
    "$(printf '%s' "$got" | grep -q "O=Demo Organisation ApS" &&
        printf '%s' "$got" | grep -Eq '(2\.5\.4\.97|organizationIdentifier)=(#[0-9A-Fa-f]+|NTRDK-12345674)' &&
        printf '%s' "$got" | grep -q "CN=$KG_NAME"; echo $?)" "issued: $got"
out=$(openssl verify -CAfile "$W/chain.pem" "$W/kg-cn.pem" 2>&1)
check "serverkeygen: the certificate verifies against the /cacerts chain" $? "$out"
keytext=$(openssl pkey -inform DER -in "$W/kg-cn.key.der" -noout -text 2>&1 | head -1)
keypub=$(openssl pkey -inform DER -in "$W/kg-cn.key.der" -pubout 2>/dev/null)
certpub=$(openssl x509 -noout -pubkey -in "$W/kg-cn.pem" 2>/dev/null)
check "serverkeygen, RSA CSR: an RSA-2048 PKCS#8 key that is the certificate's" \
    "$(printf '%s' "$keytext" | grep -q '2048 bit' && [ -n "$keypub" ] && [ "$keypub" = "$certpub" ]; echo $?)" \
    "key: $keytext"

# A CSR whose signature does not verify: the server must ignore it (4.4.1).
api kg-order2 POST /orders "{\"profile_id\": \"$KG_PROFILE\"}"
kg_ref2=$(jget "$BODY" reference)
kg_code2=$(jget "$BODY" code)
mkcsr kg-bad "$ORG_SUBJ/CN=$KG_NAME"
python3 - "$W/kg-bad.der" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[-3] ^= 0x5a  # inside the signature
open(sys.argv[1], 'wb').write(b)
EOF
openssl base64 -e -in "$W/kg-bad.der" -out "$W/kg-bad.b64"
# (openssl 3.0 exits 0 either way; its message tells.)
sig_out=$(openssl req -inform DER -in "$W/kg-bad.der" -noout -verify 2>&1)
printf '%s' "$sig_out" | grep -q 'verify failure'
sig_bad=$?
req kg-bad --user "${kg_ref2:-none}:${kg_code2:-none}" -H 'Content-Type: application/pkcs10' \
    --data-binary "@$W/kg-bad.b64" "$(est_url "$KG_LABEL/serverkeygen")"
bad_parts=$(split_keygen kg-bad)
p7_to_pem "$W/kg-bad.p7.b64" "$W/kg-bad.pem"
keypub=$(openssl pkey -inform DER -in "$W/kg-bad.key.der" -pubout 2>/dev/null)
certpub=$(openssl x509 -noout -pubkey -in "$W/kg-bad.pem" 2>/dev/null)
check "serverkeygen with a badly signed CSR (openssl req -verify fails): 200, a key and its certificate" \
    "$([ "$sig_bad" = 0 ] && [ "$CODE" = 200 ] && [ -z "$bad_parts" ] && [ -n "$keypub" ] && [ "$keypub" = "$certpub" ]; echo $?)" \
    "openssl req -verify: $sig_out" "$bad_parts" "$(last)"

# ------------- 11c. seal, encryption and policies; csrattrs as a template
# What a certificate carries (issue 15): a system certificate its policy and
# no Non Repudiation; a seal Non Repudiation and the seal policy; and
# /csrattrs as an RFC 9908 template to a client that asks for it.
grep -q 'Policy: 1.3.6.1.5.5.7.13.1' "$W/dev1.txt" && ! grep -q 'Non Repudiation' "$W/dev1.txt"
check "system certificate: certificatePolicies 1.3.6.1.5.5.7.13.1 (system), no Non Repudiation" $? \
    "$(sed -n '/X509v3 extensions/,$p' "$W/dev1.txt" | head -30)"
SEAL_LABEL=conf-seal-$OTC_TAG
api seal-allow PATCH /organisations/12345674 '{"allow_seal": true}'
check "admin API: PATCH /organisations/12345674 {\"allow_seal\": true} → 200" \
    "$([ "$CODE" = 200 ]; echo $?)" "$(last)"
api seal-profile POST /profiles "{\"cvr\": \"12345674\", \"name\": \"Conformance seal\",
    \"kind\": \"organisation\", \"seal\": true,
    \"contact\": {\"name\": \"Conformance Contact\", \"email\": \"conformance@demo.example\"},
    \"identification\": \"api\", \"issuance\": \"est\", \"est_label\": \"$SEAL_LABEL\"}"
check "admin API: POST /profiles (organisation, seal) → 201" "$([ "$CODE" = 201 ]; echo $?)" "$(last)"
mkcsr seal1 "$ORG_SUBJ/CN=conformance-seal"
enroll_as_idm seal-enroll "$SEAL_LABEL/simpleenroll" "$W/seal1.b64"
p7_to_pem "$BODY" "$W/seal1.pem"
openssl x509 -noout -text -in "$W/seal1.pem" >"$W/seal1.txt" 2>&1
[ "$CODE" = 200 ] &&
    grep -A1 'X509v3 Key Usage: critical' "$W/seal1.txt" | grep -q 'Digital Signature, Non Repudiation' &&
    ! grep -q 'Key Agreement' "$W/seal1.txt" && grep -q 'Policy: 1.3.6.1.5.5.7.13.4' "$W/seal1.txt"
check "seal: simpleenroll → openssl x509 -text shows Digital Signature, Non Repudiation (no Key Agreement) and the seal policy 1.3.6.1.5.5.7.13.4" \
    $? "$(last)" "$(sed -n '/X509v3 extensions/,$p' "$W/seal1.txt" | head -30)"

# csrattrs: today's answer unless the client asks for the template.
req seal-attrs --cert "$IDM_CERT" --key "$IDM_KEY" "$(est_url "$SEAL_LABEL/csrattrs")"
openssl base64 -d -in "$BODY" -out "$W/seal-attrs.der" 2>/dev/null
asn=$(openssl asn1parse -inform DER -in "$W/seal-attrs.der" 2>&1)
check "csrattrs without Accept: today's answer (id-ecPublicKey, no RFC 9908 template), Vary: Accept" \
    "$([ "$CODE" = 200 ] && has_header "$HDR" 'Vary: Accept' &&
        printf '%s\n' "$asn" | grep -q ':id-ecPublicKey$' &&
        ! printf '%s\n' "$asn" | grep -q '1\.2\.840\.113549\.1\.9\.16\.2\.61'; echo $?)" "$(last)" "$asn"
req seal-template --cert "$IDM_CERT" --key "$IDM_KEY" \
    -H 'Accept: application/csrattrs; template=rfc9908' "$(est_url "$SEAL_LABEL/csrattrs")"
openssl base64 -d -in "$BODY" -out "$W/seal-template.der" 2>/dev/null
asn=$(openssl asn1parse -inform DER -in "$W/seal-template.der" 2>&1)
st=$?
missing=
for want in '1\.2\.840\.113549\.1\.9\.16\.2\.61' ':countryName$' ':organizationName$' \
    ':Demo Organisation ApS$' ':NTRDK-12345674$' ':commonName$' ':id-ecPublicKey$' ':prime256v1$' \
    ':Extension Request$' ':X509v3 Key Usage$' ':X509v3 Extended Key Usage$' \
    ':X509v3 Certificate Policies$'; do
    printf '%s\n' "$asn" | grep -Eq "$want" || missing="$missing $want"
done
check "csrattrs with Accept: application/csrattrs; template=rfc9908 → openssl asn1parse: RFC 9908 template (1.2.840.113549.1.9.16.2.61) with subject, P-256 key, keyUsage, EKU, policies" \
    "$([ "$CODE" = 200 ] && [ "$st" = 0 ] && [ -z "$missing" ] &&
        has_header "$HDR" 'Content-Type: application/csrattrs'; echo $?)" "missing:$missing" "$(last)" "$asn"
# The policy inside the template's certificatePolicies value.
pol=$(printf '%s\n' "$asn" | grep -B1 ':X509v3 Certificate Policies$' >/dev/null &&
    openssl asn1parse -inform DER -in "$W/seal-template.der" -strparse \
        "$(printf '%s\n' "$asn" | grep -A1 ':X509v3 Certificate Policies$' | tail -1 | sed 's/^ *\([0-9]*\):.*/\1/')" 2>&1)
check "csrattrs template: its certificatePolicies value names the seal policy 1.3.6.1.5.5.7.13.4" \
    "$(printf '%s\n' "$pol" | grep -q ':1\.3\.6\.1\.5\.5\.7\.13\.4$'; echo $?)" "$pol"
# A CSR asking for exactly what the template names is issued.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/seal2.key" \
    -subj "$ORG_SUBJ/CN=conformance-seal-template" \
    -addext 'keyUsage=critical,digitalSignature,nonRepudiation' \
    -addext 'extendedKeyUsage=clientAuth,emailProtection' \
    -addext 'certificatePolicies=1.3.6.1.5.5.7.13.4' \
    -outform DER -out "$W/seal2.der" 2>"$W/seal2.csrerr" &&
    openssl base64 -e -in "$W/seal2.der" -out "$W/seal2.b64"
enroll_as_idm seal-template-enroll "$SEAL_LABEL/simpleenroll" "$W/seal2.b64"
check "seal: a CSR asking for the template's keyUsage, EKU and policy (openssl req -addext) → 200" \
    "$([ "$CODE" = 200 ]; echo $?)" "$(last)" "$(cat "$W/seal2.csrerr")"

# --------------------------------------------------- 12. CRL and OCSP
cp "${CACERTS_ISSUING:-/dev/null}" "$W/issuing.pem"
crl_fetch crl
CRL_NUMBER=$(crl_number "$W/crl.txt")
check "CRL: GET /crl/issuing-ca.crl → 200, openssl crl -inform DER -text parses it, with a CRL Number" \
    "$([ "$CODE" = 200 ] && [ -n "$CRL_NUMBER" ]; echo $?)" \
    "status: $CODE" "CRL Number: ${CRL_NUMBER:-none}" "$(head -n 20 "$W/crl.txt")"

# The URLs in a certificate follow the public listener (here a port the
# kernel chose); caIssuers serves the issuing CA (DER), and with it alone a
# relying party holding only the root verifies the leaf.
aia=$(openssl x509 -in "$W/dev1.pem" -noout -ext authorityInfoAccess,crlDistributionPoints 2>&1)
issuers_url=$(printf '%s\n' "$aia" | sed -n 's/^ *CA Issuers - URI://p')
req aia-issuer "$issuers_url"
openssl x509 -inform DER -in "$BODY" -out "$W/aia-issuer.pem" 2>/dev/null
out=$(openssl verify -CAfile "$ROOT" -untrusted "$W/aia-issuer.pem" "$W/dev1.pem" 2>&1)
check "AIA caIssuers and CRL DP name the public listener as bound; GET caIssuers (curl) → the issuing CA, DER; openssl verify with it → OK" \
    "$(printf '%s\n' "$aia" | grep -q "URI:$(public_url /crl/issuing-ca.crl)\$" &&
        [ "$issuers_url" = "$(public_url /ca/issuing-ca.crt)" ] && [ "$CODE" = 200 ] &&
        printf '%s\n' "$out" | grep -q ': OK$'; echo $?)" \
    "$aia" "status: $CODE" "$out"

ocsp_query "$W/ocsp-good.out" -cert "$W/dev1.pem" -resp_text
grep -q "^$W/dev1.pem: good\$" "$W/ocsp-good.out" &&
    grep -q '^Response verify OK' "$W/ocsp-good.out" &&
    ! grep -qiE 'no nonce|nonce verify error' "$W/ocsp-good.out" &&
    grep -q 'OCSP Nonce' "$W/ocsp-good.out"
check "OCSP (POST, openssl ocsp): good device certificate → good, Response verify OK, nonce echoed" $? \
    "$(cat "$W/ocsp-good.out")"

ocsp_query "$W/ocsp-revoked.out" -cert "$W/otc2.pem"
grep -q "^$W/otc2.pem: revoked\$" "$W/ocsp-revoked.out" && grep -q '^Response verify OK' "$W/ocsp-revoked.out"
check "OCSP: the certificate revoked through the admin API → revoked" $? "$(cat "$W/ocsp-revoked.out")"

out=$(openssl verify -crl_check -CAfile "$W/chain.pem" -CRLfile "$W/crl.pem" "$W/otc2.pem" 2>&1)
st=$?
check "CRL: openssl verify -crl_check fails the revoked certificate with \"certificate revoked\"" \
    "$([ "$st" != 0 ] && printf '%s\n' "$out" | grep -q 'certificate revoked'; echo $?)" "$out"
out=$(openssl verify -crl_check -CAfile "$W/chain.pem" -CRLfile "$W/crl.pem" "$W/dev1.pem" 2>&1)
check "CRL: openssl verify -crl_check passes a good certificate" $? "$out"
crl_lists "$W/crl.txt" "$OTC2_SERIAL"
check "CRL: lists the revoked serial" $? "serial: $OTC2_SERIAL" "$(sed -n '/Revoked Certificates/,/Signature Algorithm/p' "$W/crl.txt" | head -20)"

# RFC 6960 A.1 GET form: base64 of the DER request, URL-escaped, in the path.
rm -f "$W/ocsp-req.der"
openssl ocsp -issuer "$W/issuing.pem" -cert "$W/dev1.pem" -no_nonce -reqout "$W/ocsp-req.der" >/dev/null 2>&1
b64=$(openssl base64 -A -in "$W/ocsp-req.der" 2>/dev/null | sed -e 's/+/%2B/g' -e 's#/#%2F#g' -e 's/=/%3D/g')
if [ -s "$W/ocsp-req.der" ] && [ -n "$b64" ]; then
    req ocsp-get "$(public_url "/ocsp/$b64")"
    cp "$BODY" "$W/ocsp-get.der"
    timeout 15 openssl ocsp -respin "$W/ocsp-get.der" -issuer "$W/issuing.pem" -cert "$W/dev1.pem" \
        -CAfile "$W/chain.pem" -no_nonce >"$W/ocsp-get.out" 2>&1
    check "OCSP GET /ocsp/<url-escaped base64>: 200 application/ocsp-response, Cache-Control, good" \
        "$([ "$CODE" = 200 ] && has_header "$HDR" 'Content-Type: application/ocsp-response' &&
            grep -qi '^Cache-Control: ' "$HDR" &&
            grep -q "^$W/dev1.pem: good\$" "$W/ocsp-get.out" &&
            grep -q '^Response verify OK' "$W/ocsp-get.out"; echo $?)" \
        "status: $CODE" "headers:" "$(tr -d '\r' <"$HDR")" "$(cat "$W/ocsp-get.out")"
else
    fail "OCSP GET /ocsp/<url-escaped base64>: 200 application/ocsp-response, Cache-Control, good" \
        "openssl ocsp -reqout wrote no request"
fi

ocsp_query "$W/ocsp-unknown.out" -serial 0x4000000000000000000000000000beef
grep -q '^0x4000000000000000000000000000beef: unknown$' "$W/ocsp-unknown.out"
check "OCSP: a serial never issued → unknown" $? "$(cat "$W/ocsp-unknown.out")"

req ocsp-garbage --data-binary 'garbage' -H 'Content-Type: application/ocsp-request' "$(public_url /ocsp)"
cp "$BODY" "$W/ocsp-garbage.der"
out=$(openssl ocsp -respin "$W/ocsp-garbage.der" -resp_text -noverify 2>&1)
check "OCSP: POST of garbage → response status malformedRequest" \
    "$(printf '%s\n' "$out" | grep -qi 'malformedRequest'; echo $?)" \
    "status: $CODE" "$out"

# --------------------------------------------------------- 13. restart
stop_server
check "server exits 0 on SIGTERM" "$([ "$STOP_STATUS" = 0 ]; echo $?)" \
    "exit status: $STOP_STATUS" "$(tail -n 10 "$SERVER_ERR")"
if start_server; then
    ok "server restarts on the same certs and data dirs (est=$EST_PORT admin=$ADMIN_PORT)"
    mkcsr dev3 "$DEV_SUBJ"
    req reenroll-after-restart --cert "$W/dev2.pem" --key "$W/dev2.key" \
        -H 'Content-Type: application/pkcs10' --data-binary "@$W/dev3.b64" "$(est_url demo/simplereenroll)"
    p7_to_pem "$BODY" "$W/dev3.pem"
    check "after restart: the renewed device certificate reenrols (it was persisted): 200" \
        "$([ "$CODE" = 200 ] && [ "$(ncerts "$W/dev3.pem")" -ge 1 ]; echo $?)" "$(last)"
    req cacerts-after-restart "$(est_url cacerts)"
    p7_to_pem "$BODY" "$W/chain2.pem"
    rm -f "$W"/cacert2-*.pem
    split_pem "$W/chain2.pem" "$W/cacert2-"
    same=1
    for f in "$W"/cacert2-*.pem; do
        [ -e "$f" ] && [ "$(fp "$f")" = "$ROOT_FP" ] && same=0
    done
    check "after restart: /cacerts holds the same root" \
        "$([ "$CODE" = 200 ] && [ "$same" = 0 ] && [ "$(fp "$ROOT")" = "$ROOT_FP" ]; echo $?)" "$(last)"

    # CRL and OCSP from the restarted server (its new public port).
    crl_fetch crl-after-restart
    n2=$(crl_number "$W/crl-after-restart.txt")
    check "after restart: CRL Number has not gone down (before: ${CRL_NUMBER:-none}, now: ${n2:-none})" \
        "$([ "$CODE" = 200 ] && [ -n "$n2" ] && [ -n "$CRL_NUMBER" ] && [ "$n2" -ge "$CRL_NUMBER" ]; echo $?)" \
        "status: $CODE" "$(head -n 20 "$W/crl-after-restart.txt")"
    crl_lists "$W/crl-after-restart.txt" "$OTC2_SERIAL"
    check "after restart: the CRL still lists the revoked serial" $? "serial: $OTC2_SERIAL" \
        "$(sed -n '/Revoked Certificates/,/Signature Algorithm/p' "$W/crl-after-restart.txt" | head -20)"
    ocsp_query "$W/ocsp-revoked-2.out" -cert "$W/otc2.pem"
    grep -q "^$W/otc2.pem: revoked\$" "$W/ocsp-revoked-2.out" && grep -q '^Response verify OK' "$W/ocsp-revoked-2.out"
    check "after restart: OCSP still says revoked" $? "$(cat "$W/ocsp-revoked-2.out")"

    # ----------------------------------------------------- 14. metrics
    MCODE=$(curl -sS --max-time 10 --cacert "$ROOT" -o "$W/metrics.txt" -w '%{http_code}' \
        "https://127.0.0.1:$ADMIN_PORT/metrics" 2>"$W/metrics.err")
    missing=
    for m in estd_certificates_issued_total estd_http_requests_total; do
        grep -q "^$m" "$W/metrics.txt" 2>/dev/null || missing="$missing $m"
    done
    check "admin /metrics: 200 with estd_certificates_issued_total and estd_http_requests_total" \
        "$([ "$MCODE" = 200 ] && [ -z "$missing" ]; echo $?)" \
        "status: $MCODE" "missing:$missing" "$(cat "$W/metrics.err")" "$(head -n 30 "$W/metrics.txt")"
else
    fail "server restarts on the same certs and data dirs"
fi

# ------------------------------------------ 15. rate limits (429)
# Restart with tiny limits for anonymous callers: 2 at once, then one per 100 s.
stop_server
cat >>"$TMP/estd.toml" <<EOF

[rate_limit.ip]
per_second = 0.01
burst = 2
EOF
if start_server; then
    req rl-1 "$(est_url cacerts)"
    c1=$CODE
    req rl-2 "$(est_url cacerts)"
    c2=$CODE
    req rl-3 "$(est_url cacerts)"
    retry=$(grep -i '^Retry-After:' "$HDR" | tr -d '\r' | sed 's/^[^:]*: *//')
    check "rate limit: anonymous /cacerts past the burst (200, 200, then 429 with Retry-After in whole seconds >= 1)" \
        "$([ "$c1" = 200 ] && [ "$c2" = 200 ] && [ "$CODE" = 429 ] &&
            [ "$retry" -ge 1 ] 2>/dev/null; echo $?)" "first two: $c1 $c2" "$(last)"
    req rl-4 -H 'Accept: application/problem+json' "$(est_url cacerts)"
    python3 - "$BODY" >"$W/rl-4.check" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == 429 and d["type"] and d["title"] and d["detail"], d
assert isinstance(d["retryAfter"], int) and d["retryAfter"] >= 1, d
EOF
    py_st=$?
    retry=$(grep -i '^Retry-After:' "$HDR" | tr -d '\r' | sed 's/^[^:]*: *//')
    check "rate limit: 429 as application/problem+json carries retryAfter and Retry-After" \
        "$([ "$CODE" = 429 ] && [ "$py_st" = 0 ] && [ "$retry" -ge 1 ] 2>/dev/null &&
            grep -qix -- "Content-Type: application/problem+json$CR" "$HDR"; echo $?)" \
        "$(last)" "$(cat "$W/rl-4.check")"
    enroll_as_idm rl-idm demo/simpleenroll "$W/dev1.b64"
    check "rate limit: the IdM system (counted by its certificate) is not affected: 200" \
        "$([ "$CODE" = 200 ]; echo $?)" "$(last)"
    MCODE=$(curl -sS --max-time 10 --cacert "$ROOT" -o "$W/metrics2.txt" -w '%{http_code}' \
        "https://127.0.0.1:$ADMIN_PORT/metrics" 2>"$W/metrics2.err")
    check "rate limit: /metrics counts the refusals as estd_rate_limited_total{kind=\"ip\"} 2" \
        "$([ "$MCODE" = 200 ] && grep -qx 'estd_rate_limited_total{kind="ip"} 2' "$W/metrics2.txt"; echo $?)" \
        "status: $MCODE" "$(grep estd_rate_limited "$W/metrics2.txt")"
else
    fail "server restarts with tiny rate limits"
fi

stop_server
summary
