"""A fake DAMON sysfs interface shaped like one kernel release, for host tests.

A plain directory cannot act on a write, so :meth:`FakeDamon.install`
replaces the ``os`` of the modules that write DAMON's files
(``damonx.kernel_damon``, ``damonx.kernel_sysfs``): a write to a file of the
fake tree goes to :meth:`FakeDamon.store`, which does what the kernel's
store function does.  Writing ``nr_*`` replaces the child directories, with
the files of the release; ``state`` takes the commands of the release (``on``
fills ``pid``, ``update_schemes_tried_regions`` lists :attr:`tried`);
action names, filter types and goal metrics the release does not know are
EINVAL; ``nr_kdamonds`` is EBUSY while a kdamond runs.

Which release added which file follows the dates of the kernel's
Documentation/ABI/testing/sysfs-kernel-mm-damon (checked against the 6.12
and 7.3 sources and a live 6.18 tree).  Before 5.18 there is only the
debugfs interface.
"""

import errno
import os
import shutil
import time

RELEASES = ("5.15", "6.1", "6.6", "6.12", "6.18", "7.3")
KDAMOND_PID = 777
BOOT_ID = "6f1f3c2e-0d5e-4b7c-9a55-2b8f1a0c9d11"

_ACTIONS = (
    ((5, 18), ("willneed", "cold", "pageout", "hugepage", "nohugepage", "stat")),
    ((6, 0), ("lru_prio", "lru_deprio")),
    ((6, 11), ("migrate_hot", "migrate_cold")),
    ((7, 0), ("collapse",)),
)
_FILTER_TYPES = (
    ((6, 3), ("anon", "memcg")),
    ((6, 6), ("addr", "target")),
    ((6, 10), ("young",)),
    ((6, 15), ("hugepage_size", "unmapped")),
    ((6, 17), ("active",)),
)
_GOAL_METRICS = (
    ((6, 9), ("user_input", "some_mem_psi_us")),
    ((6, 16), ("node_mem_used_bp", "node_mem_free_bp")),
)
_COMMANDS = (
    ((5, 18), ("on", "off", "update_schemes_stats")),
    ((5, 19), ("commit",)),
    ((6, 2), ("update_schemes_tried_regions", "clear_schemes_tried_regions")),
    ((6, 6), ("update_schemes_tried_bytes",)),
    ((6, 8), ("commit_schemes_quota_goals",)),
    ((6, 9), ("update_schemes_effective_quotas",)),
    ((6, 15), ("update_tuned_intervals",)),
)


def _names(table, version):
    return [n for since, names in table if version >= since for n in names]


def put(path, value=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"{value}\n")


def get(path):
    with open(path) as f:
        return f.read().strip()


