"""Timing helpers shared by the benchmarks: timeit-style medians, significant-figure rounding."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import jax

__all__ = ["per_call_s", "processor", "run", "sig"]


def sig(x: float, digits: int = 4) -> float:
    return float(f"{float(x):.{digits}g}")


def run(fn, number: int) -> float:
    """Seconds for ``number`` calls of ``fn``."""
    t0 = time.perf_counter()
    for _ in range(number):
        jax.block_until_ready(fn())  # no-op on NumPy results; waits for JAX's async dispatch
    return time.perf_counter() - t0


def per_call_s(fn, repeats: int, min_s: float) -> float:
    """Median over ``repeats`` of the mean seconds per call, timeit-style.

    Each repeat makes enough calls to last ``min_s``, so that calls of tens of microseconds are
    not lost in timer resolution; a call slower than ``min_s`` is timed one at a time.
    """
    number, elapsed = 1, run(fn, 1)
    while elapsed < min_s:
        number = max(2 * number, int(1.2 * number * min_s / max(elapsed, 1e-9)))
        elapsed = run(fn, number)
    times = [elapsed / number] + [run(fn, number) / number for _ in range(repeats - 1)]
    return statistics.median(times)


def processor() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else the architecture. Runs on the same kind
    of 2-core machine have met different CPUs: the DFN surrogate's likelihood gradient took
    2.3 ms on an Intel Xeon and 4.8 ms on an AMD EPYC."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()
