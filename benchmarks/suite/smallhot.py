"""Small hot sets in large memory, and the access checks they cost.

Runs damonx's compiled core on simulated targets (exact ground truth, virtual
clock: a simulated minute costs milliseconds) with damonx's own rules
(``Attrs.hit_guided_regions``, ``Attrs.adaptive_checks``), with the kernel's
rules, and with single rules on or off (``damonx._core.RULES``), and reports:

- time to detection: the end of the first snapshot from which precision and
  recall by bytes of the hot set (regions with nr_accesses >= 1) are both at
  least 0.8 in 8 of the 10 snapshots that start there (one second);
- kept: the share of the snapshots after detection that still have both;
- access checks per second, against the kernel's rules on the same target
  and seed, and the most regions of any snapshot;
- on the patterns the other benchmarks use (uniform, a moving hot set, a
  static hot/cold split), settled precision and recall and the convergence
  after each move, with both sets of rules.

From ``benchmarks/``, ``python -m suite.smallhot [--seeds N] [--ablation]
[--json FILE]`` prints the tables in Markdown (``markdown()``, as in
``benchmarks/README.md``); it takes about half a minute.
"""

import argparse
import json
import random
import statistics

import damonx
from damonx import _core
from damonx.sim import precision_recall

from . import metrics

GIB, MIB = 1 << 30, 1 << 20

#: the rules of each configuration: None for the attributes' (all of damonx's)
CONFIGS = {"damonx": None, "kernel rules": []}

#: what each rule buys, added one group at a time to the kernel's rules
ABLATION = {
    "kernel rules": [],
    "+ seeds": ["seeds"],
    "+ seeds, keep": ["seeds", "keep"],
    "+ seeds, keep, probes": ["seeds", "keep", "probes"],
    "hit-guided (+ search)": ["seeds", "keep", "probes", "search"],
    "adaptive checks only": ["periods", "noise"],
    "hit-guided + noise": ["seeds", "keep", "probes", "search", "noise"],
    "damonx (all)": sorted(_core.RULES),
}

#: the goals: (name, target size, hot set sizes); p = 0.5 per sample
GOALS = (
    ("4 MiB in 64 GiB", 64 * GIB, (4 * MIB,)),
    ("8 MiB in 128 GiB", 128 * GIB, (8 * MIB,)),
    ("1 MiB in 16 GiB", 16 * GIB, (1 * MIB,)),
    ("2 x 1 MiB in 16 GiB", 16 * GIB, (1 * MIB, 1 * MIB)),
)

#: hot set shares of the sweep, of a 64 GiB target
SHARES = (256, 1024, 4096, 16384, 65536)

DETECT_PR, DETECT_WINDOW, DETECT_NEED = 0.8, 10, 8


def place(size, hot_sizes, seed):
    """Hot sets at random page-aligned places, one in each equal slice of
    [0, size) (so that several lie far apart): [(start, end), ...]."""
    rng = random.Random(seed * 7919 + len(hot_sizes))
    n, out = len(hot_sizes), []
    for i, sz in enumerate(hot_sizes):
        lo, hi = size * i // n, size * (i + 1) // n - sz
        start = rng.randrange(lo, hi) // 4096 * 4096
        out.append((start, start + sz))
    return out


def context(rules, seed, attrs=None):
    """A sim context of the compiled core with the given rules (None: the
    attributes' own)."""
    return _core.Context(attrs or damonx.Attrs(), "sim", seed, virtual_clock=True, rules=rules)


