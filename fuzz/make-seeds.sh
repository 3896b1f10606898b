#!/usr/bin/env bash
# Regenerates the seed corpus under fuzz/corpus/ with openssl: real DER CSRs,
# real EST bodies (base64 with CRLF or LF, PEM, binary), real OCSP requests,
# Basic headers and admin JSON bodies. Keys and the throwaway CA live in a
# temp dir that is removed at the end: CSRs and OCSP requests hold only
# public keys and hashes, and no private key is ever written under fuzz/.
#
# Usage: fuzz/make-seeds.sh   (overwrites the seeds it makes; other files stay)
set -euo pipefail
cd "$(dirname "$0")"
corpus="$PWD/corpus"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$corpus"/{csr,est_body,basic_auth,ocsp_request,admin_json}

org="/C=DK/O=Demo Organisation ApS/organizationIdentifier=NTRDK-12345674"

# csr: name, key options, subject, extra req arguments.
csr() {
    local name=$1 keyopts=$2 subj=$3
    shift 3
    # shellcheck disable=SC2086
    openssl genpkey $keyopts -out "$work/$name.key" 2>/dev/null
    openssl req -new -key "$work/$name.key" -subj "$subj" -utf8 "$@" \
        -outform DER -out "$corpus/csr/$name.der"
    openssl req -new -key "$work/$name.key" -subj "$subj" -utf8 "$@" -out "$work/$name.pem"
}
csr p256-demo "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" "$org/CN=device-1" \
    -addext "subjectAltName=DNS:device-1.devices.demo.example"
csr p384-usages "-algorithm EC -pkeyopt ec_paramgen_curve:P-384" "$org/CN=device-2" \
    -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=clientAuth" \
    -addext "basicConstraints=CA:FALSE" -sha384
# openssl takes attributes from a config file only when the file gives the subject too.
cat >"$work/challenge.cnf" <<'CNF'
[req]
prompt = no
utf8 = yes
distinguished_name = dn
attributes = attrs
[dn]
C = DK
O = Demo Organisation ApS
organizationIdentifier = NTRDK-12345674
CN = device-3
[attrs]
challengePassword = ABCD-1234-EFGH
CNF
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key" 2>/dev/null
openssl req -new -key "$work/rsa.key" -config "$work/challenge.cnf" -outform DER \
    -out "$corpus/csr/rsa2048-challenge.der"
openssl req -new -key "$work/rsa.key" -config "$work/challenge.cnf" -out "$work/rsa2048-challenge.pem"
csr ed25519-min "-algorithm ED25519" "$org/CN=Demo devices"
csr p256-ip-email "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" "$org/CN=idm" \
    -addext "subjectAltName=DNS:idm.demo.example,IP:127.0.0.1,email:idm@demo.example"
csr p256-foreign "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" \
    "/C=DK/O=Other ApS/organizationIdentifier=NTRDK-87654311/CN=device-1"
csr p256-user "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" \
    "$org/CN=Jens Hansen/emailAddress=jens@demo.example" \
    -addext "subjectAltName=email:jens@demo.example"
csr p256-utf8 "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" "$org/CN=Ærø Åbenrå" \
    -addext "subjectAltName=DNS:aero.devices.demo.example,DNS:*.devices.demo.example"
csr rsa3072-sha512 "-algorithm RSA -pkeyopt rsa_keygen_bits:3072" "$org/serialNumber=42/CN=device-4" -sha512
csr p256-ca-true "-algorithm EC -pkeyopt ec_paramgen_curve:P-256" "$org/CN=sub-ca" \
    -addext "basicConstraints=critical,CA:TRUE"

# est_body: byte 0 headers, byte 1 chunk count, chunk lengths, then the body
# (see fuzz_targets/est_body.rs).
body() {
    local name=$1 header=$2 file=$3
    { printf "$header"; cat "$file"; } >"$corpus/est_body/$name"
}
base64 -w 64 "$corpus/csr/p256-demo.der" | sed 's/$/\r/' >"$work/crlf.b64"
base64 -w 64 "$corpus/csr/rsa2048-challenge.der" >"$work/lf.b64"
base64 -w 0 "$corpus/csr/ed25519-min.der" | tr -d '=' >"$work/unpadded.b64"
body crlf-plain '\x00\x00' "$work/crlf.b64"
body lf-base64-chunked '\x01\x02\x11\x40' "$work/lf.b64"
body pem-length-slow '\x29\x03\x05\x00\xff' "$work/p256-utf8.pem"
body binary-length '\x0a\x01\x20' "$corpus/csr/p384-usages.der"
body unpadded '\x00\x00' "$work/unpadded.b64"
body binary-upper-spaced '\x0b\x02\x01\x01' "$corpus/csr/ed25519-min.der"
body crlf-params-type '\x41\x00' "$work/crlf.b64"
body lf-7bit-type-semicolon '\x85\x00' "$work/lf.b64"
body wrong-type '\xc0\x00' "$work/crlf.b64"
body declared-too-large '\x10\x00' "$work/crlf.b64"

