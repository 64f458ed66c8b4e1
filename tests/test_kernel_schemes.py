"""damonx.kernel_schemes against fake scheme directories of the kernel's
DAMON sysfs interface, laid out as Linux 6.6, 6.12 and 7.3 lay them out
(mm/damon/sysfs-schemes.c of each): the files written are those damo writes
for the same scheme, and what a kernel lacks is refused with the reason.

The fake kernel creates numbered directories on ``nr_*`` writes and refuses
names it does not know with EINVAL, as the real one does.
"""

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from damonx import kernel_schemes
from damonx.dtypes import TRIED_REGION_DTYPE
from damonx.errors import NotSupported
from damonx.kernel_damon import KernelDamon
from damonx.schemes import MAX, AccessPattern, Filter, QuotaGoal, Quotas, Scheme, Watermarks
from tests.test_kernel_damon import TARGET_PID, ctx_dir, get, make_tree, put, started

MIB = 1 << 20

# The files of each directory, per kernel version (sysfs-schemes.c), with
# the kernel's defaults, and the names each version's files take.
_V66 = {
    "scheme": {"action": "stat"},
    "quotas": {"ms": 0, "bytes": 0, "reset_interval_ms": 0},
    "filter": {
        "type": "anon",
        "matching": "N",
        "memcg_path": "",
        "addr_start": 0,
        "addr_end": 0,
        "damon_target_idx": 0,
    },
    "goal": None,
    "stats": ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "qt_exceeds"),
    "region": ("start", "end", "nr_accesses", "age"),
    "core_ops_filters": False,
    "names": {
        "action": {"willneed", "cold", "pageout", "hugepage", "nohugepage", "lru_prio"}
        | {"lru_deprio", "stat"},
        "type": {"anon", "memcg", "addr", "target"},
        "metric": {"none", "free_mem_rate"},
    },
}
_V612 = {
    **_V66,
    "scheme": {"action": "stat", "apply_interval_us": 0, "target_nid": -1},
    "quotas": {**_V66["quotas"], "effective_bytes": 0},
    "goal": {"target_metric": "user_input", "target_value": 0, "current_value": 0},
    "names": {
        **_V66["names"],
        "action": _V66["names"]["action"] | {"migrate_hot", "migrate_cold"},
        "type": _V66["names"]["type"] | {"young"},
        "target_metric": {"user_input", "some_mem_psi_us"},
    },
}
_V73 = {
    **_V612,
    "quotas": {
        **_V612["quotas"],
        "goal_tuner": "consist",
        "fail_charge_num": 0,
        "fail_charge_denom": 0,
    },
    "filter": {**_V66["filter"], "allow": "N", "min": 0, "max": 0},
    "goal": {**_V612["goal"], "nid": -1, "path": ""},
    "stats": (*_V66["stats"], "sz_ops_filter_passed", "nr_snapshots", "max_nr_snapshots"),
    "region": (*_V66["region"], "sz_filter_passed"),
    "core_ops_filters": True,
    "names": {
        **_V612["names"],
        "action": _V612["names"]["action"] | {"collapse"},
        "type": _V612["names"]["type"] | {"hugepage_size", "unmapped", "active"},
        "target_metric": _V612["names"]["target_metric"]
        | {"node_mem_used_bp", "node_mem_free_bp", "node_memcg_used_bp", "node_memcg_free_bp"}
        | {"active_mem_bp", "inactive_mem_bp", "node_eligible_mem_bp"},
        "goal_tuner": {"consist", "temporal"},
    },
}
KERNELS = {"6.6": _V66, "6.12": _V612, "7.3": _V73}


def make_scheme_dir(path, v, nr_numbered=0):
    """A scheme directory as kernel version v creates it; with
    nr_numbered, that many filter and goal directories made in advance (for
    damo, which writes into them without creating them)."""
    for name, value in v["scheme"].items():
        put(os.path.join(path, name), value)
    for sub in ("sz", "nr_accesses", "age"):
        put(os.path.join(path, "access_pattern", sub, "min"), 0)
        put(os.path.join(path, "access_pattern", sub, "max"), 0)
    for name, value in v["quotas"].items():
        put(os.path.join(path, "quotas", name), value)
    for name in ("sz_permil", "nr_accesses_permil", "age_permil"):
        put(os.path.join(path, "quotas", "weights", name), 0)
    if v["goal"] is not None:
        put(os.path.join(path, "quotas", "goals", "nr_goals"), 0)
    for name, value in (("metric", "none"), ("interval_us", 0), ("high", 0), ("mid", 0)):
        put(os.path.join(path, "watermarks", name), value)
    put(os.path.join(path, "watermarks", "low"), 0)
    filter_dirs = ["filters"] + (["core_filters", "ops_filters"] if v["core_ops_filters"] else [])
    for d in filter_dirs:
        put(os.path.join(path, d, "nr_filters"), 0)
    for name in v["stats"]:
        put(os.path.join(path, "stats", name), 0)
    put(os.path.join(path, "tried_regions", "total_bytes"), 0)
    for i in range(nr_numbered):
        for d in filter_dirs:
            numbered(os.path.join(path, d), i, v["filter"])
        if v["goal"] is not None:
            numbered(os.path.join(path, "quotas", "goals"), i, v["goal"])


def numbered(parent, i, files):
    for name, value in files.items():
        put(os.path.join(parent, str(i), name), value)


class FakeKernel:
    """Writes as the kernel's DAMON of version v takes them."""

    def __init__(self, v):
        self.v = v
        self.writes = []

    def write(self, path, value):
        name = os.path.basename(path)
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, "No such file", path)
        names = self.v["names"].get(name)
        if names is not None and str(value) not in names:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        self.writes.append((path, str(value)))
        with open(path, "w") as f:
            f.write(f"{value}\n")
        parent = os.path.dirname(path)
        if name == "nr_filters":
            for i in range(int(value)):
                if not os.path.isdir(os.path.join(parent, str(i))):
                    numbered(parent, i, self.v["filter"])
        elif name == "nr_goals":
            for i in range(int(value)):
                if not os.path.isdir(os.path.join(parent, str(i))):
                    numbered(parent, i, self.v["goal"])


def tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = get(
                os.path.join(dirpath, name)
            )
    return out


def full_scheme():
    """A scheme that uses every feature of Linux 7.3."""
    return Scheme(
        "migrate_cold",
        AccessPattern(sz=(4096, MAX), access_rate=(0, 5.5), age_us=(2_500_000, MAX)),
        quotas=Quotas(
            time_ms=10,
            sz_bytes=100 * MIB,
            reset_interval_ms=1000,
            weights=(0, 3, 7),
            goals=(
                QuotaGoal("some_mem_psi_us", 1000),
                QuotaGoal("node_mem_free_bp", 5000, nid=1),
                QuotaGoal("node_memcg_used_bp", 3000, nid=0, memcg_path="/work"),
            ),
            goal_tuner="temporal",
            fail_charge=(1, 4),
        ),
        watermarks=Watermarks("free_mem_rate", 5_000_000, 500, 400, 200),
        filters=(
            Filter("anon", allow=True),
            Filter("addr", addr=(1 << 30, 2 << 30)),
            Filter("hugepage_size", matching=False, hugepage_size=(2 * MIB, 2 * MIB)),
            Filter("target", target_idx=0, allow=True),
        ),
        apply_interval_us=1_000_000,
        target_nid=1,
    )


def prcl():
    return Scheme(
        "pageout",
        AccessPattern(access_rate=(0, 0), age_us=(5_000_000, MAX)),
        quotas=Quotas(time_ms=10, sz_bytes=64 * MIB, reset_interval_ms=1000, weights=(0, 1, 1)),
        watermarks=Watermarks("free_mem_rate", 1_000_000, 900, 800, 50),
        filters=(Filter("anon", matching=False),),
    )


def write_with_damo(scheme_dir, scheme, sample_us, aggr_us):
    """damo 3.4's own sysfs writer, on the same scheme (its kvpairs)."""
    damo = pytest.importorskip("damo", reason="damo is not installed (pip install damo==3.4.3)")
    code = (
        "import json, sys, _damon, _damon_sysfs\n"
        "s = _damon.Damos.from_kvpairs(json.loads(sys.argv[1]))\n"
        "s.access_pattern = s.access_pattern.converted_for_units(_damon.unit_samples, "
        f"_damon.unit_aggr_intervals, _damon.DamonIntervals({sample_us}, {aggr_us}, 1000000))\n"
        "err = _damon_sysfs.write_scheme_dir(sys.argv[2], s)\n"
        "print(json.dumps(err))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(damo.__file__))
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(scheme.to_kvpairs()), scheme_dir],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "version, scheme",
    [("7.3", full_scheme()), ("7.3", prcl()), ("6.12", prcl()), ("6.6", prcl())],
)
@pytest.mark.parametrize("sample_us, aggr_us", [(5000, 100_000), (1000, 30_000)])
def test_the_files_are_those_damo_writes(tmp_path, version, scheme, sample_us, aggr_us):
    v = KERNELS[version]
    ours, theirs = str(tmp_path / "ours"), str(tmp_path / "damo")
    make_scheme_dir(ours, v, nr_numbered=4)
    shutil.copytree(ours, theirs)
    kernel_schemes.write_scheme(ours, scheme, sample_us, aggr_us, write=FakeKernel(v).write)
    assert write_with_damo(theirs, scheme, sample_us, aggr_us) is None
    assert tree(ours) == tree(theirs)


def test_the_mapping_in_the_kernels_units(tmp_path):
    v = _V73
    path = str(tmp_path / "s")
    make_scheme_dir(path, v)
    kernel = FakeKernel(v)
    kernel_schemes.write_scheme(path, full_scheme(), 5000, 100_000, write=kernel.write)
    files = tree(path)
    # 5.5 % of 20 samples, 2.5 s of 100 ms aggregations, as damo truncates
    assert files["access_pattern/nr_accesses/max"] == "1"
    assert files["access_pattern/age/min"] == "25"
    assert files["access_pattern/age/max"] == str(int(MAX / 100_000))
    assert files["action"] == "migrate_cold" and files["target_nid"] == "1"
    assert files["quotas/goal_tuner"] == "temporal"
    assert (files["quotas/fail_charge_num"], files["quotas/fail_charge_denom"]) == ("1", "4")
    assert files["quotas/goals/nr_goals"] == "3"
    assert files["quotas/goals/1/target_metric"] == "node_mem_free_bp"
    assert files["quotas/goals/1/nid"] == "1" and files["quotas/goals/2/path"] == "/work"
    # the core's filters first, in their own directory, then the pages'
    assert files["core_filters/nr_filters"] == "2" and files["ops_filters/nr_filters"] == "2"
    assert files["core_filters/0/type"] == "addr" and files["core_filters/1/allow"] == "Y"
    assert files["ops_filters/1/type"] == "hugepage_size"
    assert files["ops_filters/1/matching"] == "N"
    assert (files["ops_filters/1/min"], files["ops_filters/1/max"]) == (str(2 * MIB),) * 2
    assert files["filters/nr_filters"] == "0"
    # the plan is the function's, and the writes follow it
    plan = kernel_schemes.scheme_files(
        full_scheme(), 5000, 100_000, kernel_schemes.features(str(tmp_path / "s"))
    )
    assert [(os.path.join(path, p), t) for p, t in plan] == kernel.writes


def test_filters_go_to_filters_on_older_kernels(tmp_path):
    path = str(tmp_path / "s")
    make_scheme_dir(path, _V612)
    scheme = Scheme(
        "pageout",
        filters=(Filter("young"), Filter("target", target_idx=1), Filter("anon", matching=False)),
    )
    kernel_schemes.write_scheme(path, scheme, 5000, 100_000, write=FakeKernel(_V612).write)
    files = tree(path)
    assert files["filters/nr_filters"] == "3"
    assert [files[f"filters/{i}/type"] for i in range(3)] == ["target", "young", "anon"]
    assert files["filters/0/damon_target_idx"] == "1"


@pytest.mark.parametrize(
    "version, scheme, reason",
    [
        ("6.6", Scheme("stat", apply_interval_us=1000), "apply intervals (Linux 6.7)"),
        (
            "6.6",
            Scheme(
                "stat", quotas=Quotas(reset_interval_ms=1000, goals=(QuotaGoal(target_value=1),))
            ),
            "quota goals (Linux 6.8)",
        ),
        ("6.6", Scheme("migrate_hot", target_nid=1), "migrate_cold (Linux 6.11)"),
        (
            "6.12",
            Scheme("stat", filters=(Filter("anon", allow=True),)),
            "allow filters (Linux 6.14)",
        ),
        (
            "6.12",
            Scheme("stat", quotas=Quotas(fail_charge=(1, 2))),
            "fail charge ratio (Linux 7.2)",
        ),
        ("6.12", Scheme("stat", quotas=Quotas(goal_tuner="temporal")), "goal tuners (Linux 7.1)"),
        (
            "6.12",
            Scheme(
                "stat",
                quotas=Quotas(
                    reset_interval_ms=1, goals=(QuotaGoal("node_mem_used_bp", 1, nid=0),)
                ),
            ),
            "node_mem_used_bp",
        ),
        ("6.12", Scheme("collapse"), "action 'collapse' (it came with Linux 7.2)"),
        (
            "6.6",
            Scheme("stat", filters=(Filter("young"),)),
            "filter type 'young' (it came with Linux 6.10)",
        ),
        (
            "6.12",
            Scheme("stat", filters=(Filter("hugepage_size", hugepage_size=(0, 1)),)),
            "filter type 'hugepage_size'",
        ),
    ],
)
def test_what_the_kernel_lacks_is_refused_with_the_reason(tmp_path, version, scheme, reason):
    path = str(tmp_path / "s")
    make_scheme_dir(path, KERNELS[version])
    with pytest.raises(NotSupported, match=reason.replace("(", r"\(").replace(")", r"\)")):
        kernel_schemes.write_scheme(
            path, scheme, 5000, 100_000, write=FakeKernel(KERNELS[version]).write
        )


def test_page_filters_the_kernels_vaddr_would_ignore_are_refused(tmp_path):
    anon = (Filter("anon"),)
    feats = {"7.3": None, "6.12": None}
    for version in feats:
        path = str(tmp_path / version)
        make_scheme_dir(path, KERNELS[version])
        feats[version] = kernel_schemes.features(path)
    refused = [
        ("7.3", "vaddr", Scheme("pageout", filters=anon)),
        ("7.3", "fvaddr", Scheme("cold", filters=anon)),
        ("6.12", "vaddr", Scheme("stat", filters=anon)),
    ]
    for version, ops, scheme in refused:
        with pytest.raises(NotSupported, match=f"the kernel's {ops} would ignore"):
            kernel_schemes.scheme_files(scheme, 5000, 100_000, feats[version], ops)
    taken = [
        ("7.3", "vaddr", Scheme("stat", filters=anon)),
        ("7.3", "vaddr", Scheme("migrate_cold", filters=anon, target_nid=1)),
        ("6.12", "paddr", Scheme("pageout", filters=anon)),
        ("6.12", "vaddr", Scheme("pageout", filters=(Filter("addr", addr=(0, 4096)),))),
    ]
    for version, ops, scheme in taken:
        assert kernel_schemes.scheme_files(scheme, 5000, 100_000, feats[version], ops)


def test_a_refusal_before_any_write_writes_nothing(tmp_path):
    path = str(tmp_path / "s")
    make_scheme_dir(path, _V66)
    before = tree(path)
    kernel = FakeKernel(_V66)
    with pytest.raises(NotSupported, match="apply intervals"):
        kernel_schemes.write_scheme(
            path, Scheme("stat", apply_interval_us=1), 5000, 100_000, kernel.write
        )
    assert kernel.writes == [] and tree(path) == before


