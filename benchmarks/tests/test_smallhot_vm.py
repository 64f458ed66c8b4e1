"""The pure pieces of the small-hot-set benchmark's VM part
(benchmarks/suite/smallhot_vm): the tables it adds to the suite's
results, without the VM."""

import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

from suite import report  # noqa: E402


def row(share, config, detect):
    return {
        "share": share,
        "config": config,
        "nr_runs": 1,
        "nr_found": int(detect is not None),
        "median_detect_s": detect if detect is not None else float("inf"),
        "max_detect_s": detect,
        "kept": 1.0,
        "checks_per_s": 1234.0,
        "checks_vs_kernel": None,
        "max_nr_regions": 17,
    }


def test_the_vm_columns_join_the_simulated_table():
    sim_row = dict(row(256, "damonx", 0.4), case="4 MiB in 64 GiB")
    sim = {
        "goals": [sim_row],
        "shares": [row(256, "damonx", 0.4), row(256, "kernel rules", 1.2)],
        "patterns": [],
    }
    vm = {
        "seconds": 20,
        "repeats": 1,
        "vaddr": [row(256, "damonx", 0.9), row(256, "kernel DAMON", None)],
        "paddr": [dict(row(0, "kernel DAMON", 3.0), case="8192 KiB hot, whole guest")],
    }
    text = report.smallhot_markdown({"sim": sim, "vm": vm})
    header = next(line for line in text.splitlines() if line.startswith("| hot set share |"))
    assert "damonx (VM)" in header and "kernel DAMON (VM)" in header
    assert "damonx, kernel rules (VM)" not in header  # not run: no column
    line = next(line for line in text.splitlines() if line.startswith("| 1/256 |"))
    assert line.split("|")[1:-1] == [" 1/256 ", " 0.4 s ", " 1.2 s ", " 0.9 s ", " not found "]
    assert "| 8192 KiB hot, whole guest, kernel DAMON | 1/1 | 3.0 s | 1234 | 17 |" in text
    # without the VM, the simulated tables only
    assert "(VM)" not in report.smallhot_markdown({"sim": sim})
