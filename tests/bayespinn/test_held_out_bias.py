"""What the surrogate's held-out errors would do to a record like a study's, checked against least-squares fits."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import least_squares

from bayespinn.held_out_bias import held_out_bias, held_out_flags
from bayespinn.pipeline import prepare
from bayespinn.study import load_study
from surrogates import registry

SIGMA = 0.01  # the noise of the record [rad, rad/s]: the shifts scale as 1/σ on both sides
STUDY = """
[surrogate]
name = "power.smib"
[data]
path = "data.csv"
[conditions]
B = 0.2
P = {P}
delta0 = {delta0}
omega0 = {omega0}
[parameters.m]
prior = "uniform"
lower = 0.1
upper = 1.0
[parameters.d]
prior = "uniform"
lower = 0.05
upper = 0.5
[noise]
sigma = {sigma}
[inference]
surrogate_error = "off"
[output]
dir = "run"
"""


@pytest.mark.parametrize("cell", [107, 21, 5])
def test_a_held_out_curve_predicts_the_surrogates_fit_at_its_own_cell(tmp_path, cell):
    # At held-out cell k the reference's record is f_ref(θ_k) = f_sur(θ_k) − e_k exactly, so the
    # surrogate's best fit to it (nonlinear least squares, the flat-prior posterior mode) lands at
    # θ_k + δ_k. The held-out estimate for cell k, divided by the sd of Laplace draws around that
    # fit, must find δ_k: an independent check of the sign, the time grid, the log scale and the
    # scale in sds. Cells 107, 21 and 5 move (m, d) by about (−0.4, +0.2), (−0.3, −0.7) and
    # (+1.1, +2.2) sd at σ = 0.01.
    sur, ref = registry.load("power.smib"), registry.load("power.smib:reference")
    held = sur.validation_residuals({"B": 0.2})
    t, obs = held["grid"], list(held["residuals"])
    values = {k: float(v[cell]) for k, v in held["inputs"].items()}
    known = {k: values[k] for k in ("P", "delta0", "omega0")}
    record = ref.numpy_forward(t, B=0.2, **values)
    pd.DataFrame({"Time [s]": t, **{o: record[o] for o in obs}}).to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "study.toml").write_text(STUDY.format(sigma=SIGMA, **known))
    prep = prepare(load_study(tmp_path / "study.toml"))

    def misfit(theta):
        out = sur.numpy_forward(t, B=0.2, m=theta[0], d=theta[1], **known)
        return np.concatenate([out[o] - record[o] for o in obs])

    truth = np.array([values["m"], values["d"]])
    fit = least_squares(misfit, truth, x_scale=truth, xtol=1e-14, ftol=1e-14, gtol=1e-14)
    cov = SIGMA**2 * np.linalg.inv(fit.jac.T @ fit.jac)
    draws = np.random.default_rng(0).multivariate_normal(fit.x, cov, 4_000).reshape(4, 1_000, 2)
    idata = az.from_dict(posterior={"m": draws[..., 0], "d": draws[..., 1]})
    # both parameters are positive: the estimate works in log θ
    expected = (np.log(fit.x) - np.log(truth)) / np.log(draws.reshape(-1, 2)).std(0)
    got = held_out_bias(prep, idata)
    assert got["curves"] == 128 and np.isclose(sum(got["weights"]), 1.0)
    predicted = np.array([got["shift_in_sd"][k][cell] for k in ("m", "d")])
    # First order against the exact fit: measured within 0.005 sd or 1.2 %; a wrong sign, grid, log or
    # factor of the noise would miss by the whole shift.
    np.testing.assert_allclose(predicted, expected, rtol=0.03, atol=0.02)
    assert np.max(np.abs(expected)) > 0.35  # a shift worth predicting


def test_flags_name_the_parameters_a_typical_curve_moves_too_far():
    bias = {
        "curves": 64,
        "flag_above_sd": 0.2,
        "parameters": {
            "a": {"median_abs_sd": 0.5, "p90_abs_sd": 1.2, "share_above_flag": 0.8},
            "b": {"median_abs_sd": 0.1, "p90_abs_sd": 0.3, "share_above_flag": 0.2},
        },
    }
    (flag,) = held_out_flags(bias, "battery.p2d")
    assert flag.startswith("a: at battery.p2d's held-out cells near this posterior") and "0.50 sd" in flag
    assert held_out_flags(None, "battery.p2d") == []
