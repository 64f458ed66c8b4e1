"""Ground truth and accuracy metrics of the benchmark suite (pure Python).

A workload's buffer is tiled by *probes*: [start, end) virtual ranges whose
found-hot bytes every monitor reports per sample (the whole buffer as one
probe for ``seq`` and ``rand``; one probe per slot of the moving hot set for
``hotcold``).  From the found bytes per probe and the ground truth (which
probes are hot at time t) follow precision and recall by bytes and the
working set size error.
"""

import math
import statistics

MIB = 1 << 20

#: seconds after the hot set (re)appears at which convergence is reported
CHECKPOINTS_S = (0.5, 1, 2, 5, 10)
#: samples this long after a (re)appearance count as settled
SETTLED_AFTER_S = 1.0


def probes(workload, start, end, hot_bytes=None):
    """The probe ranges of a workload's buffer [start, end)."""
    if workload == "hotcold":
        if not hot_bytes or (end - start) % hot_bytes:
            raise ValueError("hotcold needs a hot size that divides the buffer")
        return [(lo, lo + hot_bytes) for lo in range(start, end, hot_bytes)]
    return [(start, end)]


def hot_probe(workload, t_rel_s, nr_probes, period_s=None):
    """Index of the probe that is hot t_rel_s after the work started, or None
    when the whole buffer is (seq, rand).  Mirrors hotcold.c: the slot is
    floor(t / period) mod nr_slots."""
    if workload == "hotcold":
        return int(max(t_rel_s, 0.0) // period_s) % nr_probes
    return None


def since_change(workload, t_rel_s, period_s=None):
    """Seconds since the hot set last appeared or moved."""
    if workload == "hotcold":
        return max(t_rel_s, 0.0) % period_s
    return max(t_rel_s, 0.0)


def score(found, probe_ranges, hot):
    """Precision, recall and WSS error of one sample.

    found: found-hot bytes per probe; hot: index of the hot probe, or None
    for "every probe is hot".  WSS error is (found - true) / true."""
    sizes = [hi - lo for lo, hi in probe_ranges]
    total = sum(found)
    if hot is None:
        true, tp = sum(sizes), total
    else:
        true, tp = sizes[hot], found[hot]
    precision = tp / total if total else 0.0
    recall = tp / true if true else 1.0
    return precision, recall, (total - true) / true if true else 0.0


def score_series(workload, samples, probe_ranges, period_s=None):
    """Score samples [(t_rel_s, [found bytes per probe]), ...]; a list of
    dicts t, since, precision, recall, wss_err (samples before the work
    started are dropped)."""
    out = []
    for t, found in samples:
        if t < 0:
            continue
        hot = hot_probe(workload, t, len(probe_ranges), period_s)
        p, r, w = score(found, probe_ranges, hot)
        out.append(
            {
                "t": t,
                "since": since_change(workload, t, period_s),
                "precision": p,
                "recall": r,
                "wss_err": w,
            }
        )
    return out


def summarize_scores(scored, period_s=None):
    """Settled means and convergence checkpoints of a scored series.

    settled: means over the samples at least SETTLED_AFTER_S after the hot
    set (re)appeared.  checkpoints: for each of CHECKPOINTS_S that fits in a
    period, the mean over the (re)appearances of the first sample at or
    after that many seconds."""
    res = {"nr_samples": len(scored)}
    settled = [s for s in scored if s["since"] >= SETTLED_AFTER_S]
    for key in ("precision", "recall", "wss_err"):
        res[key] = statistics.fmean(s[key] for s in settled) if settled else None
    cps = {}
    for cp in CHECKPOINTS_S:
        if period_s is not None and cp >= period_s:
            continue
        firsts, epoch = {}, None
        for s in scored:
            epoch = int(s["t"] // period_s) if period_s else 0
            if s["since"] >= cp and epoch not in firsts:
                # the first sample past the checkpoint, if still in the same epoch
                firsts[epoch] = s
        if firsts:
            cps[str(cp)] = {
                k: statistics.fmean(s[k] for s in firsts.values())
                for k in ("precision", "recall", "wss_err")
            }
    res["checkpoints"] = cps
    return res


def found_per_probe(regions, probe_ranges, min_nr_accesses=1):
    """Bytes of regions with nr_accesses >= min_nr_accesses inside each probe.

    regions: an iterable of (start, end, nr_accesses) or a numpy array with
    those fields."""
    try:
        import numpy as np

        starts = np.asarray(regions["start"], dtype=np.int64)
        ends = np.asarray(regions["end"], dtype=np.int64)
        acc = np.asarray(regions["nr_accesses"])
        keep = acc >= min_nr_accesses
        starts, ends = starts[keep], ends[keep]
        return [
            int(np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None).sum())
            for lo, hi in probe_ranges
        ]
    except (TypeError, IndexError, ValueError):
        pass
    out = []
    for lo, hi in probe_ranges:
        total = 0
        for s, e, n in regions:
            if n >= min_nr_accesses:
                total += max(0, min(e, hi) - max(s, lo))
        out.append(total)
    return out


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def slowdown(runtime_s, baseline_s):
    """Relative slowdown: runtime / baseline - 1."""
    if runtime_s is None or not baseline_s:
        return None
    return runtime_s / baseline_s - 1.0


def summarize_runs(runs):
    """Medians per (workload, size, config) of raw VM runs.

    Each run: workload, size_mib, config, runtime_s, and for monitored runs
    cpu_pct and optionally accuracy (a summarize_scores dict) and
    nr_regions.  Slowdowns are against the median baseline of the same
    workload and size in the same boot."""
    groups = {}
    for r in runs:
        groups.setdefault((r["workload"], r["size_mib"], r["config"]), []).append(r)
    out = []
    for (wl, size, cfg), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _cfg_order(kv[0][2]))
    ):
        base = groups.get((wl, size, "baseline"), [])
        base_rt = median(r["runtime_s"] for r in base)
        rt = median(r["runtime_s"] for r in rs)
        row = {
            "workload": wl,
            "size_mib": size,
            "config": cfg,
            "nr_runs": len(rs),
            "runtime_s": rt,
            "baseline_s": base_rt,
            "slowdown": None if cfg == "baseline" else slowdown(rt, base_rt),
            "cpu_pct": median(r.get("cpu_pct") for r in rs),
            "nr_regions": median(r.get("nr_regions") for r in rs),
            "interval_s": median(r.get("interval_s") for r in rs),
        }
        for key in ("precision", "recall", "wss_err"):
            row[key] = median((r.get("accuracy") or {}).get(key) for r in rs)
        cps = {}
        for r in rs:
            for cp, vals in ((r.get("accuracy") or {}).get("checkpoints") or {}).items():
                cps.setdefault(cp, []).append(vals)
        row["checkpoints"] = {
            cp: {k: median(v[k] for v in vals) for k in vals[0]} for cp, vals in cps.items()
        }
        out.append(row)
    return out


CONFIG_ORDER = ("baseline", "damonx", "damonx-r100", "damonx-r10000", "kernel", "fullscan")


def _cfg_order(cfg):
    return CONFIG_ORDER.index(cfg) if cfg in CONFIG_ORDER else len(CONFIG_ORDER)


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The processor's model name, or "" when /proc/cpuinfo does not say."""
    with open(cpuinfo) as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""
