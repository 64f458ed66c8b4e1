"""migrate_hot and migrate_cold on a two-node guest: the pages a scheme
moves end on its target node, the others stay where they were
(move_pages(2) without nodes tells where each page is).

    DAMONX_VM_NUMA=2 tools/vmtest/run -- .venv/bin/python -m pytest -m "vm and numa" tests/vm

(``make test-vm-numa``); skipped on a guest with one node.
"""

import numpy as np
import pytest

import damonx
from damonx.schemes import AccessPattern, Scheme
from tests.cli_helpers import run_child
from tests.vm.helpers import needs_page_idle, nr_nodes, page_nodes, until, workload

pytestmark = [
    pytest.mark.vm,
    pytest.mark.numa,
    needs_page_idle,
    pytest.mark.skipif(nr_nodes() < 2, reason="needs two NUMA nodes (DAMONX_VM_NUMA=2)"),
]

MIB = 1 << 20
U32_MAX = 2**32 - 1


def on_node(nodes, mask, nid):
    """The share of the pages of mask that are on node nid."""
    return float(np.mean(nodes[mask] == nid))


def parts(w):
    """Masks of the hot and cold pages of the workload's range."""
    addrs = np.arange(w.range[0], w.range[1], 4096)
    hot = (addrs >= w.hot[0]) & (addrs < w.hot[1])
    return hot, ~hot


def test_migrate_cold_moves_the_cold_part():
    with workload(128, 16, cpu=0) as w:
        hot, cold = parts(w)
        before = page_nodes(w.pid, *w.range)
        assert on_node(before, hot | cold, 0) >= 0.95, "the workload did not start on node 0"
        scheme = Scheme(
            "migrate_cold", AccessPattern(nr_accesses=(0, 0), age=(5, U32_MAX)), target_nid=1
        )
        with damonx.Monitor("fvaddr", {w.pid: [w.range]}) as mon:
            mon.add_scheme(scheme)
            cold_bytes = int(cold.sum()) * 4096
            until(
                90,
                lambda: (
                    mon.step() is not None
                    and mon.scheme_stats()[0]["sz_applied"] >= 0.9 * cold_bytes
                ),
            )
            stats = mon.scheme_stats()[0]
        after = page_nodes(w.pid, *w.range)
    print(f"migrate_cold: cold on node 1 {on_node(after, cold, 1):.2f}, {stats}")
    assert stats["nr_failed"] == 0, stats
    assert on_node(after, cold, 1) >= 0.9
    assert on_node(after, hot, 0) >= 0.8
    # what it counts as applied is what moved
    moved = int(np.count_nonzero(after == 1)) * 4096
    assert 0.9 * moved <= stats["sz_applied"] <= moved, (moved, stats)


def test_migrate_hot_moves_the_hot_part_from_the_command_line():
    with workload(128, 16, cpu=0) as w:
        hot, cold = parts(w)
        lo, hi = w.range
        done = run_child(
            "start", "--ops", "fvaddr", "-r", f"{lo}-{hi}", "--timeout", "15", "--json",
            "--stats_interval", "5", "--damos_action", "migrate_hot", "1",
            "--damos_access_rate", "10", "max", str(w.pid), timeout=180,
        )  # fmt: skip
        after = page_nodes(w.pid, *w.range)
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    print(f"migrate_hot: hot on node 1 {on_node(after, hot, 1):.2f}")
    assert on_node(after, hot, 1) >= 0.8
    assert on_node(after, cold, 0) >= 0.9
