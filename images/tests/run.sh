#!/usr/bin/env bash
# Run the images/ tests with Debian's /usr/bin/python3 (the interpreter the images ship).
#
# Usage: images/tests/run.sh [unit|all]      (default: all)
#   unit  only the Python bootstrap tests (fake Runtime API, no image needed, ~2 s)
#   all   also build the rootfs images if needed (cached; minutes the first time)
#         and test them: layout rules, each runtime run inside its image with bwrap, and
#         the Node.js and Ruby bootstrap tests (they run in their images' interpreters).
# Exits non-zero on any failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3
MODE="${1:-all}"
[ -x "$PY" ] || { echo "images/tests: $PY not found (apt-get install python3)" >&2; exit 1; }
export PYTHONDONTWRITEBYTECODE=1
case "$MODE" in
unit) pattern='test_bootstrap.py' ;;
all)
    "$HERE/../build-rootfs.sh"
    pattern='test_*.py'
    ;;
*) echo "usage: $0 [unit|all]" >&2; exit 2 ;;
esac
exec "$PY" -m unittest discover -s "$HERE" -p "$pattern" -v
