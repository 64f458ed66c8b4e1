"""Operation schemes evaluated as the original DAMON patchset evaluated its
two (v14 cover letter): prcl, proactive reclamation, and ethp, huge pages
for the hot memory only.  One VM boot of its own, with zram swap:

    python -m suite.schemes_eval PLAN.json OUT.json     (in the VM, as root)

prcl pages out what was not accessed for ``prcl_min_age_s`` seconds, given
as damo's options (:data:`PRCL`) to ``damonx start`` and, through
``damonx.kernel_schemes``, to the kernel's DAMON; a variant adds a
``some_mem_psi_us`` quota goal.  Each configuration runs a fresh workload
process with a cold majority (``seq`` and ``rand`` touch the first eighth of
their buffer, ``hotcold`` a moving eighth, ``redis`` serves the keys of an
eighth of its data) for the same work; its RSS is sampled during the run.

ethp ``collapse``s the regions with an access rate of at least 5%
(MADV_COLLAPSE; damonx cannot MADV_HUGEPAGE another process), with THP at
``madvise`` (nothing asks for huge pages at fault), against THP ``always``
and ``never``, on ``rand`` over a dense hot eighth of its buffer and sparse
data elsewhere (one page written every 2 MiB).

:func:`run` boots the VM from the host (``suite.main``), :func:`markdown`
writes the tables.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MIB = 1 << 20

#: damo's options of prcl and its variant; AGE is prcl_min_age_s
PRCL = ["--damos_action", "pageout", "--damos_access_rate", "0", "0", "--damos_age", "AGE", "max"]
PRCL_PSI = [
    *PRCL,
    "--damos_quotas", "0", "1G", "200",
    "--damos_quota_goal", "some_mem_psi_us", "2ms",
]  # fmt: skip
ETHP = ["--damos_action", "collapse", "--damos_access_rate", "5", "max"]

#: seed (v14 cover letter): prcl on freqmine, ethp over PARSEC3/SPLASH-2X
SEED = {"prcl_rss": -89.30, "prcl_runtime": 1.98, "ethp_memory": 69.43, "ethp_speed": 37.11}

PLANS = {
    "quick": {
        "prcl_workloads": ["seq", "rand", "hotcold", "redis"],
        "prcl_configs": ["none", "damonx", "kernel", "damonx-psi"],
        "size_mib": 256,
        "run_seconds": 10,
        "prcl_min_age_s": 2,
        "period_s": 3,
        "repeats": 1,
        "ethp_size_mib": 512,
        "ethp_run_seconds": 6,
    },
    "full": {
        "prcl_workloads": ["seq", "rand", "hotcold", "redis"],
        "prcl_configs": ["none", "damonx", "kernel", "damonx-psi", "kernel-psi"],
        "size_mib": 1024,
        "run_seconds": 30,
        "prcl_min_age_s": 5,
        "period_s": 10,
        "repeats": 3,
        "ethp_size_mib": 2048,
        "ethp_run_seconds": 15,
    },
}


def damos_options(base, plan):
    return [str(plan["prcl_min_age_s"]) + "s" if w == "AGE" else w for w in base]


def schemes_of(options):
    """The damonx.Scheme objects damo's options stand for, read as `damonx
    start` reads them."""
    from damonx.cli import _damos, build_parser

    # process ids first: damo's options of several values take what follows
    args = build_parser("start").parse_args(["start", "1", *options])
    return _damos.schemes_from_args(args)


# ------------------------------------------------------------------ guest
def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def swap_on(size="2G"):
    with open("/proc/swaps") as f:
        if f.read().count("\n") > 1:
            return
    subprocess.run(
        f"echo {size} > /sys/block/zram0/disksize && mkswap /dev/zram0 && swapon /dev/zram0",
        shell=True,
        check=True,
        capture_output=True,
    )


def set_thp(mode):
    with open("/sys/kernel/mm/transparent_hugepage/enabled", "w") as f:
        f.write(mode)


class DamonxStart:
    """`damonx start` with damo's options on a process, until stopped."""

    def __init__(self, pid, options):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "damonx", "start", "--json", str(pid), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # running (imports done) once it reports
        if not self.proc.stdout.readline():
            raise RuntimeError(f"damonx start failed: {self.proc.stderr.read()}")

    def cpu(self):
        from suite.guest import proc_cpu_s

        return proc_cpu_s(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=120)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if self.proc.returncode or not lines:
            raise RuntimeError(f"damonx start: {err.strip()}")
        return lines[-1]["schemes"][0]["stats"]


class KernelScheme:
    """The kernel's DAMON applying the same scheme (damonx.kernel_schemes)."""

    def __init__(self, pid, options):
        from damonx.kernel_damon import KernelDamon

        self.kd = KernelDamon()
        self.kd.start([pid], ops="vaddr", schemes=schemes_of(options))

    def cpu(self):
        return self.kd.cpu_seconds()

    def stop(self):
        stats = self.kd.scheme_stats()[0]
        self.kd.stop()
        return stats


def start_scheme(config, pid, options):
    if config.startswith("kernel"):
        return KernelScheme(pid, options)
    return DamonxStart(pid, options)


def measured_run(wl, amount, mon):
    """Run the work once, sampling the RSS; the run's figures."""
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((proc_kb(wl.pid, "VmRSS"), proc_kb(wl.pid, "VmSwap")))
            done.wait(0.2)

    sampler = threading.Thread(target=sample)
    c0 = mon.cpu() if mon else None
    sampler.start()
    try:
        _, _, runtime = wl.go(amount)
    finally:
        done.set()
        sampler.join()
    run = {
        "runtime_s": runtime,
        "rss_mean_kib": sum(r for r, _ in samples) / max(len(samples), 1),
        "rss_end_kib": samples[-1][0] if samples else None,
        "swap_end_kib": samples[-1][1] if samples else None,
    }
    if mon:
        run["cpu_s"] = mon.cpu() - c0
        run["scheme_stats"] = mon.stop()
    return run


def c_workload(plan, name, size_mib, extra=()):
    from suite.guest import CWorkload

    hot = size_mib // 8
    args = ["--hot-mib", str(hot), *extra]
    if name == "hotcold":
        args += ["--period-ms", str(int(plan["period_s"] * 1000))]
    return CWorkload(os.path.join(plan["bin_dir"], name), size_mib, args)


def new_workload(plan, name):
    from suite.guest import RedisWorkload

    if name == "redis":
        return RedisWorkload(plan["size_mib"], 8), "requests", 20_000
    return c_workload(plan, name, plan["size_mib"]), "touches", 3_000_000


def prcl_runs(plan, name):
    """Every configuration of prcl on one workload, a fresh process each."""
    runs, amount = [], None
    options = {
        "damonx": damos_options(PRCL, plan),
        "kernel": damos_options(PRCL, plan),
        "damonx-psi": damos_options(PRCL_PSI, plan),
        "kernel-psi": damos_options(PRCL_PSI, plan),
    }
    for rep in range(plan["repeats"]):
        for config in plan["prcl_configs"]:
            wl, unit, cal = new_workload(plan, name)
            try:
                if amount is None:  # the same work for every run
                    _, _, rt = wl.go(cal)
                    amount = max(cal, int(cal * plan["run_seconds"] / max(rt, 1e-3)))
                mon = None if config == "none" else start_scheme(config, wl.pid, options[config])
                run = measured_run(wl, amount, mon)
            finally:
                wl.close()
            run.update(part="prcl", workload=name, config=config, rep=rep, **{unit: amount})
            log(
                f"prcl {name} {config:<10} rep {rep}: {run['runtime_s']:6.2f} s, "
                f"RSS {run['rss_mean_kib'] / 1024:7.1f} MiB mean"
            )
            runs.append(run)
    return runs


def ethp_runs(plan):
    """THP never, always, and madvise with damonx collapsing hot regions."""
    runs, amount = [], None
    size = plan["ethp_size_mib"]
    extra = ["--thp", "1", "--sparse-kib", "2048"]
    for rep in range(plan["repeats"]):
        for config, mode in (("never", "never"), ("always", "always"), ("ethp", "madvise")):
            set_thp(mode)
            wl = c_workload(plan, "rand", size, extra)
            try:
                if amount is None:
                    _, _, rt = wl.go(3_000_000)
                    amount = max(3_000_000, int(3_000_000 * plan["ethp_run_seconds"] / rt))
                mon = DamonxStart(wl.pid, ETHP) if config == "ethp" else None
                run = measured_run(wl, amount, mon)
                with open(f"/proc/{wl.pid}/smaps_rollup") as f:
                    run["thp_end_kib"] = sum(
                        int(line.split()[1]) for line in f if line.startswith("AnonHugePages:")
                    )
            finally:
                wl.close()
            run.update(part="ethp", workload="rand", config=config, rep=rep, touches=amount)
            log(
                f"ethp {config:<6} rep {rep}: {run['runtime_s']:6.2f} s, RSS "
                f"{run['rss_mean_kib'] / 1024:7.1f} MiB, THP {run['thp_end_kib'] / 1024:.0f} MiB"
            )
            runs.append(run)
    set_thp("madvise")
    return runs


def guest_main():
    from suite.guest import machine, vm_part_args, write_json

    plan, out_path = vm_part_args()
    result = {"machine": machine(), "plan": plan, "runs": [], "errors": [], "complete": False}

    def save():
        write_json(out_path, result)

    swap_on()
    result["psi"] = os.path.exists("/proc/pressure/memory")
    jobs = [(lambda n=n: prcl_runs(plan, n)) for n in plan["prcl_workloads"]]
    jobs.append(lambda: ethp_runs(plan))
    for job in jobs:
        try:
            result["runs"] += job()
        except Exception as err:  # recorded; the other parts still run
            log(f"failed: {type(err).__name__}: {err}")
            result["errors"].append(f"{type(err).__name__}: {err}")
        save()
    result["complete"] = not result["errors"]
    save()


# ------------------------------------------------------------------- host
def run(mode, bin_dir, raw_dir, run_vm):
    """The evaluation in its own VM boot; run_vm(plan, raw_dir, module,
    name) boots it (suite.main.run_vm)."""
    plan = dict(PLANS[mode], bin_dir=bin_dir, vm_mem="4G" if mode == "quick" else "12G")
    return run_vm(plan, raw_dir, "suite.schemes_eval", "schemes")


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summarize(runs):
    """Medians per (part, workload, config)."""
    groups = {}
    for r in runs:
        groups.setdefault((r["part"], r["workload"], r["config"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {
            k: _median([r.get(k) for r in rs])
            for k in ("runtime_s", "rss_mean_kib", "swap_end_kib", "cpu_s", "thp_end_kib")
        }
    return out


def _pct(v):
    return "n/a" if v is None else f"{v:+.2f}%"


def _change(value, base):
    if value is None or not base:
        return None
    return 100.0 * (value / base - 1)


def ethp_figures(s):
    """(% of THP's memory overhead removed, % of its speedup kept) by ethp."""
    never, always, ethp = (s.get(("ethp", "rand", c)) for c in ("never", "always", "ethp"))
    if not (never and always and ethp):
        return None, None
    bloat = always["rss_mean_kib"] - never["rss_mean_kib"]
    speedup = never["runtime_s"] - always["runtime_s"]
    removed = 100.0 * (always["rss_mean_kib"] - ethp["rss_mean_kib"]) / bloat if bloat > 0 else None
    kept = 100.0 * (never["runtime_s"] - ethp["runtime_s"]) / speedup if speedup > 0 else None
    return removed, kept


def markdown(sres):
    """The tables of the schemes' evaluation (Markdown)."""
    plan, s = sres.get("plan", {}), summarize(sres.get("runs", []))
    m = sres.get("machine", {})
    out = [
        "### Operation schemes: prcl and ethp",
        "",
        f"One VM boot (Linux {m.get('kernel')}, {m.get('mem_gib')} GiB, zram swap), "
        f"{plan.get('repeats')} repeat(s), medians; a fresh workload process per run. "
        f"prcl: damo's `{' '.join(damos_options(PRCL, plan))}` on `damonx start` and on "
        "the kernel's DAMON (the same scheme through `damonx.kernel_schemes`); psi: with "
        f"`{' '.join(PRCL_PSI[len(PRCL) :])}`"
        + ("" if sres.get("psi", True) else " (**no PSI in this kernel: the goal reads 0**)")
        + f". Workloads of {plan.get('size_mib')} MiB whose hot part is an eighth; "
        f"runs of about {plan.get('run_seconds')} s. RSS: mean of VmRSS over the run; "
        "changes against the run without a scheme.",
        "",
        "| workload | scheme | RSS (mean) | RSS change | runtime change | monitor CPU |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for wl in plan.get("prcl_workloads", []):
        base = s.get(("prcl", wl, "none"))
        for config in plan.get("prcl_configs", []):
            r = s.get(("prcl", wl, config))
            if r is None:
                continue
            rss = "n/a" if r["rss_mean_kib"] is None else f"{r['rss_mean_kib'] / 1024:.1f} MiB"
            cpu = "n/a" if r["cpu_s"] is None else f"{100 * r['cpu_s'] / r['runtime_s']:.1f}%"
            if base is None or config == "none":
                changes = ["", ""]
            else:
                changes = [
                    _pct(_change(r["rss_mean_kib"], base["rss_mean_kib"])),
                    _pct(_change(r["runtime_s"], base["runtime_s"])),
                ]
            label = "none" if config == "none" else f"prcl, {config}"
            out.append(f"| {wl} | {label} | {rss} | " + " | ".join(changes) + f" | {cpu} |")
    out.append(
        f"| freqmine (seed, v14) | prcl, the kernel's DAMON | | {_pct(SEED['prcl_rss'])} | "
        f"{_pct(SEED['prcl_runtime'])} | |"
    )
    removed, kept = ethp_figures(s)
    out += [
        "",
        f"ethp: `rand` over a dense hot eighth of {plan.get('ethp_size_mib')} MiB, sparse "
        "data elsewhere (a page every 2 MiB); THP `never`, `always`, and `madvise` with "
        f"damo's `{' '.join(ETHP)}` on `damonx start`. **Runtimes under emulation (TCG) do "
        "not show the TLB effects of huge pages on hardware: QEMU's soft TLB caches 4 KiB "
        "translations whatever the guest's page size; the memory figures do not depend on "
        "it.**",
        "",
        "| THP | RSS (mean) | in huge pages (end) | runtime |",
        "|---|---:|---:|---:|",
    ]
    for config in ("never", "always", "ethp"):
        r = s.get(("ethp", "rand", config))
        if r is not None:
            out.append(
                f"| {config} | {r['rss_mean_kib'] / 1024:.1f} MiB | "
                f"{(r['thp_end_kib'] or 0) / 1024:.0f} MiB | {r['runtime_s']:.2f} s |"
            )

    def fig(v):
        return "n/a (no overhead or no speedup to share)" if v is None else f"{v:.2f}%"

    out += [
        "",
        f"ethp removes {fig(removed)} of THP's memory overhead and keeps {fig(kept)} of its "
        f"speedup (seed, v14: {SEED['ethp_memory']:.2f}% and {SEED['ethp_speed']:.2f}%).",
    ]
    if sres.get("errors"):
        out += ["", "**Parts that failed:** " + "; ".join(sres["errors"])]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    guest_main()
