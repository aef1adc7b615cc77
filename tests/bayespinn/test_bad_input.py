"""Bad input through the CLI: exit 2, one line naming the file and the key or column, nothing written.

Each test starts from a valid study and data set (checked by the positive controls below) and
breaks exactly one thing, so the error can only come from that one thing.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayespinn import pipeline
from bayespinn.cli import main
from bayespinn.pipeline import prepare
from bayespinn.simulate import simulate
from bayespinn.study import load_study
from surrogates import registry
from surrogates.pinn.card import read_card, sha256_of
from surrogates.power.smib_models import SmibSurrogate
from surrogates.power.smib_pinn import WEIGHTS

ANGLE = "Angle [rad]"
FREQ = "Frequency deviation [rad.s-1]"
TIME = "Time [s]"
DEMO = {"m": 0.4, "d": 0.15, "B": 0.2, "P": 0.1, "delta0": 0.1, "omega0": 0.1}
TIMES_S = np.linspace(0.0, 20.0, 41)

STUDY = """\
[surrogate]
name = "power.smib"

[data]
path = "data.csv"
observables = ["Angle [rad]", "Frequency deviation [rad.s-1]"]

[conditions]
B = 0.2
P = 0.1
delta0 = 0.1
omega0 = 0.1

[parameters.m]
prior = "loguniform"
lower = 0.1
upper = 1.0

[parameters.d]
prior = "uniform"
lower = 0.05
upper = 0.5

[noise]
sigma = "infer"

[inference]
engine = "nuts"
chains = 4
warmup = 500
samples = 500
seed = 0

[truth]
m = 0.4
d = 0.15

