"""The exceptions damonx raises.

The public API raises only these.  Each message says what went wrong and,
where there is one, what to do about it.
"""

import errno as _errno


class DamonxError(Exception):
    """Base class of every error damonx raises on purpose."""


class InvalidAttrs(DamonxError, ValueError):
    """Monitoring attributes, targets or a workload description are invalid."""


class NoSuchProcess(DamonxError):
    """A target process does not exist (any more)."""

    def __init__(self, pid, msg=None):
        self.pid = pid
        super().__init__(msg or f"process {pid} does not exist (it may have exited)")


class AccessDenied(DamonxError, PermissionError):
    """The caller lacks a privilege the operation needs."""


class NotSupported(DamonxError):
    """The running kernel lacks a capability the operation needs."""


class InvalidRecord(DamonxError, ValueError):
    """A record file is truncated, corrupted or of an unknown format."""

    def __init__(self, msg, offset=None, partial=None):
        self.offset = offset
        #: whatever could be read before the point where the file broke
        self.partial = partial
        super().__init__(msg)


def from_errno(err, what, pid=None):
    """Turn a negative or positive errno from the core into a DamonxError."""
    err = abs(int(err))
    text = f"{what}: {_errno.errorcode.get(err, err)} ({__import__('os').strerror(err)})"
    if err == _errno.ESRCH and pid is not None:
        return NoSuchProcess(pid)
    if err in (_errno.EPERM, _errno.EACCES):
        return AccessDenied(text + "; run as root (CAP_SYS_ADMIN)")
    if err == _errno.EINVAL:
        return InvalidAttrs(text)
    if err in (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.ENOTSUP):
        return NotSupported(text)
    return DamonxError(text)