def sim_run(size, phases, rules=None, seed=0, duration_s=20.0, attrs=None, score=None):
    """Monitor a simulated target of size bytes with phases
    [(duration_us, [(start, end, probability)])] for duration_s simulated
    seconds.  score(t_s, regions) returns what to keep of each snapshot.
    Returns (scores, checks per second, the most regions of a snapshot)."""
    ctx = context(rules, seed, attrs)
    ctx.add_sim_target(0, size, 4096, phases)
    out, nr_max, end_ns = [], 0, 0
    while ctx.run_aggregation():
        _, end_ns, targets = ctx.snapshot()
        regions = targets[0][1]
        nr_max = max(nr_max, len(regions))
        out.append(score(end_ns / 1e9, regions))
        if end_ns >= duration_s * 1e9:
            break
    return out, ctx.stats()["nr_region_checks"] / (end_ns / 1e9), nr_max


def detection(series):
    """(time to detection or None, kept) of [(t_s, precision, recall)]."""
    ok = [min(p, r) >= DETECT_PR for _, p, r in series]
    for i in range(len(ok)):
        window = ok[i : i + DETECT_WINDOW]
        if ok[i] and sum(window) >= min(DETECT_NEED, len(window)):
            return series[i][0], sum(ok[i:]) / len(ok[i:])
    return None, None


def hot_set_run(size, hot, probability=0.5, rules=None, seed=0, duration_s=20.0):
    """One run on a target with static hot sets hot [(start, end)]."""
    phases = [(int(duration_s * 1e6) + 1, [(lo, hi, probability) for lo, hi in sorted(hot)])]
    series, cps, nr_max = sim_run(
        size,
        phases,
        rules,
        seed,
        duration_s,
        score=lambda t, regions: (t, *precision_recall(regions, hot)),
    )
    detect_s, kept = detection(series)
    return {"detect_s": detect_s, "kept": kept, "checks_per_s": cps, "max_nr_regions": nr_max}


def _median(values, missing):
    return statistics.median(missing if v is None else v for v in values)


def summarize(runs, within_s, kernel_cps=None):
    """Aggregates of hot_set_run()s over seeds."""
    detects = [r["detect_s"] for r in runs]
    kept = [r["kept"] for r in runs if r["kept"] is not None]
    cps = statistics.fmean(r["checks_per_s"] for r in runs)
    return {
        "nr_runs": len(runs),
        "nr_found": sum(d is not None and d <= within_s for d in detects),
        "median_detect_s": _median(detects, float("inf")),
        "max_detect_s": max((d for d in detects if d is not None), default=None),
        "kept": min(kept) if kept else None,
        "checks_per_s": cps,
        "checks_vs_kernel": cps / kernel_cps if kernel_cps else None,
        "max_nr_regions": max(r["max_nr_regions"] for r in runs),
    }


def goals(seeds, duration_s=20.0, configs=CONFIGS, log=print):
    """Every goal case under every configuration, over seeds."""
    out = []
    for name, size, hot_sizes in GOALS:
        runs = {
            cfg: [
                hot_set_run(size, place(size, hot_sizes, s), 0.5, rules, s, duration_s)
                for s in seeds
            ]
            for cfg, rules in configs.items()
        }
        kernel_cps = statistics.fmean(r["checks_per_s"] for r in runs["kernel rules"])
        for cfg, rs in runs.items():
            row = {"case": name, "config": cfg, **summarize(rs, 10.0, kernel_cps)}
            out.append(row)
            log(
                f"{name}, {cfg}: found within 10 s {row['nr_found']}/{row['nr_runs']}, "
                f"median {row['median_detect_s']:.1f} s, {row['checks_per_s']:.0f} checks/s"
            )
    return out


