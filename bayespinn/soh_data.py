"""State-of-health input: every constant-current discharge cycle of every cell, read and checked.

The data is one CSV or Parquet table with ``Cell``, ``Cycle``, ``Time [s]``, ``Current [A]`` and
``Voltage [V]`` columns (any unit of ``bayespinn.data.UNITS``), or a folder of per-cycle files that
carry ``Cell`` and ``Cycle`` columns or are named ``<cell>_cycle<N>.csv``. Time is measured from the
start of each discharge; the current is positive on discharge (PyBaMM's convention).

A bad file is a UserError (the CLI exits with 2). A bad cycle is not: a lab's archive always holds a
few (a rest step logged as a cycle, a logger glitch), so it is returned in ``skipped`` with the reason
and the other cycles go on.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayespinn.data import UNITS, column_values, read_table, split_column
from bayespinn.errors import UserError
from bayespinn.study import _Reader

__all__ = [
    "INDICATORS",
    "CycleRecord",
    "Skipped",
    "SohSettings",
    "load_cycles",
    "soh_settings",
]

INDICATORS = ("capacity", "soh")
TIME, CURRENT, VOLTAGE = "Time [s]", "Current [A]", "Voltage [V]"
_MEASURED = (TIME, CURRENT, VOLTAGE)
_FILE_NAME = re.compile(r"^(?P<cell>.+?)[_-]cycle[_-]?(?P<cycle>\d+)$", re.IGNORECASE)
_SUFFIXES = (".csv", ".parquet")
# Cyclers hold the set current to well under 1 %; 2 % leaves room for noise but not for a step change.
MAX_CURRENT_DEVIATION = 0.02


@dataclass(frozen=True)
class SohSettings:
    cells: tuple[str, ...] | None = None  # None: every cell in the data
    cycles: tuple[int, ...] | None = None  # None: every cycle
    batch_size: int = 30  # cycles per compiled batch
    soh_threshold: float = 0.8  # end of life: SOH below this
    reference_c_rate: float = 1.0  # capacity at reference conditions: this C-rate to cut-off
    alarm_p: float = 0.01  # trend-break alarm level
    indicators: tuple[str, ...] = INDICATORS


@dataclass(frozen=True)
class CycleRecord:
    cell: str
    cycle: int
    time_s: np.ndarray  # float64, strictly increasing, from the start of the discharge
    voltage_v: np.ndarray
    current_a: float  # the mean discharge current
    c_rate: float  # current_a / capacity_ah
    # The C-rate's standard error, from the readings' scatter about their mean. The fit carries it
    # (soh_fit) rather than take the C-rate as exact: a cycle's charge is its current times its
    # duration, so a C-rate 0.02 % off moves the fitted diffusivity by about one posterior sd.
    c_rate_se: float


@dataclass(frozen=True)
class Skipped:
    cell: str
    cycle: int
    reason: str  # one line: what was found and what was expected


# --- [soh] settings ------------------------------------------------------------------------------

_SOH_KEYS = tuple(f.name for f in fields(SohSettings))


def soh_settings(study: Any) -> SohSettings:
    """The study's ``[soh]`` table, checked; a study without one gets the defaults."""
    table = tomllib.loads(study.text).get("soh", {})
    if not isinstance(table, dict):
        raise UserError(f"{study.path}: [soh]: found {table!r}, expected a table")
    unknown = sorted(set(table) - set(_SOH_KEYS))
    if unknown:
        raise UserError(
            f"{study.path}: [soh] {unknown[0]}: unknown key, expected one of {', '.join(_SOH_KEYS)}"
        )
    r = _Reader(study.path, table, "soh")
    return SohSettings(
        cells=_cells(r),
        cycles=_cycles(r),
        batch_size=_batch_size(r),
        soh_threshold=_between(r, "soh_threshold", 0.0, 1.0),
        reference_c_rate=_between(r, "reference_c_rate", 0.0, math.inf),
        alarm_p=_between(r, "alarm_p", 0.0, 0.5),
        indicators=_indicators(r),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML's true is not cycle 1


def _cells(r: _Reader) -> tuple[str, ...] | None:
    expected = "a non-empty list of cell names"
    value = r.get("cells", list, None, expected)
    if value is None:
        return None
    if not value or not all(isinstance(c, str) or _is_int(c) for c in value):
        raise r.error("cells", value, expected)
    # A lab numbers its cells (cells = [1, 2]); the data's Cell column reads back as "1", "2".
    return tuple(dict.fromkeys(str(c) for c in value))


def _cycles(r: _Reader) -> tuple[int, ...] | None:
    expected = "a non-empty list of integer cycle numbers"
    value = r.get("cycles", list, None, expected)
    if value is None:
        return None
    if not value or not all(_is_int(c) for c in value):
        raise r.error("cycles", value, expected)
    return tuple(dict.fromkeys(value))


def _batch_size(r: _Reader) -> int:
    value = r.get("batch_size", int, SohSettings.batch_size, "a positive integer")
    if value < 1:
        raise r.error("batch_size", value, "a positive integer")
    return value


def _between(r: _Reader, key: str, lower: float, upper: float) -> float:
    """A number strictly inside (lower, upper); the ends are degenerate (SOH 1, p 0.5, C-rate 0)."""
    value = r.number(key, getattr(SohSettings, key))
    if not lower < value < upper:
        inside = f"between {lower:g} and {upper:g} (exclusive)" if upper < math.inf else f"above {lower:g}"
        raise r.error(key, value, f"a number {inside}")
    return value


def _indicators(r: _Reader) -> tuple[str, ...]:
    expected = f"a non-empty list of {', '.join(map(repr, INDICATORS))}"
    value = r.get("indicators", list, list(INDICATORS), expected)
    if not value or not all(v in INDICATORS for v in value) or len(set(value)) != len(value):
        raise r.error("indicators", value, expected)
    return tuple(value)


# --- reading the files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    """One cycle's rows of one file, converted but not yet checked."""

    path: Path
    cell: str
    cycle: int
    frame: pd.DataFrame  # the whole file as read, for messages (slicing it per cycle is slow)
    rows: np.ndarray  # this cycle's data rows in ``frame``, from 0
    columns: dict[str, str]  # canonical name -> the file's own column (``Voltage [mV]``)
    values: dict[str, np.ndarray]  # canonical name -> values in its canonical unit

    def where(self, name: str, i: int) -> str:
        return f"{self.path.name} row {self.rows[i] + 2}, column {self.columns[name]!r}"

    def found(self, name: str, i: int) -> Any:
        return _plain(self.frame[self.columns[name]].iloc[int(self.rows[i])])


def _plain(value: Any) -> Any:
    """A NumPy scalar as a Python one, so a message shows ``2.5``, not ``np.float64(2.5)``."""
    return value.item() if isinstance(value, np.generic) else value


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        # Dot files are editor and macOS leftovers (._A_cycle1.csv), never data.
        files = [
            p
            for p in path.iterdir()
            if p.suffix.lower() in _SUFFIXES and p.is_file() and not p.name.startswith(".")
        ]
        if not files:
            raise UserError(f"{path}: no *.csv or *.parquet file in this folder, expected one file per cycle")
        return sorted(files)
    if not path.exists():
        raise UserError(
            f"{path}: file or folder not found, expected a CSV or Parquet file or a folder of them"
        )
    return [path]


def _converted(frame: pd.DataFrame, path: Path, wanted: str) -> tuple[str, np.ndarray]:
    """The file's column for ``wanted`` and its values in ``wanted``'s unit; NaN where not a number.

    A missing column or an unknown unit is the file's fault (column_values says so); a bad value
    is one cycle's, and is left for the checks below.
    """
    column_values(frame.iloc[:0], path, wanted)
    quantity = split_column(wanted)[0]
    name = next(str(c) for c in frame.columns if split_column(str(c))[0] == quantity)
    factor = UNITS[split_column(name)[1]][1]
    return name, pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64) * factor


