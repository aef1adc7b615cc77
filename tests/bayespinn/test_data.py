"""Measurements: unit-carrying column names, conversions to canonical units, errors by file line."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayespinn.data import load_measurements, split_column
from bayespinn.errors import UserError

# 1 psi = 1 lbf/in² = 0.45359237 kg × 9.80665 m.s-2 / (0.0254 m)², all exact by definition (NIST SP 811).
PA_PER_PSI = 0.45359237 * 9.80665 / 0.0254**2
PSI_PER_BAR = 1e5 / PA_PER_PSI  # 14.503773773..., which 14.5038 rounds to 6 figures (rel. 1.8e-6)


def _csv(tmp_path: Path, columns: dict, name: str = "data.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "column, values, expected_s",
    [
        ("Time [s]", [0.0, 1.5, 3.0], [0.0, 1.5, 3.0]),
        ("Time [min]", [0.0, 1.5, 3.0], [0.0, 90.0, 180.0]),
        ("Time [h]", [0.0, 0.5, 2.0], [0.0, 1800.0, 7200.0]),
    ],
)
def test_time_is_converted_to_seconds(tmp_path: Path, column: str, values: list, expected_s: list):
    data = load_measurements(_csv(tmp_path, {column: values}), [])
    np.testing.assert_allclose(data.time_s, expected_s, rtol=1e-12)


@pytest.mark.parametrize(
    "column, wanted, values, expected",
    [
        ("Voltage [mV]", "Voltage [V]", [3700.0, 2500.0], [3.7, 2.5]),
        ("Voltage [V]", "Voltage [V]", [3.7, 2.5], [3.7, 2.5]),
        ("Current [mA]", "Current [A]", [500.0, -250.0], [0.5, -0.25]),
        ("Angle [deg]", "Angle [rad]", [180.0, -90.0], [math.pi, -math.pi / 2]),
        (
            "Frequency deviation [deg.s-1]",
            "Frequency deviation [rad.s-1]",
            [360.0, 1.0],
            [2 * math.pi, math.pi / 180],
        ),
        ("Pressure [bar]", "Pressure [psi]", [1.0, 200.0], [PSI_PER_BAR, 200 * PSI_PER_BAR]),
        ("Pressure [kPa]", "Pressure [psi]", [100.0, 6894.757293168361], [PSI_PER_BAR, 1000.0]),
    ],
)
def test_values_are_converted_to_canonical_units(tmp_path: Path, column, wanted, values, expected):
    path = _csv(tmp_path, {"Time [s]": [0.0, 1.0], column: values})
    data = load_measurements(path, [wanted])
    assert list(data.values) == [wanted]
    np.testing.assert_allclose(data.values[wanted], expected, rtol=1e-9)


def test_bar_to_psi_matches_the_hand_value(tmp_path: Path):
    path = _csv(tmp_path, {"Time [s]": [0.0], "Pressure [bar]": [1.0]})
    psi = load_measurements(path, ["Pressure [psi]"]).values["Pressure [psi]"][0]
    # 14.5038 is itself rounded to 6 significant figures (3.5e-6 relative at most); the factor must agree
    # with it to that rounding and with the exact definition to 1e-9.
    assert psi == pytest.approx(14.5038, rel=3.5e-6)
    assert psi == pytest.approx(PSI_PER_BAR, rel=1e-9)


def test_a_unit_of_another_quantity_is_rejected(tmp_path: Path):
    path = _csv(tmp_path, {"Time [s]": [0.0, 1.0], "Angle [V]": [0.1, 0.2]})
    with pytest.raises(UserError, match=r"column 'Angle \[V\]': unit 'V' is not a unit of 'Angle \[rad\]'"):
        load_measurements(path, ["Angle [rad]"])


def test_an_unknown_unit_lists_the_known_ones(tmp_path: Path):
    path = _csv(tmp_path, {"Time [fortnight]": [0.0, 1.0]})
    with pytest.raises(UserError) as err:
        load_measurements(path, [])
    assert str(path) in str(err.value)
    assert "'fortnight'" in str(err.value) and "s, min, h" in str(err.value)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Angle [rad]", ("Angle", "rad")),
        ("Frequency deviation [rad.s-1]", ("Frequency deviation", "rad.s-1")),
        ("Positive particle diffusivity [m2.s-1]", ("Positive particle diffusivity", "m2.s-1")),
        ("  Voltage [V]  ", ("Voltage", "V")),
        ("Voltage[V]", ("Voltage", "V")),
        ("Time []", ("Time", "")),
        ("Cell", ("Cell", None)),
        (" Cycle ", ("Cycle", None)),
    ],
)
def test_split_column(name: str, expected: tuple):
    assert split_column(name) == expected


def test_a_column_without_unit_does_not_match_silently(tmp_path: Path):
    path = _csv(tmp_path, {"Time [s]": [0.0, 1.0], "Angle": [0.1, 0.2]})
    with pytest.raises(UserError, match=r"column 'Angle': unit None is not known"):
        load_measurements(path, ["Angle [rad]"])


def _line(path: Path, message: str) -> str:
    """The file line a message's ``row N`` points at (line 1 is the header)."""
    row = int(message.split(" row ")[1].split(":")[0])
    return path.read_text().splitlines()[row - 1]


