#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (fuzz/README.md):
#   fuzz/run.sh                 # the test suite's short run: 5 s per target
#   fuzz/run.sh 3600            # one hour per target
#   fuzz/run.sh 600 vsock_packet code_bundle   # only these targets
# Starts from the checked-in seeds (fuzz/seeds/<target>) plus what earlier runs on
# this machine found (${FLINT_CACHE_DIR:-/var/cache/flint}/fuzz-corpus/<target>).
# Exits non-zero on the first crash, leak, timeout or out-of-memory; the input that
# caused it is in fuzz/artifacts/<target>/ (libFuzzer prints how to reproduce it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${FLINT_CACHE_DIR:-/var/cache/flint}"
secs="${1:-5}"
shift || true
"$here/install-cargo-fuzz.sh"
export PATH="$cache/cargo-fuzz/bin:$PATH"
cd "$here"
# The build is kept in the cache, so a fresh clone does not rebuild the instrumented
# dependencies (cargo rebuilds what changed).
target_dir="$cache/fuzz-target"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
start=$(date +%s)
cargo +nightly fuzz build --target-dir "$target_dir"
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start )) s"
for t in "${targets[@]}"; do
  corpus="$cache/fuzz-corpus/$t"
  mkdir -p "$corpus" "artifacts/$t"
  t0=$(date +%s)
  # -malloc_limit_mb: no input (a few KB) may make a parser allocate more than 64 MB
  # at once (a length field is not a promise); -timeout: nor take more than 10 s.
  if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$corpus" "seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=10 \
      -print_final_stats=1 >"artifacts/$t/last-run.log" 2>&1; then
    tail -60 "artifacts/$t/last-run.log" >&2
    echo "fuzz: target $t FAILED (input saved under fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "artifacts/$t/last-run.log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz: $t: $runs runs in $(( $(date +%s) - t0 )) s, no crash"
done
echo "fuzz: all ${#targets[@]} targets passed in $(( $(date +%s) - start )) s"