def _id_column(frame: pd.DataFrame, name: str) -> str | None:
    return next((str(c) for c in frame.columns if split_column(str(c)) == (name, None)), None)


def _cell_names(frame: pd.DataFrame, path: Path, column: str) -> list[str]:
    values = frame[column]
    if pd.api.types.is_float_dtype(values) and values.notna().all() and (values % 1 == 0).all():
        values = values.astype(np.int64)  # numbered cells written as 3.0 are cell "3"
    names = [str(v).strip() for v in values.to_numpy(object)]  # one pass: tables run to millions of rows
    bad = np.flatnonzero(values.isna().to_numpy() | np.array([not n for n in names], dtype=bool))
    if bad.size:
        row = int(bad[0])
        found = _plain(frame[column].iloc[row])
        raise UserError(f"{path}: column {column!r} row {row + 2}: found {found!r}, expected a cell name")
    return names


def _cycle_numbers(frame: pd.DataFrame, path: Path, column: str) -> np.ndarray:
    numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(numbers)
    bad = np.flatnonzero(~finite | (np.where(finite, numbers, 0.0) % 1 != 0))
    if bad.size:
        row = int(bad[0])
        found = _plain(frame[column].iloc[row])
        raise UserError(f"{path}: column {column!r} row {row + 2}: found {found!r}, expected an integer")
    return numbers.astype(np.int64)


