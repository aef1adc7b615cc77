"""The one place where sampler output becomes ``arviz.InferenceData``."""

from __future__ import annotations

import arviz as az

__all__ = ["to_inference_data"]


def to_inference_data(
    mcmc, model, model_kwargs: dict, *, seed: int, coords: dict, dims: dict, attrs: dict, n_prior: int = 500
) -> az.InferenceData:
    """Posterior, sample stats, observed data, posterior predictive and prior in one object."""
    import jax
    from numpyro.infer import Predictive

    key_prior, key_ppc = jax.random.split(jax.random.PRNGKey(seed + 1))
    no_obs = {k: v for k, v in model_kwargs.items() if k != "y"}
    prior = Predictive(model, num_samples=n_prior)(key_prior, **no_obs)
    ppc = Predictive(model, mcmc.get_samples())(key_ppc, **no_obs)
    observed = set(model_kwargs.get("y") or {})
    ppc = {k: v for k, v in ppc.items() if k in observed}
    idata = az.from_numpyro(mcmc, prior=prior, posterior_predictive=ppc, coords=coords, dims=dims)
    for group in idata.groups():
        idata[group].attrs.update({k: str(v) for k, v in attrs.items()})
    return idata
