"""The benchmark suite's entry point (run through benchmarks/run).

    benchmarks/run [--quick|--full] [--out DIR] [--skip-vm] [--skip-core] [--report-only]
                   [--skip-sweep | --sweep-only] [--skip-schemes | --schemes-only]
                   [--skip-smallhot | --smallhot-only]

Steps: set-up (gcc, stress-ng), build the C workloads into build/ and the
benchmarks' extension (bench_ext.py),
core microbenchmarks (bench_core.py --quick, host), accuracy on simulated
workloads (host), then one VM boot for overhead, accuracy and scalability
(suite.guest), one boot of the 7.x kernel for monitor CPU against accuracy
(suite.overhead_sweep), another for the operation schemes (suite.schemes_eval),
small hot sets in large memory (suite.smallhot: simulated on the host, then
one VM boot of suite.smallhot_vm beside the kernel's DAMON), then
results.json, table.md, plots and the results section of benchmarks/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import bench_ext  # noqa: E402

from suite import metrics, overhead_sweep, report, schemes_eval, simacc, smallhot  # noqa: E402

WORKLOADS_C = ("seq", "rand", "hotcold")
ALL_CONFIGS = [
    "baseline",
    "damonx",
    "damonx-r100",
    "damonx-r10000",
    "kernel",
    "damonx-kernel",
    "fullscan",
]

PLANS = {
    "quick": {
        "workloads": ["seq", "rand", "hotcold", "stress-ng", "redis"],
        "sizes_mib": [256, 1024],
        "configs": ALL_CONFIGS,
        "repeats": 2,
        "run_seconds": 5,
        "scale_workload": "hotcold",
        "scale_sizes_mib": [256, 1024, 2048],
        "scale_configs": ["baseline", "damonx", "kernel", "fullscan"],
        "period_s": 3,
        "hot_fraction": 8,
        "calibration_touches": 3_000_000,
        "stress_method": "write64",
        "stress_cal_s": 2,
        "redis_calibration_requests": 20_000,
        "vm_mem": "4G",
        "sim_sizes_mib": [256, 1024, 8192],
        "sim_seconds": 30,
        "sim_period_s": 5,
        "smallhot_seeds": 10,
        "smallhot_share_s": 60.0,
        "smallhot_vm_s": 20,
        "smallhot_vm_repeats": 1,
    },
    "full": {
        "workloads": ["seq", "rand", "hotcold", "stress-ng", "redis"],
        "sizes_mib": [256, 2048],
        "configs": ALL_CONFIGS,
        "repeats": 3,
        "run_seconds": 10,
        "scale_workload": "hotcold",
        "scale_sizes_mib": [256, 1024, 2048, 4096, 8192],
        "scale_configs": ["baseline", "damonx", "kernel", "fullscan"],
        "period_s": 5,
        "hot_fraction": 8,
        "calibration_touches": 5_000_000,
        "stress_method": "write64",
        "stress_cal_s": 3,
        "redis_calibration_requests": 30_000,
        "vm_mem": "12G",
        "sim_sizes_mib": [256, 1024, 8192, 65536],
        "sim_seconds": 60,
        "sim_period_s": 10,
        "smallhot_seeds": 10,
        "smallhot_share_s": 60.0,
        "smallhot_vm_s": 60,
        "smallhot_vm_repeats": 3,
    },
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# workload -> (a program it runs, the Debian package that has it)
PACKAGES = {"stress-ng": ("stress-ng", "stress-ng"), "redis": ("redis-benchmark", "redis-tools")}


def setup(workloads):
    if not shutil.which("gcc"):
        raise SystemExit("gcc is needed to build the workloads (apt-get install gcc)")
    for wl in workloads:
        program, package = PACKAGES.get(wl, (None, None))
        if program is None or shutil.which(program):
            continue
        if os.geteuid() != 0:
            raise SystemExit(f"{program} is missing: apt-get install {package} (as root)")
        log(f"installing {package}")
        subprocess.run(
            ["apt-get", "install", "-y", "-q", package], check=True, stdout=subprocess.DEVNULL
        )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit(
            "matplotlib is needed for the plots: .venv/bin/pip install matplotlib"
        ) from None


def build_workloads(build_dir):
    os.makedirs(build_dir, exist_ok=True)
    src = os.path.join(BENCH, "workloads")
    for name in WORKLOADS_C:
        subprocess.run(
            [
                "gcc",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-o",
                os.path.join(build_dir, name),
                os.path.join(src, name + ".c"),
            ],
            check=True,
        )
    return build_dir


def host_info():
    return {
        "cpu": metrics.cpu_model(),
        "nr_cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def vm_accel():
    """What tools/vmtest/run will use (its auto rule)."""
    want = os.environ.get("DAMONX_VM_ACCEL", "auto")
    if want != "auto":
        return want
    try:
        with open("/proc/modules") as f:
            mods = {line.split()[0] for line in f}
    except OSError:
        mods = set()
    if os.access("/dev/kvm", os.W_OK) and mods & {"kvm_intel", "kvm_amd"}:
        return "kvm"
    return "tcg"


def run_vm(plan, raw_dir, module="suite.guest", name="vm", kernel=None):
    """One VM boot running ``python -m module PLAN OUT``; OUT's results.
    kernel: DAMONX_VM_KERNEL for the boot (None: the tool's default)."""
    plan_path = os.path.join(raw_dir, "plan.json" if name == "vm" else f"{name}-plan.json")
    out_path = os.path.join(raw_dir, f"{name}.json")
    with open(plan_path, "w") as f:
        json.dump(plan, f, indent=1)
    if os.path.exists(out_path):
        os.remove(out_path)
    env = dict(
        os.environ,
        DAMONX_VM_MEM=plan["vm_mem"],
        DAMONX_VM_RWDIRS=raw_dir,
        DAMONX_VM_TIMEOUT=str(plan.get("vm_timeout", 14400)),
    )
    if kernel is not None:
        env["DAMONX_VM_KERNEL"] = kernel
    python = os.path.join(ROOT, ".venv", "bin", "python")
    cmd = [
        os.path.join(ROOT, "tools", "vmtest", "run"),
        "--",
        python,
        "-m",
        module,
        plan_path,
        out_path,
    ]
    rc = subprocess.run(cmd, cwd=BENCH, env=env).returncode
    if not os.path.exists(out_path):
        raise SystemExit(f"the VM run wrote no results (exit status {rc})")
    with open(out_path) as f:
        vm = json.load(f)
    if rc != 0:
        log(f"the VM run ended with exit status {rc}; keeping the runs that finished")
    return vm


def add_part_options(ap, name, what):
    """--skip-NAME and --NAME-only, one or the other, for a part of the suite
    that can be left out or run alone (its results kept with DIR's others)."""
    group = ap.add_mutually_exclusive_group()
    group.add_argument(f"--skip-{name}", action="store_true", help=f"no {what}")
    group.add_argument(
        f"--{name}-only",
        action="store_true",
        help=f"only the {what}, kept with the other results of DIR",
    )


def main(argv=None):
    ap = argparse.ArgumentParser(prog="benchmarks/run", description="damonx benchmark suite")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_const", dest="mode", const="quick", help="minutes (the default)"
    )
    mode.add_argument(
        "--full",
        action="store_const",
        dest="mode",
        const="full",
        help="longer runs, more repeats, sizes up to 8 GiB",
    )
    ap.add_argument(
        "--out",
        default=os.path.join(BENCH, "results"),
        help="output directory (default benchmarks/results)",
    )
    ap.add_argument(
        "--workloads",
        metavar="NAME,...",
        help=f"only these VM workloads (default: all of {','.join(PLANS['full']['workloads'])})",
    )
    ap.add_argument("--skip-vm", action="store_true", help="host parts only")
    ap.add_argument("--skip-core", action="store_true", help="no core microbenchmarks")
    add_part_options(ap, "sweep", "CPU-against-accuracy sweep (a VM boot of its own)")
    add_part_options(ap, "schemes", "evaluation of the schemes (prcl, ethp)")
    add_part_options(ap, "smallhot", "small-hot-set benchmark (sim and VM)")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="only redo the table, plots and README section from DIR/results.json",
    )
    ap.add_argument(
        "--no-readme",
        action="store_true",
        help="do not rewrite the results section of benchmarks/README.md",
    )
    args = ap.parse_args(argv)
    args.mode = args.mode or "quick"
    plan = dict(PLANS[args.mode])
    if args.workloads:
        chosen = args.workloads.split(",")
        unknown = sorted(set(chosen) - set(plan["workloads"]))
        if unknown:
            ap.error(
                f"unknown workload(s) {', '.join(unknown)}: "
                f"choose from {','.join(plan['workloads'])}"
            )
        plan["workloads"] = [w for w in plan["workloads"] if w in chosen]
        if plan["scale_workload"] not in chosen:
            plan["scale_sizes_mib"] = []
    out = os.path.abspath(args.out)
    raw = os.path.join(out, "raw")
    os.makedirs(raw, exist_ok=True)
    t0 = time.monotonic()
    if args.report_only:
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
        write_reports(res, out, args)
        return

    setup([] if args.smallhot_only else ["redis"] if args.schemes_only else plan["workloads"])
    plan["bin_dir"] = build_workloads(os.path.join(ROOT, "build", "bench-workloads"))
    bench_ext.build()  # on the host: the VM sees the checkout read-only
    if args.sweep_only or args.schemes_only or args.smallhot_only:
        # one part again, kept with the other results of DIR
        res_path = os.path.join(out, "results.json")
        res = {"meta": {"mode": args.mode, "host": host_info(), "date": "n/a"}}
        if os.path.exists(res_path):
            with open(res_path) as f:
                res = json.load(f)
        if args.sweep_only:
            res["overhead"] = overhead_sweep.run(args.mode, raw, plan["bin_dir"], log)
        if args.schemes_only:
            log("schemes (prcl, ethp): one VM boot")
            res["schemes"] = schemes_eval.run(args.mode, plan["bin_dir"], raw, run_vm)
        if args.smallhot_only:
            res["smallhot"] = run_smallhot(plan, raw, args.skip_vm)
        with open(res_path, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        write_reports(res, out, args)
        log(f"done in {time.monotonic() - t0:.0f} s; results in {out}")
        return
    res = {
        "meta": {
            "mode": args.mode,
            "host": host_info(),
            "vm_accel": vm_accel(),
            "date": datetime.date.today().isoformat(),
        }
    }
    if not args.skip_core:
        log("core microbenchmarks (bench_core.py --quick)")
        core_json = os.path.join(raw, "core.json")
        subprocess.run(
            [sys.executable, os.path.join(BENCH, "bench_core.py"), "--quick", "--json", core_json],
            check=True,
        )
        with open(core_json) as f:
            res["core"] = json.load(f)
    log("accuracy on simulated workloads")
    res["sim"] = simacc.run(
        plan["sim_sizes_mib"], plan["sim_period_s"], plan["sim_seconds"], log=log
    )
    if not args.skip_vm:
        log(f"VM runs ({plan['vm_mem']} guest memory)")
        vm = run_vm(plan, raw)
        res["vm"] = vm
        res["summary"] = metrics.summarize_runs(vm["runs"])
        if not args.skip_sweep:
            log("CPU against accuracy (a boot of the 7.x kernel)")
            res["overhead"] = overhead_sweep.run(args.mode, raw, plan["bin_dir"], log)
        if not args.skip_schemes:
            log("schemes (prcl, ethp): one VM boot")
            res["schemes"] = schemes_eval.run(args.mode, plan["bin_dir"], raw, run_vm)
    if not args.skip_smallhot:
        res["smallhot"] = run_smallhot(plan, raw, args.skip_vm)
    res["meta"]["wall_s"] = round(time.monotonic() - t0, 1)

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    write_reports(res, out, args)
    log(f"done in {res['meta']['wall_s']:.0f} s; results in {out}")


def run_smallhot(plan, raw, skip_vm):
    """Small hot sets: the simulation (host), then one VM boot beside the
    kernel's DAMON unless skip_vm."""
    log("small hot sets in large memory: simulated (host)")
    res = {"sim": smallhot.run(plan, log=log)}
    if not skip_vm:
        log("small hot sets in large memory: one VM boot, beside the kernel's DAMON")
        res["vm"] = run_vm(plan, raw, module="suite.smallhot_vm", name="smallhot")
    return res


def write_reports(res, out, args):
    text = report.markdown(res)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    files = report.plots(res, out)
    if not args.no_readme and out == os.path.join(BENCH, "results"):
        plots_md = "\n".join(f"![{n}](results/{n})" for n in files)
        report.update_readme(
            os.path.join(BENCH, "README.md"), text + ("\n" + plots_md + "\n" if plots_md else "")
        )
    print(text)


if __name__ == "__main__":
    main()
