#!/usr/bin/env bash
# Runs every benchmark scenario: builds the release binaries that flint-bench drives
# (flintd, flint-init, flint-vmm, flint-bench) and runs flint-bench with the given flags.
#   benches/run.sh                 # full run -> benches/results/<date>/
#   benches/run.sh --quick         # under a minute -> benches/results/<date>-quick/
#   benches/run.sh --seed 7 --out /tmp/b --only warm,throughput
# Needs root (namespaces, cgroups, /dev/kvm) and the runtime images (images/build-rootfs.sh).
# The Go and Rust functions of the per-runtime cold starts are the integration tests'
# fixtures, built (or found up to date) by their own scripts into /var/cache/flint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "benches/run.sh: run as root (namespaces, cgroups, /dev/kvm)" >&2; exit 1; }
cargo build --release --locked -p flint-agent -p flint-init -p flint-vmm -p flint-bench
./integration/fixtures/build-go-lambda.sh
./integration/fixtures/build-rust-lambda.sh
exec ./target/release/flint-bench "$@"
