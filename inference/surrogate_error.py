"""A surrogate's error as a correlated Gaussian over the observation grid, from its validation residuals.

A surrogate's error e(t; θ) = f_sur(t; θ) − f_ref(t; θ) is smooth in t and systematic in θ: it does
not average out over samples, so adding its RMSE to σ in quadrature (independent errors) barely
widens a posterior it moves by many sds. Treating e at the unknown truth as a draw from the
population of held-out residual curves, e ~ N(0, K) with K(t, t') = E_k[r_k(t) r_k(t')] (second
moment: the curves' common bias is part of the uncertainty), and marginalising it, gives the
likelihood y ~ N(f_sur(θ), σ²I + K): Kennedy & O'Hagan's model discrepancy, with the discrepancy's
covariance estimated from the validation design instead of a GP fitted on the data.

K is stored as a low-rank factor L (K = L Lᵀ) from the SVD of the residual matrix, interpolated
onto the data times, so the likelihood costs O(T r²) (NumPyro's LowRankMultivariateNormal).
"""

from __future__ import annotations

import numpy as np

__all__ = ["error_factor", "kernel_weights"]


def error_factor(
    residuals: np.ndarray,
    times_s: np.ndarray,
    obs_times_s: np.ndarray,
    weights: np.ndarray | None = None,
    energy: float = 0.999,
    max_rank: int = 30,
) -> np.ndarray:
    """Low-rank factor L (len(obs_times_s), r) with L Lᵀ ≈ Σ_k w_k r_k r_kᵀ on the data times.

    Parameters
    ----------
    residuals : (K, T) array
        Held-out residual curves r_k(t) = f_sur − f_ref of one observable, in its unit, at ``times_s``.
    times_s : (T,) array
        Increasing validation times [s].
    obs_times_s : (n,) array
        Data times [s] inside [times_s[0], times_s[-1]]; modes are interpolated linearly (the
        validation grid is much finer than the error's time scale).
    weights : (K,) array, optional
        Weights of the curves (e.g. :func:`kernel_weights`), normalised here; equal by default.
    energy, max_rank
        The factor keeps the leading singular vectors holding ``energy`` of Σ s², at most ``max_rank``.
    """
    r = np.asarray(residuals, dtype=float)
    w = np.full(len(r), 1.0 / len(r)) if weights is None else np.asarray(weights, float) / np.sum(weights)
    # Σ_k w_k r_k r_kᵀ = Rᵀ R with R = diag(√w) r; its SVD R = U S Vᵀ gives Rᵀ R = (V S)(V S)ᵀ.
    _, s, vt = np.linalg.svd(np.sqrt(w)[:, None] * r, full_matrices=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    rank = min(int(np.searchsorted(share, energy) + 1), max_rank, len(s))
    modes = vt[:rank].T * s[:rank]
    return np.stack([np.interp(obs_times_s, times_s, modes[:, j]) for j in range(rank)], axis=1)


def kernel_weights(inputs: np.ndarray, target: np.ndarray, bandwidth: float = 0.25, min_ess: float = 20.0):
    """Gaussian-kernel weights of validation points near ``target`` (inputs scaled to [0, 1]).

    The error of a surrogate varies over its domain (larger where the dynamics are harder), so the
    curves near the study's known conditions say more about its error there. The bandwidth is
    doubled until the weights' effective sample size (Σw)²/Σw² reaches ``min_ess``, so that the
    covariance is never estimated from a handful of curves.
    """
    x, target = np.asarray(inputs, float), np.asarray(target, float)
    if x.shape[1] == 0:
        return np.ones(len(x))
    d2 = np.sum((x - target) ** 2, axis=1)
    while True:
        w = np.exp(-0.5 * d2 / bandwidth**2)
        if np.sum(w) ** 2 / np.sum(w**2) >= min(min_ess, len(x)) or bandwidth > 10:
            return w / np.sum(w)
        bandwidth *= 2
