"""The one place where sampler output becomes ``arviz.InferenceData``."""

from __future__ import annotations

import arviz as az
import numpy as np

from inference.batching import over_points

__all__ = ["from_draws", "one_pass", "posterior_draws", "replace_posterior", "to_inference_data"]


def to_inference_data(
    mcmc, model, model_kwargs: dict, *, seed: int, coords: dict, dims: dict, attrs: dict, n_prior: int = 500
) -> az.InferenceData:
    """Posterior, sample stats, observed data, posterior predictive and prior in one object."""
    import jax
    from numpyro.infer import Predictive

    key_prior, key_ppc = jax.random.split(jax.random.PRNGKey(seed + 1))
    no_obs = {k: v for k, v in model_kwargs.items() if k != "y"}
    prior = Predictive(model, num_samples=n_prior)(key_prior, **no_obs)
    ppc, loglik = posterior_draws(model, mcmc.get_samples(), key_ppc, model_kwargs)
    idata = az.from_numpyro(
        mcmc, prior=prior, posterior_predictive=ppc, log_likelihood=False, coords=coords, dims=dims
    )
    chains = mcmc.num_chains
    idata.add_groups(log_likelihood={k: np.asarray(v).reshape(chains, -1) for k, v in loglik.items()})
    for group in idata.groups():
        idata[group].attrs.update({k: str(v) for k, v in attrs.items()})
    return idata


def replace_posterior(
    idata: az.InferenceData, samples: dict, model, model_kwargs: dict, *, seed: int, attrs: dict
):
    """A copy of ``idata`` whose posterior is ``samples`` ({site: (chains, draws)}) from another
    algorithm, with the posterior predictive of ``model`` at those draws and no sampler stats."""
    import jax
    from numpyro.infer import Predictive

    chains, draws = next(iter(samples.values())).shape[:2]
    flat = {k: v.reshape(chains * draws, *v.shape[2:]) for k, v in samples.items()}
    no_obs = {k: v for k, v in model_kwargs.items() if k != "y"}
    ppc = Predictive(model, flat)(jax.random.PRNGKey(seed + 2), **no_obs)
    ppc = {k: np.asarray(v).reshape(chains, draws, -1) for k, v in ppc.items() if k in idata.observed_data}
    dims = {k: list(idata.observed_data[k].dims) for k in ppc}
    coords = {d: idata.observed_data[d].values for k in dims for d in dims[k]}
    new = az.from_dict(posterior=samples, posterior_predictive=ppc, coords=coords, dims=dims)
    groups = {
        g: idata[g] for g in idata.groups() if g not in ("posterior", "posterior_predictive", "sample_stats")
    }
    out = az.InferenceData(posterior=new.posterior, posterior_predictive=new.posterior_predictive, **groups)
    for group in out.groups():
        out[group].attrs.update({k: str(v) for k, v in attrs.items()})
    return out


def from_draws(
    samples: dict,
    model,
    model_kwargs: dict,
    *,
    seed: int,
    coords: dict,
    dims: dict,
    attrs: dict,
    sample_stats=None,
    n_prior: int = 500,
) -> az.InferenceData:
    """The groups ``to_inference_data`` gives NUTS, for draws {site: (chains, draws)} of any engine.

    ``sample_stats`` is an ``xarray.Dataset`` of the engine's own record (an ELBO history, an
    ensemble's misfit per step), whose dimensions need not be (chain, draw).
    """
    import jax
    from numpyro.infer import Predictive

    key_prior, key_ppc = jax.random.split(jax.random.PRNGKey(seed + 1))
    y = model_kwargs.get("y") or {}
    no_obs = {k: v for k, v in model_kwargs.items() if k != "y"}
    chains, draws = next(iter(samples.values())).shape[:2]
    flat = {k: np.asarray(v).reshape(chains * draws) for k, v in samples.items()}
    prior = Predictive(model, num_samples=n_prior)(key_prior, **no_obs)
    ppc, loglik = posterior_draws(model, flat, key_ppc, model_kwargs)

    def by_chain(values: dict) -> dict:
        return {k: np.asarray(values[k]).reshape(chains, draws, -1) for k in y}

    new = az.from_dict(
        posterior={k: np.asarray(v) for k, v in samples.items()},
        posterior_predictive=by_chain(ppc),
        log_likelihood=by_chain(loglik),
        observed_data={k: np.asarray(v) for k, v in y.items()},
        prior={k: np.asarray(v)[None] for k, v in prior.items() if k not in y},
        prior_predictive={k: np.asarray(prior[k])[None] for k in y},
        coords=coords,
        dims=dims,
    )
    if sample_stats is not None:
        new.add_groups(sample_stats=sample_stats)
    for group in new.groups():
        new[group].attrs.update({k: str(v) for k, v in attrs.items()})
    return new


def posterior_draws(model, samples: dict, key, model_kwargs: dict) -> tuple[dict, dict]:
    """({observed site: a posterior predictive draw per sample}, {observed site: its
    log-likelihood at the data per sample}) from one compiled model run per sample ({site: (n,
    ...)}). NumPyro's ``Predictive`` and ``log_likelihood`` run the forward model once each: for
    ``battery.p2d`` on 4,000 draws that was 6 s apiece (measured)."""
    import jax

    # On the host: a parallel NUTS run's draws come sharded over its chains' devices
    samples = {k: np.asarray(v) for k, v in samples.items()}
    n = len(next(iter(samples.values())))
    # Waiting in block_until_ready releases the GIL, which a network surrogate's host callback
    # needs; np.asarray on a pending array waits holding it (see inference.correction._host)
    run = one_pass(model, model_kwargs)
    ppc, loglik = jax.block_until_ready(run((samples, jax.random.split(key, n)), model_kwargs))
    return {k: np.asarray(v) for k, v in ppc.items()}, {k: np.asarray(v) for k, v in loglik.items()}


def one_pass(model, model_kwargs: dict):
    """The compiled map behind ``posterior_draws``: ((draws, keys), model_kwargs) -> (predictive,
    log-likelihood), vmapped over the draws unless that makes batched LAPACK calls
    (``inference.batching``). ``model_kwargs`` names the observed sites; the call's own are run."""
    import jax
    from numpyro import handlers

    observed = sorted(model_kwargs.get("y") or {})

    def one(draw, kwargs):
        params, k = draw
        seeded = handlers.seed(handlers.substitute(model, params), rng_seed=k)
        sites = handlers.trace(seeded).get_trace(**kwargs)
        keys = dict(zip(observed, jax.random.split(k, len(observed)), strict=True))
        fns = {name: sites[name]["fn"] for name in observed}
        return (
            {name: fn.sample(keys[name]) for name, fn in fns.items()},
            {name: fn.log_prob(sites[name]["value"]) for name, fn in fns.items()},
        )

    return over_points(one)
