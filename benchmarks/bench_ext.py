#!/usr/bin/env python3
"""The benchmarks' compiled extension, ``_bench`` (benchmarks/_bench.pyx).

It holds the C loops the benchmarks compare damonx with (benchmarks/csrc)
and compiles in the parts of the core they use; it is no part of the damonx
package.  Build it in place, next to this file, on the host (the test VM
sees the checkout read-only):

    make bench-ext                       # or: .venv/bin/python benchmarks/bench_ext.py

which needs Cython, setuptools and numpy in that Python.  ``load()``
imports it, or says how to build it.
"""

import importlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOW_TO_BUILD = (
    "build it on the host with `make bench-ext` (or `.venv/bin/python benchmarks/bench_ext.py`)"
)

BENCH_SOURCES = [
    "benchmarks/csrc/bench_adjust.c",
    "benchmarks/csrc/bench_floor.c",
    "benchmarks/csrc/bench_fullscan.c",
]
# the core (merge and split for bench_adjust, with the sampling rules, the
# schemes and the tuning it calls) and the access checks' shared I/O (maps
# parser, pagemap masks for bench_fullscan and bench_floor)
CORE_SOURCES = [
    "csrc/core.c",
    "csrc/regions.c",
    "csrc/sampling.c",
    "csrc/tuning.c",
    "csrc/damos.c",
    "csrc/damos-quota.c",
    "csrc/ops-common.c",
]


def load():
    """The ``_bench`` module; ImportError saying how to build it if it is not built."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    try:
        return importlib.import_module("_bench")
    except ImportError as err:
        raise ImportError(
            f"the benchmarks' extension benchmarks/_bench is not built ({err}): {HOW_TO_BUILD}"
        ) from None


def build():
    """Build ``_bench``, or bring it up to date, in a child process."""
    subprocess.run([sys.executable, os.path.abspath(__file__)], check=True)


def main():
    try:
        import numpy as np
        from Cython.Build import cythonize
        from setuptools import Extension, setup
    except ImportError as err:
        raise SystemExit(
            f"building benchmarks/_bench needs Cython, setuptools and numpy "
            f"({err}): {sys.executable} -m pip install 'Cython>=3,<4' "
            "'setuptools>=77' numpy"
        ) from None
    here = lambda *p: os.path.join(ROOT, *p)  # noqa: E731
    ext = Extension(
        "_bench",
        sources=[here("benchmarks", "_bench.pyx")]
        + [here(f) for f in BENCH_SOURCES + CORE_SOURCES],
        depends=[here("csrc", f) for f in sorted(os.listdir(here("csrc"))) if f.endswith(".h")]
        + [here(f.replace(".c", ".h")) for f in BENCH_SOURCES],
        include_dirs=[here("csrc"), here("benchmarks", "csrc"), np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        libraries=["m"],
    )
    # from here, where no pyproject.toml gives setuptools the damonx package
    os.chdir(HERE)
    setup(
        name="damonx-benchmarks",
        ext_modules=cythonize(
            [ext],
            include_path=[here("src"), HERE],
            quiet=True,
            compiler_directives={"language_level": 3},
        ),
        script_args=[
            "-q",
            "build_ext",
            "--inplace",
            "--build-temp",
            here("build", "bench-ext", "temp"),
            "--build-lib",
            here("build", "bench-ext", "lib"),
        ],
    )


if __name__ == "__main__":
    main()
