"""The study's engine on the prepared model; every engine ends in the same ``InferenceData``.

NUTS and HMC (NumPyro) sample the JAX model; ``backend = "pyro"`` runs NUTS or SVI on the torch
surrogate; SVI fits a NumPyro guide; EKI and ES-MDA move an ensemble with batched NumPy forward
calls, so they run on a reference solver as well as on a surrogate.
"""

from __future__ import annotations

import numpy as np

from bayespinn.errors import UserError
from inference.arviz_adapter import from_draws, to_inference_data
from inference.nuts import MCMCSettings, run_mcmc

__all__ = ["APPROXIMATE", "batch_forward", "mcmc_settings", "run_engine"]

# What the report says of engines whose draws are not from the posterior itself.
APPROXIMATE = {
    "svi": "variational: draws from the fitted guide, which may be narrower than the posterior",
    "eki": "ensemble Kalman: exact only for a linear model with a Gaussian prior; the spread is approximate",
    "esmda": "ensemble Kalman: exact only for a linear model with a Gaussian prior; the spread is approximate",
}


def run_engine(prep, progress: bool = True):
    """Run ``prep.study``'s engine; returns ``(idata, wall_time_s)``."""
    import jax.numpy as jnp

    inf = prep.study.inference
    y = {k: jnp.asarray(v) for k, v in prep.data.values.items()}
    if inf.backend == "pyro":
        samples, stats, wall, extra = _pyro(prep, progress)
    elif inf.engine in ("nuts", "hmc"):
        return _mcmc(prep, y, progress)
    elif inf.engine == "svi":
        samples, stats, wall, extra = _svi(prep, y, progress)
    else:
        samples, stats, wall, extra = _ensemble(prep, progress)
    idata = from_draws(
        samples,
        prep.numpyro_model,
        {"y": y},
        seed=inf.seed,
        attrs={**_attrs(prep, wall), **extra},
        sample_stats=stats,
        **_coords(prep),
    )
    return idata, wall


def _attrs(prep, wall: float) -> dict:
    inf = prep.study.inference
    return {
        "engine": inf.engine,
        "backend": inf.backend,
        "chains": inf.chains,
        "samples": inf.samples,
        "seed": inf.seed,
        "wall_time_s": round(wall, 3),
        "surrogate": prep.model.name,
        "surrogate_error": inf.surrogate_error,
    }


def _coords(prep) -> dict:
    return {"coords": {"time": prep.data.time_s}, "dims": {obs: ["time"] for obs in prep.data.values}}


def mcmc_settings(inf) -> MCMCSettings:
    """The sampler's settings from a study's ``[inference]`` (``bayespinn.study.Inference``)."""
    return MCMCSettings(
        kernel=inf.engine,
        chains=inf.chains,
        warmup=inf.warmup,
        samples=inf.samples,
        seed=inf.seed,
        target_accept=inf.target_accept,
        dense_mass=inf.dense_mass,
    )


def _mcmc(prep, y: dict, progress: bool):
    inf = prep.study.inference
    settings = mcmc_settings(inf)
    mcmc, wall = run_mcmc(prep.numpyro_model, {"y": y}, settings, progress=progress)
    attrs = {**_attrs(prep, wall), "warmup": inf.warmup}
    idata = to_inference_data(mcmc, prep.numpyro_model, {"y": y}, seed=inf.seed, attrs=attrs, **_coords(prep))
    return idata, wall


def _by_chain(samples: dict, chains: int) -> dict:
    """Independent draws laid out as ``chains`` rows, so tables and R-hat read them like MCMC's."""
    return {k: np.asarray(v).reshape(chains, -1) for k, v in samples.items()}


def _svi(prep, y: dict, progress: bool):
    from inference.svi import SVISettings, run_svi

    inf = prep.study.inference
    settings = SVISettings(
        guide=inf.guide,
        steps=inf.svi_steps,
        learning_rate=inf.learning_rate,
        draws=inf.chains * inf.samples,
        seed=inf.seed,
    )
    result = run_svi(prep.numpyro_model, {"y": y}, settings, progress=progress)
    stats = _dataset({"elbo": (result.elbo, ("svi_step",))})
    extra = {"guide": inf.guide, "svi_steps": inf.svi_steps, "learning_rate": inf.learning_rate}
    return _by_chain(result.samples, inf.chains), stats, result.wall_time_s, extra


