"""Numba options shared by the reconstruction's kernels."""

JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
JIT_PARALLEL = {**JIT, "parallel": True}

EPS = 2.220446049250313e-16  # float64 machine epsilon
