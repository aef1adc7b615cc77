"""Synthetic measurements from a reference solver, with seeded Gaussian noise."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bayespinn.data import UNITS
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


def _reference(system: str):
    name = system if system.endswith(":reference") else f"{system}:reference"
    try:
        return load(name)
    except UnknownSurrogateError:
        raise UserError(f"simulate: unknown system {system!r}") from None


def simulate(
    system: str,
    values: dict[str, float],
    time_s: np.ndarray | None,
    noise: float = 0.0,
    seed: int = 0,
    noise_sd: float | None = None,
    span: tuple[float, int] | None = None,
) -> pd.DataFrame:
    """Reference trajectories with Gaussian noise: ``noise_sd`` in the observable's unit, or else
    ``noise`` as a fraction of each observable's range. ``time_s=None`` takes the system's own
    record (a battery: every 10 s up to its cut-off), or ``span = (t_end_s, points)`` times up to
    ``t_end_s`` (log-spaced from the system's ``first_time_s`` when it has one)."""
    model = _reference(system)
    needed = (*model.parameters, *model.conditions)
    missing = [k for k in needed if k not in values and k not in getattr(model, "defaults", {})]
    unknown = [k for k in values if k not in needed]
    if missing or unknown:
        raise UserError(
            f"simulate {system}: found {', '.join(values) or 'nothing'}, expected exactly "
            f"{', '.join(f'{k}=...' for k in needed)}"
        )
    if time_s is None and span is not None:
        # A system whose record starts after 0 (a well test, at 0.01 h) gets log-spaced times.
        first = getattr(model, "first_time_s", 0.0)
        t_end_s, points = span
        time_s = np.geomspace(first, t_end_s, points) if first > 0 else np.linspace(0.0, t_end_s, points)
    if time_s is None:
        default = getattr(model, "default_times", None)
        time_s = default(**values) if default else np.linspace(0.0, 20.0, 201)
    clean = model.numpy_forward(time_s, **values)
    rng = np.random.default_rng(seed)
    unit = getattr(model, "time_unit", "s")  # the column's unit: hours for a well test
    frame = {f"Time [{unit}]": np.asarray(time_s) / UNITS[unit][1]}
    if hasattr(model, "data_columns"):
        frame.update(model.data_columns(time_s, **values))
    for obs, y in clean.items():
        sigma = noise_sd if noise_sd is not None else noise * float(np.ptp(y))
        frame[obs] = y + sigma * rng.standard_normal(len(y))
    return pd.DataFrame(frame)


def simulate_csv(
    system: str,
    values: dict[str, float],
    out: Path,
    t_end_s: float | None = None,
    points: int | None = None,
    noise: float = 0.0,
    seed: int = 0,
    noise_sd: float | None = None,
) -> Path:
    """Write the CSV atomically. Without ``t_end_s`` and ``points`` the system's own record is
    used; with either, ``points`` times on [0, t_end_s] (defaults 201 and 20 s)."""
    span = None
    if t_end_s is not None or points is not None:
        t_end_s = 20.0 if t_end_s is None else t_end_s
        points = 201 if points is None else points
        if points < 2 or t_end_s <= 0:
            raise UserError(
                f"simulate: found --points {points} --t-end {t_end_s}, expected ≥ 2 points "
                "and a positive end time"
            )
        span = (t_end_s, points)
    if noise_sd is not None and noise_sd < 0:
        raise UserError(f"simulate: found --noise-sd {noise_sd}, expected a non-negative sd")
    frame = simulate(system, values, None, noise, seed, noise_sd, span)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".csv.tmp")
    with os.fdopen(fd, "w") as fh:
        frame.to_csv(fh, index=False, float_format="%.10g")
    os.replace(tmp, out)
    return out
