#!/usr/bin/env bash
# Runs Flint's whole test suite on this machine (Debian 12, as root): installs what is
# missing, builds the runtime images, the guest kernel and the test fixtures (all
# cached), checks formatting and lints, then runs every test. Exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
start=$(date +%s)
step() { printf '\n==> [%ds] %s\n' "$(( $(date +%s) - start ))" "$*"; }

[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (namespaces, cgroups, /dev/kvm)" >&2; exit 1; }

step "host packages"
./images/host-deps.sh
step "runtime images"
./images/build-rootfs.sh
step "guest kernel"
./images/kernel/build.sh
step "static flint-init and the microVM root disk (python3.11)"
arch="$(uname -m)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked -p flint-init --target "$arch-unknown-linux-gnu"
./images/build-ext4.sh python3.11 "target/$arch-unknown-linux-gnu/release/flint-init"
step "test fixtures (PyPI wheels, grpc-requests, npm aws-lambda-ric, a lambda_runtime Rust function, a Go function)"
./integration/fixtures/fetch-wheels.sh
./integration/fixtures/fetch-node-ric.sh
./integration/fixtures/fetch-grpc-requests.sh
./integration/fixtures/build-rust-lambda.sh
./integration/fixtures/build-go-lambda.sh

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo build (binaries the end-to-end tests run)"
cargo build --workspace --locked

step "aarch64: cross-check and lints, unit tests under qemu-user (test-aarch64.sh)"
./test-aarch64.sh

step "images tests (Python bootstrap, image layout)"
./images/tests/run.sh all

step "cargo test"
cargo test --workspace --locked
step "fuzz targets, 5 s each (fuzz/README.md; cargo-fuzz is installed into the cache)"
./fuzz/run.sh 5
step "all tests passed"
