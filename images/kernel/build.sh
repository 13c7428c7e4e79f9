#!/usr/bin/env bash
# Build Flint's guest kernel (an uncompressed ELF vmlinux with a PVH entry point).
#
# Usage: images/kernel/build.sh
#
# Source: Debian's linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz).
# Steps:  make tinyconfig; merge flint.config (scripts/kconfig/merge_config.sh);
#         make olddefconfig; check every fragment line survived; apply
#         no-int3-selftest.patch; make vmlinux.
# Output: ${FLINT_CACHE_DIR:-/var/cache/flint}/kernel/<hash>/vmlinux (+ config),
#         hash = sha256(flint.config + no-int3-selftest.patch + linux-source-6.1 version),
#         and the stable symlink ${FLINT_CACHE_DIR:-/var/cache/flint}/kernel/vmlinux.
# A cached hash prints "kernel: up to date" and returns at once.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FRAGMENT="$HERE/flint.config"
PATCH="$HERE/no-int3-selftest.patch"
SRC_PKG="linux-source-6.1"
SRC_TAR="/usr/src/linux-source-6.1.tar.xz"
KERNEL_DIR="${FLINT_CACHE_DIR:-/var/cache/flint}/kernel"
JOBS="${FLINT_KERNEL_JOBS:-$(nproc)}"
START=$SECONDS

die() { echo "kernel/build.sh: error: $*" >&2; exit 1; }
step() { echo "[kernel +$((SECONDS - START))s] $*"; }

# Install what the build needs, only when something is missing.
ensure_tools() {
    local pkg missing=()
    for pkg in "$SRC_PKG" make gcc bc flex bison libelf-dev libssl-dev xz-utils patch; do
        dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        step "installing missing packages: ${missing[*]}"
        [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    [ -f "$SRC_TAR" ] || die "$SRC_TAR not found although $SRC_PKG is installed"
}

# Point the stable symlink at this build (atomic: rename over the old link).
link_latest() {
    ln -sfn "$1/vmlinux" "$KERNEL_DIR/.vmlinux.new"
    mv -T "$KERNEL_DIR/.vmlinux.new" "$KERNEL_DIR/vmlinux"
}

# Fail unless every option of the fragment has the wanted value in .config.
check_config() {
    local config="$1" line opt bad=()
    while IFS= read -r line; do
        case "$line" in
        CONFIG_*=*)
            grep -qxF "$line" "$config" || bad+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$config" || echo unset))")
            ;;
        "# CONFIG_"*" is not set")
            opt="${line#\# }"
            opt="${opt%% *}"
            if grep -qE "^$opt=" "$config"; then bad+=("$line (got: $(grep -E "^$opt=" "$config"))"); fi
            ;;
        esac
    done <"$FRAGMENT"
    if [ "${#bad[@]}" -gt 0 ]; then
        printf '  wanted but not in the final .config: %s\n' "${bad[@]}" >&2
        die "flint.config options did not survive make olddefconfig (missing dependencies?)"
    fi
}

main() {
    # Cache check first, with nothing but dpkg-query: a cached run stays well under a second.
    local version hash out tmp src log
    version="$(dpkg-query -W -f='${Version}' "$SRC_PKG" 2>/dev/null || true)"
    if [ -n "$version" ]; then
        hash="$(cat "$FRAGMENT" "$PATCH" <(printf '%s %s\n' "$SRC_PKG" "$version") | sha256sum | cut -d' ' -f1)"
        out="$KERNEL_DIR/$hash"
        if [ -f "$out/vmlinux" ]; then
            link_latest "$hash"
            echo "kernel: up to date ($out/vmlinux)"
            return 0
        fi
    fi
    ensure_tools
    version="$(dpkg-query -W -f='${Version}' "$SRC_PKG")"
    hash="$(cat "$FRAGMENT" "$PATCH" <(printf '%s %s\n' "$SRC_PKG" "$version") | sha256sum | cut -d' ' -f1)"
    out="$KERNEL_DIR/$hash"

    mkdir -p "$KERNEL_DIR"
    exec {lock}>"$KERNEL_DIR/.build.lock"
    flock "$lock"
    if [ -f "$out/vmlinux" ]; then # another builder finished it while we waited
        link_latest "$hash"
        echo "kernel: up to date ($out/vmlinux)"
        return 0
    fi

    tmp="$(mktemp -d "$KERNEL_DIR/.build.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: remove this build's dir on any exit
    trap "rm -rf '$tmp'" EXIT
    log="$tmp/build.log"
    step "building $SRC_PKG $version -> $out (log: $log)"
    step "unpacking $SRC_TAR"
    tar -xf "$SRC_TAR" -C "$tmp"
    src="$tmp/$SRC_PKG"
    [ -d "$src" ] || die "$SRC_TAR did not unpack to $SRC_PKG/"

    step "applying $(basename "$PATCH")"
    patch -d "$src" -p1 --forward --quiet <"$PATCH" || die "$(basename "$PATCH") does not apply to $SRC_PKG $version"

    run() { # run a make step quietly; show the log's tail when it fails
        if ! "$@" >>"$log" 2>&1; then
            tail -n 40 "$log" >&2
            die "'$*' failed (log above)"
        fi
    }
    step "make tinyconfig + flint.config + olddefconfig"
    run make -C "$src" tinyconfig
    run env -C "$src" scripts/kconfig/merge_config.sh -m .config "$FRAGMENT"
    run make -C "$src" olddefconfig
    check_config "$src/.config"

    step "make -j$JOBS vmlinux (a few minutes)"
    run make -C "$src" -j"$JOBS" vmlinux
    [ -f "$src/vmlinux" ] || die "make finished without producing vmlinux"

    mkdir -p "$tmp/out"
    cp "$src/vmlinux" "$tmp/out/vmlinux"
    cp "$src/.config" "$tmp/out/config"
    printf '%s %s\n' "$SRC_PKG" "$version" >"$tmp/out/source-version"
    rm -rf "$out"
    mv -T "$tmp/out" "$out"
    link_latest "$hash"
    step "done: $out/vmlinux ($(du -h "$out/vmlinux" | cut -f1))"
}

main "$@"
