"""Reference-solver correction of a surrogate posterior: importance reweighting and delayed acceptance.

Both work in NumPyro's unconstrained space on two potentials of the same model, one with the
surrogate as forward map and one with the reference solver; everything else (priors, noise,
Jacobians) is shared, so their difference is the surrogate's error in the likelihood.

- ``importance``: the surrogate posterior's draws weighted by π_ref/π_sur, Pareto-smoothed
  (Vehtari et al. 2024, ``arviz.psislw``); k̂ > 0.7 means the weights cannot be trusted. With
  too few effective draws, one adaptive step redraws from a Student-t fitted to the weighted ones.
- ``delayed_acceptance``: Metropolis–Hastings whose proposals are screened by the surrogate and
  accepted by the reference (Christen & Fox 2005). It targets the exact posterior; the reference
  is solved only for proposals the surrogate lets through, for all chains in one batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from inference.batching import over_points

__all__ = ["K_HAT_MAX", "Potentials", "delayed_acceptance", "importance", "laplace_moments"]

K_HAT_MAX = 0.7
PROPOSAL_DF = 4.0  # delayed acceptance's Student-t proposal: heavy tails, finite variance
INDEPENDENT_SHARE = 0.5  # of delayed acceptance's proposals; the others are random-walk steps


@dataclass(frozen=True)
class Potentials:
    """Batched potentials U = −log density in the flat unconstrained space, and the maps to it."""

    surrogate: object  # (B, D) -> (B,)
    reference: object  # (B, D) -> (B,)
    to_flat: object  # {site: (B, ...) constrained} -> (B, D)
    from_flat: object  # (B, D) -> {site: (B, ...) constrained}
    reference_scalar: object = None  # JAX (D,) -> (), differentiable; enables the Laplace proposal
    unravel: object = None  # JAX (D,) -> {site: unconstrained value}

    @classmethod
    def of(cls, surrogate_model, reference_model, model_kwargs: dict, seed: int = 0) -> Potentials:
        import jax
        from jax.flatten_util import ravel_pytree
        from numpyro.distributions import biject_to
        from numpyro.infer.util import initialize_model

        # The surrogate is cheap to trace: it gives the sites and the flat layout both models share.
        info = initialize_model(jax.random.PRNGKey(seed), surrogate_model, model_kwargs=model_kwargs)
        _, unravel = ravel_pytree(info.param_info.z)
        sites = {
            name: biject_to(site["fn"].support)
            for name, site in info.model_trace.items()
            if site["type"] == "sample" and not site["is_observed"]
        }

        def to_flat(values: dict) -> np.ndarray:
            z = {k: t.inv(np.asarray(values[k])) for k, t in sites.items()}
            return np.asarray(jax.vmap(lambda tree: ravel_pytree(tree)[0])(z))

        def from_flat(flat: np.ndarray) -> dict:
            z = jax.vmap(unravel)(flat)
            return {k: np.asarray(t(z[k])) for k, t in sites.items()}

        return cls(
            _batched_potential(surrogate_model, model_kwargs, unravel),
            _batched_potential(reference_model, model_kwargs, unravel),
            to_flat,
            from_flat,
            _scalar_potential(reference_model, model_kwargs, unravel),
            unravel,
        )

    def with_surrogate(self, model, model_kwargs: dict) -> Potentials:
        """The same potentials with another model as the stage-1 screen."""
        return dataclasses.replace(self, surrogate=_batched_potential(model, model_kwargs, self.unravel))


def _scalar_potential(model, model_kwargs: dict, unravel):
    from numpyro.infer.util import potential_energy

    return lambda flat: potential_energy(model, (), model_kwargs, unravel(flat))


def _batched_potential(model, model_kwargs: dict, unravel):
    """(B, D) -> (B,), with the data an argument of the compiled program (``over_points``), not
    constants inside it: a second data set of the same shapes then compiles nothing, as for the
    sampler (``inference.nuts._parallel``)."""
    from numpyro.infer.util import potential_energy

    batched = over_points(lambda flat, kwargs: potential_energy(model, (), kwargs, unravel(flat)))
    return lambda flat: batched(flat, model_kwargs)


def _host(values) -> np.ndarray:
    """A batched potential's values as NumPy. Waiting through ``block_until_ready`` releases
    the GIL, which a host callback inside the computation (a network surrogate's steady-state
    solve) needs; ``np.asarray`` on the pending array waited holding it, and hung."""
    import jax

    return np.asarray(jax.block_until_ready(values))


def importance(
    potentials: Potentials, flat_draws: np.ndarray, min_ess: float = 0.0, seed: int = 0, widen: float = 1.3
) -> dict:
    """Pareto-smoothed weights π_ref/π_sur for surrogate-posterior draws (S, D).

    When their effective sample size falls short of ``min_ess`` (a proposal much wider than the
    exact posterior: the correlated error model's on a record that ends at a battery's cut-off
    cliff), one refinement: S fresh draws of a Student-t around the reweighted draws' moments,
    weighted π_ref/q. The refined weights' own k̂ and ESS judge the answer.
    """
    u_sur = _host(potentials.surrogate(flat_draws))
    u_ref = _host(potentials.reference(flat_draws))
    first = _smoothed(flat_draws, u_sur - u_ref)
    if first["ess"] >= min_ess:
        return {**first, "reference_solves": len(flat_draws), "refined": False}
    draw, log_q = _proposal(*_weighted_moments(flat_draws, first["weights"], first["ess"]), widen)
    y = draw(np.random.default_rng(seed), len(flat_draws))
    refined = _smoothed(y, -_host(potentials.reference(y)) - log_q(y))
    return {
        **refined,
        "reference_solves": 2 * len(flat_draws),
        "refined": True,
        "first_stage": {"k_hat": first["k_hat"], "ess": first["ess"]},
    }


def _smoothed(draws: np.ndarray, log_w: np.ndarray) -> dict:
    """Normalised Pareto-smoothed weights of ``draws``, their k̂ and effective sample size."""
    import arviz as az

    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)  # the reference failed: weight 0
    log_w, k_hat = az.psislw(log_w - np.max(log_w))
    w = np.exp(log_w - np.max(log_w))
    w /= w.sum()
    return {
        "draws": draws,
        "weights": w,
        "k_hat": float(k_hat),
        "ess": float(1.0 / np.sum(w**2)),
        "trusted": bool(k_hat <= K_HAT_MAX),
    }


def _weighted_moments(x: np.ndarray, w: np.ndarray, ess: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of weighted draws; with fewer than 10 effective draws per dimension
    the covariance is the draws' own, too wide rather than degenerate."""
    mean = w @ x
    if ess < 10 * x.shape[1]:
        return mean, np.cov(x, rowvar=False)
    r = x - mean
    return mean, (w[:, None] * r).T @ r / (1.0 - np.sum(w**2))


