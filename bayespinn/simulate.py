"""Synthetic measurements from a reference solver, with seeded Gaussian noise."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bayespinn.data import TIME
from bayespinn.errors import UserError
from surrogates.registry import UnknownSurrogateError, load

__all__ = ["parse_assignments", "simulate", "simulate_csv"]


def parse_assignments(items: list[str]) -> dict[str, float]:
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        try:
            values[name.strip()] = float(text)
        except ValueError:
            sep = ""
        if not sep:
            raise UserError(f"simulate: found {item!r}, expected NAME=NUMBER such as m=0.4")
    return values


def simulate(
    system: str, values: dict[str, float], time_s: np.ndarray, noise: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Reference trajectories; ``noise`` is the sd as a fraction of each observable's range."""
    name = system if system.endswith(":reference") else f"{system}:reference"
    try:
        model = load(name)
    except UnknownSurrogateError:
        raise UserError(f"simulate: unknown system {system!r}") from None
    needed = (*model.parameters, *model.conditions)
    missing = [k for k in needed if k not in values]
    unknown = [k for k in values if k not in needed]
    if missing or unknown:
        raise UserError(
            f"simulate {system}: found {', '.join(values) or 'nothing'}, expected exactly "
            f"{', '.join(f'{k}=...' for k in needed)}"
        )
    clean = model.numpy_forward(time_s, **values)
    rng = np.random.default_rng(seed)
    frame = {TIME: time_s}
    for obs, y in clean.items():
        sigma = noise * float(np.ptp(y))
        frame[obs] = y + sigma * rng.standard_normal(len(y))
    return pd.DataFrame(frame)


def simulate_csv(
    system: str,
    values: dict[str, float],
    out: Path,
    t_end_s: float = 20.0,
    points: int = 201,
    noise: float = 0.0,
    seed: int = 0,
) -> Path:
    if points < 2 or t_end_s <= 0:
        raise UserError(
            f"simulate: found --points {points} --t-end {t_end_s}, expected ≥ 2 points "
            "and a positive end time"
        )
    frame = simulate(system, values, np.linspace(0.0, t_end_s, points), noise, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".csv.tmp")
    with os.fdopen(fd, "w") as fh:
        frame.to_csv(fh, index=False, float_format="%.10g")
    os.replace(tmp, out)
    return out
