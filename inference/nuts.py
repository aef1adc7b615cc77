"""NUTS and HMC with NumPyro in float64, several chains."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from inference.batching import over_points

__all__ = ["MCMCSettings", "chain_method_name", "chain_starts", "run_mcmc"]

START_CANDIDATES = 16  # prior draws per chain: each chain starts at the most probable of its own


@dataclass(frozen=True)
class MCMCSettings:
    kernel: str = "nuts"  # nuts | hmc
    chains: int = 4
    warmup: int = 1000
    samples: int = 1000
    seed: int = 0
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = True  # NUTS only (see run_mcmc)
    hmc_steps: int = 16
    chain_method: str = "auto"  # auto | parallel | vectorized | sequential


def _chain_method(settings: MCMCSettings):
    import jax

    method = settings.chain_method
    if method == "auto":
        # Parallel needs one XLA device per chain (numpyro.set_host_device_count, called before
        # JAX starts); otherwise vectorised chains share one compiled computation.
        method = "parallel" if jax.local_device_count() >= settings.chains else "vectorized"
    return _parallel if method == "parallel" else method


def _parallel(chain_fn):
    """NumPyro's "parallel" chains (one device each, ``pmap``), with the model's arguments (the
    data) passed to the compiled program. NumPyro's own pmap closes over them, which makes them
    constants of the program: every data set of the same shapes then compiled its own sampler,
    2.7 s of each 6 s SMIB calibration in a coverage check (measured, AMD EPYC, 2 cores).
    ``chain_fn`` is NumPyro's ``partial(_single_chain_mcmc, args=…, kwargs=…, …)``."""
    import functools

    import jax

    if not (isinstance(chain_fn, functools.partial) and {"args", "kwargs"} <= chain_fn.keywords.keys()):
        return jax.pmap(chain_fn)  # not the call this was written for: NumPyro's own way
    data = {k: chain_fn.keywords[k] for k in ("args", "kwargs")}
    rest = {k: v for k, v in chain_fn.keywords.items() if k not in data}
    mapped = jax.pmap(lambda init, data: chain_fn.func(init, **data, **rest), in_axes=(0, None))
    return lambda init: mapped(init, data)


def chain_method_name(mcmc) -> str:
    """How a ``run_mcmc`` run's chains ran: "parallel", "vectorized" or "sequential"."""
    return "parallel" if mcmc.chain_method is _parallel else str(mcmc.chain_method)


def run_mcmc(model, model_kwargs: dict, settings: MCMCSettings, progress: bool = True):
    """Run the sampler; returns ``(mcmc, wall_time_s)``."""
    import jax
    import numpyro
    from numpyro.infer import HMC, MCMC, NUTS, init_to_median

    numpyro.enable_x64()
    key = jax.random.PRNGKey(settings.seed)
    if settings.kernel == "nuts":
        kernel = NUTS(
            model,
            target_accept_prob=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            dense_mass=settings.dense_mass,
            init_strategy=init_to_median,
        )
    elif settings.kernel == "hmc":
        # trajectory_length=None: with NumPyro's default 2π as well as num_steps the step size
        # is fixed at 2π/num_steps and never adapted (NumPyro warns so).
        kernel = _jittered(HMC)(
            model,
            target_accept_prob=settings.target_accept,
            num_steps=settings.hmc_steps,
            trajectory_length=None,
            # Diagonal always: on a posterior a dense mass matrix whitens, a fixed number of
            # leapfrog steps can come back near its start (measured: the Gauss-linear test's
            # first mean then sits 0.25 sd off, its bound is 0.15). NUTS ends its own trajectories.
            dense_mass=False,
            init_strategy=init_to_median,
        )
    else:
        raise ValueError(f"engine: found {settings.kernel!r}, expected nuts or hmc")
    mcmc = MCMC(
        kernel,
        num_warmup=settings.warmup,
        num_samples=settings.samples,
        num_chains=settings.chains,
        chain_method=_chain_method(settings),
        progress_bar=progress,
        jit_model_args=True,
    )
    t0 = time.perf_counter()
    starts = chain_starts(model, model_kwargs, settings.chains, jax.random.fold_in(key, 1))
    # energy feeds E-BFMI; num_steps and accept_prob show how hard the sampler worked.
    mcmc.run(
        key,
        **model_kwargs,
        init_params=starts,
        extra_fields=("diverging", "energy", "num_steps", "accept_prob"),
    )
    # JAX dispatches asynchronously (parallel chains return before they finish): wait for the draws.
    jax.block_until_ready(mcmc.get_samples())
    return mcmc, time.perf_counter() - t0


