"""Shared pytest configuration (the markers are declared in pyproject.toml)."""


def pytest_collection_modifyitems(config, items):
    # tests that need physical memory as a fresh boot leaves it go first
    items.sort(key=lambda item: item.get_closest_marker("fresh_memory") is None)
