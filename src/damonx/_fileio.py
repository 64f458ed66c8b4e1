"""Creating output files, with OS errors turned into damonx errors.

Nothing here writes into an existing file, or through a link: an output is
written under a temporary name in its directory and renamed over the path
when it is ready, so that a reader (or a crash) sees the old file or the new
one.  A path may be replaced only when it is a regular file (and the caller
allows it); a symbolic link, a directory, a device or a pipe is refused.

:func:`atomic_write` writes bytes at once; :class:`StagedFile` is for a file
written over time, put in place by ``commit()`` and written on afterwards.
"""

import errno
import os
import secrets
import stat

from damonx import errors

_EXISTS_HINT = "remove it or pass overwrite=True"

_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISSOCK, "socket"),
)


def _error(err, what):
    # the errno alone: the file name is in ``what`` (a temporary file's
    # name would only confuse)
    return errors.from_oserror(
        err.errno or 0, what, missing=errors.FileNotFound, privilege_hint=None
    )


def check_output(path, overwrite, exists_hint=_EXISTS_HINT):
    """Raise FileExists unless ``path`` may be written: a new path, or a
    regular file when ``overwrite``.  A symbolic link (even a dangling one)
    and anything but a regular file are always refused."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise _error(err, f"cannot write {path}") from err
    if stat.S_ISLNK(st.st_mode):
        try:
            to = f" (to {os.readlink(path)})"
        except OSError:
            to = ""
        raise errors.FileExists(
            f"{path} is a symbolic link{to}: damonx never writes through a link; "
            "give a regular file or a new path"
        )
    for test, kind in _KINDS:
        if test(st.st_mode):
            raise errors.FileExists(
                f"{path} is a {kind}, not a regular file: damonx writes only regular "
                "files; give a regular file or a new path"
            )
    if not overwrite:
        raise errors.FileExists(f"{path} exists; {exists_hint}")


def _put_in_place(tmp, path, overwrite, exists_hint):
    """Rename the finished temporary file ``tmp`` to ``path``: over a regular
    file when ``overwrite``, else only while ``path`` does not exist."""
    check_output(path, overwrite, exists_hint)
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails, unlike a rename, if path appeared meanwhile
    except FileExistsError:
        check_output(path, False, exists_hint)
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        os.rename(tmp, path)  # a file system without hard links
        return
    os.unlink(tmp)


def atomic_write(path, data, overwrite=True, exists_hint=_EXISTS_HINT):
    """Write ``data`` (bytes) to ``path`` atomically: temporary file, fsync,
    rename.  An existing file is refused with FileExists unless ``overwrite``,
    and a path that is not a regular file always (see :func:`check_output`).

    The new file gets the permissions the umask gives a new file.
    """
    path = os.fspath(path)
    check_output(path, overwrite, exists_hint)
    tmp = None
    try:
        fd, tmp = _create_temp(os.path.dirname(os.path.abspath(path)))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _put_in_place(tmp, path, overwrite, exists_hint)
        tmp = None
    except errors.DamonxError:
        raise
    except OSError as err:
        raise _error(err, f"cannot write {path}") from err
    finally:
        if tmp is not None:
            os.unlink(tmp)


class StagedFile:
    """A file written under a hidden temporary name next to ``path``
    (``.damonx-XXXXXXXXXXXX.tmp``) until :meth:`commit` renames it to
    ``path``; writing then goes on in place.  :meth:`discard` before the
    commit removes it and leaves ``path`` as it was.

    ``path`` is checked at once (and again at the commit) with
    :func:`check_output`; a missing directory raises FileNotFound.
    """

    def __init__(self, path, overwrite=False, exists_hint=_EXISTS_HINT):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        self.exists_hint = exists_hint
        check_output(self.path, overwrite, exists_hint)
        try:
            fd, self.tmp = _create_temp(os.path.dirname(os.path.abspath(self.path)))
        except OSError as err:
            raise _error(err, f"cannot create {self.path}") from err
        #: the binary file object to write to
        self.f = os.fdopen(fd, "wb")

    @property
    def committed(self):
        return self.tmp is None

    def commit(self):
        """Put the file in place at ``path`` (once; later calls do nothing)."""
        if self.tmp is None:
            return
        try:
            self.f.flush()
            _put_in_place(self.tmp, self.path, self.overwrite, self.exists_hint)
        except errors.DamonxError:
            raise
        except OSError as err:
            raise _error(err, f"cannot write {self.path}") from err
        self.tmp = None

    def discard(self):
        """Close the file; before the commit, also remove it."""
        self.f.close()
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


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
