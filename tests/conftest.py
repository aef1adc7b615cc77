"""Test session set-up: float64 JAX with two host devices (parallel chains), set before JAX starts."""

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
# `make test` runs 3 pytest-xdist workers on CI's 2 cores. Multi-threaded BLAS and OpenMP
# (NumPy's OpenBLAS, torch) spin while they wait for their threads, and oversubscribed they
# slow everything down: three quick SMIB trainings side by side took 108 s each, 39 s with one
# thread each (measured, AMD EPYC, 2 cores). Set here, before xdist starts its workers, which
# read it when their libraries load.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import tempfile

# Each calibration builds its model anew, so JAX's in-memory cache misses even when a test
# compiles the very sampler an earlier one did (the same surrogate, data of the same shape); the
# persistent cache, keyed on the compiled program, answers those from disk. Set in the
# environment before JAX starts, so worker processes (a Dask cluster's, pytest-xdist's) share it.
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # one id for all xdist workers of a run
_cache = (
    os.path.join(tempfile.gettempdir(), f"bayespinn-jax-{_run}")
    if _run
    else tempfile.mkdtemp(prefix="bayespinn-jax-")
)
os.makedirs(_cache, exist_ok=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import numpyro

numpyro.set_host_device_count(2)
numpyro.enable_x64()
