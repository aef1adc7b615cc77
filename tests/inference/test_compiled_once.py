"""A model's sampler is compiled once for all data sets of the same shapes.

The data reach the compiled programs (NUTS's parallel chains, their starts, the posterior's
predictive draws) as arguments, so a second data set is answered by JAX's persistent cache
(which tests/conftest.py turns on for every program) and compiles nothing. Each run must still
see its own data: both posteriors are checked against their exact Gauss-linear ones.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np

from inference.arviz_adapter import to_inference_data
from inference.nuts import MCMCSettings, chain_method_name, run_mcmc
from tests.inference.test_gauss_linear import (
    NAMES,
    PRIOR_LOC,
    PRIOR_SCALE,
    SIGMA,
    X,
    _exact_posterior,
    _model,
)

SETTINGS = MCMCSettings(chains=2, warmup=300, samples=500, seed=3)


@contextlib.contextmanager
def _cache_misses():
    """The persistent compilation cache's misses while the block runs (a list, filled as they come)."""
    misses = []

    def listener(event: str, **_):
        if event == "/jax/compilation_cache/cache_misses":
            misses.append(event)

    jax.monitoring.register_event_listener(listener)
    try:
        yield misses
    finally:
        jax.monitoring.unregister_event_listener(listener)


def _calibrate(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and their Monte Carlo standard errors, through the same calls as a study."""
    import arviz as az

    model = _model()
    mcmc, _ = run_mcmc(model, {"y": {"y": y}}, SETTINGS, progress=False)
    assert chain_method_name(mcmc) == "parallel"  # conftest gives JAX a device per chain
    idata = to_inference_data(mcmc, model, {"y": {"y": y}}, seed=0, coords={}, dims={}, attrs={})
    summary = az.summary(idata, var_names=list(NAMES))
    return summary["mean"].to_numpy(), summary["mcse_mean"].to_numpy()


def test_a_second_data_set_compiles_nothing_and_gets_its_own_posterior():
    rng = np.random.default_rng(11)
    first = X @ np.array([1.2, -0.7, 0.4]) + SIGMA * rng.standard_normal(len(X))
    second = X @ np.array([-0.5, 0.9, 1.1]) + SIGMA * rng.standard_normal(len(X))
    runs = {"first": _calibrate(first)}
    with _cache_misses() as misses:
        runs["second"] = _calibrate(second)
    assert misses == [], f"{len(misses)} programs compiled again for a data set of the same shapes"
    for (mean, mcse), y in zip(runs.values(), (first, second), strict=True):
        # Within 5 Monte Carlo standard errors of the exact mean (probability of failing a
        # correct sampler < 1e-5 per parameter); a run that saw the other data set is off by
        # many posterior sds (the two truths differ by 1.7, 1.6 and 0.7).
        np.testing.assert_array_less(np.abs(mean - _exact_posterior(y)[0]), 5 * mcse + 1e-3)


def test_correction_potentials_compile_once_and_see_their_own_data():
    # The importance and delayed-acceptance potentials take the data as an argument likewise.
    from inference.correction import Potentials

    rng = np.random.default_rng(12)
    draws = rng.standard_normal((64, len(NAMES)))
    data = [
        X @ np.array(theta) + SIGMA * rng.standard_normal(len(X))
        for theta in ([1.2, -0.7, 0.4], [-0.5, 0.9, 1.1])
    ]

    def potentials(y):
        pots = Potentials.of(_model(), _model(), {"y": {"y": y}})
        return np.asarray(pots.surrogate(draws)), np.asarray(pots.reference(draws))

    first = potentials(data[0])
    with _cache_misses() as misses:
        second = potentials(data[1])
    assert misses == [], f"{len(misses)} programs compiled again for a data set of the same shapes"
    for (u_sur, u_ref), y in zip((first, second), data, strict=True):
        # −log density in closed form: Normal priors, Gaussian likelihood; the sites are real,
        # so the flat unconstrained draws are θ itself (a, b, c in order)
        np.testing.assert_allclose(u_ref, [_potential(theta, y) for theta in draws], rtol=1e-12)
        np.testing.assert_allclose(u_sur, u_ref, rtol=1e-12)


def _potential(theta: np.ndarray, y: np.ndarray) -> float:
    """The Gauss-linear model's −log density at θ: its Normal priors and Gaussian likelihood."""
    prior = 0.5 * ((theta - PRIOR_LOC) / PRIOR_SCALE) ** 2 + np.log(PRIOR_SCALE * np.sqrt(2 * np.pi))
    lik = 0.5 * ((y - X @ theta) / SIGMA) ** 2 + np.log(SIGMA * np.sqrt(2 * np.pi))
    return float(prior.sum() + lik.sum())
