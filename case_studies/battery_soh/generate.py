"""Synthetic ageing data with known truth for the state-of-health case study.

Two cells, one constant-current discharge per cycle from PyBaMM's default initial state to the
2.5 V cut-off, simulated by the reference solver (``battery.spm:reference``: PyBaMM's SPM with
Chen2020) and sampled every 10 s with 5 mV Gaussian voltage noise. Ageing is a drift of the two
model parameters, both multiplying Chen2020's values: the positive particle diffusivity D (which
sets the capacity: flat above D ≈ 0.5, falling steeply below ≈ 0.45) and the negative exchange-current
density J (which moves the voltage level, hardly the capacity).

- Cell ``A`` (smooth fade): log D falls linearly from 0.42 at cycle 1 to 0.26 at cycle 30.
- Cell ``B`` (knee): log D falls from 0.42 at cycle 1 to 0.38 at cycle 18, then ten times faster.
- Both: log J falls linearly from 1.0 at cycle 1 to 0.6 at cycle 30.
- Every 5th cycle is a check-up at another rate (A: 0.75C, B: 1.25C); the others run at 1C.

Because the rate changes, the discharge time is not the capacity: the truth is the capacity at the
reference conditions (1C to the cut-off) that the reference solver gives for each cycle's D and J,
and the SOH is that capacity over the cell's cycle-1 capacity.

Writes ``cells.csv`` (the cycler record ``bayespinn soh`` reads), ``truth.csv`` and ``soh.toml`` (the
study) into ``--out``, then checks that the study loads and every cycle passes ``load_cycles``.
Usage: python case_studies/battery_soh/generate.py [--out DIR] [--seed N] [--cycles N]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpy as np
import pandas as pd

from bayespinn.soh_data import load_cycles, soh_settings
from bayespinn.study import load_study
from surrogates.battery import spm_reference
from surrogates.battery.chen2020 import CAPACITY_AH

HERE = Path(__file__).parent
CELLS = ("A", "B")
DT_S = 10.0
VOLTAGE_NOISE_V = 0.005
CURRENT_NOISE_REL = 0.002  # sd as a fraction of the set current
REFERENCE_C_RATE = 1.0
CHECKUP_EVERY = 5  # every 5th cycle is a check-up at another rate
CHECKUP_C_RATE = {"A": 0.75, "B": 1.25}
LAST_ANCHOR_CYCLE = 30  # the trajectories are defined by their values at cycles 1 and 30
D_START, D_END_A = 0.42, 0.26
D_KNEE, KNEE_CYCLE, KNEE_FACTOR = 0.38, 18, 10.0  # cell B: D at the last slow cycle; speed-up after
J_START, J_END = 1.0, 0.6
D_MIN = 0.12  # keep D well inside the study's prior [0.1, 10]
COLUMNS = ["Cell", "Cycle", "Time [s]", "Current [A]", "Voltage [V]"]
TRUTH_COLUMNS = [
    "Cell",
    "Cycle",
    "c_rate",
    "positive_diffusivity_scale",
    "negative_j0_scale",
    "capacity [A.h]",
    "soh",
]
STUDY_TOML = """\
# State of health of two ageing cells (generate.py): calibrate D and J cycle by cycle, then the
# capacity at 1C to 2.5 V and the SOH trend. truth.csv holds the true values for every cycle.
[surrogate]
name = "battery.spm"

[data]
path = "cells.csv"

[parameters.positive_diffusivity_scale]
prior = "loguniform"
lower = 0.1
upper = 10.0

[parameters.negative_j0_scale]
prior = "loguniform"
lower = 0.1
upper = 10.0

[noise]
sigma = "infer"
scale = 0.02

[inference]
engine = "svi"
guide = "laplace"
seed = 0

[output]
dir = "../runs/soh"

[soh]
soh_threshold = 0.8
reference_c_rate = 1.0
"""


# --- the ageing trajectories ---------------------------------------------------------------------


def _log_line(start: float, end: float, cycle: int, end_cycle: int = LAST_ANCHOR_CYCLE) -> float:
    """exp of the straight line in log through (1, start) and (end_cycle, end), at ``cycle``."""
    slope = (math.log(end) - math.log(start)) / (end_cycle - 1)
    return math.exp(math.log(start) + slope * (cycle - 1))


def _diffusivity_a(cycle: int) -> float:
    return _log_line(D_START, D_END_A, cycle)


def _diffusivity_b(cycle: int) -> float:
    if cycle <= KNEE_CYCLE:
        return _log_line(D_START, D_KNEE, cycle, KNEE_CYCLE)
    slow_slope = (math.log(D_KNEE) - math.log(D_START)) / (KNEE_CYCLE - 1)
    return math.exp(math.log(D_KNEE) + KNEE_FACTOR * slow_slope * (cycle - KNEE_CYCLE))


DIFFUSIVITY: dict[str, Callable[[int], float]] = {"A": _diffusivity_a, "B": _diffusivity_b}


def _j0_scale(cycle: int) -> float:
    return _log_line(J_START, J_END, cycle)


def _c_rate(cell: str, cycle: int) -> float:
    return CHECKUP_C_RATE[cell] if cycle % CHECKUP_EVERY == 0 else REFERENCE_C_RATE


def true_state(cell: str, cycle: int) -> dict[str, float]:
    """The reference solver's inputs for one cycle of one cell."""
    d = DIFFUSIVITY[cell](cycle)
    if d < D_MIN:
        raise ValueError(f"cell {cell} cycle {cycle}: D = {d:.4g} < {D_MIN}, too many cycles for this cell")
    return {
        "positive_diffusivity_scale": d,
        "negative_j0_scale": _j0_scale(cycle),
        "c_rate": _c_rate(cell, cycle),
    }