# basic_auth: Authorization header values.
b() { printf '%s' "$2" >"$corpus/basic_auth/$1"; }
b64() { printf '%s' "$1" | base64 -w 0; }
b reference-code "Basic $(b64 '123456789012:ABCD-1234-EFGH')"
b empty "Basic Og=="
b spaces "basic   $(b64 'user:pass')  "
b colon-in-password "Basic $(b64 'user:pa:ss')"
b utf8 "Basic $(b64 'Æblegrød:kode')"
b unpadded "Basic $(b64 'ab:c' | tr -d '=')"
b bearer "Bearer estd_abcdefghijklmnopqrstuvwxyz0123456749ABCDEFG"
printf 'Basic \xff\xfe' >"$corpus/basic_auth/not-utf8"

# ocsp_request: a throwaway CA and leaf; small serials name stored
# certificates after the target's rewrite (see fuzz_targets/ocsp_request.rs).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
    -subj "/C=DK/O=estd/CN=estd Issuing CA" -days 1 -out "$work/ca.pem" 2>/dev/null
o() { local name=$1; shift; openssl ocsp -issuer "$work/ca.pem" "$@" -reqout "$corpus/ocsp_request/$name" >/dev/null; }
o sha1-nonce -serial 1
o sha1-no-nonce -serial 2 -no_nonce
o sha256 -sha256 -serial 3 -no_nonce
o three -serial 1 -serial 2 -serial 0x7f2e9a0c11d4b6e8a5f3c2d1e0f9a8b7
o big-serial -serial 0x5a3f0e2d1c4b6a7988776655443322ff -no_nonce
openssl ocsp -issuer "$work/ca.pem" -serial 1 -no_nonce -reqout "$work/get.der" >/dev/null
# The GET form: base64, URL-encoded, as a path.
base64 -w 0 "$work/get.der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g' >"$corpus/ocsp_request/get-path"

# admin_json: one body per call.
j() { printf '%s\n' "$2" >"$corpus/admin_json/$1.json"; }
j create-organisation '{"cvr":"87654311","name":"Ny Organisation ApS","allow_user_certs":true,"allow_seal":false,"p_numbers":["1012345678"],"se_numbers":["87654311"]}'
j update-organisation '{"name":"Demo Organisation ApS","allow_seal":true,"p_numbers":[]}'
j create-token '{"name":"idm-integration"}'
j create-profile '{"name":"Sensors","kind":"system","contact":{"name":"Jens Hansen","email":"jens@demo.example"},"identification":"api","issuance":"est","est_label":"sensors","rights":["est-enroll"],"key_policy":{"allowed":["p256","rsa"],"min_rsa_bits":3072},"validity_days":365,"dns_names":[".sensors.demo.example"],"p_number":"1012345678","order":{"user":null}}'
j create-profile-user-order '{"cvr":"12345674","name":"Medarbejdere","kind":"organisation","contact":{"name":"Jens Hansen","email":"jens@demo.example"},"email":"post@demo.example","identification":"one-time-code","issuance":"browser","est_label":"staff","order":{"user":{"name":"Åse Ørum","email":"ase@demo.example"}}}'
j update-profile '{"email":null,"p_number":null,"se_number":"87654311","dns_names":["idm.demo.example",".x.demo.example"],"allow_ip_sans":true,"approval_required":true,"kind":"system","est_label":"demo-idm"}'
j create-order '{"profile_id":"00000000-0000-4000-8000-000000000002","user":{"name":"Jens Hansen","email":"jens@demo.example"},"identification":"one-time-code","issuance":"est"}'
j revoke '{"reason":"superseded"}'
j revoke-blocked '{"reason":"blocked"}'
j no-fields '{}'
printf '%s' 'q=demo%40x&cvr=12345674&page=2&per_page=50' >"$corpus/admin_json/query"

echo "seeds written to $corpus"
