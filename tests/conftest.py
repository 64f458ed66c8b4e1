"""Shared pytest configuration (the markers are declared in pyproject.toml)."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    # tests that need physical memory as a fresh boot leaves it go first
    items.sort(key=lambda item: item.get_closest_marker("fresh_memory") is None)


class _NoSysWrites:
    """The os module, refusing to open files under /sys for writing."""

    def __getattr__(self, name):
        return getattr(os, name)

    def open(self, path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR) and os.path.abspath(path).startswith("/sys/"):
            raise RuntimeError(f"a host test tried to write {path}: use a fake tree")
        return os.open(path, flags, *args)


@pytest.fixture(autouse=True)
def _host_kernel_damon_untouched(request, monkeypatch, tmp_path_factory):
    """Host tests never write this machine's DAMON files (a kdamond of the
    machine may run there) nor its /run/damonx: the kernel backend's tests
    use fake trees (tests/fake_damon.py); only the VM tier (marker vm)
    drives the real thing."""
    if request.node.get_closest_marker("vm"):
        return
    from damonx import kernel_damon, kernel_sysfs

    monkeypatch.setenv("DAMONX_RUNDIR", str(tmp_path_factory.mktemp("run")))
    monkeypatch.setattr(kernel_damon, "os", _NoSysWrites())
    monkeypatch.setattr(kernel_sysfs, "os", _NoSysWrites())
