#!/usr/bin/env bash
# Sets up this machine (Debian 12, as root), builds Flint, starts flintd with its
# embedded defaults and invokes an example Python function, printing its result.
# flintd keeps running afterwards; the script says how to talk to it and stop it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[ "$(id -u)" = 0 ] || { echo "quickstart.sh: run as root (namespaces and cgroups)" >&2; exit 1; }

./images/host-deps.sh
./images/build-rootfs.sh python3.11
echo "==> building flintd, flint and flint-init (release)"
cargo build --release --locked -p flint-agent -p flint-init

run=/run/flint
log=/var/log/flint/flintd.log
mkdir -p "$run" "$(dirname "$log")"
if [ -f "$run/flintd.pid" ] && kill -0 "$(cat "$run/flintd.pid")" 2>/dev/null; then
  echo "==> stopping the flintd started earlier (pid $(cat "$run/flintd.pid"))"
  kill "$(cat "$run/flintd.pid")"
  for _ in $(seq 100); do kill -0 "$(cat "$run/flintd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
echo "==> starting flintd (log: $log)"
nohup target/release/flintd >"$log" 2>&1 &
echo $! >"$run/flintd.pid"
for _ in $(seq 200); do
  [ -S "$run/flintd.sock" ] && target/release/flint ls >/dev/null 2>&1 && break
  kill -0 "$(cat "$run/flintd.pid")" 2>/dev/null || { echo "flintd failed to start:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.05
done

flint=target/release/flint
$flint rm hello >/dev/null 2>&1 || true
echo "==> deploying integration/fixtures/hello as function 'hello'"
$flint create hello --runtime python3.11 --handler app.handler --code integration/fixtures/hello
echo "==> invoking hello (cold start), then again (warm)"
$flint invoke hello --payload '{"name": "Flint"}' --log
$flint invoke hello --payload '{"name": "again"}'
cat <<MSG

flintd is running (pid $(cat "$run/flintd.pid"), socket $run/flintd.sock, log $log).
Try:  $flint ls    $flint invoke hello --payload '{"name":"you"}' --log
Stop: kill \$(cat $run/flintd.pid)
MSG
