"""Where NUTS chains start: each at the most probable of its own prior draws (``chain_starts``)."""

from __future__ import annotations

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from inference.nuts import MCMCSettings, chain_starts, run_mcmc

numpyro.enable_x64()

SIGMA, N_OBS, TRUTH = 0.01, 50, 2.0


def _mean(theta):
    return jnp.exp(-((theta / 4.0) ** 2)) + 0.25 * jnp.exp(-(((10.0 - theta) / 2.0) ** 2))


def two_basin_model(y=None):
    """θ ~ U(0, 10), y_i ~ N(μ(θ), σ), μ = exp(−(θ/4)²) + 0.25·exp(−((10 − θ)/2)²). The posterior
    sits at θ ≈ 2, 0.007 wide. Above the valley of μ at θ ≈ 7 the fit improves towards the bound
    (μ(10) = 0.25 against the data's 0.78): a chain started there climbs to it and stays, held by
    60,000 nats of valley."""
    theta = numpyro.sample("theta", dist.Uniform(0.0, 10.0))
    numpyro.sample("y", dist.Normal(_mean(theta), SIGMA).expand([N_OBS]).to_event(1), obs=y)


def _record():
    rng = np.random.default_rng(3)
    return _mean(TRUTH) + SIGMA * jnp.asarray(rng.standard_normal(N_OBS))


def _exact(y) -> tuple[float, float]:
    """The posterior's mean and sd by quadrature on a fine grid (the prior is flat)."""
    theta = np.linspace(1.85, 2.15, 30_001)
    y = np.asarray(y)
    log_p = -((y[None, :] - np.asarray(_mean(theta))[:, None]) ** 2).sum(1) / (2 * SIGMA**2)
    w = np.exp(log_p - log_p.max())
    w /= w.sum()
    mean = float((w * theta).sum())
    return mean, float(np.sqrt((w * (theta - mean) ** 2).sum()))


def test_no_chain_starts_in_a_basin_the_data_rule_out():
    """Plain prior draws put each chain in the upper basin (30 % of the prior) with probability
    0.3; the best of 16 draws only if all 16 miss [0, 4.7] (0.53^16 ≈ 4e-5). Measured with one
    candidate per chain (seed 0): one of the four chains ends at θ ≈ 9.98."""
    y = _record()
    mean, sd = _exact(y)
    settings = MCMCSettings(chains=4, warmup=300, samples=300, seed=0)
    mcmc, _ = run_mcmc(two_basin_model, {"y": y}, settings, progress=False)
    draws = np.asarray(mcmc.get_samples(group_by_chain=True)["theta"])
    assert np.all(np.abs(draws.mean(axis=1) - mean) < 0.5 * sd), (draws.mean(axis=1), mean, sd)
    assert abs(draws.std() / sd - 1.0) < 0.15
    assert float(az.rhat(draws)) < 1.05  # 300 draws a chain: 1.01 is the noise's; split chains ≫ 2


def normal_model(y=None):
    theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(theta, 0.1), obs=y)


def test_each_chain_starts_at_the_best_of_its_own_draws():
    """Normal prior and likelihood: the mode is 0.3·100/101. With 256 prior draws per chain the
    best lies within 0.05 of it (a miss has probability (1 − 0.038)^256 ≈ 5e-5 per chain), and
    the four chains' draws differ. One candidate per chain: the starts are plain prior draws."""
    mode = 0.3 * 100.0 / 101.0
    starts = chain_starts(normal_model, {"y": jnp.asarray(0.3)}, 4, jax.random.PRNGKey(0), candidates=256)
    theta = np.asarray(starts.z["theta"])
    assert theta.shape == (4,)
    assert np.all(np.abs(theta - mode) < 0.05), theta
    assert len(set(theta.tolist())) == 4
    plain = chain_starts(normal_model, {"y": jnp.asarray(0.3)}, 400, jax.random.PRNGKey(1), candidates=1)
    assert abs(np.std(plain.z["theta"]) - 1.0) < 0.1  # the prior's sd, ±2.8 standard errors


def test_starts_are_unconstrained_and_one_chain_has_no_chain_axis():
    """A U(0, 10) site's start comes back on the real line (NumPyro's ``init_params``)."""
    starts = chain_starts(two_basin_model, {"y": _record()}, 1, jax.random.PRNGKey(2), candidates=256)
    z = np.asarray(starts.z["theta"])
    assert z.shape == ()
    theta = 10.0 / (1.0 + np.exp(-z))  # the inverse of biject_to(interval(0, 10))
    assert abs(theta - TRUTH) < 0.15  # one of 256 draws lands within 0.15 of it: P(miss) = 0.97^256 ≈ 4e-4
