"""Which kdamond of the kernel's DAMON is damonx's, even after a kill.

The kernel backend (:mod:`damonx.kernel_backend`) runs one kdamond through
the DAMON sysfs interface.  A machine may run kdamonds of its own, and
damonx must never stop one it did not start; but a damonx killed by
SIGKILL leaves its kdamond running, and the next damonx must recognise and
remove it rather than refuse forever.

The rule is conservative: a running kdamond is damonx's only when all of
these hold, else it is left alone and the kernel backend is unavailable,
with a message naming what runs.

1. A claim file, ``<rundir>/kernel-kdamond.json`` (``rundir`` is
   ``/run/damonx``, or ``$DAMONX_RUNDIR``), written by damonx before it
   turned the kdamond on, names this boot (``/proc/sys/kernel/random/boot_id``),
   the sysfs root and the kdamond's index.
2. No damonx holds the lock ``<rundir>/kernel.lock``: a damonx driving the
   kernel's DAMON holds it (``flock``) as long as it lives, and the kernel
   releases it when that process dies, however it dies.
3. The kdamond's own files match the claim: its first scheme is damonx's
   ``stat`` scheme with the claim's cookie (a random number that damonx
   writes into the scheme's ``quotas/reset_interval_ms``, which the kernel
   ignores while the scheme has no quota), its operations set is the
   claim's, and its ``pid`` file shows the kdamond thread the claim
   recorded (when it had recorded one).

Nothing here writes to sysfs; :mod:`damonx.kernel_backend` removes a
kdamond proved to be a left-over one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field

from damonx import errors

RUNDIR_ENV = "DAMONX_RUNDIR"
DEFAULT_RUNDIR = "/run/damonx"
CLAIM_NAME = "kernel-kdamond.json"
LOCK_NAME = "kernel.lock"


def rundir() -> str:
    """The directory of damonx's claim and lock files."""
    return os.environ.get(RUNDIR_ENV) or DEFAULT_RUNDIR


def read_text(path):
    """The stripped text of a file, or None where it cannot be read (a
    DAMON file answering EBUSY, busy with a command, is read again)."""
    from damonx.kernel_damon import _again_while_busy

    def read():
        with open(path) as f:
            return f.read().strip()

    try:
        return _again_while_busy(read)
    except OSError:
        return None


def boot_id(procfs="/proc"):
    """This boot's id (procfs/sys/kernel/random/boot_id), or None."""
    return read_text(os.path.join(procfs, "sys", "kernel", "random", "boot_id"))


@dataclass
class Claim:
    """What damonx writes down about the kdamond it runs."""

    owner_pid: int
    boot_id: str | None
    sysfs: str
    kdamond: int
    cookie: int
    ops: str
    #: the kdamond thread's pid, once it runs
    kdamond_pid: int | None = None
    #: the monitored processes (vaddr, fvaddr)
    pids: list = field(default_factory=list)


def load_claim(directory=None) -> Claim | None:
    """The claim file's claim, or None (missing or not damonx's format)."""
    path = os.path.join(directory or rundir(), CLAIM_NAME)
    text = read_text(path)
    if text is None:
        return None
    try:
        return Claim(**json.loads(text))
    except (ValueError, TypeError):
        return None


def save_claim(claim: Claim, directory=None):
    """Write the claim file (atomically: a temporary file renamed)."""
    directory = directory or rundir()
    path = os.path.join(directory, CLAIM_NAME)
    with errors.translated(f"cannot write {path}", support_hint=None):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(claim), f)
        os.replace(tmp, path)


def remove_claim(directory=None):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory or rundir(), CLAIM_NAME))


class Lock:
    """``<rundir>/kernel.lock``, held (``flock``) by the damonx that drives
    the kernel's DAMON for as long as it lives."""

    def __init__(self, directory=None):
        self.path = os.path.join(directory or rundir(), LOCK_NAME)
        self.fd = None

    def acquire(self):
        """Take the lock; False when another process holds it."""
        with errors.translated(f"cannot open {self.path}", support_hint=None):
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise errors.from_oserror(err, f"cannot lock {self.path}") from err
        self.fd = fd
        return True

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock
            self.fd = None


def lock_held(directory=None) -> bool:
    """Whether a damonx holds the lock now (read-only: a missing lock file
    is not created)."""
    path = os.path.join(directory or rundir(), LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def mismatch(claim: Claim, kdamond_dir: str) -> str | None:
    """None when the files of kdamond_dir match the claim (rule 3 of the
    module's docstring), else what differs."""
    ctx = os.path.join(kdamond_dir, "contexts", "0")
    scheme = os.path.join(ctx, "schemes", "0")
    checks = (
        (os.path.join(ctx, "operations"), claim.ops),
        (os.path.join(scheme, "action"), "stat"),
        (os.path.join(scheme, "quotas", "reset_interval_ms"), str(claim.cookie)),
    )
    for path, want in checks:
        got = read_text(path)
        if got != want:
            return f"{path} reads {got!r}, not {want!r}"
    if claim.kdamond_pid is not None:
        got = read_text(os.path.join(kdamond_dir, "pid"))
        if got != str(claim.kdamond_pid):
            return f"its kdamond thread is {got}, not {claim.kdamond_pid}"
    return None


@dataclass
class Owner:
    """Who a running kdamond belongs to."""

    #: "damonx" (a damonx that still runs), "left" (a damonx that died: safe
    #: to remove) or "other" (anything else: never touched)
    who: str
    detail: str


def owner_of(
    index: int, kdamonds_dir: str, sysfs: str, procfs="/proc", directory=None, locked=False
) -> Owner:
    """Who runs kdamond ``index`` under kdamonds_dir (see the module's
    rules); locked: the caller holds the lock (so no other damonx runs)."""
    claim = load_claim(directory)
    kdamond_dir = os.path.join(kdamonds_dir, str(index))
    if claim is None or claim.kdamond != index or claim.sysfs != sysfs:
        return Owner("other", "not started by damonx")
    if claim.boot_id is not None and claim.boot_id != boot_id(procfs):
        return Owner("other", "not started by damonx (damonx's claim is of an earlier boot)")
    if not locked and lock_held(directory):
        return Owner("damonx", f"started by damonx (pid {claim.owner_pid}), which still runs")
    why = mismatch(claim, kdamond_dir)
    if why is not None:
        return Owner(
            "other",
            f"not provably damonx's (damonx pid {claim.owner_pid} claimed it and is gone, "
            f"but {why})",
        )
    return Owner("left", f"left running by damonx (pid {claim.owner_pid}), which was killed")
