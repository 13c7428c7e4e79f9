#!/usr/bin/env bash
# Installs cargo-fuzz (the libFuzzer driver for cargo) into the project cache, once:
# ${FLINT_CACHE_DIR:-/var/cache/flint}/cargo-fuzz/bin/cargo-fuzz. A second run does
# nothing. The fuzz targets themselves are built with the `nightly` toolchain (rustup),
# which cargo-fuzz needs for -Zsanitizer=address.
set -euo pipefail
version=0.13.2
root="${FLINT_CACHE_DIR:-/var/cache/flint}/cargo-fuzz"
if [ -x "$root/bin/cargo-fuzz" ] && "$root/bin/cargo-fuzz" --version 2>/dev/null | grep -q " $version"; then
  echo "cargo-fuzz: up to date ($root/bin/cargo-fuzz)"
  exit 0
fi
rustup toolchain list | grep -q '^nightly' || {
  echo "install-cargo-fuzz: the fuzz targets need the nightly toolchain: rustup toolchain install nightly --profile minimal" >&2
  exit 1
}
echo "cargo-fuzz: installing $version into $root"
CARGO_TARGET_DIR="$root/build" cargo install cargo-fuzz --version "$version" --locked --root "$root"
rm -rf "$root/build"
"$root/bin/cargo-fuzz" --version
