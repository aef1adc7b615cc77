"""Ensemble Kalman inversion's adaptive step: the data-misfit controller (DMC).

EKI here is tempered: the likelihood is brought in over steps with inflation factors α_i whose
inverses (tempering increments) sum to one, so that, for a linear-Gaussian problem and a large
ensemble, the final ensemble samples the posterior. The update itself is the ES-MDA update in
``inference.esmda``; this module only chooses α_i from the current ensemble's data misfit.

Reference: M. Iglesias and Y. Yang (2021), "Adaptive regularisation for ensemble Kalman
inversion", Inverse Problems 37, 025008 — the data-misfit controller. With Φ_j = ½‖C_D^{-1/2}
(d_obs − g(m_j))‖² the misfit of member j, M = n_obs, ⟨Φ⟩ and Var(Φ) the ensemble mean and
variance of Φ_j, and t_i = Σ_{k<i} 1/α_k the tempering reached so far,

    1/α_i = min( max( M / (2⟨Φ⟩), sqrt(M / (2 Var Φ)) ), 1 − t_i ).

The first term stops a step from pulling the ensemble further than the data's expected misfit
(M/2 at the truth) warrants; the second bounds the variance of the implied importance weights,
which keeps consecutive tempered measures close (the paper shows it controls their symmetrised
Kullback–Leibler divergence).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["dmc_increment", "next_alpha"]


def dmc_increment(misfit: np.ndarray, n_obs: int) -> float:
    """Tempering increment 1/α proposed by the data-misfit controller, before capping at 1 − t.

    Parameters
    ----------
    misfit : ndarray, shape (n_members,)
        Normalised data misfit of each member, φ_j = Σ((d_obs − d_j)/sd)² / n_obs
        (dimensionless). In Iglesias & Yang's notation Φ_j = M φ_j / 2.
    n_obs : int
        Number of data M.

    Returns
    -------
    float
        max(M/(2⟨Φ⟩), sqrt(M/(2 Var Φ))) = max(1/⟨φ⟩, sqrt(2/(M Var φ))), with the sample
        variance (ddof=1); ``inf`` where a term is unbounded (all misfits zero, or all equal).
    """
    mean = float(np.mean(misfit))
    var = float(np.var(misfit, ddof=1))
    # A zero mean or variance puts no limit on the step: the term is infinite, not a 0-division.
    by_mean = 1.0 / mean if mean > 0 else math.inf
    by_var = math.sqrt(2.0 / (n_obs * var)) if var > 0 else math.inf
    return max(by_mean, by_var)


def next_alpha(misfit: np.ndarray, n_obs: int, used: tuple[float, ...], max_steps: int) -> tuple[float, bool]:
    """α for the next step and whether that step is the last.

    Parameters
    ----------
    misfit : ndarray, shape (n_members,)
        Normalised data misfit φ_j of the current ensemble (see `dmc_increment`).
    n_obs : int
        Number of data.
    used : tuple of float
        The α already applied; t = Σ 1/α over them is the tempering reached.
    max_steps : int
        Cap on the number of steps: the step numbered ``max_steps`` takes the remainder 1 − t.

    Returns
    -------
    alpha : float
        Inflation factor of the step (dimensionless, ≥ 1).
    last : bool
        True when 1/α is the remainder 1 − t, so that Σ 1/α = 1 after this step.
    """
    remainder = 1.0 - sum(1.0 / a for a in used)
    increment = dmc_increment(misfit, n_obs)
    if increment >= remainder or len(used) + 1 >= max_steps:
        return 1.0 / remainder, True
    return 1.0 / increment, False
