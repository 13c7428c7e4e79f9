#!/usr/bin/env python3
"""Snapshot restore versus cold start of the same tiny guest, in one run.

The guest (the COUNTER guest of vmm/tests/common/snapshot_guests.rs) counts to 60,000,
printing one character per count on COM1, then exits with status 45. The script boots it
once with --snapshot-to, sends SIGUSR1 after 40,000 characters, then alternates N cold
starts of the guest and N restores of the snapshot (each restore continues the count to
the end). Per run it reads flint-vmm's own timings: main -> first KVM_RUN
("first guest instruction"; for a restore this includes mapping the memory file and
loading all state) and main -> first serial byte; and /usr/bin/time's peak RSS.

Then memory sharing: a second guest fills 32 MiB of its memory, then forever reads one
dword per page of it and prints '.'. It is snapshotted after its first pass; --share K
restored copies run at once until each has made two passes, and /proc/PID/smaps_rollup
gives each one's RSS and PSS (proportional set size: shared pages divided among their
users); the same for K cold-booted copies of the guest as the baseline.

Usage: vmm/scripts/snapshot-bench.py [--runs 20] [--share 10] [--mem-mib 128]
       [--vmm target/release/flint-vmm]
"""
import argparse
import json
import os
import re
import signal
import statistics
import struct
import subprocess
import tempfile
import time

CODE = bytes([
    0x66, 0xBA, 0xF8, 0x03, 0x31, 0xC9, 0xFF, 0x05, 0x00, 0x00, 0x20, 0x00, 0x41, 0x89, 0xC8,
    0x24, 0x3F, 0x04, 0x30, 0xEE, 0x81, 0xF9, 0x60, 0xEA, 0x00, 0x00, 0x75, 0xEA, 0x3B, 0x0D,
    0x00, 0x00, 0x20, 0x00, 0x75, 0x04, 0xB0, 0x2D, 0xE6, 0xF4, 0xB0, 0x30, 0xE6, 0xF4, 0xF4,
    0xEB, 0xFD,
])
# mov $0x1000000,%edi; mov $0x800000,%ecx; mov $0x5a5a5a5a,%eax; rep stosl;
# mov $0x3f8,%dx; 2: mov $0x1000000,%esi; mov $8192,%ecx; xor %ebx,%ebx;
# 3: add (%esi),%ebx; add $4096,%esi; loop 3b; mov $'.',%al; out %al,%dx; jmp 2b
SHARE_CODE = bytes([
    0xBF, 0x00, 0x00, 0x00, 0x01, 0xB9, 0x00, 0x00, 0x80, 0x00, 0xB8, 0x5A, 0x5A, 0x5A, 0x5A,
    0xF3, 0xAB, 0x66, 0xBA, 0xF8, 0x03, 0xBE, 0x00, 0x00, 0x00, 0x01, 0xB9, 0x00, 0x20, 0x00,
    0x00, 0x31, 0xDB, 0x03, 0x1E, 0x81, 0xC6, 0x00, 0x10, 0x00, 0x00, 0xE2, 0xF6, 0xB0, 0x2E,
    0xEE, 0xEB, 0xE5,
])
LOAD = 0x100000
COUNT_OK = 45
SNAPSHOT_AFTER = 40_000


def tiny_elf(code=CODE):
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", LOAD)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, LOAD, 64, 0, 0, 64, 56, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, LOAD, LOAD, len(code), len(code), 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, 64 + 2 * 56, 0, 0, len(note), len(note), 4)
    image = ehdr + load + pnote + note
    return image + bytes(0x1000 - len(image)) + code


def take_snapshot(vmm, kernel, mem_mib, tmp, after=SNAPSHOT_AFTER, name="snap"):
    serial = os.path.join(tmp, name + ".serial")
    snap = os.path.join(tmp, name)
    proc = subprocess.Popen(
        [vmm, "--kernel", kernel, "--mem-mib", str(mem_mib), "--serial-log", serial,
         "--snapshot-to", snap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FLINT_VMM_LOG": "warn"})
    deadline = time.monotonic() + 60
    while not os.path.exists(serial) or os.path.getsize(serial) < after:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the guest ended or stalled before the snapshot")
        time.sleep(0.001)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 5:
        raise SystemExit(f"snapshot failed ({proc.returncode}): {err}")
    return snap


def measured(cmd):
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                         env={**os.environ, "FLINT_VMM_LOG": "warn"})
    if out.returncode != COUNT_OK:
        raise SystemExit(f"unexpected exit {out.returncode}: {out.stderr}")
    t = json.loads(out.stdout.strip().splitlines()[-1])["timings"]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)[1])
    return t["first_guest_instruction_us"], t["first_serial_byte_us"], rss


