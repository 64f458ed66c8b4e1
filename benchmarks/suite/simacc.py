"""Accuracy of damonx on simulated workloads (sim backend, exact ground
truth, runs on the host in simulated time).

  hotcold   the buffer in 8 slots; one slot is accessed (each page with
            probability 0.5 per sampling interval) and the hot slot moves to
            the next one every period seconds, as benchmarks/workloads/hotcold.c
  uniform   every page of the buffer accessed with probability 0.05 per
            sampling interval, as a slow uniform random access (rand.c)

Scored with the same metrics as the VM runs (suite.metrics).
"""

import damonx
from damonx.sim import Workload
from suite import metrics

MIB = 1 << 20


def workload(kind, size, period_s, duration_s, nr_slots=8):
    if kind == "uniform":
        return Workload.from_dict(
            {
                "size": size,
                "phases": [
                    {
                        "duration_us": int(duration_s * 1e6),
                        "ranges": [{"start": 0, "end": size, "probability": 0.05}],
                    }
                ],
            }
        )
    hot = size // nr_slots
    nr_phases = int(duration_s // period_s) + 1
    return Workload.from_dict(
        {
            "size": size,
            "phases": [
                {
                    "duration_us": int(period_s * 1e6),
                    "ranges": [
                        {
                            "start": (i % nr_slots) * hot,
                            "end": (i % nr_slots + 1) * hot,
                            "probability": 0.5,
                        }
                    ],
                }
                for i in range(nr_phases)
            ],
        }
    )


def run_one(kind, size_mib, period_s, duration_s, seed=1, max_nr_regions=1000):
    size = size_mib * MIB
    wl = workload(kind, size, period_s, duration_s)
    if kind == "hotcold":
        probe_ranges = metrics.probes("hotcold", 0, size, size // 8)
    else:
        probe_ranges = metrics.probes("uniform", 0, size)
    samples, nr_regions = [], []
    attrs = damonx.Attrs(max_nr_regions=max_nr_regions)
    with damonx.Monitor("sim", wl, attrs, seed=seed) as mon:
        t0 = None
        for snap in mon:
            t0 = snap.start_ns if t0 is None else t0
            t = (snap.end_ns - t0) / 1e9
            regions = snap.regions
            samples.append((t, metrics.found_per_probe(regions, probe_ranges)))
            nr_regions.append(len(regions))
            if t >= duration_s:
                break
    wl_name = "hotcold" if kind == "hotcold" else "uniform"
    per = period_s if kind == "hotcold" else None
    scored = metrics.score_series(wl_name, samples, probe_ranges, per)
    return {
        "workload": kind,
        "size_mib": size_mib,
        "max_nr_regions": max_nr_regions,
        "period_s": per,
        "duration_s": duration_s,
        "nr_regions": metrics.median(nr_regions),
        "accuracy": metrics.summarize_scores(scored, per),
        "series": [
            [
                round(s["t"], 3),
                round(s["precision"], 4),
                round(s["recall"], 4),
                round(s["wss_err"], 4),
            ]
            for s in scored
        ],
    }


def run(sizes_mib, period_s, duration_s, log=print):
    out = []
    for kind in ("hotcold", "uniform"):
        for size in sizes_mib:
            r = run_one(kind, size, period_s, duration_s)
            a = r["accuracy"]
            log(
                f"sim {kind} {size} MiB: {r['nr_regions']} regions, settled P/R "
                f"{a['precision']:.2f}/{a['recall']:.2f}"
            )
            out.append(r)
    return out
