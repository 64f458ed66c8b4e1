"""Child processes in the states the error path tells apart."""

import contextlib
import os
import time

from damonx import errors


@contextlib.contextmanager
def zombie():
    """The pid of a child that has exited and is not reaped until the block ends."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while errors.process_state(pid) != "Z":
            assert time.monotonic() < deadline, "the child did not become a zombie"
            time.sleep(0.005)
        yield pid
    finally:
        os.waitpid(pid, 0)


def exited_pid():
    """The pid of a child that has exited and was reaped."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
