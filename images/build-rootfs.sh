#!/usr/bin/env bash
# Build the runtime root file systems described by images/runtimes/<name>/.
#
# Usage: images/build-rootfs.sh [RUNTIME...]      (default: every recipe)
#
# Output, per runtime: ${FLINT_IMAGES_DIR:-/var/lib/flint/images}/<name>/
#   rootfs/         the tree (Debian bookworm, mmdebstrap --variant=essential)
#   runtime.json    copied from the recipe
#   recipe.sha256   hash of the recipe folder + this script (the cache key)
# A recipe may have an executable "build" script: it runs on the host after files/ is
# copied, with the image's root as $1 (java17 compiles its runtime's classes there).
# A runtime whose recipe.sha256 matches is skipped ("<name>: up to date").
# Each image is built in a temp dir next to its final place and renamed into
# place, so an interrupted build never leaves a half image behind.
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
IMAGES_SRC="$(dirname "$SCRIPT")"
RUNTIMES_DIR="$IMAGES_SRC/runtimes"
OUT_DIR="${FLINT_IMAGES_DIR:-/var/lib/flint/images}"
SUITE="bookworm"
SBX_USER="sbx_user1051"
SBX_UID=993
SBX_GID=990
MERGED_USR_HOOK=/usr/share/mmdebstrap/hooks/merged-usr

die() { echo "build-rootfs: error: $*" >&2; exit 1; }

