"""State-of-health input: cycles read back exactly, bad cycles skipped with a reason, bad files refused."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayespinn.errors import UserError
from bayespinn.soh_data import CycleRecord, Skipped, SohSettings, load_cycles, soh_settings
from bayespinn.study import load_study

# A 5 Ah cell: 5 A is 1C; the surrogate covers 0.5C to 2C and 1.5 h at 1C (5400 s).
LIMITS = {"capacity_ah": 5.0, "c_rate_range": (0.5, 2.0), "t_max_nominal_h": 1.5}
CELLS = ("A", "B", "C")
CYCLES = (1, 2, 3)
POINTS = 50
DEFAULTS = SohSettings()


def _cycle(cell: str, cycle: int, current_a: float = 5.0, step_s: float = 60.0) -> pd.DataFrame:
    time_s = np.arange(POINTS) * step_s  # 0 to 2940 s: a 1C discharge stopped at 4.2 - 1 V
    # Rounded to the mV so a CSV round trip is exact; each cell and cycle has its own curve.
    fade_v = 0.01 * cycle + 0.1 * CELLS.index(cell)
    voltage_v = np.round(4.2 - fade_v - 0.8 * time_s / time_s[-1], 3)
    return pd.DataFrame(
        {"Cell": cell, "Cycle": cycle, "Time [s]": time_s, "Current [A]": current_a, "Voltage [V]": voltage_v}
    )


def _table(corrupt: Callable[[pd.DataFrame], pd.DataFrame] | None = None, **currents: float) -> pd.DataFrame:
    """Every cell and cycle, in reverse order so that sorting is tested; ``corrupt`` edits cell A cycle 2."""
    parts = []
    for cell in reversed(CELLS):
        for cycle in reversed(CYCLES):
            part = _cycle(cell, cycle, currents.get(cell, 5.0))
            parts.append(corrupt(part) if corrupt and (cell, cycle) == ("A", 2) else part)
    return pd.concat(parts, ignore_index=True)


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _keys(items: list[CycleRecord] | list[Skipped]) -> list[tuple[str, int]]:
    return [(item.cell, item.cycle) for item in items]


def _line(path: Path, message: str) -> str:
    """The file line a message's ``row N`` points at (line 1 is the header)."""
    row = int(re.search(r" row (\d+)", message)[1])
    return path.read_text().splitlines()[row - 1]


ALL = [(cell, cycle) for cell in CELLS for cycle in CYCLES]


# --- reading ---------------------------------------------------------------------------------------


def test_a_table_reads_back_every_cycle_exactly_and_sorted(tmp_path: Path):
    path = _csv(tmp_path, _table(B=7.5))  # cell B at 1.5C
    records, skipped = load_cycles(path, SohSettings(), **LIMITS)
    assert skipped == []
    assert _keys(records) == ALL
    for record in records:
        expected = _cycle(record.cell, record.cycle)
        assert record.time_s.dtype == np.float64
        np.testing.assert_array_equal(record.time_s, expected["Time [s]"])
        np.testing.assert_array_equal(record.voltage_v, expected["Voltage [V]"])
        assert (record.current_a, record.c_rate) == ((7.5, 1.5) if record.cell == "B" else (5.0, 1.0))


def test_units_are_converted_to_seconds_volts_and_amps(tmp_path: Path):
    frame = _table()
    frame["Time [s]"] /= 3600.0
    frame["Voltage [V]"] *= 1000.0
    frame["Current [A]"] *= 1000.0
    frame = frame.rename(
        columns={"Time [s]": "Time [h]", "Voltage [V]": "Voltage [mV]", "Current [A]": "Current [mA]"}
    )
    records, skipped = load_cycles(_csv(tmp_path, frame), SohSettings(), **LIMITS)
    assert skipped == [] and _keys(records) == ALL
    expected = _cycle("C", 3)
    np.testing.assert_allclose(records[-1].time_s, expected["Time [s]"], rtol=1e-12)
    np.testing.assert_allclose(records[-1].voltage_v, expected["Voltage [V]"], rtol=1e-12)
    assert records[-1].current_a == pytest.approx(5.0, rel=1e-12)
    assert records[-1].c_rate == pytest.approx(1.0, rel=1e-12)


def test_parquet_reads_like_csv(tmp_path: Path):
    path = tmp_path / "data.parquet"
    _table().to_parquet(path)
    records, skipped = load_cycles(path, SohSettings(), **LIMITS)
    assert skipped == [] and _keys(records) == ALL
    np.testing.assert_array_equal(records[4].voltage_v, _cycle("B", 2)["Voltage [V]"])


