#!/usr/bin/env python3
"""Startup cost of flint-vmm with a tiny guest: time to the first guest instruction,
peak RSS, CPU and wall time, median of N runs.

The guest is an ELF64 with a PVH note whose 32-bit code at 1 MiB prints "OK" on COM1 and
resets through the i8042 (the same guest as the peer baseline in HOST-FACTS.md).

Usage: vmm/scripts/startup-bench.py [--runs 10] [--mem-mib 128] [--vmm target/release/flint-vmm]
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import tempfile

CODE = bytes([
    0x66, 0xBA, 0xF8, 0x03,  # mov $0x3f8, %dx
    0xB0, 0x4F, 0xEE,  # mov $'O', %al; out %al, %dx
    0xB0, 0x4B, 0xEE,  # mov $'K', %al; out %al, %dx
    0xB0, 0x0A, 0xEE,  # mov $'\n', %al; out %al, %dx
    0x66, 0xBA, 0x64, 0x00,  # mov $0x64, %dx
    0xB0, 0xFE, 0xEE,  # mov $0xfe, %al; out %al, %dx
    0xF4, 0xEB, 0xFD,  # 1: hlt; jmp 1b
])
LOAD = 0x100000


def tiny_elf():
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", LOAD)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, LOAD, 64, 0, 0, 64, 56, 2, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, LOAD, LOAD, len(CODE), len(CODE), 0x1000)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, 64 + 2 * 56, 0, 0, len(note), len(note), 4)
    image = ehdr + load + pnote + note
    return image + bytes(0x1000 - len(image)) + CODE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--mem-mib", type=int, default=128)
    ap.add_argument("--vmm", default="target/release/flint-vmm")
    args = ap.parse_args()
    first, rss, cpu, wall = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        kernel = os.path.join(tmp, "tiny.elf")
        with open(kernel, "wb") as f:
            f.write(tiny_elf())
        serial = os.path.join(tmp, "serial.log")
        for _ in range(args.runs):
            out = subprocess.run(
                ["/usr/bin/time", "-v", args.vmm, "--kernel", kernel, "--mem-mib",
                 str(args.mem_mib), "--serial-log", serial],
                capture_output=True, text=True, env={**os.environ, "FLINT_VMM_LOG": "warn"})
            if out.returncode != 2:
                raise SystemExit(f"unexpected exit {out.returncode}: {out.stderr}")
            summary = json.loads(out.stdout.strip().splitlines()[-1])
            first.append(summary["timings"]["first_guest_instruction_us"])
            rss.append(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)[1]))
            user = float(re.search(r"User time \(seconds\): ([\d.]+)", out.stderr)[1])
            system = float(re.search(r"System time \(seconds\): ([\d.]+)", out.stderr)[1])
            cpu.append((user + system) * 1000)
            m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):([\d.]+)", out.stderr)
            wall.append((int(m[1]) * 60 + float(m[2])) * 1000)
    print(json.dumps({
        "runs": args.runs,
        "mem_mib": args.mem_mib,
        "first_guest_instruction_ms_median": statistics.median(first) / 1000,
        "first_guest_instruction_ms_min_max": [min(first) / 1000, max(first) / 1000],
        "peak_rss_mib_median": statistics.median(rss) / 1024,
        "cpu_ms_median": statistics.median(cpu),
        "wall_ms_median": statistics.median(wall),
    }))


if __name__ == "__main__":
    main()
