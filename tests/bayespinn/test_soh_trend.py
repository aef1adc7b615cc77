"""Knee alarm on a per-cycle parameter trend: detection, false-alarm rate, over-dispersion, WLS algebra."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from bayespinn.soh_trend import _hinge_wls, _statistic, trend_break

CYCLES = np.arange(1.0, 31.0)


def _knee(cycles: np.ndarray, sd: np.ndarray, seed: int) -> np.ndarray:
    # Slope −0.005 per cycle, −0.03 per cycle from cycle 20 on (break k = 19), noise drawn with sd.
    line = 1.0 - 0.005 * cycles - 0.025 * np.maximum(cycles - 19.0, 0.0)
    return line + sd * np.random.default_rng(seed).standard_normal(cycles.size)


def test_clear_knee_alarms_at_the_right_cycle():
    sd = np.full(CYCLES.size, 0.01)
    result = trend_break(CYCLES, _knee(CYCLES, sd, seed=1), sd)
    assert result["tested"] and result["reason"] == ""
    assert result["alarm"] and result["p_value"] < 0.01
    assert abs(result["cycle"] - 20) <= 2
    # se of the slopes ≈ 0.01/√Σ(c − c̄)²: 4e-4 over 19 cycles before, 1e-3 over 11 after; 3e-3 is ~3 se.
    assert result["slope_before"] == pytest.approx(-0.005, abs=3e-3)
    assert result["slope_after"] == pytest.approx(-0.03, abs=3e-3)


def test_false_alarm_rate_on_straight_lines():
    n_series, alarm_p = 200, 0.05
    # 99.9 % binomial interval of the alarm count at a true rate of 5 %: [2, 21] of 200.
    low, high = binom.interval(0.999, n_series, alarm_p)
    alarms = 0
    for seed in range(n_series):
        rng = np.random.default_rng(1000 + seed)
        sd = rng.uniform(0.005, 0.02, CYCLES.size)  # unequal sds, so the weights matter
        mean = 0.5 - 0.004 * CYCLES + sd * rng.standard_normal(CYCLES.size)
        alarms += trend_break(CYCLES, mean, sd, alarm_p=alarm_p, n_null=500, seed=seed)["alarm"]
    assert low <= alarms <= high, f"{alarms} false alarms of {n_series}, expected {low:.0f}–{high:.0f}"


def test_over_dispersion_is_absorbed_by_tau():
    sd = np.full(CYCLES.size, 0.01)
    # A straight line whose scatter is 3× the stated sds: τ² = 8·sd², τ ≈ 0.028.
    mean = 0.5 - 0.004 * CYCLES + 3 * sd * np.random.default_rng(7).standard_normal(CYCLES.size)
    result = trend_break(CYCLES, mean, sd)
    assert 0.01 < result["tau"] < 0.05
    assert not result["alarm"] and result["p_value"] > 0.05
    # The naive test trusts the sds (τ = 0): its null distribution is T of N(0, sd²) series.
    z_naive = _statistic(CYCLES, mean, sd**2)[0][0]
    noise = sd * np.random.default_rng(8).standard_normal((2000, CYCLES.size))
    p_naive = (1 + np.sum(_statistic(CYCLES, noise, sd**2)[0] >= z_naive)) / 2001
    assert p_naive <= 0.01  # the naive test would alarm


def test_hinge_wls_matches_lstsq_and_is_exact_without_noise():
    cycles = np.array([2.0, 3, 5, 6, 7, 9, 10, 11, 14, 15])  # gaps on purpose
    var = np.linspace(1.0, 3.0, cycles.size) * 1e-4
    exact = 1.0 - 0.01 * cycles - 0.04 * np.maximum(cycles - 7.0, 0.0)
    noisy = exact + np.sqrt(var) * np.random.default_rng(3).standard_normal(cycles.size)
    y, var2 = np.vstack([exact, noisy]), np.vstack([var, 2 * var])  # per-series variances too
    g, se, b = _hinge_wls(cycles, y, var2, min_segment=2)
    knots = cycles[1:-2]  # at least 2 cycles each side, the break itself on the left
    assert g.shape == (2, knots.size)
    for row in range(2):
        w = 1.0 / var2[row]
        for j, knot in enumerate(knots):
            design = np.column_stack([np.ones_like(cycles), cycles, np.maximum(cycles - knot, 0.0)])
            coef = np.linalg.lstsq(np.sqrt(w)[:, None] * design, np.sqrt(w) * y[row], rcond=None)[0]
            cov = np.linalg.inv(design.T @ (w[:, None] * design))
            assert g[row, j] == pytest.approx(coef[2], abs=1e-10)
            assert b[row, j] == pytest.approx(coef[1], abs=1e-10)
            assert se[row, j] == pytest.approx(math.sqrt(cov[2, 2]), rel=1e-10)
    true_knot = list(knots).index(7.0)
    assert g[0, true_knot] == pytest.approx(-0.04, abs=1e-10)
    assert b[0, true_knot] == pytest.approx(-0.01, abs=1e-10)


def test_too_few_cycles_are_not_tested():
    result = trend_break(CYCLES[:8], np.zeros(8), np.ones(8))
    assert not result["tested"] and not result["alarm"]
    assert "8 cycles found" in result["reason"] and "9 needed" in result["reason"]
    for key in ("p_value", "z", "cycle", "slope_before", "slope_after", "tau"):
        assert math.isnan(result[key])
    assert trend_break(CYCLES[:9], np.zeros(9), np.ones(9), n_null=200, alarm_p=0.05)["tested"]


def test_gaps_and_order_do_not_matter():
    # Cycles 101–140 with a knee at 126 (the shape of _knee, shifted) and ten skipped for bad data.
    rng = np.random.default_rng(4)
    cycles = np.sort(rng.choice(np.arange(101.0, 141.0), 30, replace=False))
    sd = rng.uniform(0.008, 0.012, cycles.size)
    mean = _knee(cycles - 106.0, sd, seed=5)
    result = trend_break(cycles, mean, sd, n_null=500)
    assert result["alarm"] and result["cycle"] in cycles
    assert abs(result["cycle"] - 126) <= 2
    shuffle = rng.permutation(cycles.size)
    assert trend_break(cycles[shuffle], mean[shuffle], sd[shuffle], n_null=500) == result


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("sd", np.full(29, 0.01), "sd has 29 values"),
        ("mean", np.r_[np.nan, np.zeros(29)], "mean has non-finite"),
        ("cycles", np.r_[np.inf, CYCLES[1:]], "cycles has non-finite"),
        ("sd", np.r_[0.0, np.full(29, 0.01)], "sd must be > 0"),
        ("sd", np.r_[-0.01, np.full(29, 0.01)], "sd must be > 0"),
        ("cycles", np.r_[CYCLES[:-1], 1.0], "cycles must be distinct"),
        ("cycles", CYCLES + 0.5, "cycles must be whole"),
        ("mean", np.zeros((30, 1)), "mean must be one-dimensional"),
    ],
)
def test_bad_input_names_the_argument(field, value, match):
    args = {"cycles": CYCLES, "mean": np.zeros(30), "sd": np.full(30, 0.01)} | {field: value}
    with pytest.raises(ValueError, match=match):
        trend_break(**args)


@pytest.mark.parametrize(
    ("settings", "match"),
    [({"min_segment": 1}, "min_segment"), ({"n_null": 50}, "raise n_null"), ({"alarm_p": 1.5}, "alarm_p")],
)
def test_bad_settings_raise(settings, match):
    with pytest.raises(ValueError, match=match):
        trend_break(CYCLES, np.zeros(30), np.full(30, 0.01), **settings)
