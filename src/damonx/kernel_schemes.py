"""A ``damonx.Scheme`` as the kernel's DAMON runs it: the files of a scheme
directory of DAMON's sysfs interface
(``.../kdamonds/N/contexts/0/schemes/M/``, see the kernel's
Documentation/admin-guide/mm/damon/usage.rst), written with damo's units and
conversions (damo's ``_damon_sysfs.py``), and the scheme's statistics and
tried regions read back.

The mapping is a pure function, :func:`scheme_files`, of the scheme, the
monitoring intervals, and the features of the running kernel's DAMON as
:func:`features` finds them: the files a freshly created scheme directory
holds.  :func:`write_scheme` runs it against a directory::

    feats = kernel_schemes.features(scheme_dir)
    kernel_schemes.scheme_files(scheme, sample_us, aggr_us, feats)
    # [("access_pattern/sz/min", "0"), ..., ("action", "pageout"), ...]
    kernel_schemes.write_scheme(scheme_dir, scheme, sample_us, aggr_us)

Units: access rates (percent) become samples per aggregation and ages
(microseconds) aggregations, truncated as damo truncates them
(``AccessPattern.converted``); the rest is written as the scheme holds it
(bytes, milliseconds, microseconds, per mille, basis points).  Filters go to
``core_filters`` and ``ops_filters`` where the kernel has them (Linux 6.15),
else to ``filters``; either way the core's filters come first, as both the
kernel and damonx evaluate them.  Values that are the kernel's defaults are
written only where the file exists, so an older kernel takes a scheme that
uses none of its missing features.

What the running kernel lacks is refused with :class:`NotSupported`, naming
the feature and the Linux version that brought it: a file the plan needs and
the directory lacks (apply intervals, quota goals and their metrics' files,
allow filters, the hugepage_size filter's range, ``target_nid``, the goal
tuner, the fail charge ratio), and a name the kernel refuses (an action,
filter type, goal metric or goal tuner it does not know).
"""

import errno
import os

import numpy as np

from damonx.dtypes import TRIED_REGION_DTYPE
from damonx.errors import DamonxError, InvalidAttrs, NotSupported

_U64_MAX = 2**64 - 1

#: where a file of a scheme directory came from (damo's _damon_features.py)
_FILE_SINCE = {
    "filters": "filters (Linux 6.3)",
    "core_filters": "core_filters and ops_filters (Linux 6.15)",
    "apply_interval_us": "per-scheme apply intervals (Linux 6.7)",
    "target_nid": "migrate_hot and migrate_cold (Linux 6.11)",
    "goals": "quota goals (Linux 6.8)",
    "target_metric": "quota goal metrics (Linux 6.9)",
    "nid": "node_mem_used_bp and node_mem_free_bp quota goals (Linux 6.16)",
    "path": "memcg quota goals (Linux 6.19)",
    "goal_tuner": "quota goal tuners (Linux 7.1)",
    "fail_charge_num": "the quota's fail charge ratio (Linux 7.2)",
    "fail_charge_denom": "the quota's fail charge ratio (Linux 7.2)",
    "allow": "allow filters (Linux 6.14)",
    "min": "hugepage_size filters (Linux 6.15)",
    "max": "hugepage_size filters (Linux 6.15)",
    "addr_start": "addr filters (Linux 6.6)",
    "damon_target_idx": "target filters (Linux 6.6)",
}

#: when the kernel learnt a name it may refuse (damo's _damon_features.py)
_NAME_SINCE = {
    "action": {"migrate_hot": "6.11", "migrate_cold": "6.11", "collapse": "7.2"},
    "filter type": {
        "anon": "6.3",
        "memcg": "6.3",
        "addr": "6.6",
        "target": "6.6",
        "young": "6.10",
        "hugepage_size": "6.15",
        "unmapped": "6.15",
        "active": "6.15",
    },
    "quota goal metric": {
        "some_mem_psi_us": "6.9",
        "node_mem_used_bp": "6.16",
        "node_mem_free_bp": "6.16",
        "node_memcg_used_bp": "6.19",
        "node_memcg_free_bp": "6.19",
        "active_mem_bp": "7.0",
        "inactive_mem_bp": "7.0",
    },
    "goal tuner": {"temporal": "7.1"},
}

#: the files whose value is a name the kernel may not know, and what it names
_NAMED = {
    "action": "action",
    "type": "filter type",
    "target_metric": "quota goal metric",
    "goal_tuner": "goal tuner",
    "metric": "watermark metric",
}


