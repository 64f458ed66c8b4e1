#!/usr/bin/env python3
"""CPU cost of the damonx monitoring core, against a pure-Python baseline.

    python benchmarks/bench_core.py [--quick] [--repeats N] [--json OUT.json]

Everything is measured in one process, as CPU time of the calling thread
(the compiled loop runs in that thread with the GIL released), and every
figure is the median over the repeats.

1. Monitoring loop, sim backend, default attributes (5 ms / 100 ms / 1 s,
   10..1000 regions): nanoseconds per region per sample, that is the thread
   CPU time of ``Monitor.run(nr_aggregations=N)`` divided by the region
   checks it did (``Monitor.stats()["nr_region_checks"]``).  The time covers
   everything the loop does per aggregation too (merge, split, the snapshot
   handed to Python).  Each repeat starts a fresh monitor, runs 20
   aggregations untimed (the regions settle; the hot range is then checked
   to be found), then times N aggregations.  Two workloads:

   - ``hot_cold``: 1 GiB with [128 MiB, 256 MiB) accessed with p=0.9 per
     sample; it settles at a few tens of regions.
   - ``stripes``: 1 GiB in 512 stripes of 2 MiB, each accessed with a
     probability drawn (fixed seed) from {0, .05, .25, .5, .75, .95}; with
     max_nr_regions 1000 it keeps about 800 regions.

   The baseline is ``benchmarks/pyref.py``: the same loop, sampling,
   simulated access draws and merge/split rules in plain Python, run on the
   same workloads and attributes.

2. Regions adjustment per aggregation at 10, 100 and 1000 regions: merge
   then split of a target whose regions (1 MiB each) carry random access
   counts, with max_nr_regions = 2 x regions so that the split always runs
   (the most an aggregation's adjustment costs at that count; a target above
   max_nr_regions / 2 only merges).  damonx times its C functions
   (``_bench.bench_adjust``, see benchmarks/csrc/bench_adjust.h); the baseline
   times pyref's merge and split on identically prepared regions.  At 10
   regions with min_nr_regions 10 the size limit forbids any merge, as in
   the real loop.

Speedups are python time / damonx time, both measured in this run.
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_ext
import pyref

import damonx
from damonx.sim import Workload, precision_recall

_bench = bench_ext.load()

GIB, MIB = 1 << 30, 1 << 20
HOT = (128 * MIB, 256 * MIB)
WARMUP_AGGRS = 20
MIN_PRECISION_RECALL = 0.9
ADJUST_SIZES = (10, 100, 1000)
ADJUST_REGION_SZ = 1 << 20  # must match benchmarks/csrc/bench_adjust.c


def hot_cold():
    return Workload.hot_cold(GIB, *HOT, probability=0.9)


def stripes(nr=512, probs=(0.0, 0.05, 0.25, 0.5, 0.75, 0.95), seed=42):
    rng = random.Random(seed)
    sz = GIB // nr
    return Workload.from_dict(
        {
            "size": GIB,
            "phases": [
                {
                    "duration_us": 10**12,
                    "ranges": [
                        {"start": i * sz, "end": (i + 1) * sz, "probability": rng.choice(probs)}
                        for i in range(nr)
                    ],
                }
            ],
        }
    )


CASES = {
    "hot_cold": dict(
        describe="1 GiB, 128 MiB hot (p=0.9)",
        workload=hot_cold,
        hot=[HOT],
        aggrs={"damonx": 200, "python": 20},
        quick_aggrs={"damonx": 50, "python": 5},
    ),
    "stripes": dict(
        describe="1 GiB, 512 stripes of 6 probabilities",
        workload=stripes,
        hot=None,
        aggrs={"damonx": 100, "python": 5},
        quick_aggrs={"damonx": 20, "python": 2},
    ),
}

# ---------------------------------------------------------------- machine


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    try:
        import Cython

        cython_version = Cython.__version__
    except ImportError:  # a build-time dependency only
        cython_version = None
    return {
        "cpu_model": cpu_model(),
        "nr_cpus": os.cpu_count(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "cython": cython_version,
        "damonx": getattr(damonx, "__version__", "unknown"),
        "loadavg_at_start": list(os.getloadavg()),
    }


# ------------------------------------------------------------------- loop


def run_damonx(wl, attrs, nr_aggrs, seed, hot):
    with damonx.Monitor("sim", wl, attrs, seed=seed) as mon:
        mon.run(nr_aggregations=WARMUP_AGGRS - 1)
        snap = mon.step()
        pr = precision_recall(snap.regions, hot) if hot else None
        s0 = mon.stats()
        t0 = time.thread_time_ns()
        mon.run(nr_aggregations=nr_aggrs)
        cpu_ns = time.thread_time_ns() - t0
        s1 = mon.stats()
    return measured(
        cpu_ns,
        s1["nr_region_checks"] - s0["nr_region_checks"],
        s1["nr_samples"] - s0["nr_samples"],
        nr_aggrs,
        pr,
    )


def run_python(wl, attrs, nr_aggrs, seed, hot):
    mon = pyref.PyMonitor(wl, attrs, seed=seed)
    mon.run(WARMUP_AGGRS)
    pr = precision_recall(mon.snapshot_array(), hot) if hot else None
    s0 = mon.stats()
    t0 = time.thread_time_ns()
    mon.run(nr_aggrs)
    cpu_ns = time.thread_time_ns() - t0
    s1 = mon.stats()
    return measured(
        cpu_ns,
        s1["nr_region_checks"] - s0["nr_region_checks"],
        s1["nr_samples"] - s0["nr_samples"],
        nr_aggrs,
        pr,
    )


def measured(cpu_ns, checks, samples, nr_aggrs, pr):
    return {
        "cpu_ns": cpu_ns,
        "nr_region_checks": checks,
        "nr_samples": samples,
        "nr_aggregations": nr_aggrs,
        "ns_per_region_sample": cpu_ns / checks,
        "nr_regions_mean": checks / samples,
        "precision_recall": list(pr) if pr else None,
    }


def summarize(runs):
    out = {
        "ns_per_region_sample": statistics.median(r["ns_per_region_sample"] for r in runs),
        "nr_regions_mean": statistics.median(r["nr_regions_mean"] for r in runs),
        "nr_aggregations_timed": runs[0]["nr_aggregations"],
        "runs_ns_per_region_sample": [r["ns_per_region_sample"] for r in runs],
    }
    prs = [r["precision_recall"] for r in runs if r["precision_recall"]]
    if prs:
        out["precision_min"] = min(p for p, _ in prs)
        out["recall_min"] = min(r for _, r in prs)
    return out


def bench_loop(repeats, quick):
    attrs = damonx.Attrs()
    results = {}
    for name, case in CASES.items():
        wl = case["workload"]()
        aggrs = case["quick_aggrs" if quick else "aggrs"]
        runs = {"damonx": [], "python": []}
        for rep in range(repeats):
            runs["damonx"].append(run_damonx(wl, attrs, aggrs["damonx"], rep, case["hot"]))
            runs["python"].append(run_python(wl, attrs, aggrs["python"], rep, case["hot"]))
        res = {
            "workload": case["describe"],
            "attrs": attrs_dict(attrs),
            "damonx": summarize(runs["damonx"]),
            "python": summarize(runs["python"]),
        }
        res["speedup"] = (
            res["python"]["ns_per_region_sample"] / res["damonx"]["ns_per_region_sample"]
        )
        results[name] = res
    return results


def attrs_dict(attrs):
    return {
        k: getattr(attrs, k)
        for k in (
            "sample_us",
            "aggr_us",
            "ops_update_us",
            "min_nr_regions",
            "max_nr_regions",
            "min_region_sz",
        )
    }


# ------------------------------------------------------------- adjustment


def clock_overhead_ns():
    d = []
    for _ in range(101):
        t0 = time.thread_time_ns()
        d.append(time.thread_time_ns() - t0)
    return statistics.median(d)


def py_prepare(nr, max_nr_accesses, rng):
    """nr regions of 1 MiB with random counts, as benchmarks/csrc/bench_adjust.c does."""
    regions = []
    max_seen = 0
    for i in range(nr):
        r = pyref.Region(i * ADJUST_REGION_SZ, (i + 1) * ADJUST_REGION_SZ)
        r.nr_accesses = rng.randrange(0, max_nr_accesses + 1)
        r.last_nr_accesses = rng.randrange(0, max_nr_accesses + 1)
        r.nr_accesses_bp = r.nr_accesses * 10000
        r.age = rng.randrange(0, 10)
        max_seen = max(max_seen, r.nr_accesses)
        regions.append(r)
    return regions, max_seen // 10


def py_bench_adjust(nr, nr_rounds, seed):
    attrs = damonx.Attrs(max_nr_regions=max(2 * nr, 10))
    rng = random.Random(seed)
    sz_limit = max(nr * ADJUST_REGION_SZ // attrs.min_nr_regions, attrs.min_region_sz)
    overhead = clock_overhead_ns()
    batch = max(1, min(nr_rounds, 4096 // nr))
    res = {
        "nr_rounds": 0,
        "merge_ns": 0,
        "split_ns": 0,
        "nr_after_merge": 0,
        "nr_after_split": 0,
        "clock_overhead_ns": overhead,
    }
    while res["nr_rounds"] < nr_rounds:
        n = min(batch, nr_rounds - res["nr_rounds"])
        prepared = [py_prepare(nr, attrs.max_nr_accesses, rng) for _ in range(n)]
        adjusters = [pyref.Adjuster(attrs) for _ in range(n)]
        merged = [None] * n
        t0 = time.thread_time_ns()
        for i in range(n):
            regions, threshold = prepared[i]
            merged[i] = adjusters[i].merge(regions, threshold, sz_limit)
        res["merge_ns"] += max(0, time.thread_time_ns() - t0 - overhead)
        res["nr_after_merge"] += sum(len(m) for m in merged)
        split = [None] * n
        t0 = time.thread_time_ns()
        for i in range(n):
            split[i] = adjusters[i].split(merged[i], rng)
        res["split_ns"] += max(0, time.thread_time_ns() - t0 - overhead)
        res["nr_after_split"] += sum(len(s) for s in split)
        res["nr_rounds"] += n
    return res


def per_round(res):
    k = res["nr_rounds"]
    return {
        "ns_per_aggregation": (res["merge_ns"] + res["split_ns"]) / k,
        "merge_ns": res["merge_ns"] / k,
        "split_ns": res["split_ns"] / k,
        "nr_after_merge": res["nr_after_merge"] / k,
        "nr_after_split": res["nr_after_split"] / k,
        "nr_rounds": k,
        "clock_overhead_ns": res["clock_overhead_ns"],
    }


def summarize_adjust(rounds):
    keys = ("ns_per_aggregation", "merge_ns", "split_ns", "nr_after_merge", "nr_after_split")
    out = {k: statistics.median(r[k] for r in rounds) for k in keys}
    out["nr_rounds"] = rounds[0]["nr_rounds"]
    out["runs_ns_per_aggregation"] = [r["ns_per_aggregation"] for r in rounds]
    return out


def bench_adjust(repeats, quick):
    results = {}
    for nr in ADJUST_SIZES:
        c_rounds = max(20, (2000 if quick else 20000) * 10 // nr)
        py_rounds = max(5 if quick else 20, (200 if quick else 2000) * 10 // nr)
        runs = {"damonx": [], "python": []}
        for rep in range(repeats):
            runs["damonx"].append(per_round(_bench.bench_adjust(nr, c_rounds, 1000 * rep + 1)))
            runs["python"].append(per_round(py_bench_adjust(nr, py_rounds, 1000 * rep + 1)))
        res = {
            "nr_regions": nr,
            "max_nr_regions": max(2 * nr, 10),
            "damonx": summarize_adjust(runs["damonx"]),
            "python": summarize_adjust(runs["python"]),
        }
        for who in ("damonx", "python"):
            res[who]["ns_per_region"] = res[who]["ns_per_aggregation"] / nr
        res["speedup"] = res["python"]["ns_per_aggregation"] / res["damonx"]["ns_per_aggregation"]
        results[str(nr)] = res
    return results


# ----------------------------------------------------------------- output


def fmt_ns(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:.1f} us"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.1f} ns"


def table(rows, header):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [
        "  ".join(
            str(h).ljust(w) if i == 0 else str(h).rjust(w)
            for i, (h, w) in enumerate(zip(header, widths))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(row, widths))
            )
        )
    return "\n".join(lines)


def report(result):
    m = result["machine"]
    out = [
        f"damonx core benchmark: medians of {result['repeats']} runs, thread CPU time"
        + (" (--quick)" if result["quick"] else ""),
        f"machine: {m['cpu_model']}, {m['nr_cpus']} CPUs, Linux {m['kernel']}, "
        f"Python {m['python']}, numpy {m['numpy']}; load average "
        f"{m['loadavg_at_start'][0]:.2f} at start, {m['loadavg_at_end'][0]:.2f} at end",
        "",
        "Monitoring loop, sim backend, default attributes (ns per region per sample)",
    ]
    rows = []
    for name, r in result["loop"].items():
        rows.append(
            [
                f"{name}: {r['workload']}",
                f"{r['damonx']['nr_regions_mean']:.0f}",
                f"{r['damonx']['ns_per_region_sample']:.1f}",
                f"{r['python']['ns_per_region_sample']:.0f}",
                f"{r['speedup']:.1f}x",
            ]
        )
    out.append(table(rows, ["workload", "regions", "damonx", "python", "speedup"]))
    out += ["", "Regions adjustment per aggregation (merge + split, max_nr_regions = 2 x regions)"]
    rows = []
    for nr, r in result["adjust"].items():
        d, p = r["damonx"], r["python"]
        rows.append(
            [
                nr,
                f"{d['nr_after_merge']:.0f} -> {d['nr_after_split']:.0f}",
                fmt_ns(d["ns_per_aggregation"]),
                f"{d['ns_per_region']:.1f}",
                fmt_ns(p["ns_per_aggregation"]),
                f"{p['ns_per_region']:.0f}",
                f"{r['speedup']:.1f}x",
            ]
        )
    out.append(
        table(
            rows,
            ["regions", "merged -> split", "damonx", "ns/region", "python", "ns/region", "speedup"],
        )
    )
    chk = result["pyref_check"]
    out += [
        "",
        f"hot range found after {WARMUP_AGGRS} aggregations (precision, recall, "
        f"worst of the runs): damonx {chk['damonx'][0]:.3f}, {chk['damonx'][1]:.3f}; "
        f"python {chk['python'][0]:.3f}, {chk['python'][1]:.3f}",
    ]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and rounds (smoke test)")
    ap.add_argument("--repeats", type=int, help="runs per figure (default 5, 2 with --quick)")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = ap.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    if repeats < 1:
        ap.error("--repeats must be positive")

    t0 = time.monotonic()
    result = {
        "benchmark": "damonx core",
        "quick": args.quick,
        "repeats": repeats,
        "clock": "CLOCK_THREAD_CPUTIME_ID",
        "machine": machine_info(),
    }
    result["loop"] = bench_loop(repeats, args.quick)
    result["adjust"] = bench_adjust(repeats, args.quick)
    hc = result["loop"]["hot_cold"]
    check = {who: [hc[who]["precision_min"], hc[who]["recall_min"]] for who in ("damonx", "python")}
    check["min_required"] = MIN_PRECISION_RECALL
    check["python_ok"] = min(check["python"]) >= MIN_PRECISION_RECALL
    result["pyref_check"] = check
    result["wall_s"] = time.monotonic() - t0
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())

    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    if not check["python_ok"]:
        print("error: the Python reference did not find the hot range", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
