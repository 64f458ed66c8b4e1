"""The kernel's DAMON sysfs interface: which files this kernel has, what
they offer, and whether damonx can drive it here.

The interface grew file by file, from Linux 5.18 (the first sysfs
interface; 5.15 to 5.17 had only debugfs) to 7.x.  damonx never reads a
version string: a feature is there when its file is (:data:`FILES`, dated
by the kernel's Documentation/ABI/testing/sysfs-kernel-mm-damon).  Names
the kernel takes without a file of their own (scheme actions, filter types,
quota goal metrics) are tried: the kernel answers EINVAL to a name it does
not know.

The files of a context, a scheme or a filter exist only once the
directories above them are populated (writing ``nr_kdamonds``,
``nr_contexts``, ``nr_schemes``...), so:

- :func:`read_layout` only reads the kdamond directories that exist (on a
  machine that has none, most features stay unknown);
- :func:`probe_layout` populates one kdamond with one of each child, reads
  it, tries the names and removes everything again.  It writes, so callers
  run it only where no kdamond runs (``nr_kdamonds`` cannot change then).

:func:`status` says, reading only, whether the kernel backend can run here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from damonx import errors, kernel_owner, schemes

ADMIN = os.path.join("kernel", "mm", "damon", "admin")
DEBUGFS = os.path.join("kernel", "debug", "damon")

#: the names of the actions, filter types and quota goal metrics the kernel
#: may know (7.3's, as damonx.Scheme takes them); which one this kernel takes
#: is tried by probe_layout
ACTION_NAMES = schemes.ACTIONS
FILTER_TYPES = schemes.FILTER_TYPES
GOAL_METRICS = schemes.GOAL_METRICS

_S = "contexts/0/schemes/0/"


@dataclass(frozen=True)
class FileFeature:
    """A feature of the interface, and the file that shows it."""

    name: str
    #: the Linux release that added it (for messages only)
    linux: str
    #: its file, relative to a kdamond directory, every child numbered 0
    path: str
    what: str
    #: a feature without which this one cannot be there
    needs: str | None = None


FILES = (
    FileFeature("schemes", "5.18", "contexts/0/schemes/nr_schemes", "DAMOS schemes"),
    FileFeature(
        "avail_operations", "5.19", "contexts/0/avail_operations", "the list of operations sets"
    ),
    FileFeature("tried_regions", "6.2", _S + "tried_regions", "tried regions (snapshots)"),
    FileFeature("filters", "6.3", _S + "filters", "DAMOS filters"),
    FileFeature(
        "tried_bytes", "6.6", _S + "tried_regions/total_bytes", "tried bytes", "tried_regions"
    ),
    FileFeature(
        "target_filters",
        "6.6",
        _S + "filters/0/damon_target_idx",
        "address and target filters",
        "filters",
    ),
    FileFeature("apply_interval", "6.7", _S + "apply_interval_us", "per-scheme apply intervals"),
    FileFeature("quota_goals", "6.8", _S + "quotas/goals", "quota goals"),
    FileFeature(
        "goal_metrics",
        "6.9",
        _S + "quotas/goals/0/target_metric",
        "quota goal metrics",
        "quota_goals",
    ),
    FileFeature("effective_quota", "6.9", _S + "quotas/effective_bytes", "effective quotas"),
    FileFeature("target_nid", "6.11", _S + "target_nid", "migration target nodes"),
    FileFeature("allow_filters", "6.14", _S + "filters/0/allow", "allow filters", "filters"),
    FileFeature(
        "ops_filter_stats", "6.14", _S + "stats/sz_ops_filter_passed", "ops filter statistics"
    ),
    FileFeature("core_ops_filters", "6.15", _S + "core_filters", "core and ops filter lists"),
    FileFeature(
        "intervals_goal",
        "6.15",
        "contexts/0/monitoring_attrs/intervals/intervals_goal",
        "intervals auto-tuning",
    ),
    FileFeature(
        "goal_nid", "6.16", _S + "quotas/goals/0/nid", "node memory quota goals", "quota_goals"
    ),
    FileFeature("refresh_ms", "6.17", "refresh_ms", "periodic refresh of statistics"),
    FileFeature("dests", "6.17", _S + "dests", "several migration destinations"),
    FileFeature("addr_unit", "6.18", "contexts/0/addr_unit", "address units"),
    FileFeature(
        "obsolete_target", "6.19", "contexts/0/targets/0/obsolete_target", "obsolete targets"
    ),
)
FEATURES = {f.name: f for f in FILES}

_FILTER_DIRS = ("core_filters", "ops_filters")

#: the child directories probe_layout populates: (directory, its nr_ file)
_POPULATE = (
    ("contexts", "nr_contexts"),
    ("contexts/0/targets", "nr_targets"),
    ("contexts/0/targets/0/regions", "nr_regions"),
    ("contexts/0/schemes", "nr_schemes"),
    (_S + "filters", "nr_filters"),
    (_S + "quotas/goals", "nr_goals"),
)


@dataclass(frozen=True)
class Layout:
    """What one kernel's DAMON sysfs interface offers, as far as seen."""

    present: frozenset = frozenset()
    absent: frozenset = frozenset()
    #: avail_operations, when read
    ops: tuple | None = None
    #: the action names, filter types and goal metrics the kernel took (probe)
    actions: tuple | None = None
    filter_types: tuple | None = None
    goal_metrics: tuple | None = None

    def has(self, name):
        """True, False, or None when unknown."""
        if name in self.present:
            return True
        return False if name in self.absent else None

    def require(self, name, needed_for):
        """NotSupported, naming the file and the release that added it, when
        feature name is known to be missing."""
        if name in self.absent:
            f = FEATURES[name]
            raise errors.NotSupported(
                f"this kernel's DAMON has no {f.what} ({os.path.basename(f.path)}, "
                f"added in Linux {f.linux}): {needed_for}"
            )

    def merged(self, other):
        return Layout(
            self.present | other.present,
            (self.absent | other.absent) - (self.present | other.present),
            self.ops or other.ops,
            self.actions or other.actions,
            self.filter_types or other.filter_types,
            self.goal_metrics or other.goal_metrics,
        )


