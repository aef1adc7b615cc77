"""Test session set-up: float64 JAX with two host devices (parallel chains), set before JAX starts."""

import os

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpyro

numpyro.set_host_device_count(2)
numpyro.enable_x64()