# --- simulating ----------------------------------------------------------------------------------


def _capacity_ah(state: dict[str, float], t_cut_s: float | None = None) -> float:
    """Capacity at the reference conditions (1C to the cut-off); ``t_cut_s`` if already at 1C."""
    if t_cut_s is None:
        at_reference = {**state, "c_rate": REFERENCE_C_RATE}
        _, _, t_cut_s = spm_reference.window(dt_s=DT_S, **at_reference)
    return CAPACITY_AH * REFERENCE_C_RATE * t_cut_s / 3600.0


def _cycle(cell: str, cycle: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """One noisy discharge record and its truth row."""
    state = true_state(cell, cycle)
    times_s, voltage_v, t_cut_s = spm_reference.window(dt_s=DT_S, **state)
    at_reference = state["c_rate"] == REFERENCE_C_RATE
    capacity_ah = _capacity_ah(state, t_cut_s if at_reference else None)
    current_a = CAPACITY_AH * state["c_rate"]
    record = pd.DataFrame(
        {
            "Cell": cell,
            "Cycle": cycle,
            "Time [s]": times_s,
            "Current [A]": current_a + rng.normal(0.0, CURRENT_NOISE_REL * current_a, times_s.size),
            "Voltage [V]": voltage_v + rng.normal(0.0, VOLTAGE_NOISE_V, times_s.size),
        },
        columns=COLUMNS,
    )
    truth = {"Cell": cell, "Cycle": cycle, **state, "capacity [A.h]": capacity_ah}
    return record, truth


def _cell(cell: str, cycles: int, rng: np.random.Generator) -> tuple[list[pd.DataFrame], list[dict]]:
    records, truths = zip(*(_cycle(cell, n, rng) for n in range(1, cycles + 1)), strict=True)
    first_ah = truths[0]["capacity [A.h]"]
    truths = [{**t, "soh": t["capacity [A.h]"] / first_ah} for t in truths]
    last = truths[-1]
    print(
        f"cell {cell}: {cycles} cycles, capacity {first_ah:.4f} -> {last['capacity [A.h]']:.4f} A.h, "
        f"SOH at cycle {cycles} {last['soh']:.4f}",
        flush=True,
    )
    return list(records), truths


# --- writing and checking ------------------------------------------------------------------------


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` to a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    _write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.10g"))


def _check(study_path: Path, expected_cycles: int) -> None:
    """The study loads and every cycle passes ``load_cycles`` with the surrogate's limits."""
    study = load_study(study_path)
    settings = soh_settings(study)
    records, skipped = load_cycles(
        study.data_path, settings, capacity_ah=CAPACITY_AH, c_rate_range=(0.5, 2.0), t_max_nominal_h=1.5
    )
    if skipped or len(records) != expected_cycles:
        reasons = "; ".join(f"{s.cell} {s.cycle}: {s.reason}" for s in skipped[:3])
        raise RuntimeError(f"{len(records)} of {expected_cycles} cycles loaded, skipped: {reasons}")


def generate(out: Path, seed: int = 0, cycles: int = 30) -> dict[str, Path]:
    """Simulate both cells, write ``cells.csv``, ``truth.csv`` and ``soh.toml`` into ``out``, check
    them, and return their paths (keys ``cells``, ``truth``, ``study``)."""
    if cycles < 1:
        raise ValueError(f"cycles = {cycles}, expected at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records: list[pd.DataFrame] = []
    truths: list[dict] = []
    for cell in CELLS:
        cell_records, cell_truths = _cell(cell, cycles, rng)
        records += cell_records
        truths += cell_truths
    paths = {"cells": out / "cells.csv", "truth": out / "truth.csv", "study": out / "soh.toml"}
    _write_csv(paths["cells"], pd.concat(records, ignore_index=True))
    _write_csv(paths["truth"], pd.DataFrame(truths, columns=TRUTH_COLUMNS))
    _write_atomic(paths["study"], lambda tmp: tmp.write_text(STUDY_TOML))
    _check(paths["study"], expected_cycles=len(CELLS) * cycles)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (NumPy default_rng)")
    parser.add_argument("--cycles", type=int, default=30, help="cycles per cell, numbered from 1")
    args = parser.parse_args(argv)
    start_s = time.perf_counter()
    paths = generate(args.out, seed=args.seed, cycles=args.cycles)
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - start_s:.1f} s")


if __name__ == "__main__":
    main()
