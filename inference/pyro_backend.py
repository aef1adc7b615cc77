"""Pyro NUTS and SVI on a torch forward function: the PyTorch twin of ``model.py`` and ``nuts.py``.

The model has the sites, priors and likelihood of :func:`inference.model.build_model`, so the two
backends sample the same posterior; everything runs in float64 (tensors are converted explicitly,
torch's default dtype is left alone). NUTS chains run one after another in this process (Pyro runs
several chains in worker processes, which we avoid on CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch.distributions.transforms import ExpTransform
from torch.distributions.utils import broadcast_all

from inference.model import ModelSpec, sigma_site
from inference.nuts import START_CANDIDATES
from inference.priors import KINDS, Prior

__all__ = ["PyroResult", "PyroSettings", "build_pyro_model", "chain_start", "prior_distribution", "run_pyro"]

_F64 = torch.float64
_GUIDES = ("normal", "mvn", "flow", "laplace")


@dataclass(frozen=True)
class PyroSettings:
    method: str = "nuts"  # nuts | svi
    chains: int = 4
    warmup: int = 1000
    samples: int = 1000
    seed: int = 0
    target_accept: float = 0.8
    dense_mass: bool = True  # nuts: adapt a full mass matrix, as the NumPyro backend does
    # svi: normal (AutoNormal) | mvn (AutoMultivariateNormal) | flow (AutoIAFNormal)
    # | laplace (AutoLaplaceApproximation)
    guide: str = "mvn"
    svi_steps: int = 5000
    learning_rate: float = 0.01
    draws: int = 4000  # svi: posterior draws from the fitted guide


@dataclass(frozen=True)
class PyroResult:
    """Draws in physical units, keyed by the NumPyro model's site names.

    ``samples[site]`` has shape (chains, draws) for NUTS and (1, draws) for SVI. ``sample_stats``
    holds ``diverging`` (chains, draws) for NUTS and ``elbo`` (svi_steps,) for SVI.
    """

    samples: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    wall_time_s: float


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=_F64)


class _LogUniform(dist.TransformedDistribution):
    """Density 1/(θ·log(high/low)) on [low, high]: Uniform(log low, log high) pushed through exp.

    Pyro has no LogUniform. The support is declared as the interval (exp's codomain would be
    all positive numbers), so NUTS maps it with the same sigmoid bijection as NumPyro.
    """

    def __init__(self, low: torch.Tensor, high: torch.Tensor, validate_args=None):
        self.low, self.high = low, high
        base = dist.Uniform(low.log(), high.log(), validate_args=validate_args)
        super().__init__(base, [ExpTransform()], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def expand(self, batch_shape, _instance=None):
        return _LogUniform(self.low.expand(batch_shape), self.high.expand(batch_shape))


def _normal_cdf(z):
    # Not torch.special.ndtr: on torch 2.13 (CPU) it loses relative precision in the lower tail
    # (2e-6 at z = -7, 0 at z = -9); erfc keeps it.
    return 0.5 * torch.special.erfc(-z / math.sqrt(2.0))


def _log1mexp(a):
    """log(1 − exp(a)) for a ≤ 0, accurate near 0 and for large |a| (Mächler 2012)."""
    return torch.where(a > -math.log(2.0), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


class _TruncatedNormal(dist.TorchDistribution):
    """Normal(loc, scale) restricted to [lower, upper] (either bound may be infinite).

    Pyro has no truncated normal. Density φ(z)/(scale·Z) with z = (θ − loc)/scale and
    Z = Φ(β) − Φ(α) for the standardised bounds α, β. Z is computed as log Φ on the lower-tail
    side (the window is reflected when it lies above the mean), where float64 keeps its relative
    precision; draws use the inverse CDF.
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, loc, scale, lower, upper, validate_args=None):
        self.loc, self.scale, self.lower, self.upper = broadcast_all(loc, scale, lower, upper)
        alpha, beta = (self.lower - self.loc) / self.scale, (self.upper - self.loc) / self.scale
        self._reflect = alpha > 0
        self._lo = torch.where(self._reflect, -beta, alpha)
        self._hi = torch.where(self._reflect, -alpha, beta)
        log_hi = torch.special.log_ndtr(self._hi)
        self._log_z = log_hi + _log1mexp(torch.special.log_ndtr(self._lo) - log_hi)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        lower_finite, upper_finite = bool(self.lower.isfinite().all()), bool(self.upper.isfinite().all())
        if lower_finite and upper_finite:
            return constraints.interval(self.lower, self.upper)
        if lower_finite:
            return constraints.greater_than(self.lower)
        if upper_finite:
            return constraints.less_than(self.upper)
        return constraints.real

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) - self.scale.log() - self._log_z

    def rsample(self, sample_shape=()):
        u = torch.rand(self._extended_shape(sample_shape), dtype=self.loc.dtype)
        p_lo, p_hi = _normal_cdf(self._lo), _normal_cdf(self._hi)
        z = torch.special.ndtri(p_lo + u * (p_hi - p_lo))
        theta = self.loc + self.scale * torch.where(self._reflect, -z, z)
        return torch.minimum(torch.maximum(theta, self.lower), self.upper)

    def expand(self, batch_shape, _instance=None):
        args = (self.loc, self.scale, self.lower, self.upper)
        return _TruncatedNormal(*(a.expand(batch_shape) for a in args))


