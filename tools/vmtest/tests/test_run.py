"""tools/vmtest/run, tested from the host: it boots the test VM.

Skipped unless DAMONX_VMTEST=1, since the first run builds a kernel (one per
DAMONX_VM_KERNEL choice) and each later one boots a VM (a few seconds under
TCG).
"""

import os
import subprocess
import sys

import pytest

RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run")

pytestmark = [
    pytest.mark.vmtool,
    pytest.mark.skipif(
        os.environ.get("DAMONX_VMTEST") != "1", reason="boots a VM; set DAMONX_VMTEST=1 to run"
    ),
]

# the kernel sources the tool can build: Debian 12's 6.12 and trixie-backports' newest 7.x
KERNELS = ["6.12", "7"]


def vmrun(*cmd, env=None, timeout=600):
    return subprocess.run(
        [RUN, "--", *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def built():
    """kernel choice -> (image path, the tool's messages); builds each once
    (7 to 9 minutes on 2 CPUs when not cached yet)."""
    cache = {}

    def build(kernel):
        if kernel not in cache:
            res = subprocess.run(
                [RUN, "--build"],
                capture_output=True,
                text=True,
                timeout=1800,
                env={**os.environ, "DAMONX_VM_KERNEL": kernel},
            )
            assert res.returncode == 0, res.stderr
            cache[kernel] = (res.stdout.strip(), res.stderr)
        return cache[kernel]

    return build


def test_exit_status_and_output_come_back(built):
    built("6.12")
    res = vmrun("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
    assert res.returncode == 7, res.stderr
    assert res.stdout.splitlines() == ["to-stdout", "to-stderr"]


def test_build_prints_the_selected_kernel_and_keys_it_by_source(built):
    paths = {}
    for kernel in KERNELS:
        path, messages = built(kernel)
        assert os.path.basename(path).startswith("bzImage-") and os.path.getsize(path) > 0
        pkg = "linux-source-6.12" if kernel == "6.12" else "linux-source-7."
        assert f"kernel source: {pkg}" in messages
        paths[kernel] = path
    assert paths["6.12"] != paths["7"]
    # an exact version selects the same source, hence the same cached image
    ver = built("7")[1].split("kernel source: ")[1].split()[1]
    assert built(ver)[0] == paths["7"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_guest_kernel_environment_and_cwd(tmp_path, built, kernel):
    built(kernel)
    script = (
        'uname -r; pwd; echo "$DAMONX_TEST_VALUE"; '
        "test -e /sys/kernel/mm/page_idle/bitmap && echo page_idle; "
        "test -d /sys/kernel/mm/damon/admin && echo damon; "
        "test -e /sys/block/zram0 && echo zram; "
        'echo written > "$PWD/from-guest"; cat "$PWD/from-guest"'
    )
    res = subprocess.run(
        [RUN, "--", "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={
            **os.environ,
            "DAMONX_VM_ENV": "DAMONX_TEST_VALUE",
            "DAMONX_TEST_VALUE": "a 'quoted' value",
            "DAMONX_VM_KERNEL": kernel,
        },
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(kernel + ".") and lines[0].endswith("-damonvm")
    assert lines[1:] == [str(tmp_path), "a 'quoted' value", "page_idle", "damon", "zram", "written"]
    # the guest writes to a throw-away overlay, never to the host
    assert not (tmp_path / "from-guest").exists()


def test_current_kernel_has_the_newer_damon_interfaces(built):
    """What the 7.x kernel is there for: intervals_goal, DAMOS filters and
    quota goals with their newer files, DAMON_STAT (built in, off)."""
    built("7")
    script = r"""set -e
A=/sys/kernel/mm/damon/admin/kdamonds
echo 1 > $A/nr_kdamonds
echo 1 > $A/0/contexts/nr_contexts
C=$A/0/contexts/0
echo 1 > $C/schemes/nr_schemes
echo 1 > $C/schemes/0/filters/nr_filters
echo 1 > $C/schemes/0/quotas/goals/nr_goals
for f in $C/monitoring_attrs/intervals/intervals_goal/access_bp \
         $C/schemes/0/filters/0/allow $C/schemes/0/filters/0/min \
         $C/schemes/0/quotas/goals/0/nid $C/schemes/0/target_nid; do
    test -e $f && echo "${f#$C/}"
done
cat /sys/module/damon_stat/parameters/enabled
"""
    res = vmrun("sh", "-c", script, env={"DAMONX_VM_KERNEL": "7"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == [
        "monitoring_attrs/intervals/intervals_goal/access_bp",
        "schemes/0/filters/0/allow",
        "schemes/0/filters/0/min",
        "schemes/0/quotas/goals/0/nid",
        "schemes/0/target_nid",
        "N",
    ]


MOVE_PAGES = r"""
import ctypes, mmap
libc = ctypes.CDLL(None, use_errno=True)
SYS_move_pages = 279    # x86_64
buf = mmap.mmap(-1, 4096)
buf[0] = 1              # the page exists now
pages = (ctypes.c_void_p * 1)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
status = (ctypes.c_int * 1)(-1)

def move_pages(nodes):
    r = libc.syscall(ctypes.c_long(SYS_move_pages), ctypes.c_long(0), ctypes.c_ulong(1),
                     pages, nodes, status, ctypes.c_long(0))
    assert r == 0, ctypes.get_errno()
    return status[0]

before = move_pages(None)                       # NULL nodes: where the page is
target = 1 - before
moved = move_pages((ctypes.c_int * 1)(target))
print(before, target, moved, move_pages(None))
"""


@pytest.mark.parametrize("kernel", KERNELS)
def test_two_numa_nodes_and_move_pages(built, kernel):
    built(kernel)
    script = (
        "for d in /sys/devices/system/node/node*; do echo $d; done; "
        "grep -h MemTotal /sys/devices/system/node/node*/meminfo; "
        "cat /sys/devices/system/node/node*/cpulist; "
        f'{sys.executable} -c "$MOVE_PAGES"'
    )
    res = vmrun(
        "sh",
        "-c",
        script,
        env={
            "DAMONX_VM_KERNEL": kernel,
            "DAMONX_VM_NUMA": "2",
            "DAMONX_VM_MEM": "2G",
            "DAMONX_VM_CPUS": "2",
            "DAMONX_VM_ENV": "MOVE_PAGES",
            "MOVE_PAGES": MOVE_PAGES,
        },
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["/sys/devices/system/node/node0", "/sys/devices/system/node/node1"]
    for line in lines[2:4]:  # "Node 0 MemTotal: 1009876 kB": about half of 2G each
        assert 700_000 < int(line.split()[3]) <= 1024 * 1024, lines
    assert lines[4:6] == ["0", "1"]
    before, target, moved, after = map(int, lines[6].split())
    assert before in (0, 1) and moved == after == target


def test_one_node_without_numa_setting(built):
    built("6.12")
    res = vmrun("sh", "-c", "ls /sys/devices/system/node | grep -c '^node'")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.split() == ["1"]


@pytest.mark.parametrize(
    "name, value",
    [
        ("DAMONX_VM_CPUS", "two"),
        ("DAMONX_VM_KERNEL", "5.0"),
        ("DAMONX_VM_KERNEL", "6.1"),
        ("DAMONX_VM_KERNEL", "latest"),
        ("DAMONX_VM_KERNEL", "7.x"),
        ("DAMONX_VM_NUMA", "x"),
        ("DAMONX_VM_NUMA", "0"),
        ("DAMONX_VM_NUMA", "9"),
    ],
)
def test_bad_knob_is_refused_without_booting(name, value):
    res = vmrun("true", env={name: value}, timeout=60)
    assert res.returncode == 125
    assert f"error: {name} must be" in res.stderr and f"got '{value}'" in res.stderr


def test_too_little_memory_per_node_is_refused():
    res = vmrun("true", env={"DAMONX_VM_NUMA": "4", "DAMONX_VM_MEM": "512M"}, timeout=60)
    assert res.returncode == 125
    assert "less than 256M to each of DAMONX_VM_NUMA=4 nodes" in res.stderr


def test_a_7x_version_not_in_the_archive_is_refused():
    res = vmrun("true", env={"DAMONX_VM_KERNEL": "7.99"}, timeout=300)
    assert res.returncode == 125
    assert "DAMONX_VM_KERNEL=7.99: trixie-backports has no linux-source-7.N version" in res.stderr
