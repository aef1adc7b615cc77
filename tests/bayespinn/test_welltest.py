"""Bourdet derivative, superposition time, and the report's log-log derivative plot."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import exp1

from bayespinn.report import write_report
from bayespinn.welltest import bourdet_derivative, pressure_change, superposition_time_h
from tests.bayespinn.test_report import _diagnostics, _meta

T = np.geomspace(1e-2, 1e4, 120)
PRESSURE = "Pressure [psi]"


@pytest.mark.parametrize("smoothing", [0.0, 0.2, 0.5])
def test_radial_flow_derivative_is_the_semilog_slope_everywhere(smoothing):
    # Δp = a·ln t + b: every slope, central or one-sided, is a (uneven spacing on purpose).
    t = np.sort(np.random.default_rng(0).uniform(0.01, 100.0, 80))
    np.testing.assert_allclose(bourdet_derivative(t, 12.5 * np.log(t) + 300.0, smoothing), 12.5, atol=1e-12)


def test_noisy_radial_flow_stays_within_the_window_bound():
    # Noise in [-σ, σ] moves each slope by at most 2σ/Δx ≤ 2σ/L, and so their weighted mean too.
    sigma, smoothing = 0.05, 0.2
    noise = np.random.default_rng(1).uniform(-sigma, sigma, (50, T.size))
    deriv = bourdet_derivative(T, 12.5 * np.log(T) + 300.0 + noise, smoothing)
    assert deriv.shape == (50, T.size)
    assert np.max(np.abs(deriv - 12.5)) <= 2 * sigma / smoothing + 1e-12
    assert np.median(np.abs(deriv - 12.5)) < 0.1  # typically far inside the bound (0.5 psi)


def test_line_source_derivative_tends_to_one_half():
    # Δp = ½·E1(1/(4t)): d/d(ln t) = ½·exp(−1/(4t)) → ½.
    deriv = bourdet_derivative(T, 0.5 * exp1(1.0 / (4.0 * T)), 0.2)
    late = T >= 1e3
    assert late.sum() >= 10
    np.testing.assert_allclose(deriv[late], 0.5, atol=1e-3)
    np.testing.assert_allclose(deriv[T > 1.0], 0.5 * np.exp(-1.0 / (4.0 * T[T > 1.0])), rtol=2e-3)


def test_sealing_fault_doubles_the_derivative():
    a, t_fault, smoothing = 7.0, 10.0, 0.2
    dp = np.where(T < t_fault, a * np.log(T), 2 * a * np.log(T) - a * np.log(t_fault))
    deriv = bourdet_derivative(T, dp, smoothing)
    x = np.log(T / t_fault)
    np.testing.assert_allclose(deriv[x < -smoothing - 0.1], a, rtol=1e-12)
    np.testing.assert_allclose(deriv[x > smoothing + 0.1], 2 * a, rtol=1e-12)


def test_bad_times_are_rejected():
    with pytest.raises(ValueError, match="increasing"):
        bourdet_derivative([1.0, 3.0, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        bourdet_derivative([0.0, 1.0], [0.0, 1.0])


def test_superposition_time_limits():
    dt = np.geomspace(0.01, 100.0, 9)
    np.testing.assert_array_equal(superposition_time_h(dt, 0.0), dt)
    np.testing.assert_array_equal(superposition_time_h(dt, np.inf), dt)
    np.testing.assert_allclose(superposition_time_h(dt, 1e12), dt, rtol=1e-9)
    np.testing.assert_allclose(superposition_time_h(dt, 10.0), dt * 10.0 / (10.0 + dt), rtol=1e-15)
    assert superposition_time_h(1e9, 10.0) == pytest.approx(10.0)  # t_e → t_p for a long shut-in


def test_buildup_derivative_in_equivalent_time_is_the_radial_slope():
    # Horner: a buildup in radial flow is p_ws = p_i − m·ln((t_p + Δt)/Δt), i.e. m·ln t_e + const.
    t_p, m = 24.0, 15.0
    dt = np.geomspace(0.01, 100.0, 40)
    p_ws = 5000.0 - m * np.log((t_p + dt) / dt)
    dp, deriv = pressure_change(dt, p_ws, 5000.0, t_p)
    assert dp[0] == 0.0 and np.all(np.diff(dp) > 0)
    np.testing.assert_allclose(deriv, m, rtol=1e-10)


# --- the report -----------------------------------------------------------------------------

TIME_S = np.geomspace(0.01, 100.0, 40) * 3600.0


def _line_source_psi(t_s: np.ndarray, k: float) -> np.ndarray:
    """Drawdown at the well: p_i − 141.2·qBμ/(kh)·(½E1(1/(4t_D)) + s), q = 500, h = 50, s = 2."""
    t_d = 0.0002637 * k * (t_s / 3600.0) / (0.2 * 1.0 * 1e-5 * 0.3**2)
    return 5000.0 - 141.2 * 500 * 1.2 * 1.0 / (k * 50) * (0.5 * exp1(1 / (4 * t_d)) + 2.0)


def _report(tmp_path, conditions: dict) -> str:
    rng = np.random.default_rng(2)
    k = rng.normal(100.0, 3.0, (2, 100))
    pred = _line_source_psi(TIME_S, k[..., None]) + rng.normal(0.0, 0.3, (2, 100, TIME_S.size))
    idata = az.from_dict(
        posterior={"permeability": k},
        sample_stats={"diverging": np.zeros((2, 100), dtype=bool)},
        observed_data={PRESSURE: _line_source_psi(TIME_S, 100.0) + rng.normal(0.0, 0.3, TIME_S.size)},
        posterior_predictive={PRESSURE: pred},
        coords={"time": TIME_S},
        dims={PRESSURE: ["time"]},
    )
    table = az.summary(idata, hdi_prob=0.9, round_to="none")[["mean", "sd", "hdi_5%", "hdi_95%"]]
    table.index.name = "parameter"
    meta = {
        **_meta(),
        "title": "well test",
        "parameters": ["permeability"],
        "observables": [PRESSURE],
        "units": {"permeability": "mD", "initial_pressure": "psi", "production_time": "h"},
        "conditions": conditions,
    }
    path = write_report(tmp_path / "r.html", idata, pd.DataFrame(table), _diagnostics([]), meta)
    return path.read_text(encoding="utf-8")


def test_report_shows_the_bourdet_plot_for_a_drawdown(tmp_path):
    conditions = {"rate": 500.0, "thickness": 50.0, "production_time": 0.0}
    text = _report(tmp_path, {**conditions, "initial_pressure": 5000.0})
    without = _report(tmp_path, conditions)
    assert '<h2 id="bourdet">Pressure derivative (Bourdet)</h2>' in text
    assert "Pressure derivative" not in without
    assert text.count("<img") == without.count("<img") + 1
    assert (
        text.index("<h2>Posterior predictive</h2>") < text.index('id="bourdet"') < text.index("<h2>Run</h2>")
    )
    assert "Drawdown: Δp = 5000 psi − p" in text
