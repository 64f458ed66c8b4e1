"""damonx: DAMON-style data access monitoring from user space.

Submodules are imported lazily so that light commands (``damonx version``)
and the record readers do not pay for the compiled core.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Attrs": "damonx.attrs",
    "IntervalsGoal": "damonx.attrs",
    "Monitor": "damonx.monitor",
    "Snapshot": "damonx.monitor",
    "Workload": "damonx.sim",
    "REGION_DTYPE": "damonx.dtypes",
    "TRIED_REGION_DTYPE": "damonx.dtypes",
    "schemes": "damonx.schemes",
    "Scheme": "damonx.schemes",
    "AccessPattern": "damonx.schemes",
    "Quotas": "damonx.schemes",
    "QuotaGoal": "damonx.schemes",
    "Watermarks": "damonx.schemes",
    "Filter": "damonx.schemes",
    "features": "damonx.features",
    "errors": "damonx.errors",
    "DamonxError": "damonx.errors",
    "NoSuchProcess": "damonx.errors",
    "AccessDenied": "damonx.errors",
    "NotSupported": "damonx.errors",
    "InvalidRecord": "damonx.errors",
    "InvalidAttrs": "damonx.errors",
    "ZombieProcess": "damonx.errors",
    "FileNotFound": "damonx.errors",
    "FileExists": "damonx.errors",
}


def __getattr__(name):
    modname = _LAZY.get(name)
    if modname is None:
        raise AttributeError(f"module 'damonx' has no attribute {name!r}")
    mod = importlib.import_module(modname)
    return mod if modname.endswith("." + name) else getattr(mod, name)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
