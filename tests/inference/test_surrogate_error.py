"""The correlated surrogate-error model against cases known exactly: it recovers a known error
covariance, and it restores the coverage that a biased surrogate loses.

The coverage model: y(t) = exp(−θ t) on [0, 5] s, θ ~ Uniform(0.2, 2), 40 samples at σ = 0.01. The
"surrogate" is the reference plus a smooth error e(t; θ) = A Σⱼ sin(ωⱼ θ + φⱼ) sin(j π t / 5), as
systematic as a trained network's (a fixed function of θ) and, summed over the prior, as large as
the noise. With that error ignored the posterior is narrow and in the wrong place; the correlated
model built from residuals at held-out θ's must bring the 90 % intervals back to 90 % coverage.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from inference.model import ModelSpec, Noise, build_model
from inference.priors import Prior
from inference.surrogate_error import error_factor, kernel_weights

T_OBS = np.linspace(0.0, 5.0, 40)
T_VAL = np.linspace(0.0, 5.0, 201)
SIGMA = 0.01
PRIOR = Prior("uniform", lower=0.2, upper=2.0)
_RNG = np.random.default_rng(3)
OMEGA = _RNG.uniform(15.0, 40.0, 4)  # error decorrelates over Δθ ≈ 0.1, the prior is 1.8 wide
PHASE = _RNG.uniform(0.0, 2 * np.pi, 4)
AMPLITUDE = 0.012


def _reference(xp, theta, t):
    return xp.exp(-theta * t)


def _error(xp, theta, t):
    return AMPLITUDE * sum(
        xp.sin(w * theta + p) * xp.sin((j + 1) * np.pi * t / 5.0)
        for j, (w, p) in enumerate(zip(OMEGA, PHASE))
    )


def test_factor_recovers_a_known_covariance():
    # Curves drawn from N(0, K) with K = B Bᵀ (rank 3): the factor's L Lᵀ estimates K with the
    # sampling error of 4,000 curves (≈ 1/√4000 ≈ 1.6 % of its scale); 5 % of max |K| is the bound.
    rng = np.random.default_rng(0)
    basis = np.stack([np.sin(np.pi * T_VAL / 5), np.cos(np.pi * T_VAL / 5) * 0.5, T_VAL / 10], 1)
    curves = rng.standard_normal((4000, 3)) @ basis.T
    factor = error_factor(curves, T_VAL, T_VAL)
    exact = basis @ basis.T
    assert factor.shape[1] == 3
    assert np.max(np.abs(factor @ factor.T - exact)) < 0.05 * np.max(np.abs(exact))
    # Interpolated onto other times it is the same covariance there (linear interpolation of
    # smooth modes on a 201-point grid: error far below the sampling error).
    sub = error_factor(curves, T_VAL, T_OBS)
    exact_obs = sum(
        np.outer(np.interp(T_OBS, T_VAL, basis[:, j]), np.interp(T_OBS, T_VAL, basis[:, j])) for j in range(3)
    )
    assert np.max(np.abs(sub @ sub.T - exact_obs)) < 0.05 * np.max(np.abs(exact_obs))


def test_kernel_weights_favour_nearby_points_and_keep_enough_of_them():
    x = np.linspace(0.0, 1.0, 101)[:, None]
    w = kernel_weights(x, np.array([0.2]), bandwidth=0.05, min_ess=20)
    assert np.argmax(w) == 20 and np.isclose(w.sum(), 1.0)
    assert w.sum() ** 2 / (w**2).sum() >= 20  # the bandwidth widened until 20 effective curves


def _log_posterior(model):
    """log p(theta, y) on a grid of theta, jitted once per model (y is an argument, not a constant)."""
    import jax
    from numpyro.infer.util import log_density

    def logp(theta, y):
        return log_density(model, (), {"y": {"y": y}}, {"theta": theta})[0]

    return jax.jit(jax.vmap(logp, in_axes=(0, None)))


def _posterior_cdf(log_posterior, y, grid):
    import jax.numpy as jnp

    lp = np.asarray(log_posterior(jnp.asarray(grid), jnp.asarray(y)))
    p = np.exp(lp - lp.max())
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def _coverage(surrogate_error: str, n_truths: int = 100) -> int:
    import jax.numpy as jnp

    rng = np.random.default_rng(11)
    held_out = rng.uniform(PRIOR.lower, PRIOR.upper, 128)
    residuals = np.stack([_error(np, th, T_VAL) for th in held_out])
    rmse = float(np.sqrt(np.mean(residuals**2)))
    spec = ModelSpec(
        priors={"theta": PRIOR},
        observables=("y",),
        noise={"y": Noise(sigma=SIGMA)},
        surrogate_sigma={"y": rmse} if surrogate_error == "rmse" else {},
        surrogate_factor={"y": error_factor(residuals, T_VAL, T_OBS)}
        if surrogate_error == "correlated"
        else {},
    )
    t = jnp.asarray(T_OBS)
    model = build_model(lambda th: {"y": _reference(jnp, th["theta"], t) + _error(jnp, th["theta"], t)}, spec)
    grid = np.linspace(PRIOR.lower, PRIOR.upper, 4001)[1:-1]
    log_posterior = _log_posterior(model)
    hits = 0
    for truth in rng.uniform(PRIOR.lower, PRIOR.upper, n_truths):
        y = _reference(np, truth, T_OBS) + SIGMA * rng.standard_normal(T_OBS.size)
        cdf = _posterior_cdf(log_posterior, y, grid)
        lo, hi = np.interp([0.05, 0.95], cdf, grid)
        hits += int(lo <= truth <= hi)
    return hits


# 100 truths, nominal 90 %: the count is Binomial(100, 0.9) when the intervals are calibrated;
# 80 ≤ count ≤ 98 holds with probability 0.998 (accepted failure rate 0.2 % per fresh seed).
# Measured with this seed: off 17, rmse 36, correlated 82 (and 353 of 400 truths, 88 %).
LOW, HIGH = int(stats.binom.ppf(0.001, 100, 0.9)), int(stats.binom.ppf(0.999, 100, 0.9))


@pytest.mark.parametrize("surrogate_error", ["off", "rmse", "correlated"])
def test_correlated_error_restores_coverage_of_a_biased_surrogate(surrogate_error):
    hits = _coverage(surrogate_error)
    if surrogate_error == "correlated":
        assert LOW <= hits <= HIGH, hits
    else:  # ignoring the error, or treating it as white noise, covers far too rarely
        assert hits < LOW, hits