def _pyro(prep, progress: bool):
    import torch

    from inference.pyro_backend import PyroSettings, run_pyro

    inf, model = prep.study.inference, prep.model
    if not hasattr(model, "torch_forward"):
        raise UserError(
            f"{prep.study.path}: [inference] backend: found 'pyro', expected numpyro for {model.name!r}, "
            "which has no torch forward model"
        )
    t_s = torch.as_tensor(prep.data.time_s, dtype=torch.float64)
    conditions = dict(prep.study.conditions)
    settings = PyroSettings(
        method=inf.engine,
        chains=inf.chains,
        warmup=inf.warmup,
        samples=inf.samples,
        seed=inf.seed,
        target_accept=inf.target_accept,
        dense_mass=inf.dense_mass,
        guide=inf.guide,
        svi_steps=inf.svi_steps,
        learning_rate=inf.learning_rate,
        draws=inf.chains * inf.samples,
    )
    result = run_pyro(
        lambda theta: model.torch_forward(t_s, **conditions, **theta),
        prep.spec,
        prep.data.values,
        settings,
        progress=progress,
    )
    samples = _by_chain(result.samples, inf.chains)
    stats = _dataset({k: (v, _stat_dims(k, v)) for k, v in result.sample_stats.items()})
    extra = (
        {"warmup": inf.warmup} if inf.engine == "nuts" else {"guide": inf.guide, "svi_steps": inf.svi_steps}
    )
    return samples, stats, result.wall_time_s, extra


def _stat_dims(name: str, values) -> tuple[str, ...]:
    """Per-draw statistics are (chain, draw); an ELBO history runs over steps; counts per chain."""
    ndim = np.ndim(values)
    return ("chain", "draw") if ndim == 2 else ("svi_step",) if name == "elbo" else ("chain",)


def _ensemble(prep, progress: bool):
    from inference.esmda import EnsembleSettings, run_ensemble

    inf, spec = prep.study.inference, prep.spec
    settings = EnsembleSettings(
        method=inf.engine,
        ensemble_size=inf.ensemble_size,
        assimilations=inf.assimilations,
        schedule=inf.schedule,
        inversion=inf.inversion,
        seed=inf.seed,
    )
    obs = spec.observables
    y_obs = np.concatenate([prep.data.values[o] for o in obs])
    total_sd = [np.hypot(spec.noise[o].sigma, spec.surrogate_sigma.get(o, 0.0)) for o in obs]
    obs_sd = np.concatenate([np.full(len(prep.data.values[o]), s) for o, s in zip(obs, total_sd)])
    forward = batch_forward(prep.model, prep.data.time_s, prep.study.conditions, obs)
    result = run_ensemble(
        lambda values: np.concatenate([v for v in forward(values).values()], axis=1),
        spec.priors,
        y_obs,
        obs_sd,
        settings,
        progress=progress,
    )
    stats = _dataset(
        {
            "alpha": (np.asarray(result.alphas), ("assimilation",)),
            "misfit": (result.misfit, ("assimilation",)),
            "spread": (result.spread, ("ensemble_state", "parameter")),
        },
        coords={"parameter": list(spec.priors)},
    )
    extra = {
        "ensemble_size": inf.ensemble_size,
        "schedule": ", ".join(f"{a:.4g}" for a in result.alphas),
        "inversion": inf.inversion,
        "forward_calls": result.forward_calls,
    }
    return _by_chain(result.samples, 1), stats, result.wall_time_s, extra


def _dataset(variables: dict, coords: dict | None = None):
    import xarray as xr

    return xr.Dataset({k: (dims, np.asarray(v)) for k, (v, dims) in variables.items()}, coords=coords)


def batch_forward(model, t_s, conditions: dict, observables: tuple[str, ...]):
    """``values -> {observable: (n, len(t_s))}``: the model at n parameter sets ({name: (n,)}).

    Models with ``numpy_forward_batch`` (a broadcast surrogate, a vectorised ODE solve) answer in
    one call; others are called once per set.
    """

    def forward(values: dict) -> dict:
        values = {k: np.asarray(v, dtype=float) for k, v in values.items()}
        if hasattr(model, "numpy_forward_batch"):
            out = model.numpy_forward_batch(t_s, conditions, values)
        else:
            n = len(next(iter(values.values())))
            rows = [
                model.numpy_forward(t_s, **conditions, **{k: v[i] for k, v in values.items()})
                for i in range(n)
            ]
            out = {o: np.stack([r[o] for r in rows]) for o in observables}
        return {o: np.asarray(out[o]) for o in observables}

    return forward