[output]
dir = "run"
"""


@pytest.fixture(autouse=True)
def _restore_xla_flags(monkeypatch):
    # `bayespinn calibrate` sets XLA_FLAGS for its chains; keep that from leaking into other tests.
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


@pytest.fixture(autouse=True)
def _no_sampling(monkeypatch):
    # Bad input must stop before the engine; should a check regress, fail at once instead of running NUTS.
    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached sampling: a check let it through")

    monkeypatch.setattr(pipeline, "sample", refuse)


@pytest.fixture
def frame() -> pd.DataFrame:
    return simulate("power.smib", DEMO, TIMES_S, noise=0.01, seed=0)


@pytest.fixture
def study_path(tmp_path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(tmp_path / "data.csv", index=False)
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


def _data_path(study_path: Path) -> Path:
    return study_path.parent / "data.csv"


def _edit_study(study_path: Path, old: str, new: str) -> None:
    text = study_path.read_text()
    assert text.count(old) == 1, f"the baseline study should hold {old!r} exactly once"
    study_path.write_text(text.replace(old, new))


def _write_csv(study_path: Path, frame: pd.DataFrame) -> Path:
    path = _data_path(study_path)
    frame.to_csv(path, index=False)
    return path


def _assert_nothing_written(study_path: Path) -> None:
    out = study_path.parent / "run"
    assert not out.exists()
    assert not list(out.parent.glob(".run.*")), "a temporary run directory was left behind"


def _calibrate_fails(study_path: Path, capsys, *needles: str) -> str:
    """Run ``bayespinn calibrate``; check the bad-input contract and that each needle is named."""
    rc = main(["calibrate", str(study_path)])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2, captured.err
    assert len(lines) == 1, captured.err
    line = lines[0]
    assert line.startswith("bayespinn: error: ") and line.removeprefix("bayespinn: error: ").strip()
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    _assert_nothing_written(study_path)
    return line


# --- positive controls: the baseline passes every check, so each failure below is the mutation's ---


def test_baseline_passes_validation(study_path: Path, frame: pd.DataFrame):
    prep = prepare(load_study(study_path))
    np.testing.assert_array_equal(prep.data.time_s, TIMES_S)
    assert tuple(prep.data.values) == (ANGLE, FREQ)
    np.testing.assert_allclose(prep.data.values[ANGLE], frame[ANGLE].to_numpy(), rtol=1e-12)
    assert set(prep.spec.priors) == {"m", "d"}
    _assert_nothing_written(study_path)


def test_minutes_and_degrees_are_converted_not_rejected(study_path: Path, frame: pd.DataFrame):
    converted = pd.DataFrame(
        {
            "Time [min]": frame[TIME] / 60.0,
            "Angle [deg]": np.degrees(frame[ANGLE]),
            "Frequency deviation [deg.s-1]": np.degrees(frame[FREQ]),
        }
    )
    _write_csv(study_path, converted)
    prep = prepare(load_study(study_path))
    np.testing.assert_allclose(prep.data.time_s, TIMES_S, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prep.data.values[ANGLE], frame[ANGLE].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(prep.data.values[FREQ], frame[FREQ].to_numpy(), rtol=1e-12)


# --- the data file ---


def test_missing_csv(study_path: Path, capsys):
    path = _data_path(study_path)
    path.unlink()
    _calibrate_fails(study_path, capsys, str(path), "not found")


@pytest.mark.parametrize(
    "content, needle",
    [
        ("", "empty"),
        (f"{TIME},{ANGLE},{FREQ}\n", "no data rows"),
    ],
    ids=["zero-bytes", "header-only"],
)
def test_empty_csv(study_path: Path, capsys, content: str, needle: str):
    path = _data_path(study_path)
    path.write_text(content)
    _calibrate_fails(study_path, capsys, str(path), needle)


def test_missing_column(study_path: Path, capsys, frame: pd.DataFrame):
    path = _write_csv(study_path, frame.drop(columns=[ANGLE]))
    _calibrate_fails(study_path, capsys, str(path), f"missing column {ANGLE!r}")


@pytest.mark.parametrize("bad", ["nan", "", "inf", "abc"], ids=["nan", "blank", "inf", "string"])
def test_non_finite_or_non_numeric_value(study_path: Path, capsys, frame: pd.DataFrame, bad: str):
    values = frame.astype(object)
    values.loc[7, ANGLE] = bad  # data row 7 counting from 0 is line 9 of the file (header is line 1)
    path = _write_csv(study_path, values)
    line = _calibrate_fails(study_path, capsys, str(path), repr(ANGLE), "row 9", "finite number")
    if bad == "abc":
        assert "'abc'" in line


def test_time_going_backwards(study_path: Path, capsys, frame: pd.DataFrame):
    swapped = frame.copy()
    swapped.loc[[10, 11], TIME] = frame.loc[[11, 10], TIME].to_numpy()
    path = _write_csv(study_path, swapped)
    _calibrate_fails(study_path, capsys, str(path), repr(TIME), "row 13", "backwards", "5 s after 5.5 s")


def test_duplicate_time(study_path: Path, capsys, frame: pd.DataFrame):
    dup = frame.copy()
    dup.loc[11, TIME] = dup.loc[10, TIME]
    path = _write_csv(study_path, dup)
    _calibrate_fails(study_path, capsys, str(path), repr(TIME), "row 13", "duplicate time 5 s")


def test_unknown_unit(study_path: Path, capsys, frame: pd.DataFrame):
    path = _write_csv(study_path, frame.rename(columns={ANGLE: "Angle [furlong]"}))
    line = _calibrate_fails(study_path, capsys, str(path), "'Angle [furlong]'", "'furlong'")
    assert "rad, deg" in line  # the units it would have accepted


def test_time_outside_trained_domain(study_path: Path, capsys):
    long = simulate("power.smib", DEMO, np.linspace(0.0, 25.0, 51), noise=0.01, seed=0)
    path = _write_csv(study_path, long)
    _calibrate_fails(study_path, capsys, str(path), repr(TIME), "[0, 25] s", "within [0, 20] s")


# --- the study file and its model ---


def test_unknown_surrogate(study_path: Path, capsys):
    _edit_study(study_path, 'name = "power.smib"', 'name = "power.smb"')
    _calibrate_fails(study_path, capsys, str(study_path), "[surrogate] name", "'power.smb'", "power.smib")


def test_unknown_parameter(study_path: Path, capsys):
    _edit_study(
        study_path, "[noise]", '[parameters.x]\nprior = "uniform"\nlower = 0.0\nupper = 1.0\n\n[noise]'
    )
    _calibrate_fails(study_path, capsys, str(study_path), "[parameters.x]", "expected one of m, d")


def test_prior_outside_trained_domain(study_path: Path, capsys):
    _edit_study(study_path, 'prior = "loguniform"\nlower = 0.1', 'prior = "uniform"\nlower = 0.05')
    _calibrate_fails(study_path, capsys, str(study_path), "[parameters.m]", "[0.05, 1]", "within [0.1, 1]")


def test_prior_outside_domain_rescaled_to_b(study_path: Path, capsys):
    # At B = 0.1 the trained box is m in [0.05, 0.5] and P in [0.025, 0.075]; P = 0.05 keeps the
    # conditions inside it, so only the prior on m, [0.1, 1], is outside.
    _edit_study(study_path, "B = 0.2\nP = 0.1", "B = 0.1\nP = 0.05")
    _calibrate_fails(study_path, capsys, str(study_path), "[parameters.m]", "[0.1, 1]", "within [0.05, 0.5]")


def test_condition_outside_trained_domain(study_path: Path, capsys):
    _edit_study(study_path, "P = 0.1", "P = 0.3")
    _calibrate_fails(study_path, capsys, str(study_path), "[conditions] P", "0.3", "[0.05, 0.15]")


@pytest.mark.parametrize("b", ["0.0", "-0.2"])
def test_non_positive_b(study_path: Path, capsys, b: str):
    _edit_study(study_path, "B = 0.2", f"B = {b}")
    _calibrate_fails(study_path, capsys, str(study_path), "[conditions] B", "positive")


def test_input_neither_inferred_nor_given(study_path: Path, capsys):
    _edit_study(study_path, "P = 0.1\n", "")
    _calibrate_fails(study_path, capsys, str(study_path), " P: neither inferred nor given", "[parameters.P]")


def test_malformed_toml(study_path: Path, capsys):
    _edit_study(study_path, "chains = 4", "chains = = 4")
    line_no = study_path.read_text().splitlines().index("chains = = 4") + 1
    _calibrate_fails(study_path, capsys, str(study_path), "malformed TOML", f"line {line_no}")


def _copy_shipped_weights(folder: Path) -> Path:
    """A consistent copy of the shipped weights and card (they may be replaced while we copy)."""
    folder.mkdir()
    copy = folder / "smib.safetensors"
    for _ in range(10):
        shutil.copyfile(WEIGHTS, copy)
        shutil.copyfile(WEIGHTS.with_suffix(".json"), copy.with_suffix(".json"))
        if sha256_of(copy) == read_card(copy)["sha256"]:
            return copy
        time.sleep(1.0)
    pytest.fail("the shipped weights never matched their card while copying")


def test_weights_hash_mismatch(study_path: Path, capsys, tmp_path: Path, monkeypatch):
    copy = _copy_shipped_weights(tmp_path / "weights")
    SmibSurrogate(copy)  # the intact copy loads: the failure below is the flipped byte's
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # the last byte is tensor data, so only the hash can notice
    copy.write_bytes(bytes(data))
    monkeypatch.setitem(registry._LOADERS, "power.smib", lambda: SmibSurrogate(copy))
    _calibrate_fails(study_path, capsys, str(copy), "sha256", "does not match")


def test_missing_study_file(tmp_path: Path, capsys):
    path = tmp_path / "nope.toml"
    rc = main(["calibrate", str(path)])
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and len(err) == 1 and str(path) in err[0] and "not found" in err[0]


# --- simulate ---


@pytest.mark.parametrize("item", ["m0.4", "m=abc", "m=", "m=0.4=1"])
def test_simulate_malformed_assignment(tmp_path: Path, capsys, item: str):
    out = tmp_path / "sim" / "data.csv"
    values = ["d=0.15", "B=0.2", "P=0.1", "delta0=0.1", "omega0=0.1", item]
    rc = main(["simulate", "power.smib", *values, "--out", str(out)])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert repr(item) in lines[0] and "NAME=NUMBER" in lines[0]
    assert not out.parent.exists()