def test_a_folder_of_files_with_cell_and_cycle_columns(tmp_path: Path):
    # One file per cell holding several cycles, one Parquet file per cycle: both carry the columns,
    # so their names need not say anything.
    for cell in ("A", "B"):
        _csv(tmp_path, pd.concat([_cycle(cell, c) for c in CYCLES]), f"{cell.lower()}.csv")
    for cycle in CYCLES:
        _cycle("C", cycle).to_parquet(tmp_path / f"export {cycle}.parquet")
    (tmp_path / "notes.txt").write_text("not data")
    records, skipped = load_cycles(tmp_path, SohSettings(), **LIMITS)
    assert skipped == [] and _keys(records) == ALL
    np.testing.assert_array_equal(records[7].time_s, _cycle("C", 2)["Time [s]"])


def test_a_folder_of_files_named_by_cell_and_cycle(tmp_path: Path):
    names = {"A_cycle1.csv": ("A", 1), "A-CYCLE-2.parquet": ("A", 2), "cell_3_cycle10.csv": ("C", 10)}
    for name, (cell, cycle) in names.items():
        frame = _cycle(cell, cycle % 4).drop(columns=["Cell", "Cycle"])
        if name.endswith(".csv"):
            _csv(tmp_path, frame, name)
        else:
            frame.to_parquet(tmp_path / name)
    (tmp_path / "._A_cycle1.csv").write_bytes(b"\x00\x05macOS resource fork")  # ignored: a dot file
    records, skipped = load_cycles(tmp_path, SohSettings(), **LIMITS)
    assert skipped == []
    assert _keys(records) == [("A", 1), ("A", 2), ("cell_3", 10)]
    np.testing.assert_array_equal(records[2].voltage_v, _cycle("C", 2)["Voltage [V]"])


def test_soh_settings_select_cells_and_cycles(tmp_path: Path):
    path = _csv(tmp_path, _table())
    records, _ = load_cycles(path, SohSettings(cells=("C", "A"), cycles=(3, 1)), **LIMITS)
    assert _keys(records) == [("A", 1), ("A", 3), ("C", 1), ("C", 3)]
    records, _ = load_cycles(path, SohSettings(cycles=(2,)), **LIMITS)
    assert _keys(records) == [("A", 2), ("B", 2), ("C", 2)]


def test_numbered_cells_read_back_as_strings(tmp_path: Path):
    frame = _table()
    frame["Cell"] = frame["Cell"].map({"A": 1, "B": 2, "C": 30})
    records, _ = load_cycles(_csv(tmp_path, frame), SohSettings(cells=("30", "1")), **LIMITS)
    assert _keys(records) == [("1", 1), ("1", 2), ("1", 3), ("30", 1), ("30", 2), ("30", 3)]


# --- skipped cycles --------------------------------------------------------------------------------


def _at(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})  # room for a string
        frame.iloc[row, frame.columns.get_loc(column)] = value
        return frame

    return corrupt


def _scaled(column: str, factor: float, shift: float = 0.0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{column: frame[column] * factor + shift})

    return corrupt


