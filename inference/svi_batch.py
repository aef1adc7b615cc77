"""Many small posteriors at once: full-rank SVI vectorised over data sets, checked by PSIS.

A lab's cycles (or cells) are independent calibrations of the same model to different data. One
``jax.vmap`` of the whole SVI run over the data sets compiles once and fits them all in lockstep,
so 60 cycles cost about as much as a few separate runs.

Each fit starts where the caller says (``init``: a point near the mode, found by a coarse search):
from the prior's median a battery's likelihood is flat in the diffusivity scale above 0.5, and
Adam stalls there far from the mode (measured: z-scores up to 100 on 12 synthetic cycles).

Variational draws are only as good as the guide. Each data set's fit is therefore checked the way
Yao et al. (2018) propose: importance weights w = p(y, z)/q(z) of the guide's own draws, Pareto
smoothed (``arviz.psislw``). k̂ ≤ 0.7 means the weights are reliable, and the draws are resampled
by them, which corrects the guide towards the posterior; k̂ > 0.7 marks the fit as not to be
trusted (the caller reports it, and may rerun that data set with NUTS).

References
----------
Y. Yao, A. Vehtari, D. Simpson, A. Gelman (2018). Yes, but did it work?: Evaluating variational
inference. ICML.
A. Vehtari, D. Simpson, A. Gelman, Y. Yao, J. Gabry (2024). Pareto smoothed importance sampling.
JMLR 25(72).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.correction import K_HAT_MAX
from inference.svi import SVISettings, _optimizer

__all__ = [
    "K_HAT_MAX",
    "BatchFit",
    "Unconstrained",
    "batch_fitter",
    "newton_mode",
    "psis_resample",
    "unconstrained",
]


@dataclass(frozen=True)
class BatchFit:
    """Per data set b: ``draws`` {site: (B, S)} from the guide, ``log_w`` (B, S) their log
    importance weights log p(y, z) − log q(z), ``elbo`` (B, steps; empty for the Laplace guide),
    and ``newton_decrement`` (B,), gᵀH⁻¹g at the mode found (≪ 1 when it is a mode)."""

    draws: dict[str, np.ndarray]
    log_w: np.ndarray
    elbo: np.ndarray
    newton_decrement: np.ndarray


def batch_fitter(model, supports: dict, settings: SVISettings):
    """``fit(batch, start, keys) -> BatchFit``: ``settings.guide`` ("laplace" or "mvn") fitted to
    ``model(**kwargs_b)`` for every data set b of ``batch`` {name: (B, ...)} at once, each
    started at ``start`` {site: (B,)} (physical values), with keys (B, 2).

    Both guides begin with the Laplace approximation in the unconstrained space: the mode by
    damped Newton steps (Levenberg–Marquardt), the covariance the inverse Hessian there. "laplace"
    stops there (NumPyro's ``AutoLaplaceApproximation`` reaches the same point with Adam, in many
    more steps, and stalls where a posterior is as narrow as a battery cycle's) and proposes from
    a Student-t with that centre and scale, whose tails keep the importance weights bounded;
    "mvn" runs ``settings.steps`` of SVI on a full-rank Normal started from it and proposes from
    that Normal. ``supports`` {site: constraint} names every latent site (scalars) of ``model``
    and its support, so draws go back to physical values without running the model again.

    The returned function is compiled once per shape of the batch: call it again with batches of
    the same shape and nothing is traced or compiled again.
    """
    import jax

    if settings.guide not in ("laplace", "mvn"):
        raise ValueError(f"guide: found {settings.guide!r}, expected laplace or mvn for a batch")
    compiled = jax.jit(jax.vmap(lambda kw, z0, key: _fit_one(model, supports, kw, z0, settings, key)))

    def fit(batch: dict, start: dict, keys) -> BatchFit:
        draws, log_w, elbo, decrement = jax.block_until_ready(compiled(batch, start, keys))
        arrays = {k: np.asarray(v) for k, v in draws.items()}
        return BatchFit(arrays, np.asarray(log_w), np.asarray(elbo), np.asarray(decrement))

    return fit


_NEWTON_STEPS = 41  # the first evaluates the start
_PROPOSAL_DF = 5.0


@dataclass(frozen=True)
class Unconstrained:
    """One data set's posterior in NumPyro's unconstrained space, latent sites flattened in
    sorted order (the order NumPyro's guides flatten a dict of scalar sites in)."""

    names: list[str]
    potential: object  # z (n,) -> −log p(y, θ(z)) − log|dθ/dz|
    to_z: object  # {site: physical value} -> z (n,) (leading batch axes allowed)
    to_physical: object  # z (..., n) -> {site: physical (...)}


def unconstrained(model, supports: dict, kwargs: dict) -> Unconstrained:
    """``model(**kwargs)``'s potential over the sites of ``supports`` {site: constraint}."""
    import jax.numpy as jnp
    from numpyro.distributions import biject_to
    from numpyro.infer.util import potential_energy

    names = sorted(supports)

    def unravel(z):
        return {k: z[..., i] for i, k in enumerate(names)}

    def potential(z):
        return potential_energy(model, (), kwargs, unravel(z))

    def to_z(values):
        return jnp.stack([biject_to(supports[k]).inv(values[k]) for k in names], axis=-1)

    def to_physical(z):
        return {k: biject_to(supports[k])(v) for k, v in unravel(z).items()}

    return Unconstrained(names, potential, to_z, to_physical)


def _fit_one(model, supports: dict, kwargs: dict, start: dict, settings: SVISettings, key):
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as dist

    space = unconstrained(model, supports, kwargs)
    potential = space.potential
    z_map, g, hessian = newton_mode(potential, space.to_z(start))
    # One factorization feeds both: two independent batched LAPACK calls can run at once, and
    # at once they can wedge XLA's CPU thread pool (see inference.batching)
    cov = jnp.linalg.inv(hessian)
    scale_tril = jnp.linalg.cholesky(cov)
    decrement = g @ cov @ g
    fit_key, draw_key = jax.random.split(key)
    if settings.guide == "mvn":
        loc, scale_tril, elbo = _svi_from(model, kwargs, settings, fit_key, z_map, scale_tril)
    else:
        loc, elbo = z_map, jnp.zeros(0)
    q = (
        dist.MultivariateStudentT(_PROPOSAL_DF, loc, scale_tril)
        if settings.guide == "laplace"
        else dist.MultivariateNormal(loc, scale_tril=scale_tril)
    )
    z = q.sample(draw_key, (settings.draws,))
    draws = space.to_physical(z)
    return draws, -jax.vmap(potential)(z) - q.log_prob(z), elbo, decrement


def newton_mode(potential, z0):
    """The mode of exp(−potential) by Levenberg–Marquardt steps from ``z0``; (mode, gradient and
    Hessian there).

    A step is kept only where it lowers the potential; the damping λ shrinks after a kept step
    and grows after a refused one, so far from the mode (an indefinite Hessian) the steps turn
    into short gradient steps and near it into Newton's. Value, gradient and Hessian come from one
    linearisation of the gradient, so the model is compiled into the loop once, not three times."""
    import jax
    import jax.numpy as jnp

    eye = jnp.eye(z0.shape[0])

    def second_order(z):
        (u, g), tangent = jax.linearize(jax.value_and_grad(potential), z)
        return u, g, jax.vmap(tangent)(eye)[1]

    def step(carry):
        i, z, u, g, h, lam, _ = carry
        dz = -jnp.linalg.solve(h + lam * eye * (1.0 + jnp.abs(jnp.diag(h))), g)
        u_new, g_new, h_new = second_order(z + dz)
        better = jnp.isfinite(u_new) & (u_new < u)
        lam = jnp.where(jnp.isinf(u), lam, jnp.where(better, lam / 3, lam * 4))
        # Converged once a kept step predicts a decrease below 1e-9 in log density (half Newton's
        # decrement); a step away from a mode (indefinite Hessian) predicts an increase: not done.
        done = (better & jnp.isfinite(u) & (-(g @ dz) < 1e-9)) | (lam > 1e12)
        keep = jax.tree.map(
            lambda new, old: jnp.where(better, new, old), (z + dz, u_new, g_new, h_new), (z, u, g, h)
        )
        return (i + 1, *keep, lam, done)

    def going(carry):
        i, *_, done = carry
        return (i < _NEWTON_STEPS) & ~done

    # The first step is a null step from a point "worse than anything": it evaluates z0 inside
    # the loop, so the model is not compiled a second time outside it.
    n = z0.shape[0]
    start = (0, z0, jnp.asarray(jnp.inf), jnp.zeros(n), eye, jnp.asarray(1e-3), jnp.asarray(False))
    _, z, _, g, h, _, _ = jax.lax.while_loop(going, step, start)
    # A mode's Hessian is positive definite; where the search stopped short, keep the draws finite.
    w, v = jnp.linalg.eigh(0.5 * (h + h.T))
    return z, g, (v * jnp.maximum(w, 1e-8 * jnp.max(jnp.abs(w)))) @ v.T


def _svi_from(model, kwargs: dict, settings: SVISettings, key, loc, scale_tril):
    """``settings.steps`` of SVI on NumPyro's full-rank Normal guide, started at (loc, scale_tril)."""
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal

    guide = AutoMultivariateNormal(model)
    svi = SVI(model, guide, _optimizer(settings), loss=Trace_ELBO())
    init = {"auto_loc": loc, "auto_scale_tril": scale_tril}
    # stable_update skips a step whose loss or gradient is not finite instead of taking it.
    result = svi.run(key, settings.steps, progress_bar=False, stable_update=True, init_params=init, **kwargs)
    return result.params["auto_loc"], result.params["auto_scale_tril"], -result.losses


def psis_resample(log_w: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Pareto-smoothed importance resampling of one data set's draws: (indices (n,), k̂).

    Systematic resampling keeps the draws' spread with the least added noise. A non-finite
    weight (a draw where the model is not defined) counts as zero."""
    import arviz as az

    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    with np.errstate(over="ignore"):  # ArviZ's tail fit overflows harmlessly for k̂ ≫ 1
        smoothed, k_hat = az.psislw(log_w - np.max(log_w))
    w = np.exp(smoothed - np.max(smoothed))
    cdf = np.cumsum(w)
    cdf /= cdf[-1]  # exactly 1 at the end, so every position in [0, 1) lands on a draw
    positions = (rng.random() + np.arange(n)) / n
    # side="right": a position on a step lands after it, never on a zero-weight draw.
    return np.searchsorted(cdf, positions, side="right"), float(k_hat)
