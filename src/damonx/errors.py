"""The exceptions damonx raises, and the one place where OS errors become them.

The public API raises only ``DamonxError`` subclasses.  Each one also
subclasses the builtin exception it refines (``AccessDenied`` is a
``PermissionError``, ``FileNotFound`` a ``FileNotFoundError``...), so code
that catches the builtins keeps working.  Each message says what went wrong
and, where there is one, what to do about it.

The C core returns negative errno values and ``damonx._core`` raises them as
``OSError``; :func:`from_oserror` (or the :func:`translated` context manager
around a block) turns those into the classes below, re-checking a target
process's state the way psutil does, so that a process that exited or became
a zombie is reported as such and not as a permission or I/O problem.
"""

import contextlib
import errno as _errno
import os


class DamonxError(Exception):
    """Base class of every error damonx raises on purpose."""


class InvalidAttrs(DamonxError, ValueError):
    """Monitoring attributes, targets, schemes or a workload are invalid."""


class NoSuchProcess(DamonxError, ProcessLookupError):
    """A target process does not exist (any more)."""

    def __init__(self, pid, msg=None):
        self.pid = pid
        super().__init__(msg or f"process {pid} does not exist (it may have exited)")

    def __reduce__(self):
        return (type(self), (self.pid, str(self)))


class ZombieProcess(NoSuchProcess):
    """A target process has exited but was not reaped yet: it has no memory."""

    def __init__(self, pid, msg=None):
        super().__init__(pid, msg or f"process {pid} is a zombie: it exited and has no memory left")


class AccessDenied(DamonxError, PermissionError):
    """The caller lacks a privilege the operation needs."""


class NotSupported(DamonxError):
    """The running kernel or machine lacks a capability the operation needs."""


class FileNotFound(DamonxError, FileNotFoundError):
    """A file damonx was asked to read does not exist."""


class FileExists(DamonxError, FileExistsError):
    """A file damonx was asked to create exists and may not be replaced."""


class InvalidRecord(DamonxError, ValueError):
    """A record file is truncated, corrupted or of an unknown format."""

    def __init__(self, msg, offset=None, partial=None):
        self.offset = offset
        #: whatever could be read before the point where the file broke
        self.partial = partial
        super().__init__(msg)


def process_state(pid, procfs="/proc"):
    """The state letter of a process (``R``, ``S``, ``Z``...) from
    ``procfs/PID/stat``, or None when there is no such process."""
    try:
        with open(os.path.join(procfs, str(pid), "stat"), "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the state follows
    # the last ')'
    rest = stat[stat.rfind(b")") + 1 :].split()
    return rest[0].decode(errors="replace") if rest else None


_ROOT_HINT = "run as root (CAP_SYS_ADMIN)"


def from_oserror(
    err, what, *, pid=None, procfs="/proc", missing=NotSupported, privilege_hint=_ROOT_HINT
):
    """The DamonxError that stands for ``err`` (an ``OSError``, or a plain
    errno number, positive or negative) raised while doing ``what``.

    pid: the target process, if any; when the error may come from its exit
    (ESRCH, ENOENT, EPERM, EACCES, ENOMEM, EIO), its state is checked and
    ``NoSuchProcess`` or ``ZombieProcess`` wins.  missing: the class for
    ENOENT (a missing kernel file is ``NotSupported``; a missing user file is
    ``FileNotFound``).
    """
    if isinstance(err, DamonxError):
        return err
    code = abs(int(err if isinstance(err, int) else (err.errno or 0)))
    reason = os.strerror(code) if code else str(err)
    filename = getattr(err, "filename", None)
    text = f"{what}: {reason}" + (f" ({filename})" if filename else "")
    if pid is not None and code in (
        _errno.ESRCH,
        _errno.ENOENT,
        _errno.EPERM,
        _errno.EACCES,
        _errno.ENOMEM,
        _errno.EIO,
    ):
        state = process_state(pid, procfs)
        if state is None:
            return NoSuchProcess(pid, f"{what}: process {pid} does not exist (it may have exited)")
        if state == "Z":
            return ZombieProcess(
                pid, f"{what}: process {pid} is a zombie (it exited and has no memory left)"
            )
        if code == _errno.ESRCH:
            return NoSuchProcess(pid, f"{what}: process {pid} does not exist (it may have exited)")
    if code in (_errno.EPERM, _errno.EACCES):
        return AccessDenied(f"{text}; {privilege_hint}" if privilege_hint else text)
    if code == _errno.EINVAL:
        return InvalidAttrs(text)
    if code == _errno.ENOENT:
        return missing(text)
    if code == _errno.EEXIST:
        return FileExists(text)
    if code in (_errno.EOPNOTSUPP, _errno.ENOTSUP, _errno.ENOSYS):
        return NotSupported(text)
    if code == _errno.ESRCH:
        return NoSuchProcess(pid, text)
    return DamonxError(text)


@contextlib.contextmanager
def translated(what, **kwargs):
    """Run a block; an ``OSError`` raised in it leaves as the matching
    DamonxError (see :func:`from_oserror` for the keyword arguments)."""
    try:
        yield
    except DamonxError:
        raise
    except OSError as err:
        raise from_oserror(err, what, **kwargs) from err
