"""posterior_draws: its log-likelihood against NumPyro's, its predictive draws against the
likelihood they come from."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import log_likelihood

from inference.arviz_adapter import posterior_draws

T = np.linspace(0.0, 1.0, 12)
FACTOR = np.stack([np.sin(np.pi * T), T**2], axis=1)  # (T, r): a correlated error's low rank


def model(t, y=None):
    """Two observed sites with correlated errors, as a surrogate-error likelihood has."""
    y = y or {}
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    s = numpyro.sample("s", dist.HalfNormal(0.5))
    for name, shape in (("u", jnp.sin), ("v", jnp.cos)):
        numpyro.sample(
            name,
            dist.LowRankMultivariateNormal(
                a * shape(t), jnp.asarray(FACTOR), (s + 0.1) ** 2 * jnp.ones(len(t))
            ),
            obs=y.get(name),
        )


def _draws(n: int) -> dict:
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=n), "s": np.abs(rng.normal(0.3, 0.1, size=n))}


def _data() -> dict:
    rng = np.random.default_rng(1)
    return {
        "u": 0.7 * np.sin(T) + 0.2 * rng.normal(size=T.size),
        "v": 0.7 * np.cos(T) + 0.2 * rng.normal(size=T.size),
    }


def test_log_likelihood_matches_numpyro():
    draws, kwargs = _draws(40), {"t": T, "y": _data()}
    _, loglik = posterior_draws(model, draws, jax.random.PRNGKey(0), kwargs)
    reference = log_likelihood(model, {k: jnp.asarray(v) for k, v in draws.items()}, **kwargs)
    for site in ("u", "v"):
        np.testing.assert_allclose(loglik[site], reference[site], rtol=1e-12, atol=1e-10)


def test_predictive_draws_follow_the_likelihood():
    """At one parameter value, 4,000 predictive draws of a site have the likelihood's mean and
    covariance (5 standard errors)."""
    n = 4000
    draws = {"a": np.full(n, 0.8), "s": np.full(n, 0.2)}
    ppc, _ = posterior_draws(model, draws, jax.random.PRNGKey(3), {"t": T, "y": _data()})
    cov = FACTOR @ FACTOR.T + 0.3**2 * np.eye(T.size)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(ppc["u"].mean(0) - 0.8 * np.sin(T)), 5 * sd / np.sqrt(n))
    np.testing.assert_array_less(np.abs(ppc["u"].std(0) - sd), 5 * sd / np.sqrt(2 * n))
    empirical = np.corrcoef(ppc["u"].T)[0, -1]
    exact = cov[0, -1] / (sd[0] * sd[-1])
    assert abs(empirical - exact) < 5 * (1 - exact**2) / np.sqrt(n)
