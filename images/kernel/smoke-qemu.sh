#!/usr/bin/env bash
# Boot the guest kernel with a runtime's ext4 root disk under QEMU (-M microvm) and
# check that it gets as far as starting /sbin/init from the virtio-blk root.
# QEMU is an independent VMM here: this checks the kernel config and the disk image,
# not flint-vmm.
#
# Usage: images/kernel/smoke-qemu.sh [RUNTIME]     (default python3.11)
#   needs ${FLINT_CACHE_DIR:-/var/cache/flint}/kernel/vmlinux (kernel/build.sh) and
#   ${FLINT_IMAGES_DIR:-/var/lib/flint/images}/RUNTIME/rootfs.ext4 (build-ext4.sh).
#   FLINT_SMOKE_TIMEOUT (seconds, default 300) bounds the boot.
# Passes when the serial log shows the root mounted and "Run /sbin/init as init process".
# On hosts whose /dev/kvm is the paging-based nested hypervisor (kvm_pvm, detected via
# /sys/module/kvm_pvm) the kernel needs CPU features hidden, and user space cannot run
# there at all: whatever /sbin/init does after it starts is not checked.
set -euo pipefail

RUNTIME="${1:-python3.11}"
KERNEL="${FLINT_CACHE_DIR:-/var/cache/flint}/kernel/vmlinux"
DISK="${FLINT_IMAGES_DIR:-/var/lib/flint/images}/$RUNTIME/rootfs.ext4"
TIMEOUT="${FLINT_SMOKE_TIMEOUT:-300}"
PVM_WORKAROUND="noxsave clearcpuid=151,308,295,514,288,145,298,150,156,293,304,297,580,534,291,296"

die() { echo "smoke-qemu: FAIL: $*" >&2; exit 1; }

command -v qemu-system-x86_64 >/dev/null || {
    [ "$(id -u)" = 0 ] || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
    apt-get update && apt-get install -y --no-install-recommends qemu-system-x86
}
[ -r /dev/kvm ] || die "/dev/kvm is not available"
[ -f "$KERNEL" ] || die "no kernel at $KERNEL (run images/kernel/build.sh)"
[ -f "$DISK" ] || die "no root disk at $DISK (run images/build-ext4.sh $RUNTIME INIT)"

cmdline="console=ttyS0 root=/dev/vda ro rootfstype=ext4 panic=-1"
cpu="host"
if [ -d /sys/module/kvm_pvm ]; then
    echo "smoke-qemu: kvm_pvm host detected: hiding CPU features the guest cannot use here"
    cmdline="$cmdline $PVM_WORKAROUND"
    cpu="host,-arch-capabilities"
fi

tmp="$(mktemp -d)"
qemu_pid=""
cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
log="$tmp/serial.log"
: >"$log"

start=$SECONDS
qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,acpi=off -enable-kvm -cpu "$cpu" \
    -m 256 -smp 1 -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$log" -kernel "$KERNEL" -append "$cmdline" \
    -drive "id=root,file=$DISK,format=raw,if=none,readonly=on" \
    -device virtio-blk-device,drive=root >"$tmp/qemu.out" 2>&1 &
qemu_pid=$!

while ! grep -q 'Run /sbin/init as init process' "$log"; do
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
        tail -n 30 "$log" >&2
        cat "$tmp/qemu.out" >&2
        die "QEMU exited before the kernel started /sbin/init (serial log above)"
    fi
    if grep -q 'Kernel panic' "$log"; then
        tail -n 30 "$log" >&2
        die "kernel panic before /sbin/init (serial log above)"
    fi
    if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
        tail -n 30 "$log" >&2
        die "no 'Run /sbin/init' within ${TIMEOUT}s (serial log above)"
    fi
    sleep 1
done
grep -q 'VFS: Mounted root (ext4 filesystem) readonly' "$log" || die "root not mounted read-only from ext4"
grep -q 'virtio_blk virtio0: \[vda\]' "$log" || die "virtio-blk disk not found"
echo "smoke-qemu: PASS: kernel mounted $DISK and started /sbin/init after $((SECONDS - start))s wall"
grep -E 'Mounted root|Run /sbin/init' "$log"
