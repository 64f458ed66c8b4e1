"""Build definition of the compiled core; metadata lives in pyproject.toml."""

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

SOURCES = [
    "csrc/core.c",
    "csrc/ops_proc.c",
    "csrc/ops_sim.c",
]
HEADERS = [
    "csrc/damonx.h",
    "csrc/ops_proc.h",
    "csrc/ops_sim.h",
]

core = Extension(
    "damonx._core",
    sources=["src/damonx/_core.pyx", *SOURCES],
    depends=HEADERS,
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=CFLAGS,
)

setup(ext_modules=cythonize([core], compiler_directives={"language_level": 3}))