STEP_JITTER = 0.2  # HMC: each transition's step size uniform within ±20 % of the adapted one


def _jittered(hmc_class):
    """NumPyro's fixed-length HMC with its step size (so its trajectory's length) drawn anew at
    every transition (Neal 2011, §5.4.2.2). With one length a chain can fall into a near-periodic
    orbit along some direction of the posterior. Measured on the Gauss-linear test (2 chains of
    1,000 draws, seeds 0–9): without the jitter, sds more than 15 % off in 1 of 10 seeds from the
    prior's median and 2 of 10 from ``chain_starts`` (as far as 0.72 and 1.17 of the exact; one
    chain's sd 0.39 of it while its ESS exceeded its draws); with it, every sd within 11 %."""
    import jax
    import jax.numpy as jnp

    class JitteredHMC(hmc_class):
        def init(self, rng_key, num_warmup, *args, **kwargs):
            self._warmup_steps = num_warmup
            return super().init(rng_key, num_warmup, *args, **kwargs)

        def sample(self, state, model_args, model_kwargs):
            def split(rng_key):  # one key and one jitter per chain (vectorised chains: a batch)
                key, draw = jax.random.split(rng_key)
                return key, jax.random.uniform(draw, minval=1.0 - STEP_JITTER, maxval=1.0 + STEP_JITTER)

            batched = state.rng_key.ndim > 1
            key, jitter = (jax.vmap(split) if batched else split)(state.rng_key)
            adapted = state.adapt_state.step_size
            step = state.adapt_state._replace(step_size=adapted * jitter)
            new = super().sample(state._replace(rng_key=key, adapt_state=step), model_args, model_kwargs)
            # Warm-up's adaptation sets the next step size itself; after it the adapted one is carried.
            kept = jnp.where(state.i < self._warmup_steps, new.adapt_state.step_size, adapted)
            return new._replace(adapt_state=new.adapt_state._replace(step_size=kept))

    return JitteredHMC


def chain_starts(model, model_kwargs: dict, chains: int, key, candidates: int = START_CANDIDATES):
    """Each chain's start, NumPyro's ``ParamInfo`` (unconstrained values, potential energy and its
    gradient, with a leading chain axis unless one chain): the most probable of its own
    ``candidates`` draws from the prior. None when some chain has no draw of finite density; the
    kernel's ``init_to_median`` then starts it.

    Why not the prior's median alone: in the DFN case study (``case_studies/battery_p2d``) one
    chain started where the surrogate's discharge ends long before the record's (potential
    1.2e6, the mode's −1377). There the curve no longer moves with the diffusivity and improves
    towards the exchange current's upper bound: the chain went there and stayed for all 2,000
    transitions (R-hat 1.53, trees ten times the others'). Separate draws per chain keep the
    starts spread over the prior's likely part, so split R-hat still sees chains that have not
    mixed. The energy's gradient comes with the start: given bare values, NumPyro computes it
    op by op (7 s of a DFN calibration's 4 × 400 transitions, measured)."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.distributions import biject_to
    from numpyro.infer.util import ParamInfo, potential_energy

    @jax.jit  # traced, not run op by op: eagerly the model's first run took 2.2 s (DFN surrogate)
    def prior_draws(key):
        trace = handlers.trace(handlers.seed(model, 0)).get_trace(**model_kwargs)
        latent = {k: s for k, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}
        keys = jax.random.split(key, len(latent))
        return {
            name: biject_to(site["fn"].support).inv(site["fn"].sample(k, (chains * candidates,)))
            for k, (name, site) in zip(keys, latent.items(), strict=True)
        }

    draws = prior_draws(key)
    energy_and_grad = jax.value_and_grad(lambda z, kwargs: potential_energy(model, (), kwargs, z))
    # Under an outer trace (data sets vmapped, as in the SBC tests) nothing is concrete: vmap.
    traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(model_kwargs))
    over = jax.vmap(energy_and_grad, in_axes=(0, None)) if traced else over_points(energy_and_grad)
    energy, grad = over(draws, model_kwargs)
    finite = jnp.where(jnp.isnan(energy), jnp.inf, energy).reshape(chains, candidates)
    if not traced and not np.isfinite(np.asarray(finite).min(axis=1)).all():
        return None
    best = jnp.arange(chains) * candidates + finite.argmin(axis=1)
    pick = best if chains > 1 else best[0]
    return ParamInfo(*jax.tree.map(lambda v: v[pick], (draws, energy, grad)))