class FakeDamon:
    """The DAMON sysfs interface of release ``version`` under tmp_path/sys,
    with tmp_path/proc holding what the backend reads there."""

    def __init__(self, tmp_path, version, ops=("vaddr", "fvaddr", "paddr")):
        """version: "6.12" and the like, or None for a kernel without DAMON."""
        self.v = tuple(int(x) for x in version.split(".")) if version else (0, 0)
        self.sysfs = str(tmp_path / "sys")
        self.procfs = str(tmp_path / "proc")
        self.ops = ops
        self.admin = os.path.join(self.sysfs, "kernel/mm/damon/admin")
        self.kdamonds = os.path.join(self.admin, "kdamonds")
        #: per scheme index, the regions (start, end, nr_accesses, age) that
        #: update_schemes_tried_regions lists
        self.tried = {}
        #: per scheme index, the stats update_schemes_stats shows
        self.stats = {}
        #: every write: (path relative to kdamonds, value)
        self.writes = []
        #: seconds update_schemes_tried_regions takes (the kernel waits for
        #: the end of an aggregation)
        self.serve_s = 0.0
        put(os.path.join(self.procfs, "sys/kernel/random/boot_id"), BOOT_ID)
        if not version:
            return
        if self.v < (5, 18):
            for name in ("attrs", "target_ids", "monitor_on"):
                put(os.path.join(self.sysfs, "kernel/debug/damon", name), "")
            return
        put(os.path.join(self.kdamonds, "nr_kdamonds"), 0)

    # -- the tree ---------------------------------------------------------------
    def since(self, *version):
        return self.v >= version

    def _files(self, d, files):
        for name, value, since in files:
            if since is None or self.v >= since:
                put(os.path.join(d, name), value)

    def build_kdamond(self, d):
        self._files(d, [("state", "off", None), ("pid", -1, None), ("refresh_ms", 0, (6, 17))])
        put(os.path.join(d, "contexts/nr_contexts"), 0)

    def build_context(self, d):
        self._files(
            d,
            [
                ("avail_operations", " ".join(self.ops), (5, 19)),
                ("operations", "vaddr", None),
                ("addr_unit", 1, (6, 18)),
                ("monitoring_attrs/intervals/sample_us", 5000, None),
                ("monitoring_attrs/intervals/aggr_us", 100000, None),
                ("monitoring_attrs/intervals/update_us", 1000000, None),
                ("monitoring_attrs/nr_regions/min", 10, None),
                ("monitoring_attrs/nr_regions/max", 1000, None),
                ("targets/nr_targets", 0, None),
                ("schemes/nr_schemes", 0, None),
            ],
        )
        if self.since(6, 15):
            for name in ("access_bp", "aggrs", "min_sample_us", "max_sample_us"):
                put(os.path.join(d, "monitoring_attrs/intervals/intervals_goal", name), 0)

    def build_target(self, d):
        self._files(
            d,
            [
                ("pid_target", 0, None),
                ("obsolete_target", "N", (6, 19)),
                ("regions/nr_regions", 0, None),
            ],
        )

    def build_region(self, d):
        self._files(d, [("start", 0, None), ("end", 0, None)])

    def build_scheme(self, d):
        files = [
            ("action", "stat", None),
            ("target_nid", -1, (6, 11)),
            ("apply_interval_us", 0, (6, 7)),
            ("quotas/ms", 0, None),
            ("quotas/bytes", 0, None),
            ("quotas/reset_interval_ms", 0, None),
            ("quotas/effective_bytes", 0, (6, 9)),
            ("quotas/goals/nr_goals", 0, (6, 8)),
            ("watermarks/metric", "none", None),
            ("filters/nr_filters", 0, (6, 3)),
            ("core_filters/nr_filters", 0, (6, 15)),
            ("ops_filters/nr_filters", 0, (6, 15)),
            ("dests/nr_dests", 0, (6, 17)),
            ("stats/sz_ops_filter_passed", 0, (6, 14)),
            ("tried_regions/total_bytes", 0, (6, 6)),
        ]
        for sub in ("sz", "nr_accesses", "age"):
            files += [
                (f"access_pattern/{sub}/min", 0, None),
                (f"access_pattern/{sub}/max", 0, None),
            ]
        for name in ("sz_permil", "nr_accesses_permil", "age_permil"):
            files.append((f"quotas/weights/{name}", 0, None))
        for name in ("interval_us", "high", "mid", "low"):
            files.append((f"watermarks/{name}", 0, None))
        for name in ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "qt_exceeds"):
            files.append((f"stats/{name}", 0, None))
        self._files(d, files)
        if self.since(6, 2):
            os.makedirs(os.path.join(d, "tried_regions"), exist_ok=True)

    def build_filter(self, d):
        self._files(
            d,
            [
                ("type", "anon", None),
                ("matching", "N", None),
                ("memcg_path", "", None),
                ("addr_start", 0, (6, 6)),
                ("addr_end", 0, (6, 6)),
                ("damon_target_idx", 0, (6, 6)),
                ("allow", "N", (6, 14)),
                ("min", 0, (6, 15)),
                ("max", 0, (6, 15)),
            ],
        )

    def build_goal(self, d):
        self._files(
            d,
            [
                ("target_value", 0, None),
                ("current_value", 0, None),
                ("target_metric", "user_input", (6, 9)),
                ("nid", -1, (6, 16)),
                ("path", "", (6, 19)),
            ],
        )

    def build_dest(self, d):
        self._files(d, [("id", 0, None), ("weight", 0, None)])

    _CHILDREN = {
        "nr_kdamonds": "kdamond",
        "nr_contexts": "context",
        "nr_targets": "target",
        "nr_regions": "region",
        "nr_schemes": "scheme",
        "nr_filters": "filter",
        "nr_goals": "goal",
        "nr_dests": "dest",
    }

    # -- the kernel's store functions -----------------------------------------
    def install(self, monkeypatch):
        """Route the writes of damonx's sysfs modules through store()."""
        from damonx import kernel_damon, kernel_sysfs

        fake_os = FakeOs(self)
        monkeypatch.setattr(kernel_damon, "os", fake_os)
        monkeypatch.setattr(kernel_sysfs, "os", fake_os)
        return self

    def running(self):
        return [
            n
            for n in sorted(os.listdir(self.kdamonds))
            if n.isdigit() and get(os.path.join(self.kdamonds, n, "state")) == "on"
        ]

    def store(self, path, value):
        """What writing value to path does (OSError for what the kernel refuses)."""
        value = value.strip()
        rel = os.path.relpath(path, self.kdamonds)
        self.writes.append((rel, value))
        name, parent = os.path.basename(path), os.path.dirname(path)
        fail = None
        if name in self._CHILDREN:
            fail = self._store_nr(name, parent, value)
        elif name == "state" and os.path.dirname(parent) == self.kdamonds:
            fail = self._store_state(parent, value)
        elif name in self._NAMED and value not in self._known(name):
            fail = errno.EINVAL
        elif name in ("pid", "avail_operations", "effective_bytes") or "stats" in rel.split("/"):
            fail = errno.EACCES  # read-only files
        else:
            put(path, value)
        if fail:
            raise OSError(fail, os.strerror(fail))

    _NAMED = {"action": _ACTIONS, "type": _FILTER_TYPES, "target_metric": _GOAL_METRICS}
    _NAMED["operations"] = ()

    def _known(self, name):
        """The names file ``name`` takes."""
        return self.ops if name == "operations" else _names(self._NAMED[name], self.v)

    def _store_nr(self, name, parent, value):
        try:
            nr = int(value)
        except ValueError:
            return errno.EINVAL
        if name == "nr_kdamonds" and self.running():
            return errno.EBUSY
        for child in os.listdir(parent):
            if child.isdigit():
                shutil.rmtree(os.path.join(parent, child))
        build = getattr(self, f"build_{self._CHILDREN[name]}")
        for i in range(nr):
            build(os.path.join(parent, str(i)))
        put(os.path.join(parent, name), nr)
        return None

    def _store_state(self, kdamond, cmd):
        if cmd not in _names(_COMMANDS, self.v):
            return errno.EINVAL
        state = os.path.join(kdamond, "state")
        on = get(state) == "on"
        if cmd == "on":
            if on:
                return errno.EBUSY
            if get(os.path.join(kdamond, "contexts/nr_contexts")) != "1":
                return errno.EINVAL
            put(state, "on")
            pid = KDAMOND_PID + int(os.path.basename(kdamond))
            put(os.path.join(kdamond, "pid"), pid)
            put(
                os.path.join(self.procfs, str(pid), "stat"),
                f"{pid} (kdamond.{os.path.basename(kdamond)}) S 2 0 0 0 -1 0 0 0 0 0 3 4",
            )
            return None
        if not on:
            return errno.EINVAL
        if cmd == "off":
            put(state, "off")
            put(os.path.join(kdamond, "pid"), -1)
        elif cmd == "update_schemes_tried_regions":
            time.sleep(self.serve_s)
            self._fill_tried(kdamond)
        elif cmd == "update_schemes_stats":
            for idx, stats in self.stats.items():
                for key, val in stats.items():
                    put(os.path.join(kdamond, f"contexts/0/schemes/{idx}/stats", key), val)
        return None

    def _fill_tried(self, kdamond):
        schemes = os.path.join(kdamond, "contexts/0/schemes")
        nr = int(get(os.path.join(schemes, "nr_schemes")))
        for idx in range(nr):
            tdir = os.path.join(schemes, str(idx), "tried_regions")
            for child in os.listdir(tdir):
                if child.isdigit():
                    shutil.rmtree(os.path.join(tdir, child))
            regions = self.tried.get(idx, [])
            for k, region in enumerate(regions):
                for key, val in zip(("start", "end", "nr_accesses", "age"), region):
                    put(os.path.join(tdir, str(k), key), val)
            if self.since(6, 6):
                put(os.path.join(tdir, "total_bytes"), sum(e - s for s, e, *_ in regions))

    # -- helpers for tests -------------------------------------------------------
    def kdamond(self, index=0):
        return os.path.join(self.kdamonds, str(index))

    def read(self, rel):
        """A file of the tree, relative to kdamonds/."""
        return get(os.path.join(self.kdamonds, rel))

    def start_foreign(self, index=0):
        """A kdamond that someone else than damonx runs."""
        put(os.path.join(self.kdamonds, "nr_kdamonds"), 0)
        self._store_nr("nr_kdamonds", self.kdamonds, str(index + 1))
        kd = self.kdamond(index)
        self._store_nr("nr_contexts", os.path.join(kd, "contexts"), "1")
        self._store_state(kd, "on")

    def add_process(self, pid, state="S"):
        put(os.path.join(self.procfs, str(pid), "stat"), f"{pid} (workload) {state} 1")

    def table_row(self, page_idle):
        """Add what damonx's own checks need (idle page tracking, kpageflags)."""
        if page_idle:
            put(os.path.join(self.sysfs, "kernel/mm/page_idle/bitmap"), "")
        with open(os.path.join(self.procfs, "kpageflags"), "wb") as f:
            f.write(bytes(64))
        put(
            os.path.join(self.procfs, "iomem"),
            "00001000-0009fbff : System RAM\n00100000-bffdffff : System RAM",
        )
        return self


class FakeOs:
    """The os module, with writes to files of a FakeDamon's tree going to
    its store() (opened without O_TRUNC: store() decides what the file
    reads)."""

    def __init__(self, fake):
        self._fake = fake
        self._paths = {}

    def __getattr__(self, name):
        return getattr(os, name)

    def open(self, path, flags, *args):
        inside = os.path.abspath(path).startswith(self._fake.sysfs + os.sep)
        if inside and flags & (os.O_WRONLY | os.O_RDWR):
            fd = os.open(path, flags & ~os.O_TRUNC, *args)
            self._paths[fd] = path
            return fd
        return os.open(path, flags, *args)

    def write(self, fd, data):
        path = self._paths.get(fd)
        if path is None:
            return os.write(fd, data)
        self._fake.store(path, bytes(data).decode())
        return len(data)

    def close(self, fd):
        self._paths.pop(fd, None)
        os.close(fd)
