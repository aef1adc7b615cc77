"""The Pyro backend samples the posterior of the NumPyro model.

Checked three ways: the prior and joint densities equal NumPyro's at fixed points; NUTS and SVI
recover the Gauss-linear posterior known in closed form (``test_gauss_linear``); Pyro NUTS on the
torch SMIB PINN and NumPyro NUTS on its JAX twin agree within their Monte Carlo errors.
"""

from __future__ import annotations

import math

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.distributions.transforms import biject_to
from scipy import special

from inference.model import ModelSpec, Noise, build_model, sigma_site
from inference.nuts import MCMCSettings, run_mcmc
from inference.priors import Prior, distribution
from inference.pyro_backend import (
    PyroSettings,
    _f64,
    build_pyro_model,
    chain_start,
    prior_distribution,
    run_pyro,
)
from tests.inference.test_gauss_linear import NAMES, PRIOR_LOC, PRIOR_SCALE, SIGMA, X, Y, _exact_posterior

PRIORS = [
    Prior("uniform", lower=0.05, upper=0.5),
    Prior("loguniform", lower=0.1, upper=1.0),
    Prior("normal", loc=0.3, scale=2.0),
    Prior("lognormal", loc=-1.0, scale=0.5),
    Prior("truncated_normal", loc=0.2, scale=0.3, lower=0.0, upper=1.0),
    Prior("truncated_normal", loc=0.0, scale=1.0, lower=-1.0),
    Prior("truncated_normal", loc=1.0, scale=2.0, upper=0.5),
]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Pyro's per-leapfrog overhead dominates on these tiny models; more threads only contend.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p.kind)
def test_prior_density_equals_numpyro(prior):
    points = np.array(distribution(prior).sample(jax.random.PRNGKey(0), (7,)))  # a writable copy
    got = prior_distribution(prior).log_prob(torch.from_numpy(points)).numpy()
    want = np.asarray(distribution(prior).log_prob(jnp.asarray(points)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: p.kind)
def test_prior_support_maps_the_real_line_into_the_prior_support(prior):
    # NUTS moves in the unconstrained space; biject_to(support) must land where the density is finite.
    d = prior_distribution(prior)
    theta = biject_to(d.support)(torch.linspace(-12.0, 12.0, 25, dtype=torch.float64))
    lower, upper = prior.support()
    assert theta.dtype == torch.float64
    assert bool(((theta >= lower) & (theta <= upper)).all())
    assert bool(torch.isfinite(d.log_prob(theta)).all())


@pytest.mark.parametrize(
    "prior, theta",
    [
        (Prior("truncated_normal", lower=6.0, upper=9.0), np.linspace(6.01, 8.99, 5)),
        (Prior("truncated_normal", upper=-7.0), np.linspace(-30.0, -7.01, 5)),
        (Prior("truncated_normal", lower=-1.0), np.linspace(5.0, 40.0, 5)),
    ],
    ids=["window above the mean", "lower tail", "upper tail of a one-sided window"],
)
def test_truncated_normal_density_in_the_far_tails(prior, theta):
    # Closed form φ(z)/(scale·Z), log Z by log_ndtr on the lower-tail side (mpmath at 50 digits
    # agrees). NumPyro's TruncatedNormal is 5.6e-8 off in log density on [6, 9].
    alpha, beta = (prior.lower - prior.loc) / prior.scale, (prior.upper - prior.loc) / prior.scale
    lo, hi = (-beta, -alpha) if alpha > 0 else (alpha, beta)
    log_z = special.log_ndtr(hi) + np.log1p(-np.exp(special.log_ndtr(lo) - special.log_ndtr(hi)))
    z = (theta - prior.loc) / prior.scale
    want = -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - math.log(prior.scale) - log_z
    got = prior_distribution(prior).log_prob(torch.from_numpy(theta)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-12)


def test_truncated_normal_draws_follow_the_density():
    # Inverse-CDF draws (used for init_to_median): mean of N(0.2, 0.3²) on [0, 1] is
    # loc + scale·(φ(α) − φ(β))/Z; 20000 draws give a standard error of ≈ 0.0014.
    prior = Prior("truncated_normal", loc=0.2, scale=0.3, lower=0.0, upper=1.0)
    pyro.set_rng_seed(0)
    draws = prior_distribution(prior).sample((20_000,)).numpy()
    alpha, beta = -0.2 / 0.3, 0.8 / 0.3
    pdf_alpha, pdf_beta = np.exp(-0.5 * np.array([alpha, beta]) ** 2) / math.sqrt(2 * math.pi)
    want = 0.2 + 0.3 * (pdf_alpha - pdf_beta) / (special.ndtr(beta) - special.ndtr(alpha))
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    assert abs(draws.mean() - want) < 0.006


# --- the joint density: same sites, same log p(θ, σ, y) as NumPyro's model ----------------------

T_S = np.linspace(0.0, 2.0, 9)


def _joint_spec(likelihood: str) -> ModelSpec:
    priors = {
        "k [s-1]": Prior("loguniform", lower=0.1, upper=10.0),
        "A": Prior("truncated_normal", loc=1.0, scale=0.5, lower=0.0, upper=3.0),
    }
    noise = {"u": Noise(sigma=0.05), "v": Noise(scale=0.2)}
    return ModelSpec(priors, ("u", "v"), noise, surrogate_sigma={"u": 0.02, "v": 0.01}, likelihood=likelihood)


def _decay(xp, t, theta):
    return {"u": theta["A"] * xp.exp(-theta["k [s-1]"] * t), "v": theta["A"] * t / (1 + theta["k [s-1]"] * t)}


@pytest.mark.parametrize("likelihood", ["normal", "student_t"])
def test_joint_density_equals_numpyro(likelihood):
    from numpyro.infer.util import log_density

    spec = _joint_spec(likelihood)
    y = {"u": np.exp(-1.3 * T_S) + 0.03, "v": T_S / (1 + 1.3 * T_S) - 0.02}
    point = {"k [s-1]": 1.7, "A": 0.9, sigma_site("v"): 0.08}
    t_torch, t_jax = torch.from_numpy(T_S), jnp.asarray(T_S)
    pyro_model = build_pyro_model(lambda th: _decay(torch, t_torch, th), spec)
    conditioned = poutine.condition(
        pyro_model, data={k: torch.tensor(v, dtype=torch.float64) for k, v in point.items()}
    )
    trace = poutine.trace(conditioned).get_trace(y=y)
    numpyro_model = build_model(lambda th: _decay(jnp, t_jax, th), spec)
    want, numpyro_trace = log_density(
        numpyro_model, (), {"y": y}, {k: jnp.asarray(v) for k, v in point.items()}
    )
    assert set(trace.nodes) - {"_INPUT", "_RETURN"} == set(numpyro_trace)
    assert abs(float(trace.log_prob_sum()) - float(want)) < 1e-10


# --- the Gauss-linear posterior (test_gauss_linear) ------------------------------------------------


def _gauss_linear_draws(settings: PyroSettings) -> tuple[np.ndarray, dict]:
    x = torch.from_numpy(X)
    priors = {
        k: Prior("normal", loc=float(m), scale=float(s)) for k, m, s in zip(NAMES, PRIOR_LOC, PRIOR_SCALE)
    }
    spec = ModelSpec(priors=priors, observables=("y",), noise={"y": Noise(sigma=SIGMA)})
    result = run_pyro(
        lambda th: {"y": x @ torch.stack([th[k] for k in NAMES])}, spec, {"y": Y}, settings, False
    )
    return np.stack([result.samples[k] for k in NAMES], -1), result.sample_stats


def _moments(draws: np.ndarray):
    mean, cov = draws.mean(0), np.cov(draws, rowvar=False)
    sd = np.sqrt(np.diag(cov))
    return mean, sd, cov / np.outer(sd, sd)


# The mean bound is 4 Monte Carlo standard errors (arviz.mcse from these chains; ESS here is
# 580–930 of 800 draws over seeds 0–3, 270–330 when chains started at the prior's median, and
# must reach 200). At ESS ≥ 200 an sd has MC error ≤ 5 % (bound 15 %) and a correlation
# ≤ 0.07·(1 − ρ²) (bound 0.15: ≥ 2 errors for ρ ≈ 0.06, ≥ 5 for ρ ≈ −0.76). Measured over seeds
# 0–3: means within 2.4 mcse (seed 0: 0.4), sds within 5.2 %, correlations within 0.035.
def test_nuts_recovers_gauss_linear_posterior():
    mean, cov = _exact_posterior()
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    draws, stats = _gauss_linear_draws(PyroSettings(chains=2, warmup=200, samples=400, seed=0))
    assert draws.shape == (2, 400, 3)
    assert stats["diverging"].shape == (2, 400) and int(stats["diverging"].sum()) == 0
    posterior = az.convert_to_dataset({k: draws[..., i] for i, k in enumerate(NAMES)})
    ess = np.array([float(az.ess(posterior)[k]) for k in NAMES])
    mcse = np.array([float(az.mcse(posterior)[k]) for k in NAMES])
    assert ess.min() >= 200, ess
    got_mean, got_sd, got_corr = _moments(draws.reshape(-1, 3))
    assert np.all(np.abs(got_mean - mean) < 4 * mcse), (got_mean, mean, mcse)
    assert np.all(np.abs(got_sd / sd - 1) < 0.15), (got_sd, sd)
    assert np.all(np.abs(got_corr - corr) < 0.15), (got_corr, corr)


# The family holds the exact posterior, so what is left is the jitter of the final Adam iterate
# plus the Monte Carlo error of 4000 guide draws (0.016 sd in a mean, 1.1 % in an sd, ≤ 0.016 in a
# correlation). With NumPyro SVI's schedule (lr 0.01 for half the steps, then decaying to 1e-4)
# and 4000 steps, seeds 0–3 gave at most 0.04 sd in a mean, 3.9 % in an sd and 0.047 in a
# correlation; the bounds are 0.1 sd, 8 % and 0.08.
def test_svi_mvn_recovers_gauss_linear_posterior():
    mean, cov = _exact_posterior()
    settings = PyroSettings(method="svi", guide="mvn", svi_steps=4000, learning_rate=0.01, draws=4000, seed=0)
    draws, stats = _gauss_linear_draws(settings)
    assert draws.shape == (1, 4000, 3)
    elbo = stats["elbo"]
    assert elbo.shape == (4000,) and elbo[-200:].mean() > elbo[:200].mean()
    sd = np.sqrt(np.diag(cov))
    got_mean, got_sd, got_corr = _moments(draws[0])
    assert np.all(np.abs(got_mean - mean) < 0.1 * sd), (got_mean, mean, sd)
    assert np.all(np.abs(got_sd / sd - 1) < 0.08), (got_sd, sd)
    assert np.all(np.abs(got_corr - cov / np.outer(sd, sd)) < 0.08), (got_corr, cov)


@pytest.mark.parametrize("guide", ["normal", "flow", "laplace"])
def test_svi_guides_return_draws_of_every_latent_site(guide):
    # A smoke test (60 steps): the other guides run in float64 and give draws keyed like NumPyro's
    # sites, the inferred noise σ included.
    x = torch.from_numpy(X)
    priors = {
        k: Prior("normal", loc=float(m), scale=float(s)) for k, m, s in zip(NAMES, PRIOR_LOC, PRIOR_SCALE)
    }
    spec = ModelSpec(priors=priors, observables=("y",), noise={"y": Noise(scale=1.0)})
    settings = PyroSettings(method="svi", guide=guide, svi_steps=60, learning_rate=0.05, draws=50)
    result = run_pyro(
        lambda th: {"y": x @ torch.stack([th[k] for k in NAMES])}, spec, {"y": Y}, settings, False
    )
    assert set(result.samples) == {*NAMES, sigma_site("y")}
    assert all(v.shape == (1, 50) and v.dtype == np.float64 for v in result.samples.values())
    assert np.all(result.samples[sigma_site("y")] > 0)
    assert np.all(np.isfinite(result.sample_stats["elbo"]))


# --- Pyro NUTS on the torch PINN vs NumPyro NUTS on the JAX PINN ------------------------------------

SMIB_CONDITIONS = {"P": 0.1, "B": 0.2, "delta0": 0.1, "omega0": 0.1}


def _smib_problem():
    from surrogates.power import smib_reference

    t_s = np.linspace(0.0, 20.0, 60)
    truth = smib_reference.solve(t_s, m=0.4, d=0.15, **SMIB_CONDITIONS)
    rng = np.random.default_rng(11)
    sigma = {k: 0.05 * float(np.ptp(v)) for k, v in truth.items()}
    y = {k: v + sigma[k] * rng.standard_normal(v.shape) for k, v in truth.items()}
    priors = {"m": Prior("loguniform", lower=0.1, upper=1.0), "d": Prior("uniform", lower=0.05, upper=0.5)}
    spec = ModelSpec(priors, tuple(truth), {k: Noise(sigma=s) for k, s in sigma.items()})
    return t_s, y, spec


# The means must agree within 4·sqrt(mcse_pyro² + mcse_numpyro²); the sds within 15 %: an sd has
# MC error ≈ 1/sqrt(2·ESS), and with ESS ≈ 400–500 (Pyro) and 800–950 (NumPyro) here the ratio
# has ≈ 4.3 %, so the bound is ≈ 3.5 errors. Measured: means within 0.75 combined mcse, sd ratios
# 1.02 (m) and 0.96 (d).
def test_pyro_and_numpyro_nuts_agree_on_smib_surrogate():
    from surrogates.power.smib_models import SmibSurrogate

    surrogate = SmibSurrogate()
    t_s, y, spec = _smib_problem()
    t_torch, t_jax = torch.from_numpy(t_s), jnp.asarray(t_s)
    pyro_settings = PyroSettings(chains=2, warmup=200, samples=300, seed=1)
    result = run_pyro(
        lambda th: surrogate.torch_forward(t_torch, **th, **SMIB_CONDITIONS), spec, y, pyro_settings, False
    )
    assert int(result.sample_stats["diverging"].sum()) == 0
    model = build_model(lambda th: surrogate.jax_forward(t_jax, **th, **SMIB_CONDITIONS), spec)
    mcmc, _ = run_mcmc(
        model, {"y": y}, MCMCSettings(chains=2, warmup=300, samples=600, seed=1), progress=False
    )
    assert int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()) == 0
    numpyro_draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    for name in ("m", "d"):
        a, b = result.samples[name], numpyro_draws[name]
        assert a.shape == (2, 300)
        tol = 4 * math.hypot(float(az.mcse(a)), float(az.mcse(b)))
        assert abs(a.mean() - b.mean()) < tol, (name, a.mean(), b.mean(), tol)
        assert abs(a.std() / b.std() - 1) < 0.15, (name, a.std(), b.std())