def _ids(frame: pd.DataFrame, path: Path) -> tuple[list[str], np.ndarray]:
    """Each row's cell and cycle: from the ``Cell`` and ``Cycle`` columns, else from the file name."""
    cell_column, cycle_column = _id_column(frame, "Cell"), _id_column(frame, "Cycle")
    match = _FILE_NAME.match(path.stem)
    if match is None and None in (cell_column, cycle_column):
        missing = "Cell" if cell_column is None else "Cycle"
        found = ", ".join(map(str, frame.columns))
        raise UserError(
            f"{path}: missing column {missing!r} (found: {found}), "
            "expected 'Cell' and 'Cycle' columns or a file name like <cell>_cycle<N>.csv"
        )
    n = len(frame)
    cells = _cell_names(frame, path, cell_column) if cell_column is not None else [match["cell"]] * n
    cycles = (
        _cycle_numbers(frame, path, cycle_column)
        if cycle_column is not None
        else np.full(n, int(match["cycle"]))
    )
    return cells, cycles


def _read_file(path: Path) -> list[_Raw]:
    frame = read_table(path).reset_index(drop=True)  # a Parquet file may carry its own index
    converted = {wanted: _converted(frame, path, wanted) for wanted in _MEASURED}
    cells, cycles = _ids(frame, path)
    groups = pd.DataFrame({"cell": cells, "cycle": cycles}).groupby(["cell", "cycle"], sort=False).indices
    return [
        _Raw(
            path=path,
            cell=str(cell),
            cycle=int(cycle),
            frame=frame,
            rows=rows,
            columns={wanted: name for wanted, (name, _) in converted.items()},
            values={wanted: values[rows] for wanted, (_, values) in converted.items()},
        )
        for (cell, cycle), rows in groups.items()
    ]


def _read_all(path: Path) -> dict[tuple[str, int], _Raw]:
    cycles: dict[tuple[str, int], _Raw] = {}
    for file in _files(path):
        for raw in _read_file(file):
            key = (raw.cell, raw.cycle)
            if key in cycles:
                raise UserError(
                    f"{file}: cell {raw.cell!r} cycle {raw.cycle} is also in {cycles[key].path.name}, "
                    "expected each cycle in one file"
                )
            cycles[key] = raw
    return cycles


# --- selecting the [soh] cells and cycles --------------------------------------------------------


def _listed(items: list[str], most: int = 20) -> str:
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown}, ... ({len(items)} in all)"


