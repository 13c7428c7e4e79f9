#!/usr/bin/env python3
"""Snapshot restore versus cold start of the same tiny guest, in one run.

The guest (the COUNTER guest of vmm/tests/common/snapshot_guests.rs) counts to 60,000,
printing one character per count on COM1, then exits with status 45. The script boots it
once with --snapshot-to, sends SIGUSR1 after 40,000 characters, then alternates N cold
starts of the guest and N restores of the snapshot (each restore continues the count to
the end). Per run it reads flint-vmm's own timings: main -> first KVM_RUN
("first guest instruction"; for a restore this includes mapping the memory file and
loading all state) and main -> first serial byte; and /usr/bin/time's peak RSS.

Usage: vmm/scripts/snapshot-bench.py [--runs 20] [--mem-mib 128] [--vmm target/release/flint-vmm]
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
LOAD = 0x100000
COUNT_OK = 45
SNAPSHOT_AFTER = 40_000


def tiny_elf():
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", LOAD)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, LOAD, 64, 0, 0, 64, 56, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, LOAD, LOAD, len(CODE), len(CODE), 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, 64 + 2 * 56, 0, 0, len(note), len(note), 4)
    image = ehdr + load + pnote + note
    return image + bytes(0x1000 - len(image)) + CODE


def take_snapshot(vmm, kernel, mem_mib, tmp):
    serial = os.path.join(tmp, "snapshot.serial")
    snap = os.path.join(tmp, "snap")
    proc = subprocess.Popen(
        [vmm, "--kernel", kernel, "--mem-mib", str(mem_mib), "--serial-log", serial,
         "--snapshot-to", snap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FLINT_VMM_LOG": "warn"})
    deadline = time.monotonic() + 60
    while not os.path.exists(serial) or os.path.getsize(serial) < SNAPSHOT_AFTER:
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
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
    print(json.dumps({
        "runs": args.runs,
        "mem_mib": args.mem_mib,
        "cold_start": stats(cold),
        "restore": stats(restored),
    }))


if __name__ == "__main__":
    main()
