"""Tables (Markdown) and plots (PNG) from the suite's results JSON."""

import re

MARK_BEGIN = "<!-- suite-results:begin -->"
MARK_END = "<!-- suite-results:end -->"

MONITORS = (("damonx", "damonx"), ("kernel", "kernel DAMON"), ("fullscan", "full scan"))
#: the main table's: also damonx's Monitor on the kernel's DAMON (backend kernel)
MAIN_MONITORS = MONITORS[:2] + (("damonx-kernel", "damonx on kernel DAMON"),) + MONITORS[2:]


def _pct(v, signed=False):
    if v is None:
        return "n/a"
    return f"{v:+.1f}%" if signed else f"{v:.1f}%"


def _pr(row):
    if row is None or row.get("precision") is None:
        return "n/a"
    return f"{row['precision']:.2f}/{row['recall']:.2f}"


def _size(mib):
    return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


def _index(summary):
    return {(r["workload"], r["size_mib"], r["config"]): r for r in summary}


def main_table(summary, workloads, sizes):
    idx = _index(summary)
    head = (
        ["workload", "size"]
        + [f"{n} CPU" for _, n in MAIN_MONITORS]
        + [f"{n} slowdown" for _, n in MAIN_MONITORS]
        + [f"{n} P/R" for _, n in MAIN_MONITORS]
    )
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for wl in workloads:
        for size in sizes:
            if (wl, size, "baseline") not in idx:
                continue
            rows = [idx.get((wl, size, key)) for key, _ in MAIN_MONITORS]
            cells = [wl, _size(size)]
            cells += [_pct(r and r["cpu_pct"]) for r in rows]
            cells += [
                _pct(None if r is None or r["slowdown"] is None else 100 * r["slowdown"], True)
                for r in rows
            ]
            cells += [_pr(r) for r in rows]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def regions_table(summary, workloads, sizes):
    idx = _index(summary)
    lines = [
        "| workload | size | max_nr_regions | regions (median) | CPU | slowdown | P/R |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for wl in workloads:
        for size in sizes:
            for cfg, mx in (("damonx-r100", 100), ("damonx", 1000), ("damonx-r10000", 10000)):
                r = idx.get((wl, size, cfg))
                if r is None:
                    continue
                sd = None if r["slowdown"] is None else 100 * r["slowdown"]
                nr = "n/a" if r["nr_regions"] is None else f"{r['nr_regions']:.0f}"
                lines.append(
                    f"| {wl} | {_size(size)} | {mx} | {nr} | {_pct(r['cpu_pct'])} | "
                    f"{_pct(sd, True)} | {_pr(r)} |"
                )
    return "\n".join(lines)


def scale_table(summary, workload, sizes):
    idx = _index(summary)
    lines = [
        "| size | damonx CPU | kernel DAMON CPU | full scan CPU | full scan interval | "
        "full scan CPU for 100 ms | damonx slowdown | kernel slowdown | full scan slowdown |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        rows = [idx.get((workload, size, k)) for k, _ in MONITORS]
        if not any(rows):
            continue
        fs = rows[2]
        iv = "n/a" if not fs or fs.get("interval_s") is None else f"{fs['interval_s']:.2f} s"
        need = _pct(needed_cpu(fs))
        sds = [None if r is None or r["slowdown"] is None else 100 * r["slowdown"] for r in rows]
        lines.append(
            f"| {_size(size)} | "
            + " | ".join(_pct(r and r["cpu_pct"]) for r in rows)
            + f" | {iv} | {need} | "
            + " | ".join(_pct(s, True) for s in sds)
            + " |"
        )
    return "\n".join(lines)


def needed_cpu(fullscan_row, period_s=0.1):
    """CPU % a full scan would need to keep its period: CPU x interval / period."""
    if (
        not fullscan_row
        or fullscan_row.get("interval_s") is None
        or fullscan_row.get("cpu_pct") is None
    ):
        return None
    return fullscan_row["cpu_pct"] * max(fullscan_row["interval_s"], period_s) / period_s


def convergence_table(summary, workload, size, sim=None):
    idx = _index(summary)
    cps = ("0.5", "1", "2", "5")
    lines = [
        "| monitor | " + " | ".join(f"P/R at {c} s" for c in cps) + " | settled WSS error |",
        "|---|" + "---:|" * (len(cps) + 1),
    ]

    def row(label, acc):
        cells = [_pr(acc["checkpoints"].get(c)) for c in cps]
        w = acc.get("wss_err")
        return (
            f"| {label} | "
            + " | ".join(cells)
            + f" | {'n/a' if w is None else f'{100 * w:+.1f}%'} |"
        )

    for key, name in MONITORS:
        r = idx.get((workload, size, key))
        if r is not None:
            lines.append(row(f"{name} (VM)", r))
    for s in sim or []:
        lines.append(row(f"damonx (sim, {s['workload']} {_size(s['size_mib'])})", s["accuracy"]))
    return "\n".join(lines)


def sim_table(sim):
    lines = [
        "| workload | size | regions | settled P/R | P/R at 1 s | settled WSS error |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in sim:
        a = s["accuracy"]
        lines.append(
            f"| {s['workload']} | {_size(s['size_mib'])} | {s['nr_regions']:.0f} | "
            f"{_pr(a)} | {_pr(a['checkpoints'].get('1'))} | {100 * a['wss_err']:+.1f}% |"
        )
    return "\n".join(lines)


def core_lines(core):
    if not core:
        return "(not run)"
    out = [
        "| monitoring loop | regions | damonx ns / region / sample "
        "| Python ns / region / sample | speedup |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in core["loop"].items():
        out.append(
            f"| {name} | {r['damonx']['nr_regions_mean']:.0f} | "
            f"{r['damonx']['ns_per_region_sample']:.1f} | "
            f"{r['python']['ns_per_region_sample']:.0f} | {r['speedup']:.0f}x |"
        )
    out += [
        "",
        "| adjustment at N regions | damonx per aggregation | Python per aggregation | speedup |",
        "|---:|---:|---:|---:|",
    ]
    for nr, r in core["adjust"].items():
        out.append(
            f"| {nr} | {r['damonx']['ns_per_aggregation'] / 1e3:.2f} us | "
            f"{r['python']['ns_per_aggregation'] / 1e3:.1f} us | {r['speedup']:.0f}x |"
        )
    return "\n".join(out)


def markdown(res):
    """The results section (Markdown) of a results dict."""
    meta, vm = res["meta"], res.get("vm") or {}
    plan = vm.get("plan") or {}
    summary = res.get("summary") or []
    out = [
        f"Mode `{meta['mode']}`, {meta['date']}. Host: {meta['host']['cpu']}, "
        f"{meta['host']['nr_cpus']} CPUs, Linux {meta['host']['kernel']}."
    ]
    if vm:
        m = vm["machine"]
        out.append(
            f"VM: Linux {m['kernel']}, {m['nr_cpus']} vCPUs, {m['mem_gib']} GiB, "
            f"QEMU {meta.get('vm_accel', 'tcg').upper()}"
            + (
                " (emulation: absolute times are several times native; compare "
                "ratios within the same boot)"
                if meta.get("vm_accel", "tcg") == "tcg"
                else ""
            )
            + f". {plan.get('repeats')} repeat(s) of every configuration, runs of "
            f"about {plan.get('run_seconds')} s; medians."
            + (
                ""
                if vm.get("complete")
                else " **The VM run did not complete: the tables hold what finished.**"
            )
        )
        out += [
            "",
            "CPU: the monitor's CPU time over the workload's run, % of one CPU. "
            "Slowdown: workload runtime / unmonitored runtime - 1 (same boot). "
            "P/R: precision/recall by bytes of the hot set, settled (samples at least "
            "1 s after the hot set appeared or moved); n/a for stress-ng and redis, whose "
            "hot sets are not known.",
            "",
        ]
        out.append(main_table(summary, plan.get("workloads", []), plan.get("sizes_mib", [])))
        base = [r for r in vm.get("runs", []) if r["config"] == "baseline"]
        spread = baseline_spread(base)
        if spread is not None:
            out += [
                "",
                f"Run-to-run noise of the unmonitored runs (max/min - 1 of the same "
                f"workload and size, median over workloads): {100 * spread:.0f}%. "
                "Slowdowns smaller than that are not resolved.",
            ]
        out += [
            "",
            "damonx at other max_nr_regions:",
            "",
            regions_table(summary, plan.get("workloads", []), plan.get("sizes_mib", [])),
        ]
        sw = plan.get("scale_workload")
        sizes = sorted(
            set(plan.get("scale_sizes_mib", []))
            | (set(plan.get("sizes_mib", [])) if sw in plan.get("workloads", []) else set())
        )
        out += [
            "",
            f"Scalability ({sw}, hot set 1/{plan.get('hot_fraction')} of the buffer):",
            "",
            scale_table(summary, sw, sizes),
        ]
        conv_size = max(plan.get("sizes_mib", [0]))
        out += [
            "",
            f"Convergence after the hot set appears or moves (hotcold, "
            f"{_size(conv_size)}, moves every {plan.get('period_s')} s; mean over the "
            "moves):",
            "",
            convergence_table(
                summary,
                "hotcold",
                conv_size,
                [
                    s
                    for s in res.get("sim", [])
                    if s["workload"] == "hotcold"
                    and s["size_mib"] == max(x["size_mib"] for x in res["sim"])
                ]
                if res.get("sim")
                else None,
            ),
        ]
    if res.get("sim"):
        out += [
            "",
            "Simulated workloads (sim backend, exact ground truth, host):",
            "",
            sim_table(res["sim"]),
        ]
    if res.get("overhead"):
        from suite import overhead_sweep

        out += ["", "### CPU against accuracy", "", overhead_sweep.markdown(res["overhead"])]
    out += ["", "Core engine (`bench_core.py --quick`, host):", "", core_lines(res.get("core"))]
    if res.get("schemes"):
        from suite import schemes_eval

        out += ["", schemes_eval.markdown(res["schemes"]).rstrip("\n")]
    if res.get("smallhot"):
        out += ["", "### Small hot sets in large memory", "", smallhot_markdown(res["smallhot"])]
    return "\n".join(out) + "\n"


def smallhot_markdown(res):
    """The simulated part of the small-hot-set results and, when the VM ran,
    its columns and tables."""
    from suite import smallhot, smallhot_vm

    vm = res.get("vm")
    text = smallhot.markdown(res["sim"], {"shares": vm["vaddr"]} if vm else None)
    return text + ("\n" + smallhot_vm.markdown(vm) if vm else "")


def baseline_spread(base_runs):
    groups = {}
    for r in base_runs:
        groups.setdefault((r["workload"], r["size_mib"]), []).append(r["runtime_s"])
    spreads = sorted(max(v) / min(v) - 1 for v in groups.values() if len(v) > 1 and min(v) > 0)
    if not spreads:
        return None
    return spreads[len(spreads) // 2]


def update_readme(path, text):
    """Replace what lies between the result markers of a README by text."""
    with open(path) as f:
        readme = f.read()
    block = f"{MARK_BEGIN}\n{text}{MARK_END}"
    if MARK_BEGIN in readme and MARK_END in readme:
        readme = re.sub(
            re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), lambda _: block, readme, flags=re.S
        )
    else:
        readme = readme.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(readme)


# -------------------------------------------------------------------- plots
COLORS = {"damonx": "tab:blue", "kernel": "tab:orange", "fullscan": "tab:red"}


def plots(res, out_dir):
    """Write the PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vm = res.get("vm") or {}
    figures = []
    if vm:
        figures += [
            ("cpu_vs_size.png", plot_cpu_vs_size(plt, res)),
            ("slowdown.png", plot_slowdown(plt, res)),
            ("accuracy_vm.png", plot_accuracy_vm(plt, res)),
        ]
    if res.get("sim"):
        figures.append(("accuracy_sim.png", plot_accuracy_sim(plt, res)))
    files = []
    for name, fig in figures:
        if fig is None:
            continue
        fig.tight_layout()
        fig.savefig(f"{out_dir}/{name}", dpi=100)
        plt.close(fig)
        files.append(name)
    if res.get("overhead"):
        from suite import overhead_sweep

        files += overhead_sweep.plots(res["overhead"], out_dir)
    return files


def plot_cpu_vs_size(plt, res):
    """Monitor CPU against the workload size, log-log, per monitor."""
    summary = res.get("summary") or []
    idx = _index(summary)
    sw = (res["vm"].get("plan") or {}).get("scale_workload")
    sizes = sorted({r["size_mib"] for r in summary if r["workload"] == sw})
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, name in MONITORS:
        pts = [
            (s, idx[(sw, s, key)]["cpu_pct"])
            for s in sizes
            if (sw, s, key) in idx and idx[(sw, s, key)]["cpu_pct"] is not None
        ]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name, color=COLORS[key])
    pts = [(s, needed_cpu(idx.get((sw, s, "fullscan")))) for s in sizes]
    pts = [p for p in pts if p[1] is not None]
    if pts:
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "x--",
            color=COLORS["fullscan"],
            label="full scan, CPU needed for a 100 ms period",
        )
    ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([_size(s) for s in sizes])
    ax.set_xlabel("workload size")
    ax.set_ylabel("monitor CPU, % of one CPU")
    ax.set_title(f"Monitoring CPU vs size ({sw}, VM under emulation)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_slowdown(plt, res):
    """Workload slowdown per workload (bars) and configuration, at the largest size."""
    idx = _index(res.get("summary") or [])
    plan = res["vm"].get("plan") or {}
    wls = plan.get("workloads", [])
    size = max(plan.get("sizes_mib", [0]))
    fig, ax = plt.subplots(figsize=(7, 4))
    cfgs = [
        c
        for c in ("damonx-r100", "damonx", "damonx-r10000", "kernel", "damonx-kernel", "fullscan")
        if any((w, size, c) in idx for w in wls)
    ]
    width = 0.8 / max(len(cfgs), 1)
    for i, cfg in enumerate(cfgs):
        vals = [
            100 * (idx[(w, size, cfg)]["slowdown"] or 0) if (w, size, cfg) in idx else 0
            for w in wls
        ]
        ax.bar([j + i * width for j in range(len(wls))], vals, width, label=cfg)
    ax.set_xticks([j + width * (len(cfgs) - 1) / 2 for j in range(len(wls))])
    ax.set_xticklabels(wls)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("slowdown, %")
    ax.set_title(f"Workload slowdown at {_size(size)} (VM under emulation)")
    ax.legend(fontsize=8)
    return fig


def plot_accuracy_vm(plt, res):
    """Hot-set precision and recall over time of the hotcold runs in the VM
    (None when there is no such run)."""
    plan = res["vm"].get("plan") or {}
    size = max(plan.get("sizes_mib", [0]))
    runs = [
        r
        for r in res["vm"].get("runs", [])
        if r["workload"] == "hotcold"
        and r["size_mib"] == size
        and r.get("series")
        and r["rep"] == 0
    ]
    if not runs:
        return None
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for r in runs:
        if r["config"] not in COLORS:
            continue
        t = [s[0] for s in r["series"]]
        for ax, col in zip(axes, (1, 2)):
            ax.plot(
                t,
                [s[col] for s in r["series"]],
                ".-",
                ms=3,
                lw=0.8,
                color=COLORS[r["config"]],
                label=r["config"],
            )
    axes[0].set_ylabel("precision")
    axes[1].set_ylabel("recall")
    axes[1].set_xlabel(
        f"seconds since the work started (hot set moves every {plan.get('period_s')} s)"
    )
    axes[0].set_title(f"hotcold {_size(size)}, VM: hot-set precision and recall")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    return fig


def plot_accuracy_sim(plt, res):
    """Recall over simulated time of each simulated workload."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for s in res["sim"]:
        t = [x[0] for x in s["series"]]
        ax.plot(
            t,
            [x[2] for x in s["series"]],
            lw=0.8,
            label=f"{s['workload']} {_size(s['size_mib'])} recall",
        )
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("simulated seconds")
    ax.set_ylabel("recall")
    ax.set_title("damonx on simulated workloads (exact ground truth)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig
