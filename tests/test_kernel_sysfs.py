"""damonx.kernel_sysfs: the features of the kernel's DAMON sysfs interface,
seen in fake trees shaped like Linux 5.15, 6.1, 6.6, 6.12, 6.18 and 7.3."""

import os
import re

import pytest

from damonx import errors, kernel_sysfs
from tests.fake_damon import FakeDamon, get, put

#: the features each release's files show (FILES of kernel_sysfs, in order)
PRESENT = {
    "6.1": ["schemes", "avail_operations"],
    "6.6": ["tried_regions", "filters", "tried_bytes", "target_filters"],
    "6.12": [
        "apply_interval",
        "quota_goals",
        "goal_metrics",
        "effective_quota",
        "target_nid",
    ],
    "6.18": [
        "allow_filters",
        "ops_filter_stats",
        "core_ops_filters",
        "intervals_goal",
        "goal_nid",
        "refresh_ms",
        "dests",
        "addr_unit",
    ],
    "7.3": ["obsolete_target"],
}
ALL = [f.name for f in kernel_sysfs.FILES]
_BASE = ("willneed", "cold", "pageout", "hugepage", "nohugepage")
_LRU = ("lru_prio", "lru_deprio")
_MIGRATE = ("migrate_hot", "migrate_cold")
ACTIONS = {
    "6.1": _BASE + _LRU + ("stat",),
    "6.6": _BASE + _LRU + ("stat",),
    "6.12": _BASE + _LRU + _MIGRATE + ("stat",),
    "6.18": _BASE + _LRU + _MIGRATE + ("stat",),
    "7.3": _BASE + ("collapse",) + _LRU + _MIGRATE + ("stat",),
}
_NEW_TYPES = ("active", "memcg", "young", "hugepage_size", "unmapped")
FILTER_TYPES = {
    "6.1": None,
    "6.6": ("anon", "memcg", "addr", "target"),
    "6.12": ("anon", "memcg", "young", "addr", "target"),
    "6.18": ("anon",) + _NEW_TYPES + ("addr", "target"),
    "7.3": ("anon",) + _NEW_TYPES + ("addr", "target"),
}
GOAL_METRICS = {
    "6.1": None,
    "6.6": None,
    "6.12": ("user_input", "some_mem_psi_us"),
    "6.18": ("user_input", "some_mem_psi_us", "node_mem_used_bp", "node_mem_free_bp"),
    "7.3": ("user_input", "some_mem_psi_us", "node_mem_used_bp", "node_mem_free_bp"),
}


def present_in(release):
    out = []
    for r, names in PRESENT.items():
        out += names
        if r == release:
            return out
    raise KeyError(release)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    def make(release, **kwargs):
        return FakeDamon(tmp_path, release, **kwargs).install(monkeypatch)

    return make


def test_the_table_names_every_feature_once():
    assert sorted(n for names in PRESENT.values() for n in names) == sorted(ALL)


@pytest.mark.parametrize("release", ["6.1", "6.6", "6.12", "6.18", "7.3"])
def test_probe_finds_the_features_of_each_release_and_leaves_nothing(fake, release):
    f = fake(release)
    layout = kernel_sysfs.probe_layout(f.kdamonds)
    want = present_in(release)
    assert sorted(layout.present) == sorted(want)
    assert sorted(layout.absent) == sorted(set(ALL) - set(want))
    assert layout.ops == ("vaddr", "fvaddr", "paddr")
    # the names the kernel took, tried one by one
    assert layout.actions == ACTIONS[release]
    assert layout.filter_types == FILTER_TYPES[release]
    assert layout.goal_metrics == GOAL_METRICS[release]
    # everything created is removed again
    assert get(os.path.join(f.kdamonds, "nr_kdamonds")) == "0"
    assert sorted(os.listdir(f.kdamonds)) == ["nr_kdamonds"]


def test_read_layout_reads_only_and_knows_only_what_exists(fake):
    f = fake("6.18")
    assert kernel_sysfs.read_layouts(f.sysfs) == kernel_sysfs.Layout()  # nothing to read
    f.start_foreign()  # a kdamond with one context, no scheme
    writes = len(f.writes)
    layout = kernel_sysfs.read_layouts(f.sysfs)
    assert len(f.writes) == writes
    assert layout.has("refresh_ms") and layout.has("addr_unit") and layout.has("intervals_goal")
    assert layout.has("tried_regions") is None  # no scheme directory to look in
    assert layout.has("obsolete_target") is None
    assert "unknown" in kernel_sysfs.describe(layout)


def test_a_missing_parent_feature_makes_its_children_missing(fake):
    f = fake("6.1")
    f.start_foreign()
    kd = f.kdamond()
    put(os.path.join(kd, "contexts/0/schemes/nr_schemes"), 1)
    f.build_scheme(os.path.join(kd, "contexts/0/schemes/0"))
    layout = kernel_sysfs.read_layout(kd)
    assert layout.has("tried_regions") is False
    assert layout.has("tried_bytes") is False  # needs tried_regions
    assert layout.has("target_filters") is False  # needs filters


def test_require_names_the_file_and_the_release(fake):
    layout = kernel_sysfs.probe_layout(fake("6.1").kdamonds)
    with pytest.raises(
        errors.NotSupported,
        match=r"^this kernel's DAMON has no tried regions \(snapshots\) \(tried_regions, "
        r"added in Linux 6.2\): damonx reads",
    ):
        layout.require("tried_regions", "damonx reads its snapshots from them")
    layout.require("schemes", "never raised: it is there")


@pytest.mark.parametrize(
    "release, usable, words",
    [
        ("5.15", False, "only its debugfs interface \\(Linux 5.15 to 5.17\\)"),
        ("6.1", True, "is writable and no kdamond runs"),
        ("6.12", True, "is writable and no kdamond runs"),
    ],
)
def test_status_by_release(fake, release, usable, words):
    st = kernel_sysfs.status(fake(release).sysfs)
    assert st.usable is usable
    assert re.search(words, st.detail), st.detail


def test_status_without_any_damon(tmp_path):
    st = kernel_sysfs.status(str(tmp_path / "sys"))
    assert not st.usable
    assert "lacks the DAMON sysfs interface (CONFIG_DAMON_SYSFS, Linux 5.18 and later)" in (
        st.detail
    )


def test_status_names_a_kdamond_damonx_did_not_start(fake):
    f = fake("6.18")
    f.start_foreign()
    st = kernel_sysfs.status(f.sysfs, f.procfs)
    assert not st.usable
    assert st.detail == (
        "kdamond 0 runs (not started by damonx): nr_kdamonds cannot change while it runs, "
        "so damonx cannot add a kdamond of its own"
    )


def test_status_after_a_read_only_look_at_an_old_kernel(fake):
    # a 6.1 kdamond whose scheme directory shows no tried_regions, idle
    f = fake("6.1")
    f.start_foreign()
    f.store(os.path.join(f.kdamond(), "state"), "off")
    kd = f.kdamond()
    f.store(os.path.join(kd, "contexts/0/schemes/nr_schemes"), "1")
    st = kernel_sysfs.status(f.sysfs, f.procfs)
    assert not st.usable
    assert "no tried regions (snapshots) (tried_regions, added in Linux 6.2)" in st.detail


def test_status_of_a_reader_without_privilege(fake, monkeypatch):
    f = fake("6.12")
    real_access = os.access
    monkeypatch.setattr(
        kernel_sysfs.os,
        "access",
        lambda p, m: False if p.endswith("nr_kdamonds") else real_access(p, m),
        raising=False,
    )
    st = kernel_sysfs.status(f.sysfs)
    assert not st.usable and st.privilege and "run as root" in st.detail
