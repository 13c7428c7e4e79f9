#!/usr/bin/env bash
# Runs every benchmark scenario: builds the release binaries that flint-bench drives
# (flintd, flint-init, flint-vmm, flint-bench) and runs flint-bench with the given flags.
#   benches/run.sh                 # full run -> benches/results/<date>/
#   benches/run.sh --quick         # under a minute -> benches/results/<date>-quick/
#   benches/run.sh --seed 7 --out /tmp/b --only warm,throughput
#   benches/run.sh --quick --compare-rev 3091801 --only cost_network,cost_isolation
# Needs root (namespaces, cgroups, /dev/kvm) and the runtime images (images/build-rootfs.sh).
# The Go and Rust functions of the per-runtime cold starts are the integration tests'
# fixtures, built (or found up to date) by their own scripts into /var/cache/flint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "benches/run.sh: run as root (namespaces, cgroups, /dev/kvm)" >&2; exit 1; }
# --compare-rev REV: build REV's flintd and flint-init first (benches/build-rev.sh, cached
# by commit) and hand them to flint-bench, which then also runs cost_network and
# cost_isolation (this build against REV, same run).
args=()
compare=()
while [ $# -gt 0 ]; do
  case "$1" in
    --compare-rev)
      [ $# -ge 2 ] || { echo "benches/run.sh: --compare-rev needs a commit" >&2; exit 2; }
      dir=$(benches/build-rev.sh "$2")
      compare=(--compare-bin-dir "$dir" --compare-label "$(git rev-parse --short "$2")")
      shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
cargo build --release --locked -p flint-agent -p flint-init -p flint-vmm -p flint-bench
./integration/fixtures/build-go-lambda.sh
./integration/fixtures/build-rust-lambda.sh
exec ./target/release/flint-bench ${compare[@]+"${compare[@]}"} ${args[@]+"${args[@]}"}