def _ranges(numbers: set[int]) -> str:
    """``{1, 2, 3, 7}`` → ``"1-3, 7"``: a lab's cycle numbers run to the thousands."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return _listed([f"{a}-{b}" if a != b else f"{a}" for a, b in runs])


def _select(path: Path, cycles: dict[tuple[str, int], _Raw], settings: SohSettings) -> list[_Raw]:
    """The cycles the ``[soh]`` table asks for, sorted by (cell, cycle)."""
    if settings.cells is not None:
        present = sorted({cell for cell, _ in cycles})
        missing = [c for c in settings.cells if c not in present]
        if missing:
            raise UserError(
                f"{path}: [soh] cells: {missing[0]!r} is not in the data, expected one of {_listed(present)}"
            )
        cycles = {k: v for k, v in cycles.items() if k[0] in settings.cells}
    if settings.cycles is not None:
        present = {cycle for _, cycle in cycles}
        missing = [c for c in settings.cycles if c not in present]
        if missing:
            of = " of the selected cells" if settings.cells is not None else ""
            raise UserError(
                f"{path}: [soh] cycles: {missing[0]} is not in the data{of}, "
                f"expected one of {_ranges(present)}"
            )
        cycles = {k: v for k, v in cycles.items() if k[1] in settings.cycles}
    return [cycles[k] for k in sorted(cycles)]


# --- checking each cycle -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    capacity_ah: float
    c_rate_range: tuple[float, float]
    t_max_nominal_h: float
    voltage_range_v: tuple[float, float]
    min_points: int
    end_voltage_v: float | None = None

    def __post_init__(self) -> None:
        # The caller's (the surrogate's) numbers, not the user's: a wrong one is a bug, not a UserError.
        (c_lo, c_hi), (v_lo, v_hi) = self.c_rate_range, self.voltage_range_v
        if not (self.capacity_ah > 0 and 0 <= c_lo < c_hi and self.t_max_nominal_h > 0 and v_lo < v_hi):
            raise ValueError(f"inconsistent limits: {self}")
        if self.min_points < 2:
            raise ValueError(f"min_points = {self.min_points}, expected at least 2")


def _median_current(raw: _Raw) -> float:
    return float(np.median(raw.values[CURRENT]))


def _non_finite(raw: _Raw, limits: _Limits) -> str | None:
    for name in _MEASURED:
        bad = np.flatnonzero(~np.isfinite(raw.values[name]))
        if bad.size:
            i = int(bad[0])
            found = raw.found(name, i)
            return f"non-finite value: {raw.where(name, i)}: found {found!r}, expected a finite number"
    return None


def _too_few(raw: _Raw, limits: _Limits) -> str | None:
    n = len(raw.rows)
    if n < limits.min_points:
        return f"too few samples: found {n}, expected at least {limits.min_points}"
    return None


def _time_order(raw: _Raw, limits: _Limits) -> str | None:
    t = raw.values[TIME]
    if t[0] < 0:
        return (
            f"negative start time: {raw.where(TIME, 0)}: first time {t[0]:g} s, "
            "expected >= 0 s (time from the start of the discharge)"
        )
    step = np.diff(t)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate time" if step[i - 1] == 0 else "time goes backwards at"
        return (
            f"time not increasing: {raw.where(TIME, i)}: {kind} {t[i]:g} s after {t[i - 1]:g} s, "
            "expected strictly increasing times"
        )
    return None


def _not_discharge(raw: _Raw, limits: _Limits) -> str | None:
    current = raw.values[CURRENT]
    bad = np.flatnonzero(current <= 0)
    if bad.size:
        i = int(bad[0])
        return (
            f"not a discharge: {raw.where(CURRENT, i)}: current {current[i]:g} A, expected a positive "
            "current throughout (a charge or rest step is not a constant-current discharge)"
        )
    return None


def _not_constant(raw: _Raw, limits: _Limits) -> str | None:
    current, median = raw.values[CURRENT], _median_current(raw)
    deviation = np.abs(current - median) / median
    i = int(np.argmax(deviation))
    if deviation[i] > MAX_CURRENT_DEVIATION:
        return (
            f"current not constant: {raw.where(CURRENT, i)}: {current[i]:g} A is {deviation[i]:.1%} "
            f"from the median {median:g} A, expected within {MAX_CURRENT_DEVIATION:.0%}"
        )
    return None


def _c_rate_out(raw: _Raw, limits: _Limits) -> str | None:
    median = _median_current(raw)
    c_rate, (lower, upper) = median / limits.capacity_ah, limits.c_rate_range
    if not lower <= c_rate <= upper:
        return (
            f"C-rate out of range: found {c_rate:.4g} (median current {median:g} A / "
            f"{limits.capacity_ah:g} Ah), expected within [{lower:g}, {upper:g}]"
        )
    return None


def _too_long(raw: _Raw, limits: _Limits) -> str | None:
    c_rate = _median_current(raw) / limits.capacity_ah
    t_max_s = limits.t_max_nominal_h * 3600.0 / c_rate
    last_s = raw.values[TIME][-1]
    if last_s > t_max_s:
        return (
            f"beyond the surrogate's time domain: last time {last_s:g} s, expected at most {t_max_s:g} s "
            f"({limits.t_max_nominal_h:g} h at 1C, divided by the C-rate {c_rate:.4g})"
        )
    return None


def _voltage_out(raw: _Raw, limits: _Limits) -> str | None:
    voltage, (lower, upper) = raw.values[VOLTAGE], limits.voltage_range_v
    bad = np.flatnonzero((voltage < lower) | (voltage > upper))
    if bad.size:
        i = int(bad[0])
        return (
            f"voltage out of range: {raw.where(VOLTAGE, i)}: found {voltage[i]:g} V, "
            f"expected within [{lower:g}, {upper:g}] V"
        )
    return None


def _not_to_cutoff(raw: _Raw, limits: _Limits) -> str | None:
    """A capacity measurement runs into the end-of-discharge knee; a partial discharge does not
    say where the cut-off is, and the surrogate's error model is laid out over full discharges."""
    last_v = raw.values[VOLTAGE][-1]
    if limits.end_voltage_v is not None and last_v > limits.end_voltage_v:
        return (
            f"not a discharge to cut-off: {raw.where(VOLTAGE, len(raw.rows) - 1)}: the record ends at "
            f"{last_v:.3f} V, expected below {limits.end_voltage_v:g} V (the end-of-discharge knee)"
        )
    return None


