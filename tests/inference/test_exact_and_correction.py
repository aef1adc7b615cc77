"""The exact grid posterior against closed forms, and the reference corrections against it.

The cheap model is a straight line y = a + b·t with Gaussian noise and flat priors: its posterior
is Gaussian and known exactly. Its "surrogate" is the same line, deliberately biased.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from inference.correction import Potentials, delayed_acceptance, importance
from inference.exact import _log_marginal_halfnormal, compare, grid_posterior, log_posterior_fn
from inference.model import ModelSpec, Noise
from inference.priors import Prior

T = np.linspace(0.0, 1.0, 50)
SIGMA = 0.1
X = np.stack([np.ones_like(T), T], -1)
Y = 0.3 + 0.8 * T + SIGMA * np.random.default_rng(0).standard_normal(T.size)
# Flat priors: the posterior is N(β̂, σ²(XᵀX)⁻¹) (truncation 10 sd away is negligible).
EXACT_MEAN = np.linalg.solve(X.T @ X, X.T @ Y)
EXACT_COV = SIGMA**2 * np.linalg.inv(X.T @ X)
EXACT_SD = np.sqrt(np.diag(EXACT_COV))
BIAS = np.array([1.5, -1.0]) * EXACT_SD  # the surrogate's posterior sits 1.5 sds off in a


def _spec(sigma):
    priors = {"a": Prior("uniform", -5.0, 5.0), "b": Prior("uniform", -5.0, 5.0)}
    return ModelSpec(priors=priors, observables=("y",), noise={"y": Noise(sigma=sigma, scale=1.0)})


def _line(values):
    return {"y": values["a"][:, None] + values["b"][:, None] * T[None, :]}


def test_grid_posterior_matches_the_closed_form():
    log_post = log_posterior_fn(_line, {"y": Y}, _spec(SIGMA))
    bounds = np.array([[-5.0, 5.0], [-5.0, 5.0]])
    # Started 3 sds off with a scale 4 times too wide: the grid must move and shrink.
    grid = grid_posterior(log_post, ("a", "b"), EXACT_MEAN + 3 * EXACT_SD, 4 * EXACT_SD, bounds)
    assert grid.rounds >= 2
    stats = grid.stats()
    for i, name in enumerate(("a", "b")):
        assert stats[name]["mean"] == pytest.approx(EXACT_MEAN[i], abs=1e-3 * EXACT_SD[i])
        assert stats[name]["sd"] == pytest.approx(EXACT_SD[i], rel=1e-3)
        assert stats[name]["q95"] == pytest.approx(
            EXACT_MEAN[i] + 1.6448536 * EXACT_SD[i], abs=5e-3 * EXACT_SD[i]
        )


def test_halfnormal_noise_is_integrated_out_exactly():
    rng = np.random.default_rng(1)
    for n, scale in ((5, 0.5), (200, 0.05)):
        resid = 0.03 * rng.standard_normal(n)
        rss = float(resid @ resid)

        def log_integrand(sigma, rss=rss, n=n, scale=scale):
            log_prior = 0.5 * np.log(2 / np.pi) - np.log(scale) - 0.5 * (sigma / scale) ** 2
            return log_prior - 0.5 * n * np.log(2 * np.pi * sigma**2) - 0.5 * rss / sigma**2

        sigma_hat = np.sqrt(rss / n)
        # Divide by the peak so quad works on numbers near 1.
        peak = log_integrand(sigma_hat)
        value, _ = integrate.quad(
            lambda s, peak=peak: np.exp(log_integrand(s) - peak) if s > 0 else 0.0,
            0,
            20 * scale,
            points=[sigma_hat],
            limit=500,
            epsabs=0,
            epsrel=1e-12,
        )
        expected = np.log(value) + peak
        got = _log_marginal_halfnormal(np.array([rss]), n, scale)[0]
        assert got == pytest.approx(expected, abs=1e-6)


def _gaussian_potential(mean, cov):
    prec = np.linalg.inv(cov)

    def u(flat):
        r = np.asarray(flat) - mean
        return 0.5 * np.einsum("...i,ij,...j->...", r, prec, r)

    return u


def _exact_scalar(flat):
    import jax.numpy as jnp

    r = flat - EXACT_MEAN
    return 0.5 * r @ jnp.asarray(np.linalg.inv(EXACT_COV)) @ r


def _identity(values):
    return values  # the cheap model is already unconstrained


def _potentials(reference=None):
    return Potentials(
        surrogate=_gaussian_potential(EXACT_MEAN + BIAS, EXACT_COV),
        reference=reference or _gaussian_potential(EXACT_MEAN, EXACT_COV),
        to_flat=_identity,
        from_flat=_identity,
        # Differentiable reference: the Laplace proposal; a custom one: the surrogate's moments.
        reference_scalar=None if reference else _exact_scalar,
    )


def _surrogate_draws(n=4000, seed=2):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(EXACT_MEAN + BIAS, EXACT_COV, size=n)


def test_importance_reweighting_recovers_the_exact_posterior_from_a_biased_surrogate():
    draws = _surrogate_draws()
    before = np.abs(draws.mean(0) - EXACT_MEAN) / EXACT_SD
    assert before.max() > 1.2  # the surrogate alone is wrong
    result = importance(_potentials(), draws)
    w = result["weights"]
    mean = w @ draws
    sd = np.sqrt(w @ (draws - mean) ** 2)
    # An importance sample of effective size ≳ 100 has a mean error of ~0.1 sd; 0.3 is 3 of those.
    assert result["ess"] > 100
    np.testing.assert_array_less(np.abs(mean - EXACT_MEAN) / EXACT_SD, 0.3)
    np.testing.assert_allclose(sd / EXACT_SD, 1.0, atol=0.2)
    assert result["trusted"] and result["k_hat"] <= 0.7


def test_importance_refines_a_proposal_far_wider_than_the_exact_posterior():
    # The correlated error model's posterior on a record ending at the cut-off cliff: 25× wider
    # than the exact posterior in one direction, so 4,000 draws reweight to an effective sample
    # of 31 (k̂ 0.71).
    wide = EXACT_COV * np.outer([25.0, 1.5], [25.0, 1.5])
    surrogate = Potentials(
        surrogate=_gaussian_potential(EXACT_MEAN + BIAS, wide),
        reference=_gaussian_potential(EXACT_MEAN, EXACT_COV),
        to_flat=None,
        from_flat=None,
    )
    draws = np.random.default_rng(5).multivariate_normal(EXACT_MEAN + BIAS, wide, size=4000)
    result = importance(surrogate, draws, min_ess=400, seed=6)
    assert result["refined"] and result["first_stage"]["ess"] < 400
    assert result["reference_solves"] == 8000
    w, x = result["weights"], result["draws"]
    mean = w @ x
    sd = np.sqrt(w @ (x - mean) ** 2)
    # Redrawn around the reweighted moments, most of them count (measured: ESS 3,025 of 4,000);
    # with ≥ 400 effective draws the mean is within ~0.05 sd by chance, the bar is 0.2.
    assert result["ess"] >= 400 and result["trusted"]
    np.testing.assert_array_less(np.abs(mean - EXACT_MEAN) / EXACT_SD, 0.2)
    np.testing.assert_allclose(sd / EXACT_SD, 1.0, atol=0.15)
    # Without the refinement the same draws give no more than their first-stage sample.
    plain = importance(surrogate, draws)
    assert not plain["refined"] and plain["ess"] == result["first_stage"]["ess"]


def test_importance_flags_a_surrogate_too_far_off_to_reweight():
    far_mean = EXACT_MEAN + 8 * EXACT_SD
    far = Potentials(
        surrogate=_gaussian_potential(far_mean, EXACT_COV),
        reference=_gaussian_potential(EXACT_MEAN, EXACT_COV),
        to_flat=None,
        from_flat=None,
    )
    draws = np.random.default_rng(3).multivariate_normal(far_mean, EXACT_COV, size=4000)
    result = importance(far, draws)
    assert result["k_hat"] > 0.7 and not result["trusted"]


def test_delayed_acceptance_targets_the_exact_posterior():
    result = delayed_acceptance(_potentials(), _surrogate_draws(), chains=4, steps=3000, seed=4)
    draws = {name: result["draws"][..., i] for i, name in enumerate(("a", "b"))}
    exact = {
        n: {"mean": EXACT_MEAN[i], "sd": EXACT_SD[i], "q05": 0.0, "q95": 0.0} for i, n in enumerate("ab")
    }
    # 12,000 correlated draws (ESS ≳ 1,000): MC error of the mean ≲ 0.05 sd; 0.2 is 4 of those.
    rows = compare(exact, draws)
    for row in rows.values():
        assert row["agree"], rows
    # Stage 1 screens: some proposals never reach the reference.
    assert result["proposal"].startswith("Laplace")
    assert result["reference_solves"] < 4 * 3025  # stage 1 screened some proposals out
    assert 0 < result["stage2_acceptance"] <= 1


def test_delayed_acceptance_never_accepts_what_the_reference_rejects():
    exact = _gaussian_potential(EXACT_MEAN, EXACT_COV)
    cut = EXACT_MEAN[1] + BIAS[1]  # the reference has no mass above the surrogate's mean of b

    def reference(flat):
        flat = np.asarray(flat)
        return np.where(flat[:, 1] > cut, np.inf, exact(flat))

    start = _surrogate_draws()
    start = start[start[:, 1] <= cut]  # chains start where the reference has mass
    result = delayed_acceptance(_potentials(reference), start, chains=4, steps=1000, seed=5)
    assert (result["draws"][..., 1] <= cut).all()
    # The surrogate itself puts half of its mass above the cut.
    assert (_surrogate_draws()[:, 1] > cut).mean() > 0.4
