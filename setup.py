"""Build definition of the compiled core; metadata lives in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

SOURCES = [
    "csrc/core.c",
    "csrc/damos.c",
    "csrc/damos-quota.c",
    "csrc/regions.c",
    "csrc/sampling.c",
    "csrc/tuning.c",
    "csrc/ops-common.c",
    "csrc/sim.c",
    "csrc/vaddr.c",
    "csrc/paddr.c",
]
HEADERS = [
    "csrc/clock.h",
    "csrc/damonx.h",
    "csrc/damos.h",
    "csrc/ops-common.h",
    "csrc/paddr.h",
    "csrc/sim.h",
    "csrc/tuning.h",
    "csrc/vaddr.h",
]

core = Extension(
    "damonx._core",
    sources=["src/damonx/_core.pyx", *SOURCES],
    depends=HEADERS,
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=CFLAGS,
    libraries=["m"],
)

# the compiled reader of record files (csrc/recread.c) and the heatmap
# binning of their columns (csrc/recbins.c); no contraction of a * b + c into
# one rounding, so that the cells are those numpy computes
recread = Extension(
    "damonx._recread",
    sources=["src/damonx/_recread.pyx", "csrc/recread.c", "csrc/recparse.c", "csrc/recbins.c"],
    depends=["csrc/recread.h"],
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=[*CFLAGS, "-ffp-contract=off"],
)

setup(ext_modules=cythonize([core, recread], compiler_directives={"language_level": 3}))
