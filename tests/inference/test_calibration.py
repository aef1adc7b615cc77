"""Simulation-based calibration: the helpers on cases known exactly, then SBC of NUTS and VSBC of SVI.

The engines run once per test on all synthetic data sets together: ``jax.vmap`` over data sets
inside one ``jax.jit``, so each compiles once. (``run_mcmc`` called in a Python loop recompiles
NumPyro's sampling loop on every call, ≈ 2–6 s each on two cores, too slow for 200 data sets.)
The posteriors of separate data sets do not interact under ``vmap``: each is its own chain or fit.

Accepted failure rate: a calibrated engine is accepted when the p-value exceeds 0.001 per
parameter. With a fresh seed a correct engine then fails the SBC rank test about once in a
thousand runs per parameter, and the VSBC test (an exact sign-flip randomisation test) about as
often. The seeds here are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from inference.calibration import rank_uniformity_pvalue, sbc_ranks, vsbc_pvalue
from inference.model import ModelSpec, Noise, build_model
from inference.nuts import MCMCSettings, run_mcmc
from inference.priors import Prior
from inference.svi import SVISettings, fit_svi

P_ACCEPT = 0.001

# --- helpers on cases known exactly -------------------------------------------------------------


def test_ranks_count_draws_below_truth():
    truths = np.array([0.5, -3.0, 3.0])
    draws = np.array([[0.0, 1.0, 0.2, 0.9], [0.0, 1.0, 0.2, 0.9], [0.0, 1.0, 0.2, 0.9]])
    np.testing.assert_array_equal(sbc_ranks(truths, draws), [2, 0, 4])


def test_ties_are_spread_uniformly():
    # Every draw equals the truth (a stuck sampler): the ranks are uniform on 0…L, not all 0.
    ranks = sbc_ranks(np.zeros(4000), np.zeros((4000, 9)), seed=1)
    assert ranks.min() == 0 and ranks.max() == 9
    assert rank_uniformity_pvalue(ranks, n_draws=9, bins=10) > P_ACCEPT


def test_ranks_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="expected \\(n,\\) and \\(n, L\\)"):
        sbc_ranks(np.zeros(3), np.zeros((4, 5)))


def test_exactly_uniform_histogram_has_pvalue_one():
    # 10 possible ranks in 3 bins of 4, 3 and 3 ranks: each rank once gives expected counts exactly.
    assert rank_uniformity_pvalue(np.tile(np.arange(10), 7), n_draws=9, bins=3) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="bins"):
        rank_uniformity_pvalue(np.arange(10), n_draws=9, bins=11)


def test_calibrated_draws_pass_and_shifted_draws_fail():
    # Truth and its 99 draws from the same distribution: the rank is exactly uniform on 0…99.
    rng = np.random.default_rng(3)
    truths, draws = rng.standard_normal(500), rng.standard_normal((500, 99))
    assert rank_uniformity_pvalue(sbc_ranks(truths, draws), n_draws=99, bins=20) > P_ACCEPT
    # Draws one sd too high: most truths rank low (seed 3: p ≈ 1e-100).
    assert rank_uniformity_pvalue(sbc_ranks(truths, draws + 1.0), n_draws=99, bins=20) < 1e-10


def test_vsbc_symmetric_passes_and_skewed_fails():
    rng = np.random.default_rng(5)
    # p ≡ 1 − p as sets (up to the rounding of 1 − 0.7): nothing to reject.
    assert vsbc_pvalue(np.array([0.1, 0.3, 0.5, 0.7, 0.9])) > 0.5
    # Symmetric but not uniform (a posterior too wide): VSBC tests only symmetry, so it passes.
    assert vsbc_pvalue(rng.beta(2.0, 2.0, size=300)) > P_ACCEPT
    # Beta(2, 1): mass piled above 0.5, what a posterior biased low gives.
    assert vsbc_pvalue(rng.beta(2.0, 1.0, size=300)) < P_ACCEPT
    with pytest.raises(ValueError, match="probabilities"):
        vsbc_pvalue(np.array([0.2, 1.5]))


# --- a conjugate model: two Normal parameters, a line through 15 points, σ known ---------------

N_SIMS = 200
T = np.linspace(0.0, 2.0, 15)
DESIGN = np.stack([np.ones_like(T), T], 1)  # intercept and slope, posterior correlation ≈ −0.8
SIGMA = 0.5


def _line_model():
    import jax.numpy as jnp

    design = jnp.asarray(DESIGN)
    priors = {k: Prior("normal", loc=0.0, scale=1.0) for k in ("a", "b")}
    spec = ModelSpec(priors=priors, observables=("y",), noise={"y": Noise(sigma=SIGMA)})
    return build_model(lambda theta: {"y": design @ jnp.stack([theta["a"], theta["b"]])}, spec)


def _line_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truths (N_SIMS, 2) drawn from the prior, and data (N_SIMS, 15) simulated from each."""
    rng = np.random.default_rng(seed)
    truths = rng.standard_normal((N_SIMS, 2))
    return truths, truths @ DESIGN.T + SIGMA * rng.standard_normal((N_SIMS, T.size))


def _nuts_draws(y: np.ndarray) -> tuple[np.ndarray, int]:
    """(N_SIMS, 99, 2) NUTS draws, one chain per data set, and the number of divergences."""
    import jax
    import jax.numpy as jnp

    model = _line_model()
    # 396 draws thinned by 4: lag-1 autocorrelation of the kept draws ≈ 0.1 (0.25 at thinning 2),
    # close enough to independent for the rank histogram (Talts et al. 2018, §4.1).
    settings = MCMCSettings(chains=1, warmup=300, samples=396, seed=0)

    def one(y_one):
        mcmc, _ = run_mcmc(model, {"y": {"y": y_one}}, settings, progress=False)
        samples = mcmc.get_samples()
        return jnp.stack([samples["a"], samples["b"]], -1), mcmc.get_extra_fields()["diverging"].sum()

    draws, divergences = jax.jit(jax.vmap(one))(jnp.asarray(y))
    return np.asarray(draws)[:, ::4], int(divergences.sum())


