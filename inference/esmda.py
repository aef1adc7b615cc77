"""Ensemble smoother with multiple data assimilation (ES-MDA) and tempered EKI, in NumPy.

References
----------
A. A. Emerick and A. C. Reynolds (2013), "Ensemble smoother with multiple data assimilation",
Computers & Geosciences 55, 3–15 (the update and the condition Σ 1/α_i = 1).
A. A. Emerick (2016), "Analysis of the performance of ensemble-based assimilation of production
and seismic data", J. Petroleum Science and Engineering 139, 219–239 (decreasing α and the
subspace inversion).
G. Evensen (2004), "Sampling strategies and square root analysis schemes for the EnKF",
Ocean Dynamics 54, 539–560 (subspace pseudo-inversion of C_DD + α C_D).
M. Iglesias and Y. Yang (2021), Inverse Problems 37, 025008 (adaptive α for EKI: ``inference.eki``).

The parameters are updated in the unconstrained space of their prior's support, by the same
bijection NUTS uses (``numpyro.distributions.transforms.biject_to``): identity for a normal
prior, log for a lognormal one, a logit for a bounded interval. Every forward call and the result
use the physical values, so members never leave the prior's support.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from inference import eki
from inference.priors import Prior, distribution

__all__ = ["EnsembleResult", "EnsembleSettings", "alpha_schedule", "run_ensemble"]

METHODS = ("esmda", "eki")
INVERSIONS = ("exact", "subspace")
SCHEDULES = ("constant", "decreasing")


@dataclass(frozen=True)
class EnsembleSettings:
    """Settings of an ensemble Kalman run.

    ``schedule`` is ``"constant"`` (α_i = N_a), ``"decreasing"`` (geometric, α_i/α_{i+1} =
    ``decrease_ratio``, normalised so that Σ 1/α_i = 1), or an explicit tuple of α_i. The default
    ratio 2 halves the inflation each step: N_a = 4 gives α = (15, 7.5, 3.75, 1.875). As in Emerick
    (2016), the first steps are cautious while the ensemble is wide and its linearisation of the
    forward model poorest. ``assimilations``, ``schedule`` and
    ``decrease_ratio`` apply to ``method="esmda"``; ``max_iterations`` to ``method="eki"``.
    """

    method: str = "esmda"  # esmda | eki
    ensemble_size: int = 200
    assimilations: int = 4
    schedule: str | tuple[float, ...] = "constant"
    decrease_ratio: float = 2.0
    inversion: str = "subspace"  # exact | subspace
    svd_energy: float = 0.999
    max_iterations: int = 50
    seed: int = 0


@dataclass(frozen=True)
class EnsembleResult:
    """Final ensemble and the history of the run.

    ``samples`` are physical parameter values, each shape (ensemble_size,). ``misfit`` has one
    entry per step: the members' mean of Σ((d_obs − d_j)/sd)² / n_obs before the update (≈ 1 for a
    well-fitting ensemble). ``spread`` is the ensemble sd (ddof=1) of each parameter in the
    unconstrained space, shape (steps + 1, n_params), row 0 the prior ensemble.
    """

    samples: dict[str, np.ndarray]
    alphas: tuple[float, ...]
    misfit: np.ndarray
    spread: np.ndarray
    forward_calls: int
    wall_time_s: float


def _check_alphas(alphas: tuple[float, ...]) -> tuple[float, ...]:
    if not alphas or any(not a > 0 for a in alphas):
        raise ValueError(f"schedule: found {alphas!r}, expected a non-empty tuple of α > 0")
    total = sum(1.0 / a for a in alphas)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"schedule: found Σ 1/α = {total!r} for {alphas!r}, expected 1 within 1e-9")
    return alphas


def alpha_schedule(settings: EnsembleSettings) -> tuple[float, ...]:
    """ES-MDA inflation factors α_1..α_{N_a} (dimensionless), with Σ 1/α_i = 1.

    Emerick & Reynolds (2013) show that with Σ 1/α_i = 1 the ES-MDA of a linear-Gaussian model
    samples the posterior exactly in the large-ensemble limit, whatever the α_i.

    Raises
    ------
    ValueError
        For an unknown schedule name, N_a < 1, a decrease ratio below 1, or an explicit tuple
        with a non-positive α or Σ 1/α ≠ 1.
    """
    schedule, n = settings.schedule, settings.assimilations
    if isinstance(schedule, tuple):
        return _check_alphas(tuple(float(a) for a in schedule))
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: found {schedule!r}, expected constant, decreasing or a tuple of α")
    if n < 1:
        raise ValueError(f"assimilations: found {n!r}, expected an integer ≥ 1")
    if schedule == "constant":
        return (float(n),) * n
    ratio = settings.decrease_ratio
    if not ratio >= 1.0:
        raise ValueError(f"decrease_ratio: found {ratio!r}, expected ≥ 1 (1 gives the constant schedule)")
    # α_i = c r^(N_a-1-i); Σ 1/α_i = 1 fixes c = Σ_k r^-k, so the last step has α = c.
    c = sum(ratio**-k for k in range(n))
    return tuple(c * ratio ** (n - 1 - i) for i in range(n))


def _check_settings(settings: EnsembleSettings) -> None:
    if settings.method not in METHODS:
        raise ValueError(f"method: found {settings.method!r}, expected one of {', '.join(METHODS)}")
    if settings.inversion not in INVERSIONS:
        raise ValueError(f"inversion: found {settings.inversion!r}, expected exact or subspace")
    if not 0.0 < settings.svd_energy <= 1.0:
        raise ValueError(f"svd_energy: found {settings.svd_energy!r}, expected a fraction in (0, 1]")
    if settings.ensemble_size < 2:
        raise ValueError(f"ensemble_size: found {settings.ensemble_size!r}, expected ≥ 2")
    if settings.max_iterations < 1:
        raise ValueError(f"max_iterations: found {settings.max_iterations!r}, expected ≥ 1")


def _check_data(y_obs: np.ndarray, obs_sd: np.ndarray) -> None:
    if y_obs.ndim != 1 or obs_sd.shape != y_obs.shape:
        raise ValueError(f"obs_sd: found shape {obs_sd.shape}, expected {y_obs.shape} like y_obs (1-D)")
    if not np.all(obs_sd > 0):
        raise ValueError(f"obs_sd: found min {obs_sd.min()!r}, expected every sd > 0 (known noise)")


def _bijections(priors: Mapping[str, Prior]) -> list:
    from numpyro.distributions.transforms import biject_to

    return [biject_to(distribution(p).support) for p in priors.values()]


def _prior_ensemble(priors: Mapping[str, Prior], size: int, seed: int) -> np.ndarray:
    """Physical prior draws, shape (size, n_params): parameter k uses split(PRNGKey(seed))[k]."""
    import jax

    keys = jax.random.split(jax.random.PRNGKey(seed), len(priors))
    draws = [distribution(p).sample(k, (size,)) for p, k in zip(priors.values(), keys)]
    return np.stack([np.asarray(d, dtype=float) for d in draws], 1)


def _to_unconstrained(theta: np.ndarray, bijections: list) -> np.ndarray:
    return np.stack([np.asarray(b.inv(theta[:, k])) for k, b in enumerate(bijections)], 1)


def _to_physical(u: np.ndarray, bijections: list) -> np.ndarray:
    return np.stack([np.asarray(b(u[:, k])) for k, b in enumerate(bijections)], 1)


def _anomalies(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled by 1/sqrt(N−1), so that AᵀB is the ensemble cross covariance."""
    return (x - x.mean(0)) / math.sqrt(x.shape[0] - 1)


