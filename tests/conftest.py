"""Test session set-up: float64 JAX with two host devices (parallel chains), set before JAX starts."""

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpyro

numpyro.set_host_device_count(2)
numpyro.enable_x64()

import tempfile

import jax

# Each calibration builds its model anew, so JAX's in-memory cache misses even when a test
# compiles the very sampler an earlier one did (the same surrogate, data of the same shape); the
# persistent cache, keyed on the compiled program, answers those from disk.
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="bayespinn-jax-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