def prior_distribution(prior: Prior) -> dist.TorchDistribution:
    """Pyro distribution (float64) with the density and support of ``inference.priors.distribution``."""
    k = prior.kind
    lower, upper, loc, scale = (_f64(v) for v in (prior.lower, prior.upper, prior.loc, prior.scale))
    if k == "uniform":
        return dist.Uniform(lower, upper)
    if k == "loguniform":
        return _LogUniform(lower, upper)
    if k == "normal":
        return dist.Normal(loc, scale)
    if k == "lognormal":
        return dist.LogNormal(loc, scale)
    if k == "truncated_normal":
        return _TruncatedNormal(loc, scale, lower, upper)
    raise ValueError(f"prior: found {k!r}, expected one of {', '.join(KINDS)}")


def build_pyro_model(torch_forward: Callable[[dict], dict], spec: ModelSpec):
    """A Pyro model ``model(y=None)`` with the sites, priors and likelihood of ``build_model``.

    ``torch_forward`` maps a dict of 0-d float64 tensors to a dict of predicted tensors, one per
    observable, on the observation grid; it must be differentiable by torch autograd. The
    likelihood σ of each observable is ``sqrt(σ_noise² + σ_surrogate²)``.
    """
    if spec.likelihood not in ("normal", "student_t"):
        raise ValueError(f"likelihood: found {spec.likelihood!r}, expected normal or student_t")
    priors = {name: prior_distribution(p) for name, p in spec.priors.items()}
    surrogate_var = {obs: _f64(np.square(spec.surrogate_sigma.get(obs, 0.0))) for obs in spec.observables}
    df = _f64(spec.student_df)

    def model(y: Mapping | None = None):
        theta = {name: pyro.sample(name, prior) for name, prior in priors.items()}
        mean = torch_forward(theta)
        for obs in spec.observables:
            noise = spec.noise[obs]
            if noise.sigma is None:
                sigma = pyro.sample(sigma_site(obs), dist.HalfNormal(_f64(noise.scale)))
            else:
                sigma = _f64(noise.sigma)
            total = torch.sqrt(sigma**2 + surrogate_var[obs])
            if spec.likelihood == "student_t":
                lik = dist.StudentT(df, mean[obs], total)
            else:
                lik = dist.Normal(mean[obs], total)
            pyro.sample(obs, lik.to_event(1), obs=None if y is None else _f64(y[obs]))

    return model


def _latent_sites(spec: ModelSpec) -> list[str]:
    inferred = [sigma_site(obs) for obs in spec.observables if spec.noise[obs].sigma is None]
    return [*spec.priors, *inferred]


def chain_start(model, y: dict, candidates: int = START_CANDIDATES) -> dict | None:
    """The chain's start in unconstrained space (Pyro's ``initial_params``): the most probable of
    ``candidates`` draws from the prior, by the potential energy NUTS samples; the draws follow
    Pyro's global seed. None when no draw has a finite energy (a NaN forward counts as none):
    the kernel's ``init_to_median`` then starts the chain, or says it cannot. The NumPyro
    backend's rule: ``inference.nuts.chain_starts`` says why the prior's median is not enough."""
    from pyro import poutine
    from pyro.infer.mcmc.util import initialize_model

    try:
        _, potential_fn, transforms, _ = initialize_model(model, model_kwargs={"y": y})
    except ValueError:  # Pyro found no valid start in 100 draws either; the kernel will say so
        return None
    best, lowest = None, math.inf
    with torch.no_grad():
        for _ in range(candidates):
            try:
                trace = poutine.trace(model).get_trace(y=y)
                z = {name: t(trace.nodes[name]["value"]) for name, t in transforms.items()}
                energy = float(potential_fn(z))
            except ValueError:  # a distribution's check refused a NaN the forward gave there
                continue
            if energy < lowest:  # NaN never is
                best, lowest = z, energy
    return best