def stats(samples):
    first = [s[0] / 1000 for s in samples]
    serial = [s[1] / 1000 for s in samples]
    rss = [s[2] / 1024 for s in samples]
    return {
        "first_guest_instruction_ms_p50": round(statistics.median(first), 2),
        "first_guest_instruction_ms_min_max": [round(min(first), 2), round(max(first), 2)],
        "first_serial_byte_ms_p50": round(statistics.median(serial), 2),
        "peak_rss_mib_p50": round(statistics.median(rss), 1),
    }


def smaps(pid):
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                fields[m[1]] = int(m[2])
    return fields


def run_together(cmds, logs):
    """Starts every command, waits until each log has two passes, returns smaps."""
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "FLINT_VMM_LOG": "warn"}) for c in cmds]
    try:
        deadline = time.monotonic() + 120
        while not all(os.path.exists(l) and os.path.getsize(l) >= 2 for l in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("a VM ended or stalled before two passes")
            time.sleep(0.01)
        return [smaps(p.pid) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def sharing_stats(rollups):
    rss = [r["Rss"] / 1024 for r in rollups]
    pss = [r["Pss"] / 1024 for r in rollups]
    return {
        "rss_mib_p50": round(statistics.median(rss), 1),
        "pss_mib_p50": round(statistics.median(pss), 1),
        "rss_mib_sum": round(sum(rss), 1),
        "pss_mib_sum": round(sum(pss), 1),
        "shared_mib_p50": round(statistics.median(
            (r["Shared_Clean"] + r["Shared_Dirty"]) / 1024 for r in rollups), 1),
        "private_dirty_mib_p50": round(statistics.median(r["Private_Dirty"] / 1024 for r in rollups), 1),
    }


def sharing(vmm, mem_mib, k, tmp):
    kernel = os.path.join(tmp, "share.elf")
    with open(kernel, "wb") as f:
        f.write(tiny_elf(SHARE_CODE))
    snap = take_snapshot(vmm, kernel, mem_mib, tmp, after=1, name="share-snap")
    logs = [os.path.join(tmp, f"cold{i}.serial") for i in range(k)]
    cold = run_together([[vmm, "--kernel", kernel, "--mem-mib", str(mem_mib), "--serial-log", l]
                         for l in logs], logs)
    logs = [os.path.join(tmp, f"restored{i}.serial") for i in range(k)]
    restored = run_together([[vmm, "--restore-from", snap, "--serial-log", l] for l in logs], logs)
    return {"vms": k, "guest_data_mib": 32, "cold_start": sharing_stats(cold),
            "restore": sharing_stats(restored)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--share", type=int, default=10)
    ap.add_argument("--mem-mib", type=int, default=128)
    ap.add_argument("--vmm", default="target/release/flint-vmm")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kernel = os.path.join(tmp, "counter.elf")
        with open(kernel, "wb") as f:
            f.write(tiny_elf())
        snap = take_snapshot(args.vmm, kernel, args.mem_mib, tmp)
        serial = os.path.join(tmp, "run.serial")
        cold, restored = [], []
        for _ in range(args.runs):
            cold.append(measured([args.vmm, "--kernel", kernel, "--mem-mib",
                                  str(args.mem_mib), "--serial-log", serial]))
            restored.append(measured([args.vmm, "--restore-from", snap,
                                      "--serial-log", serial]))
        shared = sharing(args.vmm, args.mem_mib, args.share, tmp) if args.share else None
    print(json.dumps({
        "runs": args.runs,
        "mem_mib": args.mem_mib,
        "cold_start": stats(cold),
        "restore": stats(restored),
        "sharing": shared,
    }))


if __name__ == "__main__":
    main()
