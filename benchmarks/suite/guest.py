"""The VM part of the benchmark suite: overhead and accuracy of damonx, the
kernel's DAMON and a full page_idle scan on real workloads.

Runs as root inside the project's VM (tools/vmtest/run), driven by a plan
(JSON, written by suite.main) and writing its raw results as JSON:

    python -m suite.guest PLAN.json OUT.json

For each workload and size one workload process serves every run (it
faults its buffer in once, then runs its fixed work on each "GO"); each
repeat runs every configuration once, in an order rotated per repeat:

  baseline        no monitoring
  damonx          damonx vaddr, 5 ms / 100 ms / 1 s, 10..1000 regions
  damonx-r100     the same with max_nr_regions 100
  damonx-r10000   the same with max_nr_regions 10000
  kernel          the kernel's DAMON vaddr, same attributes as damonx
  damonx-kernel   damonx's Monitor on the kernel's DAMON (backend kernel):
                  the kernel's checks plus damonx's sysfs reads and Python
  fullscan        every present page of the process through page_idle,
                  every 100 ms (benchmarks/csrc/bench_fullscan.c)

damonx and the full scan run in one long-lived monitoring process
(suite/server.py); the kernel's DAMON in its kdamond thread.  Monitor CPU
is utime + stime of that process or thread (/proc/PID/stat, 10 ms units)
over the workload's run, as % of one CPU; for damonx-kernel, of both.  The stress-ng workload is a
fresh process per run and is monitored from the moment its worker exists.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from suite import metrics

MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid):
    """PIDs of all descendants of pid (from /proc/*/stat)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out, children


# ----------------------------------------------------------------- monitors
class Server:
    """The monitoring process (suite/server.py)."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "suite.server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        self.pid = self.proc.pid

    def call(self, cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the monitoring process died")
        res = json.loads(line)
        if "error" in res:
            raise RuntimeError(f"monitoring process: {res['error']}")
        return res

    def warm_up(self):
        """Import damonx and numpy before anything is measured."""
        self.call({"cmd": "ping"})

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=30)


class ServerMonitor:
    def __init__(self, server, kind, pid, probes, attrs=None, backend="page_idle"):
        self.server, self.kind = server, kind
        cmd = {"cmd": kind, "pid": pid, "probes": probes}
        if kind == "damonx":
            cmd["attrs"] = attrs
            cmd["backend"] = backend
        server.call(cmd)
        self.kdamond_pid = None
        if backend == "kernel":  # the server's kdamond runs once it replied
            with open("/sys/kernel/mm/damon/admin/kdamonds/0/pid") as f:
                self.kdamond_pid = int(f.read())

    def cpu(self):
        cpu = proc_cpu_s(self.server.pid)
        return cpu + proc_cpu_s(self.kdamond_pid) if self.kdamond_pid else cpu

    def stop(self):
        return self.server.call({"cmd": "stop"})


class KernelMonitor:
    """The kernel's DAMON; snapshots every ~0.3 s in a thread (with an
    intervals goal, the tuned sampling interval too)."""

    def __init__(self, pid, probes, attrs):
        from damonx.kernel_damon import KernelDamon

        self.pid = pid
        self.kd = KernelDamon()
        goal = attrs.get("intervals_goal")
        self.kd.start(
            [pid],
            ops="vaddr",
            sample_us=attrs["sample_us"],
            aggr_us=attrs["aggr_us"],
            update_us=attrs["ops_update_us"],
            min_nr_regions=attrs["min_nr_regions"],
            max_nr_regions=attrs["max_nr_regions"],
            intervals_goal=None if goal is None else tuple(goal[k] for k in GOAL_KEYS),
        )
        self.tuned = goal is not None
        self.probes = probes
        self.samples, self.nr_regions, self.intervals = [], [], []
        self.last_cpu = None
        self.done = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            while not self.done.is_set():
                try:
                    regions = self.kd.snapshot()[0]
                    t = time.monotonic_ns()
                    cpu = self.kd.cpu_seconds()
                except Exception:
                    if self._target_gone():
                        return  # the target exited: the kdamond stops
                    raise
                self.samples.append((t, metrics.found_per_probe(regions, self.probes)))
                self.nr_regions.append(len(regions))
                if self.tuned:
                    self.intervals.append((t, self.kd.tuned_intervals()[0]))
                self.last_cpu = (time.monotonic(), cpu)
                self.done.wait(0.3)
        except Exception as err:  # reported by stop()
            self.error = err

    def _target_gone(self):
        try:
            return not os.path.exists(f"/proc/{self.pid}") or not self.kd.is_running()
        except Exception:
            return True

    def cpu(self):
        try:
            return self.kd.cpu_seconds()
        except Exception:
            return None

    def stop(self):
        self.done.set()
        self.thread.join(timeout=30)
        self.kd.stop()
        if self.error:
            raise RuntimeError(f"kernel DAMON snapshots failed: {self.error}")
        out = {"samples": self.samples, "nr_regions": self.nr_regions}
        if self.tuned:
            out["intervals"] = self.intervals
        return out


#: the fields of an intervals goal, in the order of the kernel's files
GOAL_KEYS = ("access_bp", "aggrs", "min_sample_us", "max_sample_us")


def attrs_for(config):
    attrs = {
        "sample_us": 5000,
        "aggr_us": 100_000,
        "ops_update_us": 1_000_000,
        "min_nr_regions": 10,
        "max_nr_regions": 1000,
    }
    if config.startswith("damonx-r"):
        attrs["max_nr_regions"] = int(config[len("damonx-r") :])
    return attrs


def start_monitor(server, config, pid, probes):
    if config == "kernel":
        return KernelMonitor(pid, probes, attrs_for(config))
    if config == "fullscan":
        return ServerMonitor(server, "fullscan", pid, probes)
    if config == "damonx-kernel":
        return ServerMonitor(server, "damonx", pid, probes, attrs_for(config), "kernel")
    return ServerMonitor(server, "damonx", pid, probes, attrs_for(config))


# ---------------------------------------------------------------- workloads
class CWorkload:
    """A workload of benchmarks/workloads (see wl_common.c)."""

    def __init__(self, binary, size_mib, args):
        self.proc = subprocess.Popen(
            [binary, "--size-mib", str(size_mib), "--touches-m", "1"] + args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"{binary} did not start: {line}")
        self.pid = self.proc.pid
        self.start, self.end = int(line[1], 16), int(line[2], 16)

    def go(self, touches):
        self.proc.stdin.write(f"GO {touches}\n")
        self.proc.stdin.flush()
        start = self.proc.stdout.readline().split()
        done = self.proc.stdout.readline().split()
        if not start or start[0] != "START" or not done or done[0] != "DONE":
            raise RuntimeError(f"workload run failed: {start} {done}")
        return int(done[1]), int(done[2]), float(done[3])

    def close(self):
        try:
            self.proc.stdin.write("QUIT\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=30)


class RedisWorkload:
    """Debian's redis-server holding size_mib MiB of 4000-byte values (one
    per 4 KiB allocation) under its own load generator: each run is
    redis-benchmark doing a fixed number of GETs of keys drawn uniformly from
    the first 1/hot_fraction of the keys, so that most of the data stays cold.
    Where in the heap those keys' values lie is the allocator's business:
    overhead only, no ground truth."""

    VALUE_BYTES = 4000

    def __init__(self, size_mib, hot_fraction):
        # Debian ships the server in redis-tools as redis-check-rdb, which
        # runs as the server when called by the name redis-server.
        exe = shutil.which("redis-server") or shutil.which("redis-check-rdb")
        if exe is None or not shutil.which("redis-benchmark"):
            raise RuntimeError("redis is missing: apt-get install redis-tools")
        self.dir = tempfile.mkdtemp(prefix="damonx-bench-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                self.sock,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
            ],
            executable=exe,
            stdout=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while self.cli("PING", check=False) != "PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        self.nr_keys = size_mib * MIB // 4096
        self.hot_keys = max(1, self.nr_keys // hot_fraction)
        fill = (
            "local v = string.rep('x', ARGV[3]) for i = ARGV[1], ARGV[2] - 1 do "
            "redis.call('SET', string.format('key:%012d', i), v) end"
        )
        for lo in range(0, self.nr_keys, 65536):
            self.cli(
                "EVAL",
                fill,
                "0",
                str(lo),
                str(min(lo + 65536, self.nr_keys)),
                str(self.VALUE_BYTES),
            )
        if int(self.cli("DBSIZE")) != self.nr_keys:
            raise RuntimeError("redis-server did not take every key")

    def cli(self, *args, check=True):
        out = subprocess.run(
            ["redis-cli", "-s", self.sock, *args], capture_output=True, text=True, check=check
        )
        return out.stdout.strip()

    def go(self, requests):
        t0 = time.monotonic_ns()
        subprocess.run(
            [
                "redis-benchmark",
                "-s",
                self.sock,
                "-q",
                "-c",
                "4",
                "-n",
                str(requests),
                "-r",
                str(self.hot_keys),
                "GET",
                "key:__rand_int__",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t1 = time.monotonic_ns()
        return t0, t1, (t1 - t0) / 1e9

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_served(plan, server, wl_name, size_mib, configs, repeats):
    """Runs of a workload that one process serves: a C workload or redis."""
    args, period_s, hot = [], None, None
    if wl_name == "hotcold":
        hot = size_mib * MIB // plan["hot_fraction"]
        period_s = plan["period_s"]
        args = ["--hot-mib", str(hot // MIB), "--period-ms", str(int(period_s * 1000))]
    t = time.monotonic()
    if wl_name == "redis":
        wl, unit, cal = (
            RedisWorkload(size_mib, plan["hot_fraction"]),
            "requests",
            plan["redis_calibration_requests"],
        )
    else:
        wl, unit, cal = (
            CWorkload(os.path.join(plan["bin_dir"], wl_name), size_mib, args),
            "touches",
            plan["calibration_touches"],
        )
    fault_in = time.monotonic() - t
    runs = []
    try:
        probe_ranges = (
            None if wl_name == "redis" else metrics.probes(wl_name, wl.start, wl.end, hot)
        )
        _, _, rt = wl.go(cal)
        amount = max(cal, int(cal * plan["run_seconds"] / max(rt, 1e-3)))
        log(
            f"{wl_name} {size_mib} MiB: set up in {fault_in:.1f} s; "
            f"{cal} {unit} in {rt:.2f} s; runs of {amount} {unit}"
        )
        for rep in range(repeats):
            order = configs[rep % len(configs) :] + configs[: rep % len(configs)]
            for cfg in order:
                run = {
                    "workload": wl_name,
                    "size_mib": size_mib,
                    "config": cfg,
                    "rep": rep,
                    unit: amount,
                }
                mon = None
                if cfg != "baseline":
                    mon = start_monitor(server, cfg, wl.pid, probe_ranges or [])
                t0, t1, rt, res = monitored_go(run, mon, wl, amount)
                if mon is not None:
                    finish_run(run, res, wl_name, probe_ranges, period_s, t0, t1)
                runs.append(run)
                log(
                    f"  {cfg:<14} rep {rep}: {rt:6.2f} s"
                    + (f", monitor CPU {run['cpu_pct']:5.1f}%" if mon else "")
                    + (
                        f", P/R {run['accuracy']['precision']:.2f}/{run['accuracy']['recall']:.2f}"
                        if run.get("accuracy", {}).get("precision") is not None
                        else ""
                    )
                )
    finally:
        wl.close()
    return runs, {
        "workload": wl_name,
        "size_mib": size_mib,
        "fault_in_s": fault_in,
        unit: amount,
        "hot_bytes": hot,
        "period_s": period_s,
    }


def monitored_go(run, mon, wl, amount):
    """One run of wl beside mon (None: alone), after 0.3 s of monitoring:
    ``(t0, t1, runtime_s, mon's results or None)``; run gets ``runtime_s``
    and the monitor's ``cpu_s`` and ``cpu_pct`` over the run."""
    if mon is not None:
        time.sleep(0.3)
        w0, c0 = time.monotonic(), mon.cpu()
    t0, t1, rt = wl.go(amount)
    run["runtime_s"] = rt
    if mon is None:
        return t0, t1, rt, None
    c1, w1 = mon.cpu(), time.monotonic()
    res = mon.stop()
    run["cpu_s"] = c1 - c0
    run["cpu_pct"] = 100.0 * (c1 - c0) / (w1 - w0)
    return t0, t1, rt, res


def finish_run(run, res, wl_name, probe_ranges, period_s, t0, t1):
    if res.get("nr_regions"):
        run["nr_regions"] = metrics.median(res["nr_regions"])
    for key in ("interval_s", "nr_intervals", "io", "stats", "access_checks", "nr_present_pages"):
        if key in res:
            run[key] = res[key]
    if probe_ranges is None:
        return
    samples = [((t - t0) / 1e9, found) for t, found in res["samples"] if t <= t1]
    scored = metrics.score_series(wl_name, samples, probe_ranges, period_s)
    run["accuracy"] = metrics.summarize_scores(scored, period_s)
    run["series"] = [
        [round(s["t"], 3), round(s["precision"], 4), round(s["recall"], 4), round(s["wss_err"], 4)]
        for s in scored
    ]


# ----------------------------------------------------------------- stress-ng
def stress_cmd(plan, size_mib, ops=None, timeout=None):
    cmd = [
        "stress-ng",
        "--vm",
        "1",
        "--vm-bytes",
        f"{size_mib}M",
        "--vm-method",
        plan["stress_method"],
        "--metrics-brief",
    ]
    if ops:
        cmd += ["--vm-ops", str(ops)]
    if timeout:
        cmd += ["--timeout", f"{timeout}s"]
    return cmd


def parse_stress(out):
    for line in out.splitlines():
        m = re.search(r"\]\s+vm\s+(\d+)\s+([\d.]+)", line)
        if m:
            return int(m.group(1)), float(m.group(2))
    raise RuntimeError(f"no stress-ng metrics in: {out[-500:]}")


def stress_worker(parent, deadline_s=20):
    """The leaf stress-ng-vm process under parent (the one doing the work)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        desc, children = descendants(parent)
        leaves = [p for p in desc if p not in children]
        for p in leaves:
            try:
                with open(f"/proc/{p}/comm") as f:
                    if "vm" in f.read():
                        return p
            except OSError:
                pass
        time.sleep(0.02)
    raise RuntimeError("no stress-ng vm worker found")


def run_stress(plan, server, size_mib, configs, repeats):
    out = subprocess.run(
        stress_cmd(plan, size_mib, timeout=plan["stress_cal_s"]),
        capture_output=True,
        text=True,
        check=True,
    )
    ops, secs = parse_stress(out.stdout + out.stderr)
    nops = max(1, int(ops / secs * plan["run_seconds"]))
    log(f"stress-ng {size_mib} MiB: {ops} ops in {secs} s; runs of {nops} ops")
    runs = []
    for rep in range(repeats):
        order = configs[rep % len(configs) :] + configs[: rep % len(configs)]
        for cfg in order:
            run = {
                "workload": "stress-ng",
                "size_mib": size_mib,
                "config": cfg,
                "rep": rep,
                "ops": nops,
            }
            t_start = time.monotonic()
            proc = subprocess.Popen(
                stress_cmd(plan, size_mib, ops=nops),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            mon = None
            if cfg != "baseline":
                worker = stress_worker(proc.pid)
                mon = start_monitor(server, cfg, worker, [])
                w0, c0 = time.monotonic(), mon.cpu()
                last = (w0, c0)
                while proc.poll() is None:
                    c = mon.cpu()
                    if c is not None:
                        last = (time.monotonic(), c)
                    time.sleep(0.1)
            text = proc.communicate()[0]
            run["runtime_s"] = time.monotonic() - t_start
            run["stress_ng_runtime_s"] = parse_stress(text)[1]
            if mon is not None:
                w1, c1 = last
                res = mon.stop()
                run["cpu_s"] = c1 - c0
                run["cpu_pct"] = 100.0 * (c1 - c0) / max(w1 - w0, 1e-9)
                finish_run(run, res, "stress-ng", None, None, 0, 0)
            runs.append(run)
            log(
                f"  {cfg:<14} rep {rep}: {run['runtime_s']:6.2f} s"
                + (f", monitor CPU {run['cpu_pct']:5.1f}%" if mon else "")
            )
    return runs, {
        "workload": "stress-ng",
        "size_mib": size_mib,
        "ops": nops,
        "method": plan["stress_method"],
    }


# --------------------------------------------------------------------- main
def machine():
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "kernel": platform.release(),
        "cpu": metrics.cpu_model(),
        "nr_cpus": os.cpu_count(),
        "mem_gib": round(mem_kb / (1 << 20), 1),
    }


def vm_part_args():
    """(plan, out_path) of a part of the suite run in the VM as
    ``python -m suite.PART PLAN OUT``; exits unless it is in the VM (idle
    page tracking, root)."""
    plan_path, out_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        plan = json.load(f)
    if not os.path.exists("/sys/kernel/mm/page_idle/bitmap") or os.geteuid() != 0:
        raise SystemExit("needs idle page tracking and root: run inside tools/vmtest/run")
    return plan, out_path


def write_json(path, obj):
    """obj as JSON in path, through a temporary file: the host reads either
    the last whole results or the new ones, also after a crash."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def main():
    plan, out_path = vm_part_args()
    result = {"machine": machine(), "plan": plan, "runs": [], "workloads": [], "complete": False}

    def save():
        write_json(out_path, result)

    server = Server()
    server.warm_up()
    try:
        jobs = [
            (wl, size, plan["configs"]) for wl in plan["workloads"] for size in plan["sizes_mib"]
        ]
        jobs += [
            (plan["scale_workload"], size, plan["scale_configs"])
            for size in plan["scale_sizes_mib"]
            if size not in plan["sizes_mib"] or plan["scale_workload"] not in plan["workloads"]
        ]
        result["errors"] = []
        for wl, size, configs in jobs:
            try:
                if wl == "stress-ng":
                    runs, info = run_stress(plan, server, size, configs, plan["repeats"])
                else:
                    runs, info = run_served(plan, server, wl, size, configs, plan["repeats"])
            except Exception as err:  # recorded; the other workloads still run
                log(f"{wl} {size} MiB failed: {type(err).__name__}: {err}")
                result["errors"].append(
                    {"workload": wl, "size_mib": size, "error": f"{type(err).__name__}: {err}"}
                )
                if server.proc.poll() is not None:
                    server = Server()
                    server.warm_up()
                save()
                continue
            result["runs"] += runs
            result["workloads"].append(info)
            save()
        result["complete"] = not result["errors"]
        save()
    finally:
        server.close()


if __name__ == "__main__":
    main()
