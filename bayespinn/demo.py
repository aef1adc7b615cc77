"""``bayespinn demo``: calibrate m and d on the bundled noisy SMIB data set.

The data (``examples/smib_demo.csv``) were made by ``bayespinn simulate power.smib m=0.4 d=0.15
B=0.2 P=0.1 delta0=0.1 omega0=0.1 --noise 0.01 --seed 2`` (1 % of each observable's range).
The demo also re-runs 200 posterior draws through the reference solver (``--check-reference``):
with 201 samples at 1 % noise the surrogate's error moves the posterior of d by about a sd, and
the report says so.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from bayespinn.pipeline import Run, calibrate
from bayespinn.study import load_study

__all__ = ["DEMO_STUDY", "run_demo"]

DEMO_STUDY = Path(__file__).parent / "examples" / "smib_demo.toml"


def run_demo(out: Path, progress: bool = True) -> tuple[Run, float]:
    t0 = time.perf_counter()
    study = dataclasses.replace(load_study(DEMO_STUDY), output_dir=out)
    run = calibrate(study, progress=progress, check_reference=True)
    return run, time.perf_counter() - t0
