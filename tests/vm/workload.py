"""A process with a known access pattern, for tests that monitor it.

    python tests/vm/workload.py --size-mib 512 --hot-mib 64 [--thp] [--shm-mib 16]
    python tests/vm/workload.py --size-mib 2048 --hot-kib 128

Maps ``--size-mib`` MiB of anonymous memory, faults all of it in, prints one
line ``READY <start_hex> <end_hex> <hot_start_hex> <hot_end_hex>`` (the
mapping and its hot part, ``[start, end)`` byte addresses, ``0x``-prefixed)
and then writes one byte of every 4 KiB page of the hot part, over and over,
until it is killed.  The rest of the mapping is never touched again.  The hot
part sits in the middle of the mapping, 2 MiB aligned, so that both of its
edges border cold memory.  ``--thp`` asks for transparent huge pages
(MADV_HUGEPAGE) and aligns the mapping to 2 MiB.  ``--shm-mib`` also maps a
file of that size in /dev/shm (shared, so its pages are not anonymous),
faults it in once and adds its range to the READY line.

The process dies with its parent (PR_SET_PDEATHSIG), so a failed test does
not leave it running.
"""

import argparse
import ctypes
import mmap
import signal
import sys
import tempfile

PAGE = 4096
HUGE = 2 << 20
MIB = 1 << 20
PR_SET_PDEATHSIG = 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size-mib", type=int, required=True, help="size of the anonymous mapping, MiB"
    )
    hot = parser.add_mutually_exclusive_group(required=True)
    hot.add_argument("--hot-mib", type=int, help="size of the part touched continuously, MiB")
    hot.add_argument(
        "--hot-kib", type=int, help="size of the part touched continuously, KiB (pages)"
    )
    parser.add_argument(
        "--thp", action="store_true", help="use transparent huge pages (MADV_HUGEPAGE)"
    )
    parser.add_argument(
        "--shm-mib", type=int, default=0, help="also map a /dev/shm file of this size, MiB"
    )
    args = parser.parse_args(argv)
    if args.size_mib <= 0:
        parser.error(f"--size-mib must be positive, got {args.size_mib}")
    args.hot_kib = args.hot_mib * 1024 if args.hot_mib is not None else args.hot_kib
    if not 0 <= args.hot_kib <= args.size_mib * 1024 or args.hot_kib % (PAGE // 1024):
        parser.error(
            f"the hot part must be whole pages between 0 and --size-mib ({args.size_mib} MiB)"
        )
    return args


def die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv=None):
    args = parse_args(argv)
    die_with_parent()
    size = args.size_mib * MIB
    hot = args.hot_kib * 1024
    # one spare huge page so that a 2 MiB aligned start fits inside
    m = mmap.mmap(-1, size + HUGE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    off = -base % HUGE
    if args.thp:
        m.madvise(mmap.MADV_HUGEPAGE, off, size)
    hot_off = off + (size - hot) // 2 // HUGE * HUGE
    npages = size // PAGE
    m[off : off + size : PAGE] = b"\1" * npages  # fault everything in
    start = base + off
    shm = map_shm(args.shm_mib * MIB) if args.shm_mib > 0 else ""
    print(
        f"READY {start:#x} {start + size:#x} {base + hot_off:#x} {base + hot_off + hot:#x}{shm}",
        flush=True,
    )
    nhot = hot // PAGE
    if nhot == 0:
        while True:
            signal.pause()
    ones, twos = b"\1" * nhot, b"\2" * nhot
    hot_end = hot_off + hot
    while True:
        m[hot_off:hot_end:PAGE] = twos
        m[hot_off:hot_end:PAGE] = ones
        churn_tlb()


_keep = []


def map_shm(size):
    """Map a /dev/shm file of size bytes, fault it in; ' start end' (hex)."""
    with tempfile.NamedTemporaryFile(dir="/dev/shm", prefix="damonx-wl-") as f:
        f.truncate(size)
        m = mmap.mmap(f.fileno(), size, mmap.MAP_SHARED)
    m[0:size:PAGE] = b"\1" * (size // PAGE)
    _keep.append(m)
    start = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return f" {start:#x} {start + size:#x}"


def churn_tlb():
    """Map, touch and unmap a scratch buffer, as allocators do.

    Unmapping more than a few dozen pages flushes this CPU's TLB.  A real CPU
    evicts translations all the time, and the accessed bit of a page is set
    again when its translation is reloaded; an emulated CPU (QEMU's TCG) can
    keep every translation of a small working set cached, so without this the
    accessed bits cleared by a monitor would never be set again."""
    scratch = mmap.mmap(-1, 64 * PAGE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    scratch[0 : 64 * PAGE : PAGE] = b"\1" * 64
    scratch.close()


if __name__ == "__main__":
    sys.exit(main())