def test_a_nan_is_reported_at_its_file_line(tmp_path: Path):
    angle = [0.1, 0.2, 0.3, float("nan"), 0.5, 0.6]
    path = _csv(tmp_path, {"Time [s]": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "Angle [rad]": angle})
    with pytest.raises(UserError) as err:
        load_measurements(path, ["Angle [rad]"])
    message = str(err.value)
    assert message.startswith(f"{path}: column 'Angle [rad]' row 5: ")  # data row 3 from 0 + header
    assert _line(path, message) == "3.0,"  # pandas writes NaN as an empty field


def test_a_string_is_reported_at_its_file_line(tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_text("Time [s],Angle [rad]\n0,0.1\n1,0.2\n2,0.3\n3,0.4\n4,oops\n5,0.6\n")
    with pytest.raises(UserError) as err:
        load_measurements(path, ["Angle [rad]"])
    message = str(err.value)
    assert "row 6: found 'oops', expected a finite number" in message
    assert _line(path, message) == "4,oops"


@pytest.mark.parametrize(
    "times, kind, line",
    [
        ("0,1,2,2,4", "duplicate time 2 s after 2 s", "2,0.3"),
        ("0,1,2,1.5,4", "time goes backwards at 1.5 s after 2 s", "1.5,0.3"),
    ],
)
def test_time_errors_point_at_the_offending_line(tmp_path: Path, times: str, kind: str, line: str):
    path = tmp_path / "data.csv"
    rows = [f"{t},{a}" for t, a in zip(times.split(","), ["0.0", "0.1", "0.2", "0.3", "0.4"])]
    path.write_text("Time [s],Angle [rad]\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError) as err:
        load_measurements(path, ["Angle [rad]"])
    message = str(err.value)
    assert "column 'Time [s]' row 5" in message and kind in message
    assert _line(path, message) == line


def test_values_keep_file_order_and_float_dtype(tmp_path: Path):
    path = _csv(tmp_path, {"Angle [rad]": [3, 2, 1], "Time [s]": [0, 1, 2]})  # integers, time not first
    data = load_measurements(path, ["Angle [rad]"])
    assert data.time_s.dtype == np.float64 and data.values["Angle [rad]"].dtype == np.float64
    np.testing.assert_array_equal(data.values["Angle [rad]"], [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(data.time_s, [0.0, 1.0, 2.0])


def test_ragged_csv_is_a_user_error(tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_text("Time [s],Angle [rad]\n0,0.1\n1,0.2,9,9\n")
    with pytest.raises(UserError, match="cannot read it as a table"):
        load_measurements(path, ["Angle [rad]"])


def test_parquet_is_read_like_csv(tmp_path: Path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "data.parquet"
    pd.DataFrame({"Time [min]": [0.0, 1.0], "Voltage [mV]": [4000.0, 3900.0]}).to_parquet(path)
    data = load_measurements(path, ["Voltage [V]"])
    np.testing.assert_allclose(data.time_s, [0.0, 60.0])
    np.testing.assert_allclose(data.values["Voltage [V]"], [4.0, 3.9])


def test_unreadable_parquet_is_a_user_error(tmp_path: Path):
    # With no Parquet engine installed pandas raises ImportError, with pyarrow an ArrowInvalid
    # (a ValueError): either way the user gets one line, not a traceback.
    path = tmp_path / "data.parquet"
    path.write_text("Time [s],Angle [rad]\n0,0.1\n")
    with pytest.raises(UserError, match="^" + re.escape(f"{path}: cannot read it as a table")):
        load_measurements(path, ["Angle [rad]"])
