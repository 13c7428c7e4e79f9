#!/usr/bin/env bash
# Installs the Debian packages Flint needs on this host (only those missing), using
# the machine's own apt configuration. Run as root. Safe to run again: a second run
# installs nothing.
set -euo pipefail
packages=(
  mmdebstrap
  e2fsprogs
  busybox-static
  bubblewrap
  linux-source-6.1
  bc flex bison libelf-dev libssl-dev make gcc
  python3
  python3-pip
  ca-certificates
  time
  awscli python3-boto3
  openjdk-17-jdk-headless
  nftables iproute2
  dnsmasq-base
  chromium
  curl
  rabbitmq-server
  # aarch64 cross-check (test-aarch64.sh): cross gcc + arm64 libc for the bundled
  # SQLite and linking, qemu-user to run the aarch64 unit tests
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all present"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "host-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
echo "host packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "host packages: installed"