def _normal_model(y=None):
    theta = pyro.sample("theta", dist.Normal(_f64(0.0), _f64(1.0)))
    pyro.sample("y", dist.Normal(theta, _f64(0.1)), obs=y)


def _bounded_model(y=None):
    theta = pyro.sample("theta", dist.Uniform(_f64(0.0), _f64(10.0)))
    pyro.sample("y", dist.Normal(theta, _f64(0.05)), obs=y)


def test_chain_start_is_the_most_probable_of_its_prior_draws():
    """Normal prior and likelihood: the mode is 0.3·100/101. The best of 256 prior draws lies
    within 0.05 of it (a miss has probability (1 − 0.038)^256 ≈ 5e-5); one draw per chain is a
    plain prior draw (sd 1 over 400 chains, ±2.8 standard errors)."""
    y = _f64(0.3)
    pyro.set_rng_seed(0)
    best = [float(chain_start(_normal_model, y, candidates=256)["theta"]) for _ in range(4)]
    assert np.all(np.abs(np.array(best) - 0.3 * 100 / 101) < 0.05), best
    assert len(set(best)) == 4  # the draws follow the seed: each chain its own
    plain = [float(chain_start(_normal_model, y, candidates=1)["theta"]) for _ in range(400)]
    assert abs(np.std(plain) - 1.0) < 0.1


def test_chain_start_is_unconstrained_and_none_without_a_finite_density():
    """A U(0, 10) site's start is on the real line (Pyro's ``initial_params``): θ = 10·σ(z)."""
    pyro.set_rng_seed(1)
    z = float(chain_start(_bounded_model, _f64(2.0), candidates=256)["theta"])
    assert abs(10.0 * special.expit(z) - 2.0) < 0.15  # P(no draw within 0.15) = 0.97^256 ≈ 4e-4

    def impossible(y=None):
        pyro.sample("theta", dist.Normal(_f64(0.0), _f64(1.0)))
        pyro.factor("never", _f64(-math.inf))

    def nan_forward(y=None):
        theta = pyro.sample("theta", dist.Normal(_f64(0.0), _f64(1.0)))
        pyro.sample("y", dist.Normal(theta * math.nan, _f64(1.0)), obs=_f64(0.0))

    assert chain_start(impossible, None) is None
    assert chain_start(nan_forward, None) is None