# (corruption of cell A cycle 2, the reason, what the file line the reason names must hold or None)
SKIPS = {
    "nan voltage": (
        _at(10, "Voltage [V]", np.nan),
        r"non-finite value: data\.csv row \d+, column 'Voltage \[V\]': found nan, expected a finite number",
        "A,2,600.0,5.0,\n",
    ),
    "text current": (
        _at(7, "Current [A]", "oops"),
        r"non-finite value: data\.csv row \d+, column 'Current \[A\]': found 'oops', expected a finite",
        "A,2,420.0,oops,",
    ),
    "inf time": (
        _at(5, "Time [s]", np.inf),
        r"non-finite value: data\.csv row \d+, column 'Time \[s\]': found inf, expected a finite number",
        "A,2,inf,",
    ),
    "duplicate time": (
        _at(20, "Time [s]", 1140.0),
        (
            r"time not increasing: data\.csv row \d+, column 'Time \[s\]': "
            r"duplicate time 1140 s after 1140 s, expected strictly increasing times"
        ),
        "A,2,1140.0,5.0,3.853",
    ),
    "time backwards": (
        _at(20, "Time [s]", 1000.0),
        r"time not increasing: .* time goes backwards at 1000 s after 1140 s, expected strictly increasing",
        "A,2,1000.0,",
    ),
    "negative start": (
        _scaled("Time [s]", 1.0, -30.0),
        r"negative start time: data\.csv row \d+, column 'Time \[s\]': first time -30 s, expected >= 0 s",
        "A,2,-30.0,",
    ),
    "too few samples": (
        lambda frame: frame.iloc[:5],
        r"^too few samples: found 5, expected at least 10$",
        None,
    ),
    "charge step": (
        _at(30, "Current [A]", -5.0),
        r"not a discharge: data\.csv row \d+, column 'Current \[A\]': current -5 A, expected a positive",
        "A,2,1800.0,-5.0,",
    ),
    "rest step": (
        _at(49, "Current [A]", 0.0),
        r"not a discharge: .*: current 0 A, expected a positive current throughout \(a charge or rest step",
        "A,2,2940.0,0.0,",
    ),
    "current step": (
        _at(25, "Current [A]", 5.5),
        (
            r"current not constant: data\.csv row \d+, column 'Current \[A\]': "
            r"5\.5 A is 10\.0% from the median 5 A, expected within 2%"
        ),
        "A,2,1500.0,5.5,",
    ),
    "3C": (
        _scaled("Current [A]", 3.0),
        r"^C-rate out of range: found 3 \(median current 15 A / 5 Ah\), expected within \[0\.5, 2\]$",
        None,
    ),
    "0.4C": (
        _scaled("Current [A]", 0.4),
        r"^C-rate out of range: found 0\.4 \(median current 2 A / 5 Ah\), expected within \[0\.5, 2\]$",
        None,
    ),
    "too long at 1C": (
        _scaled("Time [s]", 2.0),
        (
            r"^beyond the surrogate's time domain: last time 5880 s, expected at most 5400 s "
            r"\(1\.5 h at 1C, divided by the C-rate 1\)$"
        ),
        None,
    ),
    "too long at 1.5C": (  # 3675 s fits 1C's 5400 s but not 1.5C's 3600 s
        lambda frame: frame.assign(**{"Current [A]": 7.5, "Time [s]": frame["Time [s]"] * 1.25}),
        r"^beyond the surrogate's time domain: last time 3675 s, expected at most 3600 s .*C-rate 1\.5\)$",
        None,
    ),
    "voltage too high": (
        _at(40, "Voltage [V]", 5.5),
        (
            r"voltage out of range: data\.csv row \d+, column 'Voltage \[V\]': found 5\.5 V, "
            r"expected within \[0, 5\] V$"
        ),
        "A,2,2400.0,5.0,5.5",
    ),
    "voltage negative": (
        _at(3, "Voltage [V]", -0.1),
        r"voltage out of range: .* found -0\.1 V, expected within \[0, 5\] V$",
        "A,2,180.0,5.0,-0.1",
    ),
}


@pytest.mark.parametrize("case", SKIPS)
def test_a_bad_cycle_is_skipped_with_its_reason_and_the_others_load(tmp_path: Path, case: str):
    corrupt, reason, line = SKIPS[case]
    path = _csv(tmp_path, _table(corrupt))
    records, skipped = load_cycles(path, SohSettings(), **LIMITS)
    assert _keys(records) == [key for key in ALL if key != ("A", 2)]
    assert _keys(skipped) == [("A", 2)]
    assert re.search(reason, skipped[0].reason), skipped[0].reason
    assert "\n" not in skipped[0].reason
    if line is not None:  # the row named is the file line that holds the bad value
        assert _line(path, skipped[0].reason).startswith(line.rstrip("\n"))


def test_a_current_within_two_percent_is_constant(tmp_path: Path):
    noisy = np.where(np.arange(POINTS) % 3 == 0, 5.07, 4.98)  # 1.8 % above the median (4.98 A)
    records, skipped = load_cycles(
        _csv(tmp_path, _table(lambda frame: frame.assign(**{"Current [A]": noisy}))), SohSettings(), **LIMITS
    )
    assert skipped == [] and len(records) == len(ALL)
    # The mean of the readings, not the median (4.98 A) the checks use.
    assert records[1].current_a == pytest.approx(noisy.mean(), rel=1e-12) and noisy.mean() > 5.0
    assert records[1].c_rate == pytest.approx(noisy.mean() / 5.0, rel=1e-12)
    se = np.std(noisy, ddof=1) / np.sqrt(POINTS) / 5.0
    assert records[1].c_rate_se == pytest.approx(se, rel=1e-12) and se > 0


