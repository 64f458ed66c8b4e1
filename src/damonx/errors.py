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


def process_error(pid, what, procfs="/proc"):
    """The error to raise when process ``pid`` is gone while doing ``what``:
    ``NoSuchProcess`` when it does not exist, ``ZombieProcess`` when it
    exited but was not reaped; None while it lives."""
    state = process_state(pid, procfs)
    if state is None:
        return NoSuchProcess(pid, f"{what}: process {pid} does not exist (it may have exited)")
    if state == "Z":
        return ZombieProcess(
            pid, f"{what}: process {pid} is a zombie (it exited and has no memory left)"
        )
    return None


_ROOT_HINT = "run as root (CAP_SYS_ADMIN)"
_FEATURES_HINT = "run `damonx features` to see what this machine offers"

#: errno values that a target process's exit can cause while it is opened or
#: read; with one of them, the process's state decides the error
_EXIT_ERRNOS = frozenset(
    (_errno.ESRCH, _errno.ENOENT, _errno.EPERM, _errno.EACCES, _errno.ENOMEM, _errno.EIO)
)

#: the class of each errno value with a meaning of its own; ENOENT and ESRCH
#: are decided in from_oserror, any other value is a plain DamonxError
_ERRNO_CLASSES = {
    _errno.EPERM: AccessDenied,
    _errno.EACCES: AccessDenied,
    _errno.EINVAL: InvalidAttrs,
    _errno.EEXIST: FileExists,
    _errno.EOPNOTSUPP: NotSupported,
    _errno.ENOTSUP: NotSupported,
    _errno.ENOSYS: NotSupported,
}


def from_oserror(
    err,
    what,
    *,
    pid=None,
    procfs="/proc",
    missing=NotSupported,
    privilege_hint=_ROOT_HINT,
    support_hint=_FEATURES_HINT,
):
    """The DamonxError that stands for ``err`` (an ``OSError``, or a plain
    errno number, positive or negative) raised while doing ``what``.

    pid: the target process, if any; when the error may come from its exit
    (ESRCH, ENOENT, EPERM, EACCES, ENOMEM, EIO), its state under procfs is
    checked and ``NoSuchProcess`` or ``ZombieProcess`` wins.  missing: the
    class for ENOENT (a missing kernel file is ``NotSupported``; a missing
    user file is ``FileNotFound``).  privilege_hint and support_hint: what to
    do, appended to the message of an ``AccessDenied`` and a
    ``NotSupported`` (None: nothing).
    """
    if isinstance(err, DamonxError):
        return err
    if isinstance(err, int):
        code, filename = abs(err), None
    else:
        code, filename = abs(err.errno or 0), err.filename
    text = f"{what}: {os.strerror(code) if code else err}"
    if filename is not None:
        name = os.fsdecode(filename) if isinstance(filename, (str, bytes)) else str(filename)
        if name not in what:
            text += f" ({name})"
    if pid is not None and code in _EXIT_ERRNOS:
        gone = process_error(pid, what, procfs)
        if gone is not None:
            return gone
    if code == _errno.ESRCH:
        if pid is None:
            return NoSuchProcess(None, text)
        return NoSuchProcess(pid, f"{what}: process {pid} does not exist (it may have exited)")
    cls = missing if code == _errno.ENOENT else _ERRNO_CLASSES.get(code, DamonxError)
    hint = {AccessDenied: privilege_hint, NotSupported: support_hint}.get(cls)
    return cls(f"{text}; {hint}" if hint else text)


@contextlib.contextmanager
def translated(what, **kwargs):
    """Run a block; an ``OSError`` raised in it leaves as the matching
    DamonxError (see :func:`from_oserror` for the keyword arguments).

    Like every ``contextlib.contextmanager``, it also decorates a function
    (``@translated("cannot read the record")``), psutil's ``wrap_exceptions``
    style.
    """
    try:
        yield
    except DamonxError:
        raise
    except OSError as err:
        raise from_oserror(err, what, **kwargs) from err
