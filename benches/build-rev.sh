#!/usr/bin/env bash
# Builds flintd and flint-init (release) of an earlier commit, for a same-run comparison
# (benches/run.sh --compare-rev REV), and prints the directory holding them.
#   benches/build-rev.sh 3091801      # -> ${FLINT_CACHE_DIR:-/var/cache/flint}/bench-rev/<full sha>
# The commit's tree is exported with `git archive` into a temporary directory (no
# worktree, nothing changed in the repository) and built with this checkout's target
# directory, so the dependencies both share are compiled once. Cached by commit: a
# second call for the same commit prints the directory at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# = 1 ] || { echo "usage: benches/build-rev.sh REV" >&2; exit 2; }
rev=$(git rev-parse --verify --quiet "$1^{commit}") \
  || { echo "benches/build-rev.sh: $1 is not a commit of this repository" >&2; exit 2; }
out="${FLINT_CACHE_DIR:-/var/cache/flint}/bench-rev/$rev"
if [ -x "$out/flintd" ] && [ -x "$out/flint-init" ]; then
  echo "$out"
  exit 0
fi
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git archive "$rev" | tar -x -C "$src"
target="${CARGO_TARGET_DIR:-$PWD/target}"
# flintd and flint-init of REV land in the shared target directory: copy them out before
# this checkout's own build overwrites them.
(cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p flint-agent -p flint-init >&2)
mkdir -p "$out.tmp"
cp "$target/release/flintd" "$target/release/flint-init" "$out.tmp/"
# Cargo names a workspace crate's build by its path within the workspace, so REV's
# build replaced this checkout's in place; and as REV's exported sources are older than
# that build, the next `cargo build --release` here would find it fresh and keep REV's
# binaries. Cleaning the workspace's own crates (not the dependencies) makes that build
# compile them again.
cargo clean --release -p flint-proto -p flint-vmm -p flint-agent -p flint-init >&2
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