def _increment_exact(a_m, a_d, innovation, alpha: float, obs_sd: np.ndarray) -> np.ndarray:
    """Rows of C_MD (C_DD + α C_D)⁻¹ (d_uc,j − d_j), by a direct solve of the n_obs × n_obs system."""
    c = a_d.T @ a_d + alpha * np.diag(obs_sd**2)
    return np.linalg.solve(c, innovation.T).T @ (a_d.T @ a_m)


def _truncation_rank(s: np.ndarray, energy: float) -> int:
    """Fewest leading singular values holding ``energy`` of Σ s²."""
    cumulative = np.cumsum(s**2)
    if cumulative[-1] == 0:
        return 0
    return min(int(np.searchsorted(cumulative / cumulative[-1], energy)) + 1, s.size)


def _increment_subspace(a_m, a_d, innovation, alpha: float, obs_sd: np.ndarray, energy: float) -> np.ndarray:
    """The ES-MDA increment with C_DD + α C_D inverted in the ensemble subspace.

    With S = ΔD C_D^{-1/2} the data anomalies in units of the noise sd (rows = members) and its
    truncated SVD S ≈ U Σ Vᵀ, C_DD + α C_D = C_D^{1/2}(SᵀS + α I)C_D^{1/2} is replaced by its
    projection C_D^{1/2} V(Σ² + α I)Vᵀ C_D^{1/2} (Evensen 2004; Emerick 2016). As C_MD = ΔMᵀS C_D^{1/2}
    the increment of member j is ΔMᵀ U Σ(Σ² + α I)⁻¹ Vᵀ C_D^{-1/2}(d_uc,j − d_j). Scaling by the sd
    first makes the truncation compare data of different units on one footing; with every
    non-zero singular value kept the result equals the exact inversion, because SᵀS + α I acts as
    α I on the complement of V, which ΔMᵀU Σ Vᵀ annihilates.
    """
    s_scaled = a_d / obs_sd
    u, s, vt = np.linalg.svd(s_scaled, full_matrices=False)
    r = _truncation_rank(s, energy)
    u, s, vt = u[:, :r], s[:r], vt[:r]
    return ((innovation / obs_sd) @ vt.T * (s / (s**2 + alpha))) @ (u.T @ a_m)


