"""``calibrate --check-reference``: the surrogate's error over the posterior, and the shift it causes."""

import numpy as np

from bayespinn.cli import main
from bayespinn.reference import mean_shift_in_sd
from tests.bayespinn.helpers import write_study


def test_mean_shift_matches_the_gauss_linear_closed_form():
    # Two observables linear in θ = (a, b), a known bias e in the "surrogate". With a flat prior the
    # surrogate posterior is N(μ − G·e, Σ) exactly, G = (Σ_obs AᵀA/σ²)⁻¹·Σ_obs Aᵀ/σ²: the shift is
    # −G·e, and the estimate from posterior draws must find it.
    t = np.linspace(0.0, 10.0, 60)
    design = {
        "u": (np.stack([np.sin(t), t / 10], -1), 0.05),
        "v": (np.stack([np.cos(0.5 * t), 1 + 0 * t], -1), 0.2),
    }
    bias = {"u": 0.2 * np.cos(t), "v": 0.6 * t / 10}
    precision = sum(a.T @ a / s**2 for a, s in design.values())
    cov = np.linalg.inv(precision)
    expected = -cov @ sum(a.T @ bias[o] / s**2 for o, (a, s) in design.items()) / np.sqrt(np.diag(cov))
    rng = np.random.default_rng(3)
    posterior = rng.multivariate_normal([0.5, -0.2], cov, size=20_000)
    theta = posterior[:200]
    exact = {o: theta @ a.T for o, (a, _) in design.items()}
    surrogate = {o: exact[o] + bias[o] for o in design}
    sigma = {o: s for o, (_, s) in design.items()}
    got = mean_shift_in_sd(posterior, theta, surrogate, exact, sigma)
    assert np.all(np.abs(expected) > 0.5)  # a shift worth flagging, in both parameters
    # 20,000 draws estimate Σ to about 1 %; 3 % leaves room and would fail on a wrong sign or factor.
    np.testing.assert_allclose(got, expected, rtol=0.03)
    unbiased = mean_shift_in_sd(posterior, theta, exact, exact, sigma)
    np.testing.assert_allclose(unbiased, 0.0, atol=1e-12)


def test_mean_shift_under_a_correlated_error_model_matches_the_closed_form():
    # The likelihood N(Aθ, σ²I + L Lᵀ) of surrogate_error = "correlated": the shift is
    # −Σ·AᵀC⁻¹e with Σ = (AᵀC⁻¹A)⁻¹. An error the model expects (e along L) moves the mean far
    # less than under σ²I alone; the estimate must find both.
    t = np.linspace(0.0, 10.0, 80)
    a, sigma = np.stack([np.sin(t), t / 10], -1), 0.05
    factor = np.stack([np.exp(-((t - 8) ** 2)), 0.5 * np.cos(0.3 * t)], -1) * 0.1
    bias = factor @ np.array([1.5, -1.0]) + 0.002 * np.sin(3 * t)
    c_inv = np.linalg.inv(sigma**2 * np.eye(t.size) + factor @ factor.T)
    cov = np.linalg.inv(a.T @ c_inv @ a)
    expected = -cov @ (a.T @ c_inv @ bias) / np.sqrt(np.diag(cov))
    rng = np.random.default_rng(4)
    posterior = rng.multivariate_normal([0.3, 0.1], cov, size=20_000)
    theta = posterior[:200]
    exact = {"u": theta @ a.T}
    surrogate = {"u": exact["u"] + bias}
    got = mean_shift_in_sd(posterior, theta, surrogate, exact, {"u": sigma}, {"u": factor})
    np.testing.assert_allclose(got, expected, rtol=0.03)
    ignored = mean_shift_in_sd(posterior, theta, surrogate, exact, {"u": sigma})
    assert np.all(np.abs(ignored) > 3 * np.abs(got)), (ignored, got)


def test_check_reference_on_a_reference_study_is_refused(tmp_path, capsys):
    study = write_study(tmp_path, surrogate="power.smib:reference", warmup=10, samples=10)
    assert main(["calibrate", str(study), "--check-reference", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already the reference" in err
    assert not (tmp_path / "run").exists()


def test_report_shows_the_reference_check(tmp_path):
    from bayespinn.report import write_report
    from tests.bayespinn.test_report import ANGLE, TIME_S, _diagnostics, _idata, _meta, _table

    idata = _idata()
    band = np.linspace(-1e-3, 1e-3, TIME_S.size)
    check = {
        "reference": "power.smib:reference",
        "draws": 200,
        "observables": {
            ANGLE: {
                "rms": 7e-4,
                "max_abs": 2e-3,
                "likelihood_sd": 5e-3,
                "rms_in_likelihood_sd": 0.14,
                "time_s": TIME_S.tolist(),
                "q05": (band - 1e-4).tolist(),
                "q50": band.tolist(),
                "q95": (band + 1e-4).tolist(),
            },
        },
        "mean_shift_in_sd": {"m": -0.37, "d": -1.22},
        "flag_above_sd": 0.2,
        "wall_time_s": 3.7,
    }
    diagnostics = {**_diagnostics([]), "reference_check": check}
    plain = write_report(tmp_path / "plain.html", idata, _table(idata, None), _diagnostics([]), _meta())
    checked = write_report(tmp_path / "checked.html", idata, _table(idata, None), diagnostics, _meta())
    html, before = checked.read_text(), plain.read_text()
    assert "Surrogate against the reference over the posterior" in html and "power.smib:reference" in html
    assert "<td>-1.22</td>" in html and "<td>-0.37</td>" in html
    assert html.count("<img") == before.count("<img") + 1  # the difference band over time
