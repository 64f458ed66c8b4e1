"""CPU per region per sample of real access checks, inside the test VM.

Three ways to check the same pages of the same process, in one boot:
  - damonx (fvaddr on the workload's mapping, and vaddr on the whole process),
    with the system calls its checks make per region check (calls/check:
    pagemap and kpageflags reads, bitmap writes and reads);
  - the user-space floor: a bare C loop making only the calls every check
    needs (pagemap read, kpageflags read, bitmap write, bitmap read) on the
    regions damonx ended with, for as many samples (_bench.bench_floor):
    the same mix of hot and cold pages, whose checks cost differently;
  - the kernel's DAMON (fvaddr and vaddr) on the same attributes, the CPU
    time of its kdamond thread.
The VM runs under emulation: compare the ratios, not the absolute figures.

    tools/vmtest/run -- .venv/bin/python benchmarks/bench_vaddr_vm.py [--seconds 8] [--json OUT]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import bench_ext

import damonx
from damonx.kernel_damon import KernelDamon

_bench = bench_ext.load()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOAD = os.path.join(ROOT, "tests", "vm", "workload.py")


def start_workload(size_mib, hot_mib):
    proc = subprocess.Popen(
        [sys.executable, WORKLOAD, "--size-mib", str(size_mib), "--hot-mib", str(hot_mib)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        raise SystemExit(f"workload did not start: {line}")
    start, end, hot_start, hot_end = (int(x, 16) for x in line[1:5])
    return proc, (start, end), (hot_start, hot_end)


#: the file accesses of the access checks, each one system call
CALLS = ("nr_pagemap_reads", "nr_kpageflags_reads", "nr_bitmap_writes", "nr_bitmap_reads")


def run_damonx(ops, pid, rng, attrs, seconds):
    targets = {pid: [rng]} if ops == "fvaddr" else [pid]
    with damonx.Monitor(ops, targets, attrs) as mon:
        mon.take(5)  # let the regions settle
        before, calls0 = mon.stats(), mon.access_check_stats()
        cpu0, t0 = time.thread_time(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            snap = mon.step()
        cpu = time.thread_time() - cpu0
        after, calls1 = mon.stats(), mon.access_check_stats()
    regs = snap.targets[pid]
    checks = after["nr_region_checks"] - before["nr_region_checks"]
    samples = after["nr_samples"] - before["nr_samples"]
    calls = {k: (calls1[k] - calls0[k]) / checks for k in CALLS}
    return {
        "cpu_s": cpu,
        "checks": checks,
        "samples": samples,
        "regions": checks / samples,
        "us_per_check": cpu / checks * 1e6,
        "calls_per_check": sum(calls.values()),
        "calls": calls,
        "last_regions": [(int(s), int(e)) for s, e in zip(regs["start"], regs["end"])],
    }


def run_floor(pid, regions, nr_samples, attrs):
    res = _bench.bench_floor(pid, regions, nr_samples, attrs.sample_us)
    return {
        "cpu_s": res["cpu_ns"] / 1e9,
        "checks": res["nr_checks"],
        "us_per_check": res["cpu_ns"] / 1e3 / res["nr_checks"],
        "regions": len(regions),
        "absent": res["nr_absent"],
    }


def run_kernel(ops, pid, rng, attrs, seconds):
    kd = KernelDamon()
    kw = dict(
        sample_us=attrs.sample_us,
        aggr_us=attrs.aggr_us,
        update_us=attrs.ops_update_us,
        min_nr_regions=attrs.min_nr_regions,
        max_nr_regions=attrs.max_nr_regions,
    )
    if ops == "fvaddr":
        kw["regions"] = [[rng]]
    kd.start([pid], ops=ops, **kw)
    try:
        time.sleep(0.5)  # let the regions settle
        counts = []
        cpu0, t0 = kd.cpu_seconds(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            counts.append(len(kd.snapshot()[0]))
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        cpu = kd.cpu_seconds() - cpu0
    finally:
        kd.stop()
    samples = elapsed * 1e6 / attrs.sample_us
    regions = statistics.mean(counts)
    return {
        "cpu_s": cpu,
        "samples": round(samples),
        "regions": regions,
        "us_per_check": cpu / (samples * regions) * 1e6,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--hot-mib", type=int, default=64)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if not os.path.exists("/sys/kernel/mm/page_idle/bitmap"):
        raise SystemExit("needs idle page tracking: run inside tools/vmtest/run")
    attrs = damonx.Attrs()
    proc, rng, hot = start_workload(args.size_mib, args.hot_mib)
    runs = {
        k: []
        for k in (
            "damonx_fvaddr",
            "floor_fvaddr",
            "kernel_fvaddr",
            "damonx_vaddr",
            "floor_vaddr",
            "kernel_vaddr",
        )
    }
    try:
        for _ in range(args.repeats):
            d = run_damonx("fvaddr", proc.pid, rng, attrs, args.seconds)
            runs["damonx_fvaddr"].append(d)
            runs["floor_fvaddr"].append(
                run_floor(proc.pid, d.pop("last_regions"), d["samples"], attrs)
            )
            runs["kernel_fvaddr"].append(run_kernel("fvaddr", proc.pid, rng, attrs, args.seconds))
            d = run_damonx("vaddr", proc.pid, rng, attrs, args.seconds)
            runs["floor_vaddr"].append(
                run_floor(proc.pid, d.pop("last_regions"), d["samples"], attrs)
            )
            runs["damonx_vaddr"].append(d)
            runs["kernel_vaddr"].append(run_kernel("vaddr", proc.pid, rng, attrs, args.seconds))
    finally:
        proc.kill()
        proc.wait()
    med = {k: statistics.median(r["us_per_check"] for r in v) for k, v in runs.items()}
    regions = {k: statistics.median(r["regions"] for r in v) for k, v in runs.items()}
    ratio = {k: v / med["floor_" + k.split("_")[1]] for k, v in med.items()}
    calls = {
        k: statistics.median(r["calls_per_check"] for r in v)
        for k, v in runs.items()
        if k.startswith("damonx")
    }
    print(
        f"workload: {args.size_mib} MiB, {args.hot_mib} MiB hot; {args.repeats} runs of "
        f"{args.seconds:g} s; medians; VM under emulation: compare ratios"
    )
    print(
        f"{'what':<16} {'regions':>8} {'us/region/sample':>17} {'vs floor':>9} {'calls/check':>12}"
    )
    for k in runs:
        c = f"{calls[k]:12.2f}" if k in calls else ""
        print(f"{k:<16} {regions[k]:8.1f} {med[k]:17.3f} {ratio[k]:8.2f}x {c}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "median_us_per_check": med,
                    "regions": regions,
                    "runs": runs,
                    "median_calls_per_check": calls,
                    "ratio_to_floor": ratio,
                    "kernel": os.uname().release,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