def read_layout(kdamond_dir) -> Layout:
    """The features shown by the files of one kdamond directory (reads only).

    A feature whose parent directory does not exist is unknown, unless a
    feature it needs is known to be missing.
    """
    present, absent = set(), set()
    for f in FILES:
        # a filter's files are the same in filters/, core_filters/ and ops_filters/
        paths = [os.path.join(kdamond_dir, f.path)]
        if "/filters/0/" in f.path:
            paths += [p.replace("/filters/0/", f"/{d}/0/") for p in paths for d in _FILTER_DIRS]
        if f.needs in absent:
            absent.add(f.name)
        elif any(os.path.exists(p) for p in paths):
            present.add(f.name)
        elif any(os.path.isdir(os.path.dirname(p)) for p in paths):
            absent.add(f.name)
    ops = kernel_owner.read_text(os.path.join(kdamond_dir, "contexts", "0", "avail_operations"))
    return Layout(frozenset(present), frozenset(absent), tuple(ops.split()) if ops else None)


def read_layouts(sysfs="/sys") -> Layout:
    """What the kdamond directories under sysfs show, merged (reads only)."""
    kdamonds = os.path.join(sysfs, ADMIN, "kdamonds")
    layout = Layout()
    for name in _indexes(kdamonds):
        layout = layout.merged(read_layout(os.path.join(kdamonds, name)))
    return layout


def probe_layout(kdamonds_dir) -> Layout:
    """Populate kdamond 0 with one of each child, read its layout, try the
    names, and remove it (``nr_kdamonds`` back to 0).  Writes: only where no
    kdamond runs."""
    _write(os.path.join(kdamonds_dir, "nr_kdamonds"), 1)
    try:
        kd = os.path.join(kdamonds_dir, "0")
        for sub, nr_file in _POPULATE:
            if os.path.isdir(os.path.join(kd, sub)):
                _write(os.path.join(kd, sub, nr_file), 1)
        layout = read_layout(kd)
        scheme = os.path.join(kd, _S)
        actions = _accepted(os.path.join(scheme, "action"), ACTION_NAMES)
        types = metrics = None
        if layout.has("filters"):
            types = _accepted(os.path.join(scheme, "filters", "0", "type"), FILTER_TYPES)
        if layout.has("goal_metrics"):
            path = os.path.join(scheme, "quotas", "goals", "0", "target_metric")
            metrics = _accepted(path, GOAL_METRICS)
    finally:
        _write(os.path.join(kdamonds_dir, "nr_kdamonds"), 0)
    return replace(layout, actions=actions, filter_types=types, goal_metrics=metrics)


