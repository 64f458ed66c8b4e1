"""Creating output files, with OS errors turned into damonx errors.

Nothing here writes into an existing file, or through a link: an output is
written under a temporary name in its directory and renamed over the path
when it is ready, so that a reader (or a crash) sees the old file or the new
one.  A path may be replaced only when it is a regular file (and the caller
allows it); a symbolic link, a directory, a device or a pipe is refused.

:func:`atomic_write` writes bytes at once; :class:`StagedFile` is for a file
written over time, put in place by ``commit()`` and written on afterwards;
:class:`StagedDir` is the same for a directory of files (a Parquet dataset),
which may replace only a directory that holds nothing but such files.
"""

import errno
import os
import secrets
import shutil
import stat

from damonx import errors

EXISTS_HINT = "remove it or pass overwrite=True"

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


def check_output(path, overwrite, exists_hint=EXISTS_HINT):
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


def atomic_write(path, data, overwrite=True, exists_hint=EXISTS_HINT):
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

    def __init__(self, path, overwrite=False, exists_hint=EXISTS_HINT):
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

    @property
    def size(self):
        """The bytes written so far (0 once discarded)."""
        try:
            return os.fstat(self.f.fileno()).st_size
        except (OSError, ValueError):
            return 0

    def flush(self):
        """Hand what was written to the OS."""
        self.f.flush()

    def sync(self):
        """Hand what was written to the OS and fsync it."""
        self.f.flush()
        os.fsync(self.f.fileno())

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


class StagedDir:
    """A directory of files, made under a hidden temporary name next to
    ``path`` (``.damonx-XXXXXXXXXXXX.tmp``) until :meth:`commit` renames it
    to ``path``; files are then added in place.  :meth:`discard` before the
    commit removes it and leaves ``path`` as it was.

    ``path`` may be new or, when ``overwrite``, a regular file or a
    directory holding only regular files whose names end with ``suffix``
    (and hidden files): anything else is refused with FileExists, at once
    and again at the commit.  ``f``, a file object in :class:`StagedFile`,
    is the StagedDir itself: what a writer writes to.
    """

    def __init__(self, path, overwrite=False, exists_hint=EXISTS_HINT, suffix=""):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        self.exists_hint = exists_hint
        self.suffix = suffix
        self.f = self
        self._check()
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            _, self.tmp = _new_hidden(parent, os.mkdir)
        except OSError as err:
            raise _error(err, f"cannot create {self.path}") from err

    def _check(self):
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as err:
            raise _error(err, f"cannot write {self.path}") from err
        if not stat.S_ISDIR(st.st_mode):
            check_output(self.path, self.overwrite, self.exists_hint)
            return
        if not self.overwrite:
            raise errors.FileExists(f"{self.path} exists; {self.exists_hint}")
        for entry in os.scandir(self.path):
            if entry.name.startswith("."):
                continue
            if not (entry.is_file(follow_symlinks=False) and entry.name.endswith(self.suffix)):
                raise errors.FileExists(
                    f"{self.path} is a directory holding {entry.name}, not only "
                    f"*{self.suffix} files: damonx replaces only a directory it could "
                    "have written; give a new path"
                )

    @property
    def committed(self):
        return self.tmp is None

    @property
    def dir(self):
        """Where files go now: the temporary directory, then ``path``."""
        return self.tmp if self.tmp is not None else self.path

    @property
    def size(self):
        """The bytes of the files in the directory so far."""
        try:
            return sum(e.stat().st_size for e in os.scandir(self.dir) if e.is_file())
        except OSError:
            return 0

    def flush(self):
        """Nothing: each file is written whole."""

    def sync(self):
        """fsync the directory, so that its files' names are on disk."""
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self):
        """Put the directory in place at ``path`` (once; later calls do
        nothing).  What it replaces is first moved aside under a hidden name,
        then removed."""
        if self.tmp is None:
            return
        try:
            self._check()
            old = None
            if os.path.lexists(self.path):
                old = self.tmp[: -len(".tmp")] + ".old"
                os.rename(self.path, old)
            os.rename(self.tmp, self.path)
        except errors.DamonxError:
            raise
        except OSError as err:
            raise _error(err, f"cannot write {self.path}") from err
        self.tmp = None
        if old is not None:
            if os.path.isdir(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.unlink(old)

    def discard(self):
        """Before the commit, remove the temporary directory."""
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def _create_temp(directory):
    """A new hidden file in ``directory``: (fd, path).  Unlike mkstemp's
    0600, its mode is 0666 less the umask, like any file the user creates."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    return _new_hidden(directory, lambda tmp: os.open(tmp, flags, 0o666))


def _new_hidden(directory, create):
    """(create(path), path) for a new hidden name in ``directory``
    (``.damonx-XXXXXXXXXXXX.tmp``), drawn again while create finds one taken."""
    while True:
        tmp = os.path.join(directory, f".damonx-{secrets.token_hex(6)}.tmp")
        try:
            return create(tmp), tmp
        except FileExistsError:
            continue