# Install the host tools this script needs, only when one is missing.
ensure_tools() {
    local missing=()
    { command -v mmdebstrap >/dev/null && [ -d "$MERGED_USR_HOOK" ]; } || missing+=(mmdebstrap)
    command -v flock >/dev/null || missing+=(util-linux)
    [ -x /usr/bin/python3 ] || missing+=(python3)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "build-rootfs: installing missing host tools: ${missing[*]}"
        [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# sha256 over every file of the recipe (relative path, mode, content) and this script.
recipe_hash() {
    local recipe="$1"
    {
        (cd "$recipe" && find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
            while IFS= read -r -d '' f; do
                if [ -L "$f" ]; then
                    printf '%s link %s\n' "$f" "$(readlink "$f")"
                else
                    printf '%s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
                fi
            done)
        printf 'script %s\n' "$(sha256sum <"$SCRIPT" | cut -d' ' -f1)"
    } | sha256sum | cut -d' ' -f1
}

# Check a recipe folder before spending time on it.
validate_recipe() {
    local name="$1" recipe="$RUNTIMES_DIR/$1"
    [ -d "$recipe" ] || die "no recipe '$name' (expected folder $recipe)"
    [ -f "$recipe/packages" ] || die "$name: recipe has no 'packages' file"
    [ -f "$recipe/runtime.json" ] || die "$name: recipe has no 'runtime.json'"
    /usr/bin/python3 - "$recipe/runtime.json" "$name" <<'EOF' || die "$name: invalid runtime.json"
import json, sys
path, name = sys.argv[1], sys.argv[2]
try:
    doc = json.load(open(path))
except ValueError as e:
    sys.exit(f"{path}: not JSON: {e}")
if doc.get("name") != name:
    sys.exit(f"{path}: \"name\" is {doc.get('name')!r}, expected {name!r} (the folder name)")
boot = doc.get("bootstrap")
if not (isinstance(boot, list) and boot and all(isinstance(a, str) and a for a in boot)):
    sys.exit(f"{path}: \"bootstrap\" must be a non-empty list of strings")
if not boot[0].startswith("/"):
    sys.exit(f"{path}: bootstrap[0] must be an absolute path, got {boot[0]!r}")
EOF
}

# Packages of a recipe as a comma list (comments and blank lines ignored).
package_list() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1/packages" | grep -v '^$' | paste -sd, -
}

# Make the tree what every Flint runtime image must look like.
finish_tree() {
    local root="$1"
    # Mount points and Lambda's well-known directories, empty.
    local d
    for d in proc sys dev tmp var/task var/runtime opt; do
        mkdir -p "$root/$d"
    done
    for d in proc sys dev var/task opt; do
        find "$root/$d" -mindepth 1 -delete
    done
    chmod 1777 "$root/tmp"
    find "$root/tmp" -mindepth 1 -delete
    # The unprivileged user functions run as (Lambda's uid/gid).
    grep -q "^$SBX_USER:" "$root/etc/passwd" ||
        echo "$SBX_USER:x:$SBX_UID:$SBX_GID::/tmp:/usr/sbin/nologin" >>"$root/etc/passwd"
    grep -q "^$SBX_USER:" "$root/etc/group" ||
        echo "$SBX_USER:x:$SBX_GID:" >>"$root/etc/group"
    if [ -f "$root/etc/shadow" ] && ! grep -q "^$SBX_USER:" "$root/etc/shadow"; then
        echo "$SBX_USER:!:::::::" >>"$root/etc/shadow"
    fi
    # Nothing setuid or setgid.
    find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +
    # Caches, package lists, docs, man pages and logs: not needed at run time.
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/lintian "$root"/usr/share/linda \
        "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
    find "$root/var/log" -type f -delete
}

# Fail if the finished tree breaks one of the image rules.
check_tree() {
    local root="$1" name="$2" d bad
    for d in proc sys dev tmp var/task var/runtime opt; do
        [ -d "$root/$d" ] || die "$name: /$d missing from the image"
    done
    grep -q "^$SBX_USER:x:$SBX_UID:$SBX_GID:" "$root/etc/passwd" || die "$name: no $SBX_USER in /etc/passwd"
    bad="$(find "$root" -xdev -type f -perm /6000 | head -n 3)"
    [ -z "$bad" ] || die "$name: setuid/setgid files left: $bad"
}

build_one() {
    local name="$1" recipe="$RUNTIMES_DIR/$1"
    local final="$OUT_DIR/$name" hash start tmp log packages
    validate_recipe "$name"
    hash="$(recipe_hash "$recipe")"
    if [ -f "$final/recipe.sha256" ] && [ "$(cat "$final/recipe.sha256")" = "$hash" ]; then
        echo "$name: up to date"
        return 0
    fi
    start=$SECONDS
    step() { echo "[$name +$((SECONDS - start))s] $*"; }

    mkdir -p "$OUT_DIR"
    tmp="$(mktemp -d "$OUT_DIR/.$name.build.XXXXXX")"
    chmod 755 "$tmp"
    # shellcheck disable=SC2064 # expand now: the trap must remove this build's dir
    trap "rm -rf '$tmp'" EXIT
    log="$tmp/mmdebstrap.log"
    packages="$(package_list "$recipe")"

    step "mmdebstrap $SUITE (variant essential) + ${packages:-nothing}"
    # The merged-usr hook provides usr-is-merged itself; without it apt satisfies
    # init-system-helpers with the usrmerge package, which drags in all of perl.
    # man1/ must exist although man pages are excluded: the JRE's postinst registers
    # java.1.gz as an update-alternatives slave and fails without the folder.
    if ! mmdebstrap --variant=essential --mode=auto \
        --hook-dir="$MERGED_USR_HOOK" \
        --setup-hook='mkdir -p "$1/usr/share/man/man1"' \
        ${packages:+--include="$packages"} \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        "$SUITE" "$tmp/rootfs" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "$name: mmdebstrap failed (log above)"
    fi

    if [ -d "$recipe/files" ]; then
        step "copying recipe files/"
        cp -R --preserve=mode,timestamps,links --no-preserve=ownership "$recipe/files/." "$tmp/rootfs/"
    fi
    if [ -x "$recipe/build" ]; then
        step "running the recipe's build script"
        "$recipe/build" "$tmp/rootfs" || die "$name: the recipe's build script failed"
    fi
    step "cleaning up the tree (dirs, user, setuid, docs, caches)"
    finish_tree "$tmp/rootfs"
    check_tree "$tmp/rootfs" "$name"
    local boot
    boot="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bootstrap"][0])' "$recipe/runtime.json")"
    if [[ "$boot" != /var/task/* ]] && [ ! -x "$tmp/rootfs$boot" ]; then
        die "$name: bootstrap $boot is not an executable file in the image"
    fi
    rm -f "$log"
    cp "$recipe/runtime.json" "$tmp/runtime.json"
    echo "$hash" >"$tmp/recipe.sha256"

    step "renaming into place: $final"
    if [ -e "$final" ]; then
        local old
        old="$(mktemp -u "$OUT_DIR/.$name.old.XXXXXX")"
        mv -T "$final" "$old"
        mv -T "$tmp" "$final"
        rm -rf "$old"
    else
        mv -T "$tmp" "$final"
    fi
    trap - EXIT
    step "done: $(du -sh --apparent-size "$final/rootfs" | cut -f1) apparent, $(du -sh "$final/rootfs" | cut -f1) on disk"
}

main() {
    local runtimes=("$@") name
    if [ "${#runtimes[@]}" -eq 0 ]; then
        for name in "$RUNTIMES_DIR"/*/; do
            runtimes+=("$(basename "$name")")
        done
    fi
    [ "${#runtimes[@]}" -gt 0 ] || die "no recipes under $RUNTIMES_DIR"
    ensure_tools
    mkdir -p "$OUT_DIR"
    for name in "${runtimes[@]}"; do
        # One builder per runtime at a time; others wait for it.
        exec {lock}>"$OUT_DIR/.$name.lock"
        flock "$lock"
        build_one "$name"
        exec {lock}>&-
    done
}

main "$@"
