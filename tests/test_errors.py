"""The one path from OSError to damonx's errors: damonx.errors."""

import errno
import pickle

import pytest

from damonx import errors
from damonx.errors import (
    AccessDenied,
    DamonxError,
    FileExists,
    FileNotFound,
    InvalidAttrs,
    NoSuchProcess,
    NotSupported,
    ZombieProcess,
)
from tests.processes import exited_pid, zombie

ROOT = "; run as root (CAP_SYS_ADMIN)"
FEATURES = "; run `damonx features` to see what this machine offers"

# every errno value the C core returns, and some the system calls it makes
# pass on (EINTR never leaves it: the wrapper checks for signals and goes on)
ERRNO_TABLE = [
    (errno.EPERM, AccessDenied, PermissionError, "Operation not permitted" + ROOT),
    (errno.EACCES, AccessDenied, PermissionError, "Permission denied" + ROOT),
    (errno.EINVAL, InvalidAttrs, ValueError, "Invalid argument"),
    (errno.ENOENT, NotSupported, DamonxError, "No such file or directory" + FEATURES),
    (errno.EOPNOTSUPP, NotSupported, DamonxError, "Operation not supported" + FEATURES),
    (errno.ENOSYS, NotSupported, DamonxError, "Function not implemented" + FEATURES),
    (errno.ESRCH, NoSuchProcess, ProcessLookupError, "No such process"),
    (errno.EEXIST, FileExists, FileExistsError, "File exists"),
    (errno.ENOMEM, DamonxError, DamonxError, "Cannot allocate memory"),
    (errno.EIO, DamonxError, DamonxError, "Input/output error"),
    (errno.EBUSY, DamonxError, DamonxError, "Device or resource busy"),
    (errno.ENODATA, DamonxError, DamonxError, "No data available"),
    (errno.ENXIO, DamonxError, DamonxError, "No such device or address"),
    (errno.EBADF, DamonxError, DamonxError, "Bad file descriptor"),
]


@pytest.mark.parametrize("code, cls, builtin, reason", ERRNO_TABLE)
def test_each_errno_maps_to_its_class_and_says_what_to_do(code, cls, builtin, reason):
    for err in (OSError(code, "ignored"), code, -code):
        out = errors.from_oserror(err, "cannot do it")
        assert type(out) is cls, (err, out)
        assert isinstance(out, builtin) and isinstance(out, DamonxError)
        assert str(out) == f"cannot do it: {reason}"


def test_the_filename_is_named_once():
    err = OSError(errno.EACCES, "Permission denied", "/proc/kpageflags")
    assert (
        str(errors.from_oserror(err, "cannot open"))
        == "cannot open: Permission denied (/proc/kpageflags)" + ROOT
    )
    assert (
        str(errors.from_oserror(err, "cannot read /proc/kpageflags"))
        == "cannot read /proc/kpageflags: Permission denied" + ROOT
    )
    err = OSError(errno.ENOENT, "No such file", b"/x/y")
    assert "(/x/y)" in str(errors.from_oserror(err, "cannot open"))


def test_the_class_of_a_missing_file_and_the_hints_are_chosen_by_the_caller():
    out = errors.from_oserror(errno.ENOENT, "cannot read a.json", missing=FileNotFound)
    assert type(out) is FileNotFound and isinstance(out, FileNotFoundError)
    assert str(out) == "cannot read a.json: No such file or directory"
    out = errors.from_oserror(errno.EPERM, "cannot write", privilege_hint="ask root")
    assert str(out) == "cannot write: Operation not permitted; ask root"
    assert (
        str(errors.from_oserror(errno.EPERM, "x", privilege_hint=None))
        == "x: Operation not permitted"
    )
    assert (
        str(errors.from_oserror(errno.ENOENT, "x", support_hint="build it"))
        == "x: No such file or directory; build it"
    )


def test_a_damonx_error_is_kept_as_it_is():
    err = AccessDenied("already said")
    assert errors.from_oserror(err, "cannot do it") is err


