"""Synthetic measurements: the reference solver's numbers, seeded noise of the stated size, the CLI's CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayespinn.cli import main
from bayespinn.errors import UserError
from bayespinn.simulate import parse_assignments, simulate, simulate_csv
from surrogates.power.smib_reference import solve

ANGLE = "Angle [rad]"
FREQ = "Frequency deviation [rad.s-1]"
VALUES = {"m": 0.4, "d": 0.15, "B": 0.2, "P": 0.1, "delta0": 0.1, "omega0": 0.1}


def test_without_noise_it_is_the_reference_solution():
    t = np.linspace(0.0, 20.0, 201)
    frame = simulate("power.smib", VALUES, t)
    reference = solve(t, **VALUES)
    assert list(frame.columns) == ["Time [s]", ANGLE, FREQ]
    np.testing.assert_array_equal(frame["Time [s]"].to_numpy(), t)
    np.testing.assert_array_equal(frame[ANGLE].to_numpy(), reference[ANGLE])
    np.testing.assert_array_equal(frame[FREQ].to_numpy(), reference[FREQ])
    assert np.ptp(reference[ANGLE]) > 0.1  # a real swing, not a flat line that any code would match


def test_noise_is_the_stated_fraction_of_each_range():
    t = np.linspace(0.0, 20.0, 2001)
    clean = simulate("power.smib", VALUES, t)
    noisy = simulate("power.smib", VALUES, t, noise=0.01, seed=3)
    np.testing.assert_array_equal(noisy["Time [s]"].to_numpy(), t)
    residuals = {}
    for obs in (ANGLE, FREQ):
        expected_sd = 0.01 * np.ptp(clean[obs].to_numpy())
        residuals[obs] = noisy[obs].to_numpy() - clean[obs].to_numpy()
        # The sample sd of n = 2001 Gaussian draws has a relative standard error of 1/sqrt(2(n-1)),
        # about 1.6 %, so 15 % is ~9 standard errors: failing it means a wrong scale (σ not taken
        # from the range, or not per observable), never bad luck.
        assert np.std(residuals[obs], ddof=1) == pytest.approx(expected_sd, rel=0.15)
        # Zero-mean: |mean| beyond 5 standard errors would be a bias, not chance.
        assert abs(residuals[obs].mean()) < 5 * expected_sd / np.sqrt(t.size)
    # The two observables' ranges differ, and their noise draws are independent (|r| ~ 0.02 expected).
    assert abs(np.corrcoef(residuals[ANGLE], residuals[FREQ])[0, 1]) < 0.15


def test_seed_fixes_the_noise():
    t = np.linspace(0.0, 20.0, 51)
    a = simulate("power.smib", VALUES, t, noise=0.01, seed=5)
    b = simulate("power.smib", VALUES, t, noise=0.01, seed=5)
    c = simulate("power.smib", VALUES, t, noise=0.01, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[ANGLE], c[ANGLE])


def test_same_seed_gives_an_identical_csv(tmp_path: Path):
    first = simulate_csv("power.smib", VALUES, tmp_path / "a.csv", points=101, noise=0.01, seed=7)
    second = simulate_csv("power.smib", VALUES, tmp_path / "b.csv", points=101, noise=0.01, seed=7)
    other = simulate_csv("power.smib", VALUES, tmp_path / "c.csv", points=101, noise=0.01, seed=8)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"]  # no temp files left


def test_cli_writes_a_readable_csv(tmp_path: Path, capsys):
    out = tmp_path / "new" / "smib.csv"
    args = [f"{k}={v}" for k, v in VALUES.items()]
    rc = main(["simulate", "power.smib", *args, "--out", str(out), "--points", "51", "--t-end", "10"])
    assert rc == 0
    assert str(out) in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["Time [s]", ANGLE, FREQ]
    assert len(frame) == 51
    t = np.linspace(0.0, 10.0, 51)
    np.testing.assert_allclose(frame["Time [s]"], t, rtol=1e-12)
    reference = solve(t, **VALUES)
    # written with 10 significant figures
    np.testing.assert_allclose(frame[ANGLE], reference[ANGLE], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(frame[FREQ], reference[FREQ], rtol=1e-9, atol=1e-12)


def test_parse_assignments():
    assert parse_assignments(["m=0.4", " d = 1e-1 ", "P=-2"]) == {"m": 0.4, "d": 0.1, "P": -2.0}


@pytest.mark.parametrize(
    "values, needle",
    [
        ({k: v for k, v in VALUES.items() if k != "P"}, "P=..."),
        ({**VALUES, "x": 1.0}, "found m, d, B, P, delta0, omega0, x"),
    ],
)
def test_missing_or_unknown_values_are_named(values: dict, needle: str):
    with pytest.raises(UserError) as err:
        simulate("power.smib", values, np.linspace(0.0, 1.0, 3))
    assert "simulate power.smib" in str(err.value) and needle in str(err.value)


def test_unknown_system():
    with pytest.raises(UserError, match="unknown system 'power.nope'"):
        simulate("power.nope", VALUES, np.linspace(0.0, 1.0, 3))


@pytest.mark.parametrize("points, t_end", [(1, 20.0), (10, 0.0)])
def test_bad_grid_writes_nothing(tmp_path: Path, points: int, t_end: float):
    out = tmp_path / "x" / "data.csv"
    with pytest.raises(UserError, match="expected ≥ 2 points"):
        simulate_csv("power.smib", VALUES, out, t_end_s=t_end, points=points)
    assert not out.parent.exists()
