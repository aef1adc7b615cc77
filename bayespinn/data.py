"""Measurements: CSV (or Parquet) with unit-carrying column names → checked arrays in canonical units.

Column names carry their unit in brackets, as PyBaMM writes them: ``Time [s]``, ``Angle [rad]``.
A column may be in any known unit of its quantity (``Time [min]``, ``Voltage [mV]``); values
are converted to the canonical unit the surrogate uses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayespinn.errors import UserError

__all__ = [
    "TIME",
    "UNITS",
    "Measurements",
    "column_values",
    "load_measurements",
    "read_table",
    "split_column",
]

TIME = "Time [s]"
# unit -> (canonical unit, factor to multiply by to reach it)
UNITS: dict[str, tuple[str, float]] = {
    "s": ("s", 1.0),
    "min": ("s", 60.0),
    "h": ("s", 3600.0),
    "V": ("V", 1.0),
    "mV": ("V", 1e-3),
    "A": ("A", 1.0),
    "mA": ("A", 1e-3),
    "psi": ("psi", 1.0),
    "bar": ("psi", 14.503773773),
    "kPa": ("psi", 0.14503773773),
    "rad": ("rad", 1.0),
    "deg": ("rad", math.pi / 180.0),
    "rad.s-1": ("rad.s-1", 1.0),
    "deg.s-1": ("rad.s-1", math.pi / 180.0),
}
_COLUMN = re.compile(r"^\s*(?P<quantity>.*?)\s*\[(?P<unit>[^\]]*)\]\s*$")


@dataclass(frozen=True)
class Measurements:
    path: Path
    time_s: np.ndarray
    values: dict[str, np.ndarray]  # canonical column name -> values in its canonical unit
    time_column: str = TIME  # the file's own time column (``Time [h]``), for messages


def split_column(name: str) -> tuple[str, str | None]:
    """``"Angle [rad]"`` → ``("Angle", "rad")``; a name without brackets has no unit."""
    match = _COLUMN.match(name)
    return (match["quantity"], match["unit"]) if match else (name.strip(), None)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a missing, empty or unreadable file is a UserError."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: file is empty, expected a header and data rows") from None
    except (ValueError, ImportError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: cannot read it as a table: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise UserError(f"{path}: no data rows, expected at least one row under the header")
    return frame


def column_values(frame: pd.DataFrame, path: Path, wanted: str) -> np.ndarray:
    """The column measuring ``wanted``'s quantity, converted to ``wanted``'s unit."""
    quantity, unit = split_column(wanted)
    for name in frame.columns:
        q, u = split_column(str(name))
        if q != quantity:
            continue
        if u not in UNITS:
            known = ", ".join(k for k, (c, _) in UNITS.items() if c == unit)
            raise UserError(f"{path}: column {name!r}: unit {u!r} is not known, expected one of {known}")
        canonical, factor = UNITS[u]
        if canonical != unit:
            raise UserError(f"{path}: column {name!r}: unit {u!r} is not a unit of {wanted!r}")
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(float) * factor
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = int(bad[0])
            raise UserError(
                f"{path}: column {name!r} row {row + 2}: found {frame[name].iloc[row]!r}, "
                "expected a finite number"
            )
        return values
    found = ", ".join(map(str, frame.columns))
    raise UserError(f"{path}: missing column {wanted!r} (found: {found})")


def _check_time(path: Path, column: str, t: np.ndarray) -> None:
    step = np.diff(t)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate time" if step[i - 1] == 0 else "time goes backwards at"
        raise UserError(
            f"{path}: column {column!r} row {i + 2}: {kind} {t[i]:g} s after {t[i - 1]:g} s, "
            "expected strictly increasing times"
        )


def load_measurements(path: str | Path, observables: list[str]) -> Measurements:
    """Load ``Time [s]`` and the observables, converted, checked, in file order."""
    path = Path(path)
    frame = read_table(path)
    time_s = column_values(frame, path, TIME)
    time_name = next(c for c in frame.columns if split_column(str(c))[0] == "Time")
    _check_time(path, time_name, time_s)
    values = {obs: column_values(frame, path, obs) for obs in observables}
    return Measurements(path=path, time_s=time_s, values=values, time_column=str(time_name))
