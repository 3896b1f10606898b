#!/usr/bin/env bash
# Builds target/debian/estd_<version>_<arch>.deb with cargo-deb: the release
# binary, its man page and shell completions (generated from the command
# definition), the package configuration and the systemd unit.
# Needs cargo-deb (cargo install cargo-deb --locked).
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin estd
mkdir -p target/deb-assets
estd="$target/release/estd"
"$estd" man | gzip -9n > target/deb-assets/estd.1.gz
"$estd" completions bash > target/deb-assets/estd.bash
"$estd" completions zsh > target/deb-assets/_estd
"$estd" completions fish > target/deb-assets/estd.fish
cargo deb --no-build
ls -1 "$target"/debian/estd_*.deb
