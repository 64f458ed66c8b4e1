"""What access-check mechanisms this machine offers, and why not.

Every check takes the roots of /proc and /sys as parameters so that it can
be pointed at a fake tree.  Nothing here writes anywhere, but
:func:`backends` with ``write_probe`` (``damonx features --probe``), which
creates an idle kdamond directory of the kernel's DAMON to read its layout
and removes it.
"""

import ctypes
import mmap
import os
import struct
import warnings
from dataclasses import asdict, dataclass

from damonx import errors
from damonx._core import PM_PFN_MASK, PM_PRESENT


@dataclass
class Feature:
    name: str
    available: bool
    detail: str  # what was found, or what is missing and how to get it
    privilege: bool = False  # missing for want of a privilege, not of a kernel feature


def _page_idle(procfs, sysfs):
    path = os.path.join(sysfs, "kernel/mm/page_idle/bitmap")
    if not os.path.exists(path):
        return Feature(
            "page_idle",
            False,
            f"{path} does not exist: the kernel was built without "
            "CONFIG_IDLE_PAGE_TRACKING (idle page tracking)",
        )
    try:
        with open(path, "rb", buffering=0) as f:
            f.read(8)
    except OSError as err:
        return Feature(
            "page_idle",
            False,
            f"cannot read {path}: {err.strerror}; run as root (CAP_SYS_ADMIN)",
            True,
        )
    if not os.access(path, os.W_OK):
        return Feature("page_idle", False, f"{path} is not writable; run as root", True)
    return Feature("page_idle", True, f"{path} is readable and writable")


