"""Held-out validation of a surrogate against its reference solver on a scrambled Sobol design."""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

__all__ = ["rmse_stats", "sobol_design"]


def sobol_design(box: dict[str, tuple[float, float]], n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` scrambled Sobol points in the box (n a power of two keeps the balance properties)."""
    names = list(box)
    unit = qmc.Sobol(d=len(names), scramble=True, seed=seed).random(n)
    lo = np.array([box[k][0] for k in names])
    hi = np.array([box[k][1] for k in names])
    pts = qmc.scale(unit, lo, hi)
    return {k: pts[:, i] for i, k in enumerate(names)}


def rmse_stats(rmse: np.ndarray) -> dict[str, float]:
    """Median, 95th percentile and maximum of per-point RMSEs, and their root mean square
    (``overall``: the RMSE over every held-out time and point, used as the surrogate-error σ)."""
    rmse = np.asarray(rmse, float)
    return {
        "median": float(np.median(rmse)),
        "p95": float(np.quantile(rmse, 0.95)),
        "max": float(rmse.max()),
        "overall": float(np.sqrt(np.mean(rmse**2))),
    }