def test_only_selected_cycles_are_checked(tmp_path: Path):
    path = _csv(tmp_path, _table(_scaled("Current [A]", 3.0)))
    records, skipped = load_cycles(path, SohSettings(cells=("B",)), **LIMITS)
    assert skipped == [] and _keys(records) == [("B", c) for c in CYCLES]


# --- refused files -----------------------------------------------------------------------------------


def _refused(path: Path, settings: SohSettings = DEFAULTS) -> str:
    with pytest.raises(UserError) as err:
        load_cycles(path, settings, **LIMITS)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_missing_file_or_folder(tmp_path: Path):
    path = tmp_path / "nowhere.csv"
    assert (
        _refused(path)
        == f"{path}: file or folder not found, expected a CSV or Parquet file or a folder of them"
    )


def test_a_folder_without_data_files(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("not data")
    assert _refused(tmp_path) == (
        f"{tmp_path}: no *.csv or *.parquet file in this folder, expected one file per cycle"
    )


def test_a_missing_measurement_column_lists_the_columns_found(tmp_path: Path):
    path = _csv(tmp_path, _table().drop(columns="Voltage [V]"))
    assert _refused(path) == (
        f"{path}: missing column 'Voltage [V]' (found: Cell, Cycle, Time [s], Current [A])"
    )


def test_an_unknown_unit_is_refused(tmp_path: Path):
    path = _csv(tmp_path, _table().rename(columns={"Voltage [V]": "Voltage [kV]"}))
    assert _refused(path).startswith(f"{path}: column 'Voltage [kV]': unit 'kV' is not known")


def test_a_table_without_a_cycle_column(tmp_path: Path):
    path = _csv(tmp_path, _table().drop(columns="Cycle"))
    message = _refused(path)
    assert message.startswith(
        f"{path}: missing column 'Cycle' (found: Cell, Time [s], Current [A], Voltage [V])"
    )
    assert "or a file name like <cell>_cycle<N>.csv" in message


def test_a_folder_file_without_columns_or_a_cycle_name(tmp_path: Path):
    _csv(tmp_path, _cycle("A", 1), "A_cycle1.csv")
    bad = _csv(tmp_path, _cycle("A", 2).drop(columns=["Cell", "Cycle"]), "A_second.csv")
    assert _refused(tmp_path).startswith(
        f"{bad}: missing column 'Cell' (found: Time [s], Current [A], Voltage [V])"
    )


@pytest.mark.parametrize("value, found", [("two", "'two'"), ("2.5", "2.5")])
def test_a_cycle_that_is_not_an_integer_is_reported_at_its_line(tmp_path: Path, value: str, found: str):
    frame = _table().astype({"Cycle": object})
    frame.iloc[77, frame.columns.get_loc("Cycle")] = value
    path = _csv(tmp_path, frame)
    message = _refused(path)
    assert message == f"{path}: column 'Cycle' row 79: found {found}, expected an integer"
    assert _line(path, message).startswith(f"{frame['Cell'][77]},{value},")


def test_a_cycle_in_two_files_is_refused(tmp_path: Path):
    _csv(tmp_path, _cycle("A", 1), "A_cycle1.csv")
    second = _csv(tmp_path, _cycle("A", 1), "b.csv")
    assert _refused(tmp_path) == (
        f"{second}: cell 'A' cycle 1 is also in A_cycle1.csv, expected each cycle in one file"
    )


def test_a_selected_cell_not_in_the_data(tmp_path: Path):
    path = _csv(tmp_path, _table())
    assert _refused(path, SohSettings(cells=("A", "Z"))) == (
        f"{path}: [soh] cells: 'Z' is not in the data, expected one of A, B, C"
    )


def test_a_selected_cycle_not_in_the_data(tmp_path: Path):
    path = _csv(tmp_path, _table()[lambda f: f["Cycle"] != 2])
    assert _refused(path, SohSettings(cycles=(1, 2))) == (
        f"{path}: [soh] cycles: 2 is not in the data, expected one of 1, 3"
    )
    path = _csv(tmp_path, _table())
    assert _refused(path, SohSettings(cells=("B",), cycles=(9,))) == (
        f"{path}: [soh] cycles: 9 is not in the data of the selected cells, expected one of 1-3"
    )


def test_no_usable_cycle_says_how_many_were_skipped_and_why(tmp_path: Path):
    path = _csv(tmp_path, _table(A=15.0, B=15.0, C=15.0))
    message = _refused(path)
    assert message.startswith(
        f"{path}: no usable cycle, expected at least one: 9 skipped, the first (cell 'A' cycle 1): "
        "C-rate out of range: found 3 (median current 15 A / 5 Ah)"
    )


# --- the [soh] table -------------------------------------------------------------------------------

STUDY = """{top}
[surrogate]
name = "battery.spm"

[data]
path = "data.csv"

[parameters.positive_diffusivity_scale]
prior = "loguniform"
lower = 0.1
upper = 10.0
{soh}"""


def _study(tmp_path: Path, soh: str = "", top: str = ""):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(top=top, soh=f"\n[soh]\n{soh}\n" if soh else ""))
    return load_study(path)


