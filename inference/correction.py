"""Reference-solver correction of a surrogate posterior: importance reweighting and delayed acceptance.

Both work in NumPyro's unconstrained space on two potentials of the same model, one with the
surrogate as forward map and one with the reference solver; everything else (priors, noise,
Jacobians) is shared, so their difference is the surrogate's error in the likelihood.

- ``importance``: the surrogate posterior's draws weighted by π_ref/π_sur, Pareto-smoothed
  (Vehtari et al. 2024, ``arviz.psislw``); k̂ > 0.7 means the weights cannot be trusted.
- ``delayed_acceptance``: Metropolis–Hastings whose proposals are screened by the surrogate and
  accepted by the reference (Christen & Fox 2005). It targets the exact posterior; the reference
  is solved only for proposals the surrogate lets through, for all chains in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["K_HAT_MAX", "Potentials", "delayed_acceptance", "importance"]

K_HAT_MAX = 0.7


@dataclass(frozen=True)
class Potentials:
    """Batched potentials U = −log density in the flat unconstrained space, and the maps to it."""

    surrogate: object  # (B, D) -> (B,)
    reference: object  # (B, D) -> (B,)
    to_flat: object  # {site: (B, ...) constrained} -> (B, D)
    from_flat: object  # (B, D) -> {site: (B, ...) constrained}

    @classmethod
    def of(cls, surrogate_model, reference_model, model_kwargs: dict, seed: int = 0) -> Potentials:
        import jax
        from jax.flatten_util import ravel_pytree
        from numpyro.distributions import biject_to
        from numpyro.infer.util import initialize_model

        info = initialize_model(jax.random.PRNGKey(seed), surrogate_model, model_kwargs=model_kwargs)
        _, unravel = ravel_pytree(info.param_info.z)
        ref_info = initialize_model(jax.random.PRNGKey(seed), reference_model, model_kwargs=model_kwargs)
        sites = {
            name: biject_to(site["fn"].support)
            for name, site in info.model_trace.items()
            if site["type"] == "sample" and not site["is_observed"]
        }

        def batched(potential_fn):
            return jax.jit(jax.vmap(lambda flat: potential_fn(unravel(flat))))

        def to_flat(values: dict) -> np.ndarray:
            z = {k: t.inv(np.asarray(values[k])) for k, t in sites.items()}
            return np.asarray(jax.vmap(lambda tree: ravel_pytree(tree)[0])(z))

        def from_flat(flat: np.ndarray) -> dict:
            z = jax.vmap(unravel)(flat)
            return {k: np.asarray(t(z[k])) for k, t in sites.items()}

        return cls(batched(info.potential_fn), batched(ref_info.potential_fn), to_flat, from_flat)


def importance(potentials: Potentials, flat_draws: np.ndarray) -> dict:
    """Pareto-smoothed weights π_ref/π_sur for surrogate-posterior draws (S, D)."""
    import arviz as az

    u_sur = np.asarray(potentials.surrogate(flat_draws))
    u_ref = np.asarray(potentials.reference(flat_draws))
    log_w = np.where(np.isfinite(u_ref), u_sur - u_ref, -np.inf)
    log_w, k_hat = az.psislw(log_w - np.max(log_w))
    w = np.exp(log_w - np.max(log_w))
    w /= w.sum()
    return {
        "weights": w,
        "k_hat": float(k_hat),
        "ess": float(1.0 / np.sum(w**2)),
        "reference_solves": len(flat_draws),
        "trusted": bool(k_hat <= K_HAT_MAX),
    }


def delayed_acceptance(
    potentials: Potentials,
    flat_draws: np.ndarray,
    chains: int = 4,
    steps: int = 1000,
    seed: int = 0,
    burn: int = 200,
) -> dict:
    """Delayed-acceptance random-walk MH started from surrogate-posterior draws (S, D).

    Proposals y = x + L·ξ with L·Lᵀ = (2.38²/D)·Cov(surrogate draws), the scale that is optimal
    for a Gaussian target. Stage 1 accepts with min(1, π_sur(y)/π_sur(x)); only proposals that
    pass are solved with the reference and accepted with min(1, π_ref(y)π_sur(x) / π_ref(x)π_sur(y)).
    Together these keep the exact posterior π_ref invariant, whatever the surrogate's error.
    Returns draws (chains, steps, D), the number of reference solves and both acceptance rates.
    """
    rng = np.random.default_rng(seed)
    dim = flat_draws.shape[1]
    cov = np.atleast_2d(np.cov(flat_draws, rowvar=False)) * 2.38**2 / dim
    chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) * np.eye(dim))
    x = flat_draws[rng.choice(len(flat_draws), chains, replace=False)]
    u_sur_x, u_ref_x = (np.asarray(f(x)) for f in (potentials.surrogate, potentials.reference))
    solves, passed, accepted = chains, 0, 0
    out = np.empty((chains, steps, dim))
    for i in range(burn + steps):
        y = x + rng.standard_normal((chains, dim)) @ chol.T
        u_sur_y = np.asarray(potentials.surrogate(y))
        stage1 = np.log(rng.uniform(size=chains)) < np.nan_to_num(u_sur_x - u_sur_y, nan=-np.inf)
        if stage1.any():
            # The reference batch always has ``chains`` rows so that it compiles once.
            u_ref_y = np.asarray(potentials.reference(np.where(stage1[:, None], y, x)))
            log_a2 = np.nan_to_num(u_ref_x - u_ref_y - (u_sur_x - u_sur_y), nan=-np.inf)
            accept = stage1 & (np.log(rng.uniform(size=chains)) < log_a2)
            x = np.where(accept[:, None], y, x)
            u_sur_x = np.where(accept, u_sur_y, u_sur_x)
            u_ref_x = np.where(accept, u_ref_y, u_ref_x)
            solves += int(stage1.sum())
            if i >= burn:
                passed += int(stage1.sum())
                accepted += int(accept.sum())
        if i >= burn:
            out[:, i - burn] = x
    n = chains * steps
    return {
        "draws": out,
        "reference_solves": solves,
        "stage1_acceptance": passed / n,
        "stage2_acceptance": accepted / max(passed, 1),
        "acceptance": accepted / n,
    }
