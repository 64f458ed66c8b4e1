#!/usr/bin/env python3
"""Reports on long records: damonx and damo 3.4.3, against the time it takes
just to decompress the record.

    python benchmarks/bench_reports.py [--sizes 100,1000,6000,36000]
        [--objects-max 6000] [--repeats N] [--out DIR] [--report-only]

Records: ``damonx record --ops sim`` of a simulated 4 GiB workload, 400 hot
ranges of 1 to 4 MiB in 1024 slots with access probabilities from 0.05 to
0.95, placed anew every 300 s of simulated time, at the default intervals
(5 ms sampling, 100 ms aggregation: N snapshots are N / 10 s of simulated
time).  The regions settle at about 450.  Records are written in damo's
default format, json_compressed, and cached in ``build/bench-reports/``.

Every command runs as a process of its own, timed from outside from its
start to its exit (interpreter start-up and imports included), with its
standard output thrown away; the peak memory is the child's maximum
resident set size (``os.wait4``).  Each figure is the median of
``--repeats`` runs of damonx's commands (default 1) and of one run of the
others (damo takes minutes per report on the longer records).  Every run
follows a run of the decompression, and a command's ratio to that floor is
the median of the ratios of these pairs, so that a change of the machine's
load between runs moves both sides (the table gives their range too, of
several runs, as a measure of the noise).  The commands:

- ``decompress``: Python reading the file and decompressing it with zlib
  in 64 KiB pieces, as every reader of the file must: the floor;
- ``json.loads``: the file decompressed and parsed by the standard
  library into Python objects (the objects alone, no report);
  ``orjson.loads`` and ``msgspec`` likewise when those are installed
  (on records of up to ``--objects-max`` snapshots, as damo below);
- ``damonx report wss``, ``nr_regions``, ``footprint``, ``access``,
  ``heatmap`` (20 x 80 text) and ``heatmap -o PNG`` (200 x 300 cells);
- ``damo report wss``, ``nr_regions``, ``access`` and ``heatmap`` (its
  default output, text), on records of up to ``--objects-max`` snapshots
  (damo holds every region as Python objects: about 3 GB at 6,000
  snapshots, so 36,000 would need about 20 GB).

It writes ``results.json``, ``table.md`` and ``reports.png`` (each
command's median ratio to the floor) to ``--out``
(default ``benchmarks/results/reports``) and, with the default output, the
table into ``benchmarks/README.md`` between the ``bench-reports`` markers.
``--report-only`` redoes the table, the plot and the README from
``results.json``.
"""

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, "build", "bench-reports")
DEFAULT_OUT = os.path.join(HERE, "results", "reports")
README = os.path.join(HERE, "README.md")
MARK_BEGIN = "<!-- bench-reports:begin -->"
MARK_END = "<!-- bench-reports:end -->"

GiB, MiB = 1 << 30, 1 << 20
SNAPSHOTS_PER_S = 10  # 100 ms aggregations
PHASE_S = 300

DECOMPRESS = """
import sys, zlib
d = zlib.decompressobj()
with open(sys.argv[1], "rb") as f:
    while True:
        piece = f.read(1 << 16)
        if not piece:
            break
        d.decompress(piece)
"""
LOADS = """
import sys, zlib
text = zlib.decompress(open(sys.argv[1], "rb").read())
{}
"""
PARSERS = {
    "json.loads": ("json", "import json; json.loads(text)"),
    "orjson.loads": ("orjson", "import orjson; orjson.loads(text)"),
    "msgspec": ("msgspec", "import msgspec; msgspec.json.decode(text)"),
}
DAMONX_REPORTS = ["wss", "nr_regions", "footprint", "access", "heatmap", "heatmap -o PNG"]
DAMO_REPORTS = ["wss", "nr_regions", "access", "heatmap"]


