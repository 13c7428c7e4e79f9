#!/usr/bin/env bash
# Make the microVM root disk of a runtime: its rootfs tree + flint-init as /sbin/init.
#
# Usage: images/build-ext4.sh RUNTIME FLINT_INIT_BINARY
#
# Input:  ${FLINT_IMAGES_DIR:-/var/lib/flint/images}/RUNTIME/rootfs (from build-rootfs.sh)
#         FLINT_INIT_BINARY, a static executable (no ELF interpreter)
# Output: ${FLINT_IMAGES_DIR:-/var/lib/flint/images}/RUNTIME/rootfs.ext4, label flint-root,
#         no journal (the disk is meant to be mounted read-only), size = tree + 20%.
#         rootfs.ext4.sha256 holds the cache key: sha256 of the tree's recipe.sha256,
#         the init binary and this script. A matching key prints "up to date".
# No loop mounts: mkfs.ext4 -d copies a staging tree (hard links to the shared
# rootfs, with /sbin/init replaced by a fresh file), so the shared tree is never modified.
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
IMAGES_DIR="${FLINT_IMAGES_DIR:-/var/lib/flint/images}"
LABEL="flint-root"
HEADROOM_PERCENT=20
START=$SECONDS

die() { echo "build-ext4: error: $*" >&2; exit 1; }
usage() { echo "usage: $0 RUNTIME FLINT_INIT_BINARY" >&2; exit 2; }
step() { echo "[$RUNTIME ext4 +$((SECONDS - START))s] $*"; }

ensure_tools() {
    local missing=()
    command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
    command -v readelf >/dev/null || missing+=(binutils)
    command -v flock >/dev/null || missing+=(util-linux)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "build-ext4: installing missing host tools: ${missing[*]}"
        [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

[ "$#" -eq 2 ] || usage
RUNTIME="$1"
INIT_BIN="$2"
ROOT="$IMAGES_DIR/$RUNTIME"
IMAGE="$ROOT/rootfs.ext4"

ensure_tools
[ -d "$ROOT/rootfs" ] && [ -f "$ROOT/recipe.sha256" ] ||
    die "no built runtime '$RUNTIME' in $IMAGES_DIR (run images/build-rootfs.sh $RUNTIME first)"
[ -f "$INIT_BIN" ] && [ -x "$INIT_BIN" ] || die "$INIT_BIN is not an executable file"
readelf -h "$INIT_BIN" >/dev/null 2>&1 || die "$INIT_BIN is not an ELF executable"
if readelf -l "$INIT_BIN" | grep -q 'Requesting program interpreter'; then
    die "$INIT_BIN is dynamically linked; build it static (see /work/shared/HOST-FACTS.md: -C target-feature=+crt-static)"
fi

# Same lock as build-rootfs.sh: the tree must not be swapped while we copy it.
exec {lock}>"$IMAGES_DIR/.$RUNTIME.lock"
flock "$lock"

key="$({
    printf 'recipe %s\n' "$(cat "$ROOT/recipe.sha256")"
    printf 'init %s\n' "$(sha256sum <"$INIT_BIN" | cut -d' ' -f1)"
    printf 'script %s\n' "$(sha256sum <"$SCRIPT" | cut -d' ' -f1)"
} | sha256sum | cut -d' ' -f1)"
if [ -f "$IMAGE" ] && [ -f "$IMAGE.sha256" ] && [ "$(cat "$IMAGE.sha256")" = "$key" ]; then
    echo "$RUNTIME: rootfs.ext4 up to date ($IMAGE)"
    exit 0
fi

tmp="$(mktemp -d "$IMAGES_DIR/.$RUNTIME.ext4.XXXXXX")"
# shellcheck disable=SC2064 # expand now: remove this build's dir on any exit
trap "rm -rf '$tmp'" EXIT

step "staging $ROOT/rootfs + /sbin/init"
# Hard links cost no copying; fall back to a real copy across file systems.
cp -al "$ROOT/rootfs" "$tmp/tree" 2>/dev/null || { rm -rf "$tmp/tree"; cp -a "$ROOT/rootfs" "$tmp/tree"; }
init_path="$tmp/tree/sbin/init"
[ -L "$tmp/tree/sbin" ] && init_path="$tmp/tree/$(readlink "$tmp/tree/sbin")/init"
# Unlink first: writing into a hard-linked file would change the shared tree.
rm -f "$init_path"
cp "$INIT_BIN" "$init_path"
chown 0:0 "$init_path"
chmod 0755 "$init_path"

tree_kib="$(du -sk "$tmp/tree" | cut -f1)"
inodes="$(find "$tmp/tree" | wc -l)"
size_kib=$(((tree_kib * (100 + HEADROOM_PERCENT) / 100 + 1023) / 1024 * 1024))
inode_count=$((inodes * (100 + HEADROOM_PERCENT) / 100 + 256))
step "mkfs.ext4 -d: tree ${tree_kib} KiB, ${inodes} inodes -> image ${size_kib} KiB"
if ! mkfs.ext4 -q -F -d "$tmp/tree" -L "$LABEL" -b 4096 -O ^has_journal -m 0 -N "$inode_count" \
    -E root_owner=0:0 "$tmp/rootfs.ext4" "${size_kib}k" >"$tmp/mkfs.log" 2>&1; then
    cat "$tmp/mkfs.log" >&2
    die "mkfs.ext4 failed for $RUNTIME (log above)"
fi
e2fsck -fn "$tmp/rootfs.ext4" >"$tmp/fsck.log" 2>&1 || { cat "$tmp/fsck.log" >&2; die "the new image fails e2fsck"; }

mv -f "$tmp/rootfs.ext4" "$IMAGE"
echo "$key" >"$tmp/key"
mv -f "$tmp/key" "$IMAGE.sha256"
step "done: $IMAGE ($(du -h --apparent-size "$IMAGE" | cut -f1) apparent, $(du -h "$IMAGE" | cut -f1) on disk)"