def fake_proc(tmp_path, pid, state):
    (tmp_path / str(pid)).mkdir()
    # the command name may hold spaces and parentheses
    (tmp_path / str(pid) / "stat").write_text(f"{pid} (a ) b) {state} 1 1 1 0 -1")
    return str(tmp_path)


EXIT_ERRNOS = [errno.ESRCH, errno.ENOENT, errno.EPERM, errno.EACCES, errno.ENOMEM, errno.EIO]


@pytest.mark.parametrize("code", EXIT_ERRNOS)
def test_a_process_that_is_gone_wins_over_the_errno(tmp_path, code):
    out = errors.from_oserror(code, "cannot monitor process 42", pid=42, procfs=str(tmp_path))
    assert type(out) is NoSuchProcess and out.pid == 42
    assert str(out) == "cannot monitor process 42: process 42 does not exist (it may have exited)"
    procfs = fake_proc(tmp_path, 42, "Z")
    out = errors.from_oserror(code, "cannot monitor process 42", pid=42, procfs=procfs)
    assert type(out) is ZombieProcess and out.pid == 42
    assert str(out) == (
        "cannot monitor process 42: process 42 is a zombie (it exited and has no memory left)"
    )


def test_a_live_process_keeps_the_errno_meaning(tmp_path):
    procfs = fake_proc(tmp_path, 42, "S")
    assert errors.process_state(42, procfs) == "S"
    out = errors.from_oserror(errno.EACCES, "cannot monitor process 42", pid=42, procfs=procfs)
    assert type(out) is AccessDenied
    out = errors.from_oserror(errno.ESRCH, "cannot monitor process 42", pid=42, procfs=procfs)
    assert type(out) is NoSuchProcess and "process 42 does not exist" in str(out)
    assert type(errors.from_oserror(errno.ENOMEM, "x", pid=42, procfs=procfs)) is DamonxError
    # EINVAL is no sign of an exit: the state is not even read
    assert type(errors.from_oserror(errno.EINVAL, "x", pid=43, procfs=procfs)) is InvalidAttrs


def test_real_zombie_and_exited_processes():
    with zombie() as pid:
        assert errors.process_state(pid) == "Z"
        out = errors.from_oserror(
            OSError(errno.ESRCH, "No such process"), "cannot monitor", pid=pid
        )
        assert type(out) is ZombieProcess and out.pid == pid
        assert isinstance(out, NoSuchProcess) and isinstance(out, ProcessLookupError)
        assert type(errors.process_error(pid, "x")) is ZombieProcess
    pid = exited_pid()
    assert errors.process_state(pid) is None
    out = errors.from_oserror(errno.ENOENT, "cannot monitor", pid=pid)
    assert type(out) is NoSuchProcess and out.pid == pid
    assert errors.process_error(1, "x") is None  # init lives


def test_process_errors_pickle():
    for err in (NoSuchProcess(7), ZombieProcess(8, "gone")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and back.pid == err.pid and str(back) == str(err)


def test_translated_as_a_block_and_as_a_decorator(tmp_path):
    def read_missing():
        with errors.translated("cannot read it", missing=FileNotFound):
            return (tmp_path / "nothing").read_text()

    with pytest.raises(FileNotFound, match="^cannot read it: No such file") as err:
        read_missing()
    assert isinstance(err.value.__cause__, FileNotFoundError)

    @errors.translated("cannot list the tree")
    def listing(path):
        import os

        return os.listdir(path)

    assert listing(tmp_path) == []
    with pytest.raises(NotSupported, match="cannot list the tree: No such file"):
        listing(tmp_path / "nothing")
    with pytest.raises(NotSupported, match="cannot list the tree"):
        listing(tmp_path / "nothing")  # the decorator works more than once
    # what is not an OSError, or is already a DamonxError, leaves unchanged
    mine = AccessDenied("mine")
    for exc in (mine, KeyError("k"), ValueError("v")):
        with pytest.raises(type(exc)) as got, errors.translated("x"):
            raise exc
        assert got.value is exc