def features(scheme_dir):
    """The features of the running kernel's DAMON for schemes: the relative
    paths of the files and directories a scheme directory holds (numbered
    sub-directories and tried regions left out).  Read only."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(scheme_dir):
        rel = os.path.relpath(dirpath, scheme_dir)
        dirnames[:] = [d for d in dirnames if not d.isdigit() and d != "tried_regions"]
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    return frozenset(found)


def _flag(value):
    return "Y" if value else "N"


def _filter_files(prefix, f):
    out = [(f"{prefix}/type", f.type)]
    if f.allow:
        out.append((f"{prefix}/allow", "Y"))
    if f.type == "memcg":
        out.append((f"{prefix}/memcg_path", f.memcg_path))
    elif f.type == "hugepage_size":
        out += [
            (f"{prefix}/min", str(f.hugepage_size[0])),
            (f"{prefix}/max", str(f.hugepage_size[1])),
        ]
    elif f.type == "addr":
        out += [(f"{prefix}/addr_start", str(f.addr[0])), (f"{prefix}/addr_end", str(f.addr[1]))]
    elif f.type == "target":
        out.append((f"{prefix}/damon_target_idx", str(f.target_idx)))
    out.append((f"{prefix}/matching", _flag(f.matching)))
    return out


def _filters_files(scheme, feats):
    core = [f for f in scheme.filters if not f.handled_by_ops]
    ops = [f for f in scheme.filters if f.handled_by_ops]
    if "core_filters" in feats:
        groups = [("core_filters", core), ("ops_filters", ops)]
    else:
        groups = [("filters", core + ops)]
    out = []
    for dirname, filters in groups:
        if not filters and f"{dirname}/nr_filters" not in feats:
            continue
        out.append((f"{dirname}/nr_filters", str(len(filters))))
        for i, f in enumerate(filters):
            out += _filter_files(f"{dirname}/{i}", f)
    return out


def _goal_files(prefix, g):
    out = []
    if g.metric != "user_input":
        out.append((f"{prefix}/target_metric", g.metric))
    if g.nid is not None:
        out.append((f"{prefix}/nid", str(g.nid)))
    if g.memcg_path is not None:
        out.append((f"{prefix}/path", g.memcg_path))
    out += [
        (f"{prefix}/target_value", str(g.target_value)),
        (f"{prefix}/current_value", str(g.current_value)),
    ]
    return out


def _quota_files(q, feats):
    out = [
        ("quotas/ms", str(q.time_ms)),
        ("quotas/bytes", str(q.sz_bytes)),
        ("quotas/reset_interval_ms", str(q.reset_interval_ms)),
        ("quotas/weights/sz_permil", str(q.weights[0])),
        ("quotas/weights/nr_accesses_permil", str(q.weights[1])),
        ("quotas/weights/age_permil", str(q.weights[2])),
    ]
    if q.fail_charge != (0, 0) or "quotas/fail_charge_num" in feats:
        out += [
            ("quotas/fail_charge_num", str(q.fail_charge[0])),
            ("quotas/fail_charge_denom", str(q.fail_charge[1])),
        ]
    if q.goals or "quotas/goals/nr_goals" in feats:
        out.append(("quotas/goals/nr_goals", str(len(q.goals))))
        for i, g in enumerate(q.goals):
            out += _goal_files(f"quotas/goals/{i}", g)
    if q.goal_tuner != "consist" or "quotas/goal_tuner" in feats:
        out.append(("quotas/goal_tuner", q.goal_tuner))
    return out


def check_ops(scheme, ops, feats):
    """Refuse what the kernel's operations ``ops`` would ignore without a
    word: page filters on ``vaddr`` and ``fvaddr``, which the kernel honours
    for ``stat`` and ``migrate_*`` only (mm/damon/vaddr.c of 7.x; 6.12's
    vaddr has no page filters: refused where the directory has no
    ``ops_filters``, Linux 6.15)."""
    if ops not in ("vaddr", "fvaddr") or not any(f.handled_by_ops for f in scheme.filters):
        return
    honoured = scheme.action in ("stat", "migrate_hot", "migrate_cold")
    if not honoured or "ops_filters" not in feats:
        raise NotSupported(
            f"the kernel's {ops} would ignore the page filters of a {scheme.action} scheme "
            "(it honours them for stat, migrate_hot and migrate_cold only, since about "
            "Linux 6.15); damonx's own vaddr honours them for every action"
        )


def scheme_files(scheme, sample_us, aggr_us, feats, ops=None):
    """The files to write, in order, and their values: a list of
    ``(path relative to the scheme directory, text)``.  ``sample_us`` and
    ``aggr_us``: the context's intervals (microseconds), which convert the
    access pattern; ``feats``: :func:`features` of the directory; ``ops``:
    the context's operations, if known (:func:`check_ops`).

    ``NotSupported`` for a file the plan needs that a directory of
    ``feats`` lacks (one created by an ``nr_*`` write is checked when
    written, by :func:`write_scheme`)."""
    check_ops(scheme, ops, feats)
    sz, nr, age = scheme.pattern.converted(sample_us, aggr_us)
    out = []
    for name, (lo, hi) in (("sz", sz), ("nr_accesses", nr), ("age", age)):
        out += [
            (f"access_pattern/{name}/min", str(min(lo, _U64_MAX))),
            (f"access_pattern/{name}/max", str(min(hi, _U64_MAX))),
        ]
    out.append(("action", scheme.action))
    if scheme.target_nid is not None:
        out.append(("target_nid", str(scheme.target_nid)))
    out += _quota_files(scheme.quotas, feats)
    w = scheme.watermarks
    out += [
        ("watermarks/metric", w.metric),
        ("watermarks/interval_us", str(w.interval_us)),
        ("watermarks/high", str(w.high)),
        ("watermarks/mid", str(w.mid)),
        ("watermarks/low", str(w.low)),
    ]
    out += _filters_files(scheme, feats)
    if scheme.apply_interval_us or "apply_interval_us" in feats:
        out.append(("apply_interval_us", str(scheme.apply_interval_us)))
    for path, _ in out:
        numbered = any(part.isdigit() for part in path.split("/"))
        if not numbered and path not in feats:
            raise NotSupported(missing(path))
    return out


def missing(path):
    """Why a scheme directory lacks the file at path (relative)."""
    for part in reversed(path.split("/")):
        if part in _FILE_SINCE:
            return (
                f"the running kernel's DAMON has no {path} in its scheme directories: "
                f"it lacks {_FILE_SINCE[part]}; use a newer kernel, or damonx's own "
                "monitoring (which has every feature)"
            )
    return f"the running kernel's DAMON has no {path} in its scheme directories"


def _refused_name(path, value):
    kind = _NAMED[os.path.basename(path)]
    since = _NAME_SINCE.get(kind, {}).get(value)
    came = f" (it came with Linux {since})" if since else ""
    return NotSupported(
        f"the running kernel's DAMON does not take the {kind} {value!r}{came}; "
        "use a newer kernel, or damonx's own monitoring"
    )


def _plain_write(path, value):
    with open(path, "w") as f:
        f.write(value)


def write_scheme(scheme_dir, scheme, sample_us, aggr_us, write=_plain_write, ops=None):
    """Write ``scheme`` into ``scheme_dir``, a scheme directory of the DAMON
    sysfs interface (as ``nr_schemes`` created it), for a context of the
    given intervals (microseconds) and operations (``ops``, if known: see
    :func:`check_ops`).  ``write(path, text)`` writes one
    existing file (the caller's, with its retries and errors).
    ``NotSupported`` for what the running kernel lacks (see the module's
    documentation); nothing is written then if it shows before the first
    write, and the caller resets the directory otherwise."""
    plan = scheme_files(scheme, sample_us, aggr_us, features(scheme_dir), ops)
    for rel, value in plan:
        path = os.path.join(scheme_dir, rel)
        if not os.path.exists(path):
            raise NotSupported(missing(rel))
        try:
            write(path, value)
        except (DamonxError, OSError) as err:
            # the kernel answers EINVAL (InvalidAttrs once translated) for
            # a name it does not know
            einval = isinstance(err, InvalidAttrs) or getattr(err, "errno", None) == errno.EINVAL
            if einval and os.path.basename(rel) in _NAMED:
                raise _refused_name(rel, value) from err
            raise


def write_goal_value(scheme_dir, goal, value, write):
    """Write the current value of quota goal ``goal`` of a scheme directory
    (the kdamond takes it at ``commit_schemes_quota_goals``)."""
    path = os.path.join(scheme_dir, "quotas", "goals", str(goal))
    if not os.path.isdir(path):
        raise InvalidAttrs(f"{scheme_dir} has no quota goal {goal}")
    write(os.path.join(path, "current_value"), int(value))


def _read_int(path, read):
    return int(read(path).strip())


def read_stats(scheme_dir, read):
    """The statistics of a scheme directory as the kernel last updated them
    (after ``update_schemes_stats``): the kernel's ``nr_tried``,
    ``sz_tried``, ``nr_applied``, ``sz_applied``, ``qt_exceeds``, and
    ``sz_ops_filter_passed`` (6.14) and ``nr_snapshots`` (7.0) where the
    kernel has them.  ``read(path)`` returns a file's text."""
    stats_dir = os.path.join(scheme_dir, "stats")
    out = {}
    for name in (
        "nr_tried",
        "sz_tried",
        "nr_applied",
        "sz_applied",
        "sz_ops_filter_passed",
        "qt_exceeds",
        "nr_snapshots",
    ):
        path = os.path.join(stats_dir, name)
        if os.path.exists(path):
            out[name] = _read_int(path, read)
    effective = os.path.join(scheme_dir, "quotas", "effective_bytes")
    if os.path.exists(effective):
        out["esz"] = _read_int(effective, read)
    return out


def read_tried_regions(scheme_dir, read):
    """The regions the scheme was tried on at its last application (after
    ``update_schemes_tried_regions``), sorted by address: an array of
    ``TRIED_REGION_DTYPE`` (``sz_filter_passed`` 0 where the kernel has
    no such file, before 6.14)."""
    tdir = os.path.join(scheme_dir, "tried_regions")
    idxs = sorted(int(n) for n in os.listdir(tdir) if n.isdigit())
    arr = np.zeros(len(idxs), dtype=TRIED_REGION_DTYPE)
    for k, idx in enumerate(idxs):
        rdir = os.path.join(tdir, str(idx))
        row = [
            _read_int(os.path.join(rdir, n), read) for n in ("start", "end", "nr_accesses", "age")
        ]
        passed = os.path.join(rdir, "sz_filter_passed")
        row.append(_read_int(passed, read) if os.path.exists(passed) else 0)
        arr[k] = tuple(row)
    arr.sort(order="start")
    return arr