def test_a_study_without_a_soh_table_gets_the_defaults(tmp_path: Path):
    settings = soh_settings(_study(tmp_path))
    assert settings == SohSettings()
    assert settings == SohSettings(None, None, 30, 0.8, 1.0, 0.01, ("capacity", "soh"))


def test_the_soh_table_is_parsed(tmp_path: Path):
    study = _study(
        tmp_path,
        'cells = [1, "B"]\ncycles = [3, 1]\nbatch_size = 8\nsoh_threshold = 0.7\n'
        'reference_c_rate = 1\nalarm_p = 0.05\nindicators = ["soh"]',
    )
    assert soh_settings(study) == SohSettings(
        cells=("1", "B"),
        cycles=(3, 1),
        batch_size=8,
        soh_threshold=0.7,
        reference_c_rate=1.0,
        alarm_p=0.05,
        indicators=("soh",),
    )


def test_the_study_drives_the_selection(tmp_path: Path):
    _csv(tmp_path, _table())
    study = _study(tmp_path, 'cells = ["B"]\ncycles = [2, 3]')
    records, _ = load_cycles(study.data_path, soh_settings(study), **LIMITS)
    assert _keys(records) == [("B", 2), ("B", 3)]


@pytest.mark.parametrize(
    "line, message",
    [
        ("batch = 4", "[soh] batch: unknown key, expected one of cells, cycles, batch_size, soh_threshold"),
        ('cells = "A"', "[soh] cells: found 'A', expected a non-empty list of cell names"),
        ("cells = []", "[soh] cells: found [], expected a non-empty list of cell names"),
        ("cells = [1.5]", "[soh] cells: found [1.5], expected a non-empty list of cell names"),
        (
            "cycles = [1, 2.5]",
            "[soh] cycles: found [1, 2.5], expected a non-empty list of integer cycle numbers",
        ),
        ("cycles = [true]", "[soh] cycles: found [True], expected a non-empty list of integer cycle numbers"),
        ("batch_size = 0", "[soh] batch_size: found 0, expected a positive integer"),
        ("batch_size = 1.5", "[soh] batch_size: found 1.5, expected a positive integer"),
        (
            "soh_threshold = 1",
            "[soh] soh_threshold: found 1.0, expected a number between 0 and 1 (exclusive)",
        ),
        ('soh_threshold = "80%"', "[soh] soh_threshold: found '80%', expected a number"),
        ("reference_c_rate = 0", "[soh] reference_c_rate: found 0.0, expected a number above 0"),
        ("alarm_p = 0.5", "[soh] alarm_p: found 0.5, expected a number between 0 and 0.5 (exclusive)"),
        ("alarm_p = nan", "[soh] alarm_p: found nan, expected a finite number"),
        (
            'indicators = ["voltage"]',
            "[soh] indicators: found ['voltage'], expected a non-empty list of 'capacity', 'soh'",
        ),
        ('indicators = ["soh", "soh"]', "[soh] indicators: found ['soh', 'soh'], expected a non-empty list"),
    ],
)
def test_a_bad_soh_key_is_refused(tmp_path: Path, line: str, message: str):
    study = _study(tmp_path, line)
    with pytest.raises(UserError) as err:
        soh_settings(study)
    assert str(err.value).startswith(f"{study.path}: {message}")


def test_a_soh_key_that_is_not_a_table(tmp_path: Path):
    study = _study(tmp_path, top="soh = 3")
    with pytest.raises(UserError, match=re.escape(f"{study.path}: [soh]: found 3, expected a table")):
        soh_settings(study)


def test_a_missing_cell_name_is_reported_at_its_line(tmp_path: Path):
    frame = _table().astype({"Cell": object})
    frame.iloc[12, frame.columns.get_loc("Cell")] = None
    path = _csv(tmp_path, frame)
    assert _refused(path) == f"{path}: column 'Cell' row 14: found nan, expected a cell name"
    assert _line(path, _refused(path)).startswith(",3,")
