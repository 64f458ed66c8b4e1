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
