"""Small hot sets in real memory: damonx's rules, the kernel's rules and the
kernel's DAMON itself on the same processes, inside the VM.

    python -m suite.smallhot_vm PLAN OUT      (inside tools/vmtest/run;
                                               benchmarks/run boots it)

vaddr: for each hot set share of a 2 GiB mapping (1/256 to 1/16,384: 8 MiB
down to 128 KiB, 2 MiB aligned in its middle), one process of the VM tests'
workload (``tests/vm/workload.py``: it writes every page of the hot part
over and over and never touches the rest again) is monitored by each
configuration in turn, for ``smallhot_vm_s`` seconds each, at the default
attributes:

- ``damonx``: damonx's access checks (page_idle) and its own rules;
- ``damonx, kernel rules``: the same checks, ``Attrs.kernel()``;
- ``kernel DAMON``: the kernel's DAMON (the kernel backend: kdamond's own
  checks and rules), through the same Monitor code.

paddr: one workload (1 GiB) with a hot set of 8 MiB, another with 512 KiB,
and each configuration over all of the guest's memory.  Precision counts
only the workload's own pages (the truth of the rest of memory is unknown):
of the bytes of its pages inside regions found accessed, the share that is
hot; recall is the share of the hot pages' bytes inside such regions.

Each snapshot's precision and recall by bytes (regions with nr_accesses >= 1,
within the workload's mapping for vaddr) and the time it arrived after the
monitor started give the time to detection by the rule of the simulation
(``smallhot.detection``).  Access checks per second: counted by damonx; for
the kernel's DAMON, which does not count them, its regions times its samples
per second (one check per region per sample is the kernel's rule).
"""

import os
import statistics
import subprocess
import sys
import time

import numpy as np

import damonx
from damonx.sim import overlap_bytes, precision_recall

from . import guest, smallhot

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "..", "..", "tests", "vm", "workload.py")
PAGE, MIB = 4096, 1 << 20
SIZE_MIB = 2048
VM_SHARES = (256, 1024, 4096, 16384)
#: hot sets of the paddr runs, KiB: 1/512 and 1/8192 of a 4 GiB guest
PADDR_HOT_KIB = (8192, 512)

CONFIGS = {
    "damonx": ("page_idle", damonx.Attrs()),
    "damonx, kernel rules": ("page_idle", damonx.Attrs.kernel()),
    "kernel DAMON": ("kernel", damonx.Attrs.kernel()),
}


def log(msg):
    print(f"smallhot_vm: {msg}", file=sys.stderr, flush=True)