def _proposal(mean: np.ndarray, cov: np.ndarray, widen: float, df: float = PROPOSAL_DF):
    """Multivariate Student-t draws and log density (up to a constant) with scale ``cov·widen²``.

    Its polynomial tails keep π/q bounded for any posterior with Gaussian or lighter tails, so
    the independence chain cannot stick in a tail its proposal under-covers (a Gaussian proposal
    did, near a prior bound: R-hat 2.1 over 20 SMIB truths). Draws from those tails cost little:
    the surrogate screen rejects them before the reference is solved.
    """
    dim = len(mean)
    cov = np.atleast_2d(cov) * widen**2
    chol = np.linalg.cholesky(cov + 1e-12 * np.trace(cov) * np.eye(dim))
    inv = np.linalg.inv(chol)

    def draw(rng, n):
        scale = np.sqrt(df / rng.chisquare(df, size=(n, 1)))
        return mean + scale * (rng.standard_normal((n, dim)) @ chol.T)

    def log_q(x):
        r = (x - mean) @ inv.T
        return -0.5 * (df + dim) * np.log1p(np.sum(r * r, axis=-1) / df)

    return draw, log_q


def laplace_moments(potentials: Potentials, start: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Mode and inverse Hessian of the exact posterior (unconstrained), found from ``start``, and
    the reference solves it took: the ``proposal`` of ``delayed_acceptance``. None when the
    reference is not differentiable or its Hessian at the mode is not positive definite."""
    if potentials.reference_scalar is None:
        return None
    import jax
    from scipy.optimize import minimize

    value_and_grad = jax.jit(jax.value_and_grad(potentials.reference_scalar))
    fit = minimize(
        lambda z: tuple(np.asarray(v, float) for v in value_and_grad(z)), start, jac=True, method="BFGS"
    )
    hessian = np.asarray(jax.jit(jax.hessian(potentials.reference_scalar))(fit.x))
    if not np.all(np.isfinite(hessian)) or np.any(np.linalg.eigvalsh(0.5 * (hessian + hessian.T)) <= 0):
        return None
    return fit.x, np.linalg.inv(0.5 * (hessian + hessian.T)), fit.nfev + len(start)


def _start(potentials: Potentials, draw, rng, flat_draws: np.ndarray, chains: int):
    """Starting states where the reference density is positive, and the solves it took: draws of
    the proposal, which is close to the exact posterior (a short burn-in), else surrogate draws.
    Every reference batch has ``chains`` rows, so the solver compiles once."""
    candidates = [draw(rng, chains) for _ in range(2)]
    candidates += [flat_draws[i : i + chains] for i in range(0, len(flat_draws) - chains + 1, chains)]
    found, solves = [], 0
    for batch in candidates:
        u_ref = _host(potentials.reference(batch))
        solves += chains
        found += [(x, u) for x, u in zip(batch, u_ref, strict=True) if np.isfinite(u)]
        if len(found) >= chains:
            x, u = zip(*found[:chains], strict=True)
            return np.array(x), np.array(u), solves
    raise ValueError("the reference density is zero at almost every surrogate draw: nowhere to start")


def delayed_acceptance(
    potentials: Potentials,
    flat_draws: np.ndarray,
    chains: int = 8,
    steps: int = 500,
    seed: int = 0,
    burn: int = 25,
    widen: float = 1.3,
    proposal: tuple[np.ndarray, np.ndarray, int] | None = None,
    max_rounds: int = 4,
) -> dict:
    """Delayed-acceptance Metropolis–Hastings started from surrogate-posterior draws (S, D).

    Proposals: half independence draws y ~ q, a Student-t around the Laplace approximation of
    the exact posterior (reference mode and Hessian, found from the surrogate posterior's mean)
    with scale × ``widen`` (the surrogate posterior's moments when the reference has no
    gradient), half random-walk steps with the same covariance × 2.38²/D. Any fixed kernels
    keep the chain exact; good ones keep it efficient. Stage 1 accepts with
    min(1, π_sur(y)q(x) / π_sur(x)q(y)); only proposals that pass are solved with the reference
    and accepted with min(1, π_ref(y)π_sur(x) / π_ref(x)π_sur(y)). Together these keep the exact
    posterior π_ref invariant, whatever the surrogate's error (Christen & Fox 2005). The chains
    run side by side so that each step solves the reference for all of them in one batch.

    The chains start at proposal draws, close to the exact posterior, and an independence chain
    with π/q ≤ W forgets its start as (1 − 1/W)^k (Mengersen & Tweedie 1996): for a Gaussian
    posterior and its Laplace approximation widened 1.3× in D = 4 dimensions W ≈ 1.3⁴, so the
    default 25 steps leave 2e-5 of the start. Where the surrogate screens poorly (near a prior
    bound, where it can sit sd's off) fewer proposals pass stage 2 and the chains mix slowly:
    they run again for ``steps`` more, up to ``max_rounds`` times, until R-hat ≤ 1.01 and
    the ESS ≥ 400, and are thinned back to ``steps`` draws.
    Returns draws (chains, steps, D), the number of reference solves, both acceptance rates and
    the rounds run.
    """
    rng = np.random.default_rng(seed)
    laplace = proposal or laplace_moments(potentials, flat_draws.mean(0))
    mean, cov, solves = laplace or (flat_draws.mean(0), np.cov(flat_draws, rowvar=False), 0)
    draw, log_q = _proposal(mean, cov, widen)
    x, u_ref_x, start_solves = _start(potentials, draw, rng, flat_draws, chains)
    chain = _DaChain(potentials, draw, log_q, cov, rng, x, u_ref_x)
    chain.run(burn)
    chain.reset_counts()
    solves += start_solves
    kept = []
    for _ in range(max_rounds):
        kept.append(chain.run(steps))
        out = np.concatenate(kept, axis=1)
        if _mixed(out):
            break
    out = out[:, np.linspace(0, out.shape[1] - 1, steps).round().astype(int)]
    n = chains * steps * len(kept)
    return {
        "draws": out,
        "reference_solves": solves + chain.solves,
        "stage1_acceptance": chain.passed / n,
        "stage2_acceptance": chain.accepted / max(chain.passed, 1),
        "acceptance": chain.accepted / n,
        "rounds": len(kept),
        "proposal": (
            "Laplace approximation of the exact posterior" if laplace else "surrogate posterior moments"
        )
        + f", Student-t ({PROPOSAL_DF:g} d.o.f.) with scale × {widen}, and random-walk steps",
    }


def _mixed(draws: np.ndarray) -> bool:
    """R-hat ≤ 1.01 and bulk ESS ≥ 400 in every coordinate of draws (chains, n, D)."""
    import arviz as az

    data = az.convert_to_dataset({"x": draws})
    return bool(az.rhat(data)["x"].max() <= 1.01 and az.ess(data)["x"].min() >= 400)


class _DaChain:
    """The side-by-side delayed-acceptance chains' state and counters."""

    def __init__(self, potentials: Potentials, draw, log_q, cov, rng, x, u_ref_x):
        self.pots, self.draw, self.log_q, self.rng = potentials, draw, log_q, rng
        self.x, self.u_ref_x = x, u_ref_x
        self.u_sur_x = _host(potentials.surrogate(x))
        self.walk_chol = np.linalg.cholesky(np.atleast_2d(cov)) * (2.38 / np.sqrt(x.shape[-1]))
        self.solves = 0
        self.reset_counts()

    def reset_counts(self) -> None:
        self.passed = self.accepted = 0

    def run(self, n: int) -> np.ndarray:
        """``n`` steps of every chain; returns the states (chains, n, D)."""
        chains, dim = self.x.shape
        proposals = self.draw(self.rng, n * chains).reshape(n, chains, dim)
        u_sur_all = _host(self.pots.surrogate(proposals.reshape(n * chains, dim))).reshape(n, chains)
        out = np.empty((chains, n, dim))
        for i in range(n):
            self._step(proposals[i], u_sur_all[i])
            out[:, i] = self.x
        return out

    def _step(self, independent_y: np.ndarray, independent_u_sur: np.ndarray) -> None:
        rng, x = self.rng, self.x
        # Each chain: an independence proposal, or a random-walk step (symmetric q) that moves
        # it on where the independence proposal under-covers the posterior.
        independent = rng.uniform(size=len(x)) < INDEPENDENT_SHARE
        walk = x + rng.standard_normal(x.shape) @ self.walk_chol.T
        y = np.where(independent[:, None], independent_y, walk)
        u_sur_y = np.where(independent, independent_u_sur, _host(self.pots.surrogate(walk)))
        hastings = np.where(independent, self.log_q(x) - self.log_q(y), 0.0)
        log_a1 = np.nan_to_num(self.u_sur_x - u_sur_y + hastings, nan=-np.inf)
        stage1 = np.log(rng.uniform(size=len(x))) < log_a1
        if not stage1.any():
            return
        # The reference batch always has one row per chain so that it compiles once.
        u_ref_y = _host(self.pots.reference(np.where(stage1[:, None], y, x)))
        log_a2 = np.nan_to_num(self.u_ref_x - u_ref_y - (self.u_sur_x - u_sur_y), nan=-np.inf)
        accept = stage1 & (np.log(rng.uniform(size=len(x))) < log_a2)
        self.x = np.where(accept[:, None], y, x)
        self.u_sur_x = np.where(accept, u_sur_y, self.u_sur_x)
        self.u_ref_x = np.where(accept, u_ref_y, self.u_ref_x)
        self.solves += int(stage1.sum())
        self.passed += int(stage1.sum())
        self.accepted += int(accept.sum())
