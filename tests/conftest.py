"""Test session set-up: float64 JAX with two host devices (parallel chains), set before JAX starts."""

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

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