def _touched_page_entry(procfs):
    """The pagemap entry of a page this process just wrote."""
    buf = mmap.mmap(-1, mmap.PAGESIZE)
    try:
        buf[0:1] = b"x"
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        with open(os.path.join(procfs, "self/pagemap"), "rb", buffering=0) as f:
            f.seek(addr // mmap.PAGESIZE * 8)
            data = f.read(8)
        ctypes.c_char.from_buffer(buf)  # keep buf alive until here
    finally:
        try:
            buf.close()
        except BufferError:
            pass
    if len(data) != 8:
        raise OSError(0, "short read")
    return struct.unpack("<Q", data)[0]


def _pagemap_pfn(procfs, sysfs):
    path = os.path.join(procfs, "self/pagemap")
    try:
        entry = _touched_page_entry(procfs)
    except OSError as err:
        return Feature(
            "pagemap_pfn",
            False,
            f"cannot read {path}: {err.strerror or err}; the kernel needs CONFIG_PROC_PAGE_MONITOR",
        )
    if not entry & PM_PRESENT:
        return Feature("pagemap_pfn", False, f"{path} shows a written page as not present")
    if not entry & PM_PFN_MASK:
        return Feature(
            "pagemap_pfn",
            False,
            f"{path} hides PFNs: reading them needs CAP_SYS_ADMIN (run as root)",
            True,
        )
    return Feature("pagemap_pfn", True, f"{path} gives PFNs of present pages")


def _kpageflags(procfs, sysfs):
    path = os.path.join(procfs, "kpageflags")
    if not os.path.exists(path):
        return Feature(
            "kpageflags", False, f"{path} does not exist: the kernel needs CONFIG_PROC_PAGE_MONITOR"
        )
    try:
        with open(path, "rb", buffering=0) as f:
            ok = len(f.read(8)) == 8
    except OSError as err:
        return Feature(
            "kpageflags",
            False,
            f"cannot read {path}: {err.strerror}; needs CAP_SYS_ADMIN (run as root)",
            True,
        )
    return Feature("kpageflags", ok, f"{path} is readable" if ok else f"{path} reads empty")


def _kernel_damon(procfs, sysfs):
    path = os.path.join(sysfs, "kernel/mm/damon/admin")
    if os.path.isdir(path):
        return Feature(
            "kernel_damon_sysfs",
            True,
            f"{path} exists (the kernel's own DAMON, which backend kernel drives)",
        )
    return Feature(
        "kernel_damon_sysfs",
        False,
        f"{path} does not exist: the kernel lacks CONFIG_DAMON_SYSFS "
        "(backend kernel needs it; backend page_idle does not)",
    )


def _thp(procfs, sysfs):
    path = os.path.join(sysfs, "kernel/mm/transparent_hugepage/enabled")
    try:
        with open(path) as f:
            mode = f.read().strip()
    except OSError:
        return Feature("thp", False, f"{path} does not exist: no transparent huge pages")
    return Feature("thp", True, f"transparent huge pages: {mode}")


def _iomem(procfs, sysfs):
    try:
        ram = system_ram(procfs)
    except errors.DamonxError as err:
        return Feature("iomem_system_ram", False, str(err), isinstance(err, errors.AccessDenied))
    total = sum(e - s for s, e in ram)
    return Feature(
        "iomem_system_ram", True, f"{len(ram)} System RAM ranges, {total / 2**30:.1f} GiB"
    )


def _process_madvise(procfs, sysfs):
    if not hasattr(os, "pidfd_open"):
        return Feature("process_madvise", False, "this Python has no os.pidfd_open")
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as err:
        return Feature(
            "process_madvise",
            False,
            f"pidfd_open failed ({err.strerror}): needs Linux 5.10 or newer",
        )
    return Feature("process_madvise", True, "pidfd_open works (schemes can act on processes)")


CHECKS = (_page_idle, _pagemap_pfn, _kpageflags, _iomem, _thp, _process_madvise, _kernel_damon)

#: which features each operations set of the compiled core (the ``page_idle``
#: backend of damonx.backend) needs
NEEDS = {
    "vaddr": ("page_idle", "pagemap_pfn", "kpageflags"),
    "fvaddr": ("page_idle", "pagemap_pfn", "kpageflags"),
    "paddr": ("page_idle", "kpageflags"),
    "sim": (),
}


def probe(procfs="/proc", sysfs="/sys"):
    """Every feature, available or not, with what was found."""
    return {f.name: f for f in (check(procfs, sysfs) for check in CHECKS)}


def ops_available(ops, found):
    return all(found[n].available for n in NEEDS[ops])


def require(ops, procfs="/proc", sysfs="/sys"):
    """Raise a clear error when ops cannot run here."""
    if not NEEDS.get(ops):
        return
    found = probe(procfs, sysfs)
    for name in NEEDS[ops]:
        f = found[name]
        if not f.available:
            cls = errors.AccessDenied if f.privilege else errors.NotSupported
            raise cls(
                f"ops {ops!r} needs {name}: {f.detail}. "
                "Run `damonx features` for the full picture; `--ops sim` works anywhere."
            )


def system_ram(procfs="/proc"):
    """Top-level "System RAM" ranges of /proc/iomem as [(start, end)], end exclusive."""
    path = os.path.join(procfs, "iomem")
    with errors.translated(f"cannot read {path}", support_hint=None), open(path) as f:
        lines = f.read().splitlines()
    ranges, hidden = [], 0
    for line in lines:
        if line.startswith(" ") or ": " not in line:
            continue
        span, name = line.split(" : ", 1) if " : " in line else line.split(": ", 1)
        if name.strip() != "System RAM":
            continue
        start, end = (int(x, 16) for x in span.strip().split("-"))
        if end > start:
            ranges.append((start, end + 1))
        else:
            hidden += 1
    if not ranges and hidden:
        raise errors.AccessDenied(f"{path} hides addresses: reading them needs root")
    if not ranges:
        raise errors.NotSupported(f"{path} lists no System RAM")
    return ranges


def as_dict(found):
    return {name: asdict(f) for name, f in found.items()}


# -- backends ------------------------------------------------------------------
@dataclass
class BackendReport:
    """Whether a backend of Monitor can run here, what it offers, why not."""

    name: str
    usable: bool
    offers: str
    why_not: str = ""


def backends(procfs="/proc", sysfs="/sys", found=None, write_probe=False):
    """A report per backend: page_idle, kernel and sim.

    found: the result of :func:`probe`, if already taken.  write_probe: where
    no kdamond directory exists, create one to read the kernel's layout,
    then remove it (root only; never while a kdamond runs).
    """
    from damonx import kernel_owner, kernel_sysfs

    found = found if found is not None else probe(procfs, sysfs)
    real = ("vaddr", "fvaddr", "paddr")
    runs = [o for o in real if ops_available(o, found)]
    missing = [
        n for n in dict.fromkeys(n for o in real for n in NEEDS[o]) if not found[n].available
    ]
    page_idle = BackendReport(
        "page_idle",
        bool(runs),
        "damonx's own access checks (pagemap, kpageflags, the idle page bitmap): "
        f"ops {' '.join(runs or real)}; a snapshot every aggregation, seeded sampling, "
        "schemes through process_madvise(2)",
        "; ".join(f"{n}: {found[n].detail}" for n in missing),
    )
    status = kernel_sysfs.status(sysfs, procfs)
    layout = status.layout
    kdamonds = os.path.join(sysfs, kernel_sysfs.ADMIN, "kdamonds")
    if write_probe and status.usable and _read_int(os.path.join(kdamonds, "nr_kdamonds")) == 0:
        lock = kernel_owner.Lock()
        if lock.acquire():
            try:
                layout = kernel_sysfs.probe_layout(kdamonds)
            finally:
                lock.release()
    usable, why_not = status.usable, "" if status.usable else status.detail
    try:
        layout.require("tried_regions", "damonx reads its snapshots from them")
    except errors.NotSupported as err:
        usable, why_not = False, str(err)
    kernel = BackendReport(
        "kernel",
        usable,
        "the kernel's DAMON through its sysfs interface: " + kernel_sysfs.describe(layout),
        why_not,
    )
    sim = BackendReport("sim", True, "ops sim: a simulated workload, exact ground truth")
    return [page_idle, kernel, sim]


def _read_int(path):
    try:
        return int(_read_text(path) or "")
    except ValueError:
        return None


# -- other users of the accessed bits ----------------------------------------
class SharedAccessBitsWarning(UserWarning):
    """Something else clears the accessed bits that damonx reads (the
    kernel's DAMON, another damonx, anything using the idle page bitmap):
    damonx then sees fewer accesses than there are."""


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").strip()
    except OSError:
        return None


def _holds_idle_bitmap(fd_dir):
    """Whether one of the links in a process's fd directory is the idle page
    bitmap (False where it cannot be read: another user's, without root)."""
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)).endswith("/page_idle/bitmap"):
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def accessed_bit_users(procfs="/proc", sysfs="/sys"):
    """What else uses the accessed bits that the page_idle backend reads, as
    a list of descriptions: kdamonds of the kernel's DAMON that are on (in
    sysfs), kdamond threads (DAMON started by any interface), and processes
    other than this one that hold the idle page bitmap open (seen only with
    the privilege to read their fds: root).  Only reads; a process that
    exits meanwhile is skipped."""
    found = []
    admin = os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds")
    try:
        names = sorted((n for n in os.listdir(admin) if n.isdigit()), key=int)
    except OSError:
        names = []
    on = [n for n in names if _read_text(os.path.join(admin, n, "state")) == "on"]
    if on:
        found.append(f"the kernel's DAMON runs (kdamond {', '.join(on)} is on in {admin})")
    try:
        pids = sorted(int(n) for n in os.listdir(procfs) if n.isdigit())
    except OSError:
        pids = []
    threads, holders = [], []
    for pid in pids:
        comm = _read_text(os.path.join(procfs, str(pid), "comm"))
        if comm is None:
            continue
        if comm.startswith("kdamond"):
            threads.append(f"{comm} (pid {pid})")
        elif pid != os.getpid() and _holds_idle_bitmap(os.path.join(procfs, str(pid), "fd")):
            holders.append(f"{comm} (pid {pid})")
    if threads:
        found.append(f"kdamond threads of the kernel's DAMON run: {', '.join(threads)}")
    if holders:
        found.append(f"the idle page bitmap is open in {', '.join(holders)}")
    return found


def warn_accessed_bit_users(procfs="/proc", sysfs="/sys", stacklevel=2):
    """Warn (SharedAccessBitsWarning) when :func:`accessed_bit_users`
    finds any."""
    users = accessed_bit_users(procfs, sysfs)
    if users:
        warnings.warn(
            SharedAccessBitsWarning(
                "other users of the accessed bits make damonx see fewer accesses: "
                + "; ".join(users)
            ),
            stacklevel=stacklevel + 1,
        )
