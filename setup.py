"""Build definition of the compiled core; metadata lives in pyproject.toml."""

import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

core = Extension(
    "damonx._core",
    sources=["src/damonx/_core.pyx"]
    + sorted(f for f in glob.glob("csrc/*.c") if not os.path.basename(f).startswith("test_")),
    include_dirs=["csrc", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=CFLAGS,
)

setup(ext_modules=cythonize([core], compiler_directives={"language_level": 3}))
