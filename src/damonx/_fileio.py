"""Creating output files, with OS errors turned into damonx errors.

:func:`atomic_write` goes through a temporary file in the same directory,
fsynced and renamed over the target, so that a reader (or a crash) sees the
old file or the new one, never a part of it.
"""

import os
import secrets

from damonx import errors

_EXISTS_HINT = "remove it or pass overwrite=True"


def _error(err, what):
    # the errno alone: the file name is in ``what`` (a temporary file's
    # name would only confuse)
    return errors.from_oserror(
        err.errno or 0, what, missing=errors.FileNotFound, privilege_hint=None
    )


def create(path, overwrite=False, exists_hint=_EXISTS_HINT):
    """``path`` opened for writing bytes.

    An existing file is refused with FileExists unless ``overwrite``; other
    failures raise the matching DamonxError (FileNotFound for a missing
    directory, AccessDenied...).
    """
    path = os.fspath(path)
    try:
        return open(path, "wb" if overwrite else "xb")
    except FileExistsError as err:
        raise errors.FileExists(f"{path} exists; {exists_hint}") from err
    except OSError as err:
        raise _error(err, f"cannot create {path}") from err


def atomic_write(path, data, overwrite=True, exists_hint=_EXISTS_HINT):
    """Write ``data`` (bytes) to ``path`` atomically: temporary file, fsync,
    rename.  An existing file is refused with FileExists unless ``overwrite``.

    The new file gets the permissions the umask gives a new file, as with
    :func:`create`.
    """
    path = os.fspath(path)
    if not overwrite and os.path.lexists(path):
        raise errors.FileExists(f"{path} exists; {exists_hint}")
    tmp = None
    try:
        fd, tmp = _create_temp(os.path.dirname(os.path.abspath(path)))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise _error(err, f"cannot write {path}") from err
    finally:
        if tmp is not None:
            os.unlink(tmp)


def _create_temp(directory):
    """A new hidden file in ``directory``: (fd, path).  Unlike mkstemp's
    0600, its mode is 0666 less the umask, like any file the user creates."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(directory, f".damonx-{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