class Workload:
    """tests/vm/workload.py with a hot part of hot_kib KiB: its mapping
    (range) and hot part (hot), [start, end) byte addresses."""

    def __init__(self, size_mib, hot_kib):
        self.proc = subprocess.Popen(
            [sys.executable, WORKLOAD, "--size-mib", str(size_mib), "--hot-kib", str(hot_kib)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.close()
            raise RuntimeError(f"the workload did not start: {line}")
        start, end, hot_start, hot_end = (int(x, 16) for x in line[1:5])
        self.pid, self.range, self.hot = self.proc.pid, (start, end), (hot_start, hot_end)

    def physical(self, lo, hi):
        """The physical ranges backing [lo, hi), sorted, merged."""
        with open(f"/proc/{self.pid}/pagemap", "rb") as f:
            f.seek(lo // PAGE * 8)
            entries = np.frombuffer(f.read((hi - lo) // PAGE * 8), dtype="<u8")
        present = (entries >> np.uint64(63)) & np.uint64(1) == 1
        pfns = np.sort((entries[present] & np.uint64((1 << 55) - 1)).astype(np.int64))
        if not len(pfns):
            raise RuntimeError("no page of the workload is present")
        breaks = np.nonzero(np.diff(pfns) != 1)[0]
        starts = np.concatenate([[pfns[0]], pfns[breaks + 1]]) * PAGE
        ends = (np.concatenate([pfns[breaks], [pfns[-1]]]) + 1) * PAGE
        return list(zip(starts.tolist(), ends.tolist()))

    def close(self):
        self.proc.kill()
        self.proc.wait()


def paddr_scorer(w):
    """Precision within the workload's pages, and recall, of a paddr snapshot."""
    hot, mapped = w.physical(*w.hot), w.physical(*w.range)
    true = sum(hi - lo for lo, hi in hot)

    def score(regions):
        found = regions[regions["nr_accesses"] > 0]
        inside = overlap_bytes(found, mapped)
        tp = overlap_bytes(found, hot)
        return (tp / inside if inside else 0.0), tp / true

    return score, len(hot)


def vaddr_scorer(w):
    lo, hi = w.range

    def score(regions):
        r = regions[(regions["end"] > lo) & (regions["start"] < hi)].copy()
        r["start"] = np.maximum(r["start"], lo)
        r["end"] = np.minimum(r["end"], hi)
        return precision_recall(r, [w.hot])

    return score


def monitored(ops, target, config, score, seconds):
    """One configuration for seconds: detection, kept, checks/s, regions."""
    backend, attrs = CONFIGS[config]
    targets = None if ops == "paddr" else [target]
    series, nr_regions, nr_checks = [], [], 0
    with damonx.Monitor(ops, targets, attrs, backend=backend) as mon:
        t0 = time.monotonic()
        for snap in mon:
            regions = snap.targets[0 if ops == "paddr" else target]
            t = time.monotonic() - t0
            series.append((t, *score(regions)))
            nr_regions.append(len(regions))
            nr_checks += snap.nr_checks or 0
            if t >= seconds:
                break
        elapsed = time.monotonic() - t0
        sample_us = snap.sample_us or attrs.sample_us
    detect_s, kept = smallhot.detection(series)
    if backend == "kernel":  # the kernel's rule: one check per region per sample
        checks_per_s = statistics.fmean(nr_regions) * 1e6 / sample_us
    else:
        checks_per_s = nr_checks / elapsed
    return {
        "detect_s": detect_s,
        "kept": kept,
        "checks_per_s": checks_per_s,
        "max_nr_regions": max(nr_regions),
        "settled_pr": series[-1][1:],
    }


def run(plan, save):
    seconds = plan.get("smallhot_vm_s", 20)
    repeats = plan.get("smallhot_vm_repeats", 1)
    out = {"vaddr": [], "paddr": [], "seconds": seconds, "repeats": repeats}
    for share in VM_SHARES:
        hot_kib = SIZE_MIB * 1024 // share
        runs = {cfg: [] for cfg in CONFIGS}
        for rep in range(repeats):
            w = Workload(SIZE_MIB, hot_kib)
            try:
                for cfg in CONFIGS:
                    r = monitored("vaddr", w.pid, cfg, vaddr_scorer(w), seconds)
                    runs[cfg].append(r)
                    log(f"vaddr 1/{share} ({hot_kib} KiB), {cfg}, run {rep}: {r}")
            finally:
                w.close()
        for cfg, rs in runs.items():
            out["vaddr"].append({"share": share, "config": cfg, **smallhot.summarize(rs, seconds)})
        save(out)
    for hot_kib in PADDR_HOT_KIB:
        runs = {cfg: [] for cfg in CONFIGS}
        for rep in range(repeats):
            w = Workload(SIZE_MIB // 2, hot_kib)
            try:
                score, nr_pieces = paddr_scorer(w)
                for cfg in CONFIGS:
                    r = monitored("paddr", None, cfg, score, seconds)
                    r["hot_pieces"] = nr_pieces
                    runs[cfg].append(r)
                    log(f"paddr {hot_kib} KiB in {nr_pieces} pieces, {cfg}, run {rep}: {r}")
            finally:
                w.close()
        for cfg, rs in runs.items():
            row = {"case": f"{hot_kib} KiB hot, whole guest", "config": cfg}
            row.update(smallhot.summarize(rs, seconds))
            row["hot_pieces"] = [r["hot_pieces"] for r in rs]
            out["paddr"].append(row)
    save(out)
    return out


def paddr_table(rows, seconds):
    lines = [
        f"| paddr, whole guest | found within {seconds} s | median detection | checks/s "
        "| most regions |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']}, {r['config']} | {r['nr_found']}/{r['nr_runs']} | "
            f"{smallhot._s(r['median_detect_s'])} | {r['checks_per_s']:.0f} | "
            f"{r['max_nr_regions']} |"
        )
    return "\n".join(lines)


def vaddr_checks_table(rows):
    lines = ["| hot set share (VM) | config | checks/s | most regions |", "|---|---|---:|---:|"]
    for r in rows:
        lines.append(
            f"| 1/{r['share']} | {r['config']} | {r['checks_per_s']:.0f} | {r['max_nr_regions']} |"
        )
    return "\n".join(lines)


def markdown(vm):
    """The VM's part of the small-hot-set results (Markdown)."""
    return (
        f"In the VM ({vm['repeats']} run(s) of {vm['seconds']} s per case; the kernel's "
        "DAMON's checks/s are its regions times its samples per second):\n\n"
        + vaddr_checks_table(vm["vaddr"])
        + "\n\n"
        + paddr_table(vm["paddr"], vm["seconds"])
        + "\n"
    )


def main():
    plan, out_path = guest.vm_part_args()
    run(plan, lambda res: guest.write_json(out_path, res))


if __name__ == "__main__":
    main()