def test_nuts_passes_sbc_and_a_too_narrow_posterior_fails():
    truths, y = _line_data(seed=10)
    draws, divergences = _nuts_draws(y)
    assert draws.shape == (N_SIMS, 99, 2) and divergences == 0
    # Negative control: the same draws pulled to half their spread about each data set's mean.
    centre = draws.mean(1, keepdims=True)
    narrow = centre + 0.5 * (draws - centre)
    for j in range(2):
        # 20 bins of 5 ranks: 10 expected counts per bin. Seed 10: p = 0.32 (a), 0.12 (b).
        p = rank_uniformity_pvalue(sbc_ranks(truths[:, j], draws[:, :, j]), n_draws=99, bins=20)
        assert p > P_ACCEPT, (j, p)
        # Too narrow: truths pile into the extreme ranks (∪-shaped histogram), p ≈ 3e-42 here.
        p_narrow = rank_uniformity_pvalue(sbc_ranks(truths[:, j], narrow[:, :, j]), n_draws=99, bins=20)
        assert p_narrow < P_ACCEPT, (j, p_narrow)


def _vmapped_svi(model, y, n_sims: int, settings: SVISettings, seed: int) -> dict[str, np.ndarray]:
    """fit_svi on each data set, all at once; ``y`` has a leading axis of data sets (a pytree)."""
    import jax
    import jax.numpy as jnp

    def one(y_one, key):
        draws, _ = fit_svi(model, {"y": y_one}, settings, key)
        return draws

    keys = jax.random.split(jax.random.PRNGKey(seed), n_sims)
    draws = jax.jit(jax.vmap(one))(jax.tree.map(jnp.asarray, y), keys)
    return {k: np.asarray(v) for k, v in draws.items()}  # {site: (n_sims, draws)}


def test_full_rank_svi_passes_vsbc_and_sbc():
    # mvn is exact for this Gaussian posterior, so it must pass both checks.
    truths, y = _line_data(seed=11)
    settings = SVISettings(guide="mvn", steps=2000, learning_rate=0.05, draws=1000)
    draws = _vmapped_svi(_line_model(), {"y": y}, N_SIMS, settings, seed=1)
    for j, name in enumerate(("a", "b")):
        p_below = (draws[name] < truths[:, j : j + 1]).mean(1)  # Pr_q(θ < θ̃ | ỹ)
        # Seed 11: VSBC p = 0.99 (a), 0.55 (b); rank test on the first 99 (independent) draws:
        # p = 0.46 (a), 0.063 (b).
        assert vsbc_pvalue(p_below) > P_ACCEPT, name
        ranks = sbc_ranks(truths[:, j], draws[name][:, :99])
        assert rank_uniformity_pvalue(ranks, n_draws=99, bins=20) > P_ACCEPT, name


def _poisson_model():
    """λ ~ Gamma(½, 1), one Poisson count: the posterior Gamma(½ + y, 2) is strongly skewed."""
    import numpyro
    import numpyro.distributions as dist

    def model(y=None):
        rate = numpyro.sample("rate", dist.Gamma(0.5, 1.0))
        numpyro.sample("y", dist.Poisson(rate), obs=y)

    return model


def test_vsbc_detects_the_skew_a_laplace_approximation_misses():
    # The Laplace guide is a Normal at the mode of log λ; the posterior of log λ has a heavy left
    # tail (Gamma shape ½ + y), so the truth falls below the approximation's median too often.
    # The exact posterior's CDF at the truth passes the same test: the fault is the approximation.
    rng = np.random.default_rng(12)
    n_sims = 300
    rate = rng.gamma(0.5, 1.0, n_sims)
    y = rng.poisson(rate).astype(float)
    p_exact = stats.gamma.cdf(rate, 0.5 + y, scale=1 / 2.0)
    settings = SVISettings(guide="laplace", steps=500, learning_rate=0.05, draws=1000)
    draws = _vmapped_svi(_poisson_model(), y, n_sims, settings, seed=2)
    p_laplace = (draws["rate"] < rate[:, None]).mean(1)
    # Seed 12: exact 0.996, Laplace 9e-16. Over seeds 0–4 with 200 data sets: Laplace 7e-6 …
    # 1e-21, exact 0.03 … 1.0. (A mean-field Normal guide on the same model shifts p less:
    # 1e-4 … 6e-6 with 1000 data sets, too close to the threshold to make a robust control.)
    assert vsbc_pvalue(p_exact) > P_ACCEPT
    assert vsbc_pvalue(p_laplace) < P_ACCEPT


def test_vsbc_rejects_a_symmetric_p_at_its_nominal_rate():
    # The sign-flip null is exact: over 200 uniform p-sets (n = 150) the rate of p-values below
    # 0.05 is binomial(200, 0.05): mean 10, and 20 or more happens with probability < 0.2 %.
    # SciPy's independent two-sample KS p-value fell below 0.05 in about 10 % of such sets.
    rng = np.random.default_rng(21)
    pvalues = [vsbc_pvalue(rng.uniform(size=150), n_flips=499, seed=i) for i in range(200)]
    assert np.sum(np.array(pvalues) < 0.05) < 20
