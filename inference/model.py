"""Bayesian model: priors × likelihood of observed curves given a forward function.

The likelihood σ of each observable is ``sqrt(σ_noise² + σ_surrogate²)``: σ_noise fixed or inferred
(HalfNormal), σ_surrogate the forward model's held-out RMSE (``surrogate_error = "rmse"``) or 0.
With ``surrogate_error = "correlated"`` the surrogate's error is a Gaussian over the observation
grid with covariance L Lᵀ (``inference.surrogate_error``), marginalised: y ~ N(f, σ²I + L Lᵀ).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.priors import Prior, distribution

__all__ = ["ModelSpec", "Noise", "build_model", "sigma_site"]


@dataclass(frozen=True)
class Noise:
    """Measurement noise of one observable: ``sigma`` fixed, or inferred with HalfNormal(scale)."""

    sigma: float | None = None
    scale: float = 1.0


@dataclass(frozen=True)
class ModelSpec:
    priors: Mapping[str, Prior]
    observables: tuple[str, ...]
    noise: Mapping[str, Noise]
    surrogate_sigma: Mapping[str, float] = field(default_factory=dict)
    # Low-rank factors (T, r) of the surrogate's correlated error per observable (normal likelihood).
    surrogate_factor: Mapping[str, Any] = field(default_factory=dict)
    likelihood: str = "normal"
    student_df: float = 4.0


def sigma_site(observable: str) -> str:
    return f"sigma: {observable}"


def build_model(forward: Callable[[dict], dict], spec: ModelSpec):
    """A NumPyro model ``model(y=None, mask=None, surrogate_sd=None, **inputs)``; ``y`` maps
    observable names to observed arrays, ``mask`` (normal likelihood only) to booleans saying
    which readings count, ``surrogate_sd`` to the surrogate's error sd per reading (replacing
    ``spec.surrogate_sigma``, for data sets whose readings differ in it).

    ``forward(theta, **inputs)`` maps a dict of parameter values to a dict of predicted arrays,
    one per observable, on the observation grid. ``inputs`` carry whatever differs between data
    sets that share the model (a cycle's times and C-rate), so one model can be ``vmap``-ed over
    many of them; padded readings are masked out.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(y: dict | None = None, mask: dict | None = None, surrogate_sd: dict | None = None, **inputs):
        theta = {name: numpyro.sample(name, distribution(p)) for name, p in spec.priors.items()}
        mean = forward(theta, **inputs)
        for obs in spec.observables:
            noise = spec.noise[obs]
            if noise.sigma is None:
                sigma = numpyro.sample(sigma_site(obs), dist.HalfNormal(noise.scale))
            else:
                sigma = noise.sigma
            surrogate = spec.surrogate_sigma.get(obs, 0.0) if surrogate_sd is None else surrogate_sd[obs]
            total = jnp.sqrt(sigma**2 + surrogate**2)
            factor = spec.surrogate_factor.get(obs)
            if factor is not None:
                diag = jnp.broadcast_to(total**2, mean[obs].shape)
                lik = dist.LowRankMultivariateNormal(mean[obs], jnp.asarray(factor), diag)
                numpyro.sample(obs, lik, obs=None if y is None else y[obs])
                continue
            if spec.likelihood == "student_t":
                lik = dist.StudentT(spec.student_df, mean[obs], total)
            else:
                lik = dist.Normal(mean[obs], total)
            if mask is not None:
                lik = lik.mask(mask[obs])
            numpyro.sample(obs, lik.to_event(1), obs=None if y is None else y[obs])

    return model