def shares(seeds, duration_s=60.0, size=64 * GIB, log=print):
    """Time to detection against the hot set's share of the target."""
    out = []
    for share in SHARES:
        for cfg, rules in CONFIGS.items():
            rs = [
                hot_set_run(size, place(size, (size // share,), s), 0.5, rules, s, duration_s)
                for s in seeds
            ]
            row = {"share": share, "config": cfg, **summarize(rs, duration_s)}
            out.append(row)
            log(f"1/{share}, {cfg}: median detection {row['median_detect_s']:.1f} s")
    return out


# ------------------------------------------------------------- patterns


def moving_phases(size, period_s, duration_s, probability, nr_slots=8):
    """hotcold: one eighth of [0, size) hot, moving to the next every period_s."""
    hot = size // nr_slots
    return [
        (int(period_s * 1e6), [((i % nr_slots) * hot, (i % nr_slots + 1) * hot, probability)])
        for i in range(int(duration_s // period_s) + 1)
    ]


PATTERNS = {
    # name: (size, phases(duration_s), probes, period_s)
    "uniform 2 GiB, p 0.05": (
        2 * GIB,
        lambda d: [(int(d * 1e6) + 1, [(0, 2 * GIB, 0.05)])],
        lambda: metrics.probes("uniform", 0, 2 * GIB),
        None,
    ),
    "moving 1/8 of 2 GiB, p 0.5": (
        2 * GIB,
        lambda d: moving_phases(2 * GIB, 5, d, 0.5),
        lambda: metrics.probes("hotcold", 0, 2 * GIB, 2 * GIB // 8),
        5,
    ),
    "moving 1/8 of 2 GiB, p 1": (
        2 * GIB,
        lambda d: moving_phases(2 * GIB, 5, d, 1.0),
        lambda: metrics.probes("hotcold", 0, 2 * GIB, 2 * GIB // 8),
        5,
    ),
    "hot/cold 1 GiB, 1/8 at p 0.9": (
        GIB,
        lambda d: [(int(d * 1e6) + 1, [(GIB // 8, GIB // 4, 0.9)])],
        None,
        None,
    ),
}


def pattern_run(name, rules, seed, duration_s):
    size, phases, probes, period_s = PATTERNS[name]
    if probes is None:  # static: one hot range, scored like the goals
        hot = [(lo, hi) for lo, hi, _ in phases(duration_s)[0][1]]

        def score(t, regions):
            return (t, *precision_recall(regions, hot))
    else:
        ranges = probes()

        def score(t, regions):
            return (t - 0.1, metrics.found_per_probe(regions, ranges))

    series, cps, nr_max = sim_run(size, phases(duration_s), rules, seed, duration_s, score=score)
    if probes is None:
        settled = [(p, r) for t, p, r in series if t >= 1.0]
        return {
            "precision": statistics.fmean(p for p, _ in settled),
            "recall": statistics.fmean(r for _, r in settled),
            "detect_s": detection(series)[0],
            "checks_per_s": cps,
            "max_nr_regions": nr_max,
        }
    kind = "hotcold" if period_s else "uniform"
    acc = metrics.summarize_scores(metrics.score_series(kind, series, ranges, period_s), period_s)
    cp = acc["checkpoints"].get("0.5")
    return {
        "precision": acc["precision"],
        "recall": acc["recall"],
        "precision_0.5s": cp and cp["precision"],
        "recall_0.5s": cp and cp["recall"],
        "checks_per_s": cps,
        "max_nr_regions": nr_max,
    }


def patterns(seeds, duration_s=30.0, configs=CONFIGS, log=print):
    """Each pattern under each configuration: means over seeds."""
    out = []
    for name in PATTERNS:
        for cfg, rules in configs.items():
            rs = [pattern_run(name, rules, s, duration_s) for s in seeds]
            row = {"pattern": name, "config": cfg}
            for key in rs[0]:
                vals = [r[key] for r in rs if r[key] is not None]
                row[key] = statistics.fmean(vals) if vals else None
            out.append(row)
            log(
                f"{name}, {cfg}: P/R {row['precision']:.3f}/{row['recall']:.3f}, "
                f"{row['checks_per_s']:.0f} checks/s"
            )
    return out


def ablation(seeds, duration_s=20.0, log=print):
    """What each rule buys: the goals and the patterns under ABLATION."""
    return {
        "goals": goals(seeds, duration_s, ABLATION, log),
        "patterns": patterns(seeds[:3], 30.0, ABLATION, log),
    }


# ------------------------------------------------------------- the suite


def run(plan, log=print):
    """The simulated part of the suite (host)."""
    seeds = list(range(plan.get("smallhot_seeds", 10)))
    return {
        "goals": goals(seeds, log=log),
        "shares": shares(seeds, plan.get("smallhot_share_s", 60.0), log=log),
        "patterns": patterns(seeds[:5], log=log),
    }


def _s(v):
    return "not found" if v is None or v == float("inf") else f"{v:.1f} s"


def _pr(p, r):
    return "n/a" if p is None else f"{p:.3f}/{r:.3f}"


def goals_table(rows):
    lines = [
        "| hot set (p 0.5) | rules | found within 10 s | median detection | slowest | kept "
        "| checks/s | vs kernel rules | most regions |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        kept = "n/a" if r["kept"] is None else f"{r['kept']:.2f}"
        vs = "n/a" if r["checks_vs_kernel"] is None else f"{r['checks_vs_kernel']:.2f}x"
        lines.append(
            f"| {r['case']} | {r['config']} | {r['nr_found']}/{r['nr_runs']} | "
            f"{_s(r['median_detect_s'])} | {_s(r['max_detect_s'])} | {kept} | "
            f"{r['checks_per_s']:.0f} | {vs} | {r['max_nr_regions']} |"
        )
    return "\n".join(lines)


def shares_table(rows, vm_rows=None):
    """Median time to detection per share: sim columns, and the VM's."""
    cols = [(f"{cfg} (sim)", [r for r in rows if r["config"] == cfg]) for cfg in CONFIGS]
    for cfg in ("damonx", "damonx, kernel rules", "kernel DAMON"):
        vm = [r for r in vm_rows or [] if r["config"] == cfg]
        if vm:
            cols.append((f"{cfg} (VM)", vm))
    lines = [
        "| hot set share | " + " | ".join(name for name, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for share in SHARES:
        cells = []
        for _, rs in cols:
            r = next((x for x in rs if x["share"] == share), None)
            cells.append("n/a" if r is None else _s(r["median_detect_s"]))
        lines.append(f"| 1/{share} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def patterns_table(rows):
    lines = [
        "| pattern | rules | settled P/R | P/R 0.5 s after a move | checks/s | most regions |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        after = _pr(r.get("precision_0.5s"), r.get("recall_0.5s"))
        lines.append(
            f"| {r['pattern']} | {r['config']} | {_pr(r['precision'], r['recall'])} | "
            f"{after} | {r['checks_per_s']:.0f} | {r['max_nr_regions']:.0f} |"
        )
    return "\n".join(lines)


def markdown(res, vm=None):
    """The small-hot-set section of the results (Markdown)."""
    out = [
        "Small hot sets in large memory (`suite/smallhot.py`; simulation: exact ground "
        "truth, hot pages accessed with probability 0.5 per sample, hot sets at random "
        f"places, {res['goals'][0]['nr_runs']} seeds; default attributes). Detection: "
        "precision and recall by bytes >= 0.8 in 8 of the next 10 snapshots.",
        "",
        goals_table(res["goals"]),
        "",
        "Median time to detection against the hot set's share of the target "
        "(sim: a 64 GiB target; VM: a 2 GiB process):",
        "",
        shares_table(res["shares"], (vm or {}).get("shares")),
        "",
        "The patterns of the other benchmarks, with damonx's rules and the kernel's "
        "(means over seeds):",
        "",
        patterns_table(res["patterns"]),
    ]
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m suite.smallhot", description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--ablation", action="store_true", help="what each rule buys")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    seeds = list(range(args.seeds))
    if args.ablation:
        res = ablation(seeds)
        text = goals_table(res["goals"]) + "\n\n" + patterns_table(res["patterns"]) + "\n"
    else:
        res = run({"smallhot_seeds": args.seeds})
        text = markdown(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