def _perturbed_obs(y_obs, obs_sd, alpha: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """d_uc,j = d_obs + sqrt(α) C_D^{1/2} z_j, z_j ~ N(0, I), one row per member.

    Not centred: as in Emerick & Reynolds' (2013) algorithm, each member draws its own independent
    perturbation at every step, scaled by sqrt(α_i).
    """
    return y_obs + math.sqrt(alpha) * obs_sd * rng.standard_normal((size, y_obs.size))


def _forward(forward_batch, names, theta: np.ndarray, n_obs: int, step: int) -> np.ndarray:
    d = np.asarray(forward_batch({k: theta[:, i] for i, k in enumerate(names)}), dtype=float)
    if d.shape != (theta.shape[0], n_obs):
        raise ValueError(f"forward_batch: found output shape {d.shape}, expected {(theta.shape[0], n_obs)}")
    bad = int((~np.isfinite(d)).any(1).sum())
    if bad:
        raise ValueError(
            f"forward_batch: {bad} of {d.shape[0]} members gave non-finite output at step {step}"
        )
    return d


def _update(u, d, y_obs, obs_sd, alpha: float, settings: EnsembleSettings, rng) -> np.ndarray:
    """One ES-MDA analysis of the unconstrained ensemble u (members × parameters)."""
    innovation = _perturbed_obs(y_obs, obs_sd, alpha, u.shape[0], rng) - d
    a_m, a_d = _anomalies(u), _anomalies(d)
    if settings.inversion == "exact":
        return u + _increment_exact(a_m, a_d, innovation, alpha, obs_sd)
    return u + _increment_subspace(a_m, a_d, innovation, alpha, obs_sd, settings.svd_energy)


def _controller(settings: EnsembleSettings, n_obs: int) -> Callable:
    """``(misfit, used) -> (alpha, last)``: the fixed ES-MDA schedule or EKI's adaptive step."""
    if settings.method == "eki":
        return lambda misfit, used: eki.next_alpha(misfit, n_obs, used, settings.max_iterations)
    alphas = alpha_schedule(settings)
    return lambda misfit, used: (alphas[len(used)], len(used) + 1 == len(alphas))


def _progress_bar(settings: EnsembleSettings, enabled: bool):
    from tqdm.auto import tqdm

    # EKI's number of steps is known only at the end, so its bar counts steps without a total.
    total = None if settings.method == "eki" else len(alpha_schedule(settings))
    return tqdm(total=total, desc=settings.method, unit="step", disable=not enabled)


def _assimilate(forward_batch, names, bijections, u, y_obs, obs_sd, settings: EnsembleSettings, bar):
    """Steps until the controller's last α; returns the final u and the α, misfit and spread lists."""
    choose, rng = _controller(settings, y_obs.size), np.random.default_rng(settings.seed)
    alphas, misfit, spread, last = [], [], [u.std(0, ddof=1)], False
    while not last:
        d = _forward(forward_batch, names, _to_physical(u, bijections), y_obs.size, len(alphas))
        member_misfit = np.mean(((y_obs - d) / obs_sd) ** 2, 1)
        alpha, last = choose(member_misfit, tuple(alphas))
        u = _update(u, d, y_obs, obs_sd, alpha, settings, rng)
        alphas.append(alpha)
        misfit.append(float(member_misfit.mean()))
        spread.append(u.std(0, ddof=1))
        bar.set_postfix(alpha=f"{alpha:.3g}", misfit=f"{misfit[-1]:.3g}")
        bar.update()
    return u, alphas, misfit, spread


def run_ensemble(
    forward_batch: Callable[[dict[str, np.ndarray]], np.ndarray],
    priors: Mapping[str, Prior],
    y_obs: np.ndarray,
    obs_sd: np.ndarray,
    settings: EnsembleSettings,
    progress: bool = False,
) -> EnsembleResult:
    """Condition an ensemble drawn from the priors on y_obs by ES-MDA or tempered EKI.

    Each step i evaluates d_j = g(m_j) for all members in one batch, chooses α_i (the fixed
    schedule for ``"esmda"``, the data-misfit controller of ``inference.eki`` for ``"eki"``), and
    applies m_j ← m_j + C_MD (C_DD + α_i C_D)⁻¹ (d_obs + sqrt(α_i) C_D^{1/2} z_j − d_j) in the
    unconstrained space (Emerick & Reynolds 2013; covariances divide by N − 1).

    Parameters
    ----------
    forward_batch : callable
        Maps ``{name: array (n_members,)}`` of physical values to predictions (n_members, n_obs),
        all observables flattened in the order of ``y_obs``.
    priors : mapping of str to Prior
        One prior per parameter, in the parameter's physical unit.
    y_obs : ndarray, shape (n_obs,)
        Observed data, in the units of the predictions.
    obs_sd : ndarray, shape (n_obs,)
        Known sd of each datum's observation error (diagonal C_D), same units as ``y_obs``.
    settings : EnsembleSettings
        Method, ensemble size, schedule, inversion and seed. Random draws: parameter k's prior
        draws use ``jax.random.split(PRNGKey(seed), n_params)[k]``; the perturbations of step i
        are the i-th ``standard_normal((ensemble_size, n_obs))`` of ``np.random.default_rng(seed)``.
    progress : bool
        Show a tqdm bar over the steps.

    Returns
    -------
    EnsembleResult

    Raises
    ------
    ValueError
        For bad settings or data shapes, or a forward output with the wrong shape or non-finite
        values.
    """
    import numpyro

    numpyro.enable_x64()  # the parameters and their transforms in float64, as NUTS runs them
    _check_settings(settings)
    y_obs, obs_sd = np.asarray(y_obs, dtype=float), np.asarray(obs_sd, dtype=float)
    _check_data(y_obs, obs_sd)
    t0 = time.perf_counter()
    bijections = _bijections(priors)
    u = _to_unconstrained(_prior_ensemble(priors, settings.ensemble_size, settings.seed), bijections)
    with _progress_bar(settings, progress) as bar:
        u, alphas, misfit, spread = _assimilate(
            forward_batch, list(priors), bijections, u, y_obs, obs_sd, settings, bar
        )
    theta = _to_physical(u, bijections)
    return EnsembleResult(
        samples={k: theta[:, i] for i, k in enumerate(priors)},
        alphas=tuple(alphas),
        misfit=np.asarray(misfit),
        spread=np.stack(spread),
        forward_calls=settings.ensemble_size * len(alphas),
        wall_time_s=time.perf_counter() - t0,
    )