def workload(nr_phases, seed=1):
    """The simulated workload: 400 hot ranges in 1024 slots of 4 MiB,
    placed anew in each phase."""
    rng = random.Random(seed)
    slot = 4 * GiB // 1024
    phases = []
    for _ in range(nr_phases):
        ranges = []
        for s in sorted(rng.sample(range(1024), 400)):
            length = rng.choice([1, 2, 4]) * MiB
            start = s * slot + rng.randrange(0, slot - length + 1, 64 * 1024)
            ranges.append(
                {
                    "start": start,
                    "end": start + length,
                    "probability": round(rng.uniform(0.05, 0.95), 2),
                }
            )
        phases.append({"duration_us": PHASE_S * 1_000_000, "ranges": ranges})
    return {"size": 4 * GiB, "page_size": 4096, "phases": phases}


def record(nr_snapshots):
    """The path of the record of ``nr_snapshots`` snapshots, made if not cached."""
    path = os.path.join(CACHE, f"sim-{nr_snapshots}.data")
    if os.path.exists(path):
        return path
    os.makedirs(CACHE, exist_ok=True)
    seconds = nr_snapshots / SNAPSHOTS_PER_S
    wl = os.path.join(CACHE, f"workload-{nr_snapshots}.json")
    with open(wl, "w") as f:
        json.dump(workload(max(1, -(-int(seconds) // PHASE_S))), f)
    print(f"recording {path} ({seconds:g} s simulated)", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "damonx", "record", "--ops", "sim", "--workload", wl,
         "--timeout", str(seconds), "-o", path + ".tmp", "--overwrite", "--quiet"],
        check=True,
    )  # fmt: skip
    os.replace(path + ".tmp", path)
    return path


def run(argv):
    """(wall seconds, peak RSS MiB) of one run of argv."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def measure(argv, repeats, floor=None):
    """Median wall seconds, peak RSS (MiB) and, with ``floor`` (the argv of
    the decompression), the ratios to it of ``repeats`` runs, each run
    right after one of the floor's, so that a change in the machine's load
    between runs moves both."""
    walls, peaks, ratios = [], [], []
    for _ in range(repeats):
        base = run(floor)[0] if floor else None
        wall, peak = run(argv)
        walls.append(wall)
        peaks.append(peak)
        if base:
            ratios.append(wall / base)
    return statistics.median(walls), max(peaks), ratios


def commands(path, nr_snapshots, objects_max):
    """(name, argv) of every command on the record at ``path``."""
    py = sys.executable
    objects = nr_snapshots <= objects_max  # commands that hold every region as objects
    out = [("decompress", [py, "-c", DECOMPRESS, path])]
    for name, (module, code) in PARSERS.items():
        importable = subprocess.run([py, "-c", f"import {module}"], capture_output=True)
        if objects and importable.returncode == 0:
            out.append((name, [py, "-c", LOADS.format(code), path]))
    png = os.path.join(CACHE, "heatmap.png")
    for report in DAMONX_REPORTS:
        args = report.replace("PNG", png).split()
        out.append((f"damonx {report}", [py, "-m", "damonx", "report", *args, "-i", path]))
    damo = shutil.which("damo", path=os.path.dirname(py)) or shutil.which("damo")
    if damo and objects:
        for report in DAMO_REPORTS:
            out.append((f"damo {report}", [damo, "report", report, "-i", path]))
    return out


def bench(sizes, objects_max, repeats):
    res = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "sizes": {},
    }
    for n in sizes:
        path = record(n)
        entry = {"file_bytes": os.path.getsize(path), "runs": {}, "loadavg": os.getloadavg()}
        cmds = commands(path, n, objects_max)
        floor = cmds[0][1]
        for name, argv in cmds:
            damonx = name.startswith("damonx")
            repeat = repeats if damonx or name == "decompress" else 1
            wall, peak, ratios = measure(argv, repeat, floor if name != "decompress" else None)
            ratio = statistics.median(ratios) if ratios else None
            entry["runs"][name] = {
                "wall_s": wall,
                "peak_mib": peak,
                "over_floor": ratio,
                "ratios": ratios,
            }
            print(
                f"{n:>6} snapshots  {name:<28} {wall:8.2f} s  {peak:7.0f} MiB  {ratio or 1:5.1f}x",
                file=sys.stderr,
            )
        res["sizes"][str(n)] = entry
    return res


# ------------------------------------------------------------------ output


def table(res):
    sizes = list(res["sizes"])
    names = []
    for entry in res["sizes"].values():
        names += [n for n in entry["runs"] if n not in names]
    head = "| command | " + " | ".join(f"{int(s):,} snapshots" for s in sizes) + " |"
    lines = [head, "|---|" + "---:|" * len(sizes)]
    lines.append(
        "| record file | "
        + " | ".join(f"{res['sizes'][s]['file_bytes'] / 1e6:.1f} MB" for s in sizes)
        + " |"
    )
    for name in names:
        cells = []
        for s in sizes:
            r = res["sizes"][s]["runs"].get(name)
            cells.append(f"{r['wall_s']:.2f} s, {r['peak_mib']:.0f} MiB" if r else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Each report's time over the decompression floor (each run paired with a run of "
        "`decompress` just before it; the median of the ratios and, of several runs, "
        "their range):"
    )
    lines.append("")
    lines.append("| report | " + " | ".join(f"{int(s):,}" for s in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for name in names:
        if not name.startswith(("damonx", "damo ")):
            continue
        cells = []
        for s in sizes:
            r = res["sizes"][s]["runs"].get(name)
            cells.append(_ratio_cell(r) if r else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _ratio_cell(run):
    """The median ratio to the floor and, of several runs, their range."""
    cell = f"{run['over_floor']:.1f}x"
    ratios = run.get("ratios") or []
    if len(ratios) > 1:
        cell += f" ({min(ratios):.1f}-{max(ratios):.1f})"
    return cell


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(s) for s in res["sizes"]]
    fig, ax = plt.subplots(figsize=(8, 5))

    def series(name):
        """(sizes, ratios to the floor) of the runs of ``name``: the paired
        ratios, which a change of the machine's load moves less than the
        wall times of separate runs."""
        pts = [(n, res["sizes"][str(n)]["runs"].get(name)) for n in sizes]
        pts = [(n, r["over_floor"]) for n, r in pts if r and r.get("over_floor")]
        return [n for n, _ in pts], [v for _, v in pts]

    ax.axhline(1, color="k", lw=2, label="decompress (floor)")
    ax.axhline(3, color="k", ls=":", label="3 x floor")
    for i, report in enumerate(["wss", "nr_regions", "access", "heatmap"]):
        color = f"C{i}"
        ax.plot(*series(f"damonx {report}"), "-o", color=color, ms=4, label=f"damonx {report}")
        xs, ys = series(f"damo {report}")
        if xs:
            ax.plot(xs, ys, "--s", color=color, ms=4, label=f"damo {report}")
    ax.plot(*series("damonx heatmap -o PNG"), "-^", color="C4", ms=4, label="damonx heatmap PNG")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("snapshots in the record (json_compressed)")
    ax.set_ylabel("time over the decompression (median of paired runs)")
    ax.set_title("Reports on long records")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def update_readme(text):
    with open(README) as f:
        readme = f.read()
    block = f"{MARK_BEGIN}\n{text}{MARK_END}"
    if MARK_BEGIN not in readme:
        raise SystemExit(f"{README} has no {MARK_BEGIN} marker")
    readme = re.sub(
        re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda _: block, readme, flags=re.S
    )
    with open(README, "w") as f:
        f.write(readme)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,6000,36000", help="record sizes in snapshots")
    ap.add_argument(
        "--objects-max",
        type=int,
        default=6000,
        help="largest record for damo and the parsers into Python objects",
    )
    ap.add_argument("--repeats", type=int, default=1, help="runs per damonx command (median)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results = os.path.join(args.out, "results.json")
    if args.report_only:
        with open(results) as f:
            res = json.load(f)
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        res = bench(sizes, args.objects_max, args.repeats)
        with open(results, "w") as f:
            json.dump(res, f, indent=1)
    text = table(res)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    plot(res, os.path.join(args.out, "reports.png"))
    if os.path.abspath(args.out) == os.path.abspath(DEFAULT_OUT):
        update_readme(text)
    print(text)


if __name__ == "__main__":
    main()