def _nuts_chain(model, y: dict, settings: PyroSettings, chain: int, progress: bool):
    """One NUTS chain: draws per site, each (samples,), and a (samples,) bool of divergences."""
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_median

    pyro.set_rng_seed(settings.seed + chain)
    kernel = NUTS(
        model,
        target_accept_prob=settings.target_accept,
        full_mass=settings.dense_mass,
        init_strategy=init_to_median,
    )
    mcmc = MCMC(
        kernel,
        num_samples=settings.samples,
        warmup_steps=settings.warmup,
        initial_params=chain_start(model, y),
        disable_progbar=not progress,
    )
    mcmc.run(y=y)
    draws = {k: v.detach().numpy()[0] for k, v in mcmc.get_samples(group_by_chain=True).items()}
    # Pyro records the index of each post-warmup draw whose trajectory diverged.
    diverging = np.zeros(settings.samples, bool)
    diverging[np.asarray(mcmc.diagnostics()["divergences"]["chain 0"], int)] = True
    return draws, diverging


def _run_nuts(model, y, spec, settings, progress):
    chains = [_nuts_chain(model, y, settings, c, progress) for c in range(settings.chains)]
    samples = {k: np.stack([draws[k] for draws, _ in chains]) for k in _latent_sites(spec)}
    return samples, {"diverging": np.stack([div for _, div in chains])}


def _iaf_float64(latent_dim: int):
    """The transform AutoIAFNormal builds (one affine autoregressive flow), in float64."""
    from pyro.distributions.transforms import affine_autoregressive, iterated

    return iterated(1, affine_autoregressive, latent_dim).double()


def _guide(name: str, model):
    from pyro.infer import autoguide
    from pyro.infer.autoguide.initialization import init_to_median

    if name == "normal":
        return autoguide.AutoNormal(model, init_loc_fn=init_to_median)
    if name == "mvn":
        return autoguide.AutoMultivariateNormal(model, init_loc_fn=init_to_median)
    if name == "flow":
        # AutoIAFNormal builds its flow in torch's default dtype; this is the same guide in float64.
        return autoguide.AutoNormalizingFlow(model, _iaf_float64)
    if name == "laplace":
        return autoguide.AutoLaplaceApproximation(model, init_loc_fn=init_to_median)
    raise ValueError(f"guide: found {name!r}, expected one of {', '.join(_GUIDES)}")


def _run_svi(model, y, spec, settings, progress):
    from pyro.infer import SVI, Predictive, Trace_ELBO
    from pyro.optim import LambdaLR
    from tqdm.auto import trange

    from inference.svi import learning_rate_factor

    pyro.clear_param_store()
    pyro.set_rng_seed(settings.seed)
    guide = _guide(settings.guide, model)
    # NumPyro SVI's schedule: the decay removes the jitter a constant step leaves in the means.
    optimizer = LambdaLR(
        {
            "optimizer": torch.optim.Adam,
            "optim_args": {"lr": settings.learning_rate},
            "lr_lambda": lambda i: float(learning_rate_factor(i, settings.svi_steps)),
        }
    )
    svi = SVI(model, guide, optimizer, Trace_ELBO())
    elbo = np.empty(settings.svi_steps)
    for i in trange(settings.svi_steps, disable=not progress, desc="SVI"):
        elbo[i] = -svi.step(y=y)
        optimizer.step()
    posterior = guide.laplace_approximation(y=y) if settings.guide == "laplace" else guide
    sites = _latent_sites(spec)
    # The guide alone, vectorised over draws: the forward model is not run again.
    predictive = Predictive(posterior, num_samples=settings.draws, return_sites=sites, parallel=True)
    with torch.no_grad():
        draws = predictive(y=y)
    samples = {k: draws[k].detach().numpy().reshape(1, settings.draws) for k in sites}
    return samples, {"elbo": elbo}


def run_pyro(
    torch_forward: Callable[[dict], dict],
    spec: ModelSpec,
    y: Mapping[str, np.ndarray],
    settings: PyroSettings,
    progress: bool = True,
) -> PyroResult:
    """Sample (NUTS) or approximate (SVI) the posterior of ``spec`` given observed arrays ``y``."""
    runners = {"nuts": _run_nuts, "svi": _run_svi}
    if settings.method not in runners:
        raise ValueError(f"method: found {settings.method!r}, expected nuts or svi")
    model = build_pyro_model(torch_forward, spec)
    y_t = {obs: _f64(np.asarray(y[obs], float)) for obs in spec.observables}
    t0 = time.perf_counter()
    samples, stats = runners[settings.method](model, y_t, spec, settings, progress)
    return PyroResult(samples=samples, sample_stats=stats, wall_time_s=time.perf_counter() - t0)