# In this order: each check may assume the ones before it passed (finite values, a positive median).
_CHECKS = (
    _non_finite,
    _too_few,
    _time_order,
    _not_discharge,
    _not_constant,
    _c_rate_out,
    _too_long,
    _voltage_out,
    _not_to_cutoff,
)


def _problem(raw: _Raw, limits: _Limits) -> str | None:
    return next((reason for check in _CHECKS if (reason := check(raw, limits))), None)


def _record(raw: _Raw, limits: _Limits) -> CycleRecord:
    # The checks used the median (robust to a stray reading); with every reading within 2 % of
    # it, the mean estimates a constant current better (its error is 0.8x the median's for
    # Gaussian noise), with a standard error to match.
    current = np.asarray(raw.values[CURRENT], dtype=np.float64)
    current_a = float(current.mean())
    current_se_a = float(current.std(ddof=1) / np.sqrt(current.size))  # min_points >= 2
    return CycleRecord(
        cell=raw.cell,
        cycle=raw.cycle,
        time_s=np.array(raw.values[TIME], dtype=np.float64),
        voltage_v=np.array(raw.values[VOLTAGE], dtype=np.float64),
        current_a=current_a,
        c_rate=current_a / limits.capacity_ah,
        c_rate_se=current_se_a / limits.capacity_ah,
    )


def load_cycles(
    path: str | Path,
    settings: SohSettings,
    *,
    capacity_ah: float,
    c_rate_range: tuple[float, float],
    t_max_nominal_h: float,
    voltage_range_v: tuple[float, float] = (0.0, 5.0),
    min_points: int = 10,
    end_voltage_v: float | None = None,
) -> tuple[list[CycleRecord], list[Skipped]]:
    """The usable cycles sorted by (cell, cycle), and the skipped ones with their reason.

    ``capacity_ah`` turns the median current into a C-rate; ``c_rate_range`` and ``t_max_nominal_h``
    (the 1C discharge time the surrogate covers) bound what the surrogate was trained on;
    with ``end_voltage_v`` a record must end below it (a discharge to the cut-off).
    """
    path = Path(path)
    limits = _Limits(
        capacity_ah, tuple(c_rate_range), t_max_nominal_h, tuple(voltage_range_v), min_points, end_voltage_v
    )
    records: list[CycleRecord] = []
    skipped: list[Skipped] = []
    for raw in _select(path, _read_all(path), settings):
        reason = _problem(raw, limits)
        if reason is None:
            records.append(_record(raw, limits))
        else:
            skipped.append(Skipped(raw.cell, raw.cycle, reason))
    if not records:
        first = skipped[0]
        raise UserError(
            f"{path}: no usable cycle, expected at least one: {len(skipped)} skipped, the first "
            f"(cell {first.cell!r} cycle {first.cycle}): {first.reason}"
        )
    return records, skipped
