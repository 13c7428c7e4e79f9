#!/usr/bin/env bash
# Keeps Flint building for aarch64 hosts on this x86_64 machine (test.sh runs it as a
# step; it also runs alone): adds the Rust target, checks and lints the whole workspace
# for aarch64-unknown-linux-gnu, then runs the aarch64 unit tests of flint-init, the
# namespace sandbox and flint-vmm (all its unit tests) under Debian's qemu-user-static.
# Debian's cross gcc (images/host-deps.sh) compiles the bundled SQLite and links;
# .cargo/config.toml names it and the qemu runner, for this target only.
#
# qemu-user runs aarch64 code on this host's kernel, translating system calls. What it
# cannot emulate is skipped BY NAME below, and the skipped tests are printed with the
# reason: installing seccomp filters (qemu's own x86_64 system calls would meet an
# aarch64 filter) and reading the test's own /proc/self (it is the emulator's).
# Nor are the tests that make mounts or loop devices on the host. The namespace
# sandbox's tests that run here are its pure ones (cgroup files parsed, CPU shares, uid
# ranges, sweeping directories, addresses, nft rules).
#
# The emulated tests run one at a time (RUST_TEST_THREADS=1): qemu-user can deadlock
# when one guest thread forks (a test spawning `ip`) while others run, and a CI run
# once hung that way for over an hour. Each run is also bounded (FLINT_QEMU_TEST_SECS,
# default 300 s; the three take under 10 s here) so a stalled emulator fails the step
# with the name of the test that was running instead of holding CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
target=aarch64-unknown-linux-gnu
start=$(date +%s)
say() { printf -- '--> [%ds] aarch64: %s\n' "$(( $(date +%s) - start ))" "$*"; }

if ! rustup target list --installed | grep -qx "$target"; then
  say "adding the Rust target $target"
  rustup target add "$target" || {
    echo "test-aarch64: 'rustup target add $target' failed (no network to the Rust" \
      "distribution?): the aarch64 cross-check cannot run on this machine" >&2
    exit 1
  }
fi
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
  command -v "$tool" >/dev/null || {
    echo "test-aarch64: $tool is missing: run images/host-deps.sh (as root)" >&2
    exit 1
  }
done

say "cargo clippy --workspace --all-targets (check + lints for aarch64)"
cargo clippy --target "$target" --workspace --all-targets --locked -- -D warnings

# name|why, for every test skipped under qemu-user.
skipped=(
  "seccomp::tests::denied_calls_fail_with_eperm_and_clone3_with_enosys|installs a seccomp filter, which qemu-user cannot emulate"
  "seccomp::tests::clone_without_namespace_flags_and_ordinary_calls_still_work|installs a seccomp filter, which qemu-user cannot emulate"
  "resume::tests::the_kernel_accepts_the_seed_and_the_reseed|calls the RNDADDENTROPY and RNDRESEEDCRNG ioctls, which qemu-user does not pass on (ENOSYS)"
  "sandbox_mask::tests::finds_the_argument_area_in_proc_stat|reads /proc/self/stat, which under qemu-user is the emulator's"
  "sandbox::namespace::mount_api::tests::|makes mounts (the x86_64 run of test.sh covers them)"
  "sandbox::namespace::code_mount::tests::the_code_is_read_only_and_named_by_no_host_path|makes an overlay mount with fsopen, which qemu-user does not pass on (ENOSYS; the x86_64 run covers it)"
  "sandbox::namespace::code_mount::tests::instances_get_clones_of_the_template_while_it_is_the_same_directory|makes overlay mounts with fsopen and clones them with open_tree, which qemu-user does not pass on (ENOSYS; the x86_64 run covers it)"
  "sandbox::namespace::tmp_disk::tests::|attaches loop devices and runs mkfs.ext4 (the x86_64 run covers them)"
  "sandbox::namespace::uids::tests::leases_are_distinct_and_returned_on_drop|leases all 16,384 uid ranges, a linear search each: over 2 minutes in an emulated debug build (the x86_64 run covers it)"
)
skip_args=()
for s in "${skipped[@]}"; do
  say "SKIPPED under qemu-user: ${s%%|*} (${s#*|})"
  skip_args+=(--skip "${s%%|*}")
done

export RUST_TEST_THREADS=1
limit=${FLINT_QEMU_TEST_SECS:-300}
# Builds the test binary first (no limit: compile time depends on the machine's load),
# then runs it under qemu-user within `limit` seconds; libtest names each test before
# it starts, so a hang shows which one.
emulated_tests() {
  local what=$1; shift
  cargo test --target "$target" --locked --no-run "$@"
  say "$what under qemu-aarch64-static, one test at a time, at most ${limit}s"
  local rc=0
  timeout -k 10 "$limit" cargo test --target "$target" --locked "$@" -- "${filters[@]}" \
    "${skip_args[@]}" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "test-aarch64: $what did not finish within ${limit}s under qemu-user: the test" \
      "named last above stalled (set FLINT_QEMU_TEST_SECS to allow longer)" >&2
  fi
  return "$rc"
}

filters=()
emulated_tests "flint-init unit tests (guest-init/tests/sandbox.rs needs namespaces: not run)" \
  -p flint-init --bins
filters=(sandbox::namespace:: sandbox::net::)
emulated_tests "namespace sandbox unit tests (flint-agent sandbox::namespace, sandbox::net)" \
  -p flint-agent --lib
filters=()
emulated_tests "flint-vmm unit tests: the aarch64 machine (memory map, device tree with every device's SPI, Image loader, command line), the shared run loop's exit dispatch (MMIO UART, PSCI system events), the virtio devices, the jail filters (the tests that need aarch64 KVM are ignored: vmm/README.md, \"aarch64\")" \
  -p flint-vmm --lib
say "done"