def test_stats_and_tried_regions_are_read(tmp_path):
    path = str(tmp_path / "s")
    make_scheme_dir(path, _V73)
    for name, value in (("nr_tried", 3), ("sz_tried", 300), ("qt_exceeds", 1)):
        put(os.path.join(path, "stats", name), value)
    put(os.path.join(path, "quotas", "effective_bytes"), 4096)
    for k, region in enumerate([(8192, 12288, 0, 7, 4096), (0, 4096, 1, 2, 0)]):
        for name, value in zip(_V73["region"], region):
            put(os.path.join(path, "tried_regions", str(k), name), value)
    stats = kernel_schemes.read_stats(path, get)
    assert stats == {
        "nr_tried": 3,
        "sz_tried": 300,
        "nr_applied": 0,
        "sz_applied": 0,
        "sz_ops_filter_passed": 0,
        "qt_exceeds": 1,
        "nr_snapshots": 0,
        "esz": 4096,
    }
    tried = kernel_schemes.read_tried_regions(path, get)
    assert tried.dtype == TRIED_REGION_DTYPE
    assert tried.tolist() == [(0, 4096, 1, 2, 0), (8192, 12288, 0, 7, 4096)]
    # 6.6: no sz_filter_passed, no effective quota
    old = str(tmp_path / "old")
    make_scheme_dir(old, _V66)
    for name, value in zip(_V66["region"], (0, 4096, 1, 2)):
        put(os.path.join(old, "tried_regions", "0", name), value)
    assert set(kernel_schemes.read_stats(old, get)) == set(_V66["stats"])
    assert kernel_schemes.read_tried_regions(old, get)["sz_filter_passed"].tolist() == [0]


def test_kernel_damon_runs_user_schemes_after_its_stat_schemes(tmp_path, monkeypatch):
    sysfs, procfs = make_tree(tmp_path, nr_targets=2)
    schemes_dir = os.path.join(ctx_dir(sysfs), "schemes")
    for i in (2, 3):
        make_scheme_dir(os.path.join(schemes_dir, str(i)), _V73)
    put(os.path.join(procfs, str(TARGET_PID + 1), "stat"), f"{TARGET_PID + 1} (w) S 1")
    fake = FakeKernel(_V73)
    written = []

    def write(self, path, value):
        written.append((os.path.relpath(path, sysfs), str(value)))
        if os.path.basename(path) in ("nr_filters", "nr_goals", "action", "type"):
            return fake.write(path, value)
        put(path, value)

    monkeypatch.setattr(KernelDamon, "_write", write)
    # (the kernel's vaddr honours page filters for migrate_* and stat only)
    schemes = [dataclasses.replace(prcl(), filters=()), full_scheme()]
    kd = started(sysfs, procfs, targets=[TARGET_PID, TARGET_PID + 1], schemes=schemes)
    assert get(os.path.join(schemes_dir, "nr_schemes")) == "4"
    assert get(os.path.join(schemes_dir, "0", "action")) == "stat"
    assert get(os.path.join(schemes_dir, "2", "action")) == "pageout"
    assert get(os.path.join(schemes_dir, "3", "action")) == "migrate_cold"
    assert get(os.path.join(schemes_dir, "2", "access_pattern", "age", "min")) == "50"
    put(os.path.join(schemes_dir, "3", "stats", "sz_applied"), 8192)
    stats = kd.scheme_stats()
    assert [s["sz_applied"] for s in stats] == [0, 8192]
    state = "kernel/mm/damon/admin/kdamonds/0/state"
    assert (state, "update_schemes_stats") in written
    assert (state, "update_schemes_effective_quotas") in written
    for name, value in zip(_V73["region"], (4096, 8192, 0, 9, 4096)):
        put(os.path.join(schemes_dir, "2", "tried_regions", "0", name), value)
    assert kd.tried_regions(0).tolist() == [(4096, 8192, 0, 9, 4096)]
    kernel_schemes.write_scheme  # noqa: B018 (the mapping KernelDamon used)
    kd.set_goal_value(1, 0, 777)
    assert get(os.path.join(schemes_dir, "3", "quotas", "goals", "0", "current_value")) == "777"
    assert written[-1] == (state, "commit_schemes_quota_goals")
    with pytest.raises(Exception, match="no scheme 2"):
        kd.tried_regions(2)
    assert np.array_equal(kd.tried_regions(1), np.zeros(0, TRIED_REGION_DTYPE))


def test_kernel_damon_refuses_a_scheme_the_kernel_lacks(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    make_scheme_dir(os.path.join(ctx_dir(sysfs), "schemes", "1"), _V66)
    kd = KernelDamon(sysfs, procfs)
    put(os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/0/pid"), 777)
    with pytest.raises(NotSupported, match="apply intervals"):
        kd.start([TARGET_PID], schemes=[Scheme("stat", apply_interval_us=5)])
    assert not kd._started