def _accepted(path, names):
    out = []
    for name in names:
        try:
            _write(path, name)
        except errors.InvalidAttrs:  # EINVAL: a name this kernel does not know
            continue
        out.append(name)
    return tuple(out)


def _write(path, value):
    with errors.translated(
        f"cannot write {value!r} to {path}",
        privilege_hint="the kernel's DAMON needs root",
        support_hint="the kernel's DAMON sysfs interface (CONFIG_DAMON_SYSFS) lacks it",
    ):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)


def _indexes(kdamonds_dir):
    try:
        names = os.listdir(kdamonds_dir)
    except OSError:
        return []
    return sorted((n for n in names if n.isdigit()), key=int)


# -- can damonx drive it here? -------------------------------------------------
@dataclass
class Status:
    """Whether the kernel backend can run here, and why not."""

    usable: bool
    #: what was found (usable), or what is missing or in the way (not usable)
    detail: str
    #: missing for want of a privilege (root), not of a kernel feature
    privilege: bool = False
    #: what the kernel's files showed (reading only)
    layout: Layout = Layout()
    #: a running kdamond damonx left behind (removed when the backend opens)
    left_over: int | None = None


def status(sysfs="/sys", procfs="/proc", directory=None, locked=False) -> Status:
    """Whether damonx can drive the kernel's DAMON here (reads only);
    locked: the caller holds damonx's lock (see kernel_owner)."""
    admin = os.path.join(sysfs, ADMIN)
    kdamonds = os.path.join(admin, "kdamonds")
    if not os.path.isdir(kdamonds):
        if os.path.isdir(os.path.join(sysfs, DEBUGFS)):
            return Status(
                False,
                "this kernel's DAMON has only its debugfs interface (Linux 5.15 to 5.17); "
                "damonx drives the sysfs interface (CONFIG_DAMON_SYSFS, Linux 5.18 and later)",
            )
        return Status(
            False,
            f"{admin} does not exist: the kernel lacks the DAMON sysfs interface "
            "(CONFIG_DAMON_SYSFS, Linux 5.18 and later)",
        )
    layout = read_layouts(sysfs)
    nr_file = os.path.join(kdamonds, "nr_kdamonds")
    if not os.access(nr_file, os.W_OK):
        return Status(False, f"{nr_file} is not writable; run as root", True, layout)
    left_over = None
    for name in _indexes(kdamonds):
        if kernel_owner.read_text(os.path.join(kdamonds, name, "state")) != "on":
            continue
        owner = kernel_owner.owner_of(int(name), kdamonds, sysfs, procfs, directory, locked)
        if owner.who == "left":
            left_over = int(name)
            continue
        return Status(
            False,
            f"kdamond {name} runs ({owner.detail}): nr_kdamonds cannot change while it "
            "runs, so damonx cannot add a kdamond of its own",
            layout=layout,
        )
    try:
        layout.require("tried_regions", "damonx reads its snapshots from them")
    except errors.NotSupported as err:
        return Status(False, str(err), layout=layout)
    detail = f"{admin} is writable and no kdamond runs"
    if left_over is not None:
        detail = f"{admin} is writable; kdamond {left_over} was left by a killed damonx"
    return Status(True, detail, layout=layout, left_over=left_over)


def describe(layout: Layout) -> str:
    """One line: what a layout offers, and what is not known."""
    parts = []
    if layout.ops:
        parts.append(f"ops {' '.join(layout.ops)}")
    if layout.actions:
        parts.append(f"actions {' '.join(layout.actions)}")
    if layout.filter_types:
        parts.append(f"filters {' '.join(layout.filter_types)}")
    have = [f"{f.name} ({f.linux})" for f in FILES if f.name in layout.present]
    lack = [f"{f.name} ({f.linux})" for f in FILES if f.name in layout.absent]
    if have:
        parts.append("has " + ", ".join(have))
    if lack:
        parts.append("lacks " + ", ".join(lack))
    unknown = [f.name for f in FILES if layout.has(f.name) is None]
    if unknown and len(unknown) == len(FILES):
        parts.append(
            "no kdamond directory to read the layout from (`damonx features --probe` "
            "creates one, reads it and removes it)"
        )
    elif unknown:
        parts.append("unknown " + ", ".join(unknown))
    return "; ".join(parts)
