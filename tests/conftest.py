"""Shared pytest configuration."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "vm: needs the project's test VM (tools/vmtest/run): idle page tracking "
        "and the kernel's DAMON sysfs interface; skipped elsewhere",
    )
    config.addinivalue_line(
        "markers",
        "vmtool: boots the test VM from the host to test tools/vmtest itself; "
        "skipped unless DAMONX_VMTEST=1",
    )
    config.addinivalue_line(
        "markers",
        "smoke: a VM test of the subset that `make test-vm-current` runs on the "
        "newer (7.x) test kernel: idle page tracking and the kernel's DAMON sysfs",
    )
    config.addinivalue_line(
        "markers",
        "fresh_memory: needs physical memory as a fresh boot leaves it (not yet "
        "scattered by other tests); runs before the other tests of a session",
    )


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("fresh_memory") is None)
