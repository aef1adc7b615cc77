"""Well-test diagnostics: the Bourdet pressure derivative and Agarwal's superposition time.

The derivative d(Δp)/d(ln t) is what well-test engineers read on a log-log plot: flat during
infinite-acting radial flow (its level is 70.6·q·B·μ/(k·h) psi), doubled behind a sealing fault.

Smoothing convention: the window ``smoothing`` = L is in NATURAL-LOG units of time (ln t), not in
log10 cycles; L = 0.2 is about 0.087 log cycle. Bourdet et al. (1989) use L = 0.1–0.5 in these units.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["bourdet_derivative", "pressure_change", "superposition_time_h"]


def bourdet_derivative(t: ArrayLike, dp: ArrayLike, smoothing: float = 0.2) -> np.ndarray:
    """Bourdet et al. (1989) derivative d(Δp)/d(ln t), smoothed over a window L = ``smoothing`` in ln t.

    For each point i the neighbours are the nearest points j < i and k > i with
    ln t_i − ln t_j ≥ L and ln t_k − ln t_i ≥ L; the derivative is the central difference of the two
    slopes m_l (over j, i) and m_r (over i, k), each weighted by the other side's width:

        (m_l·Δx_r + m_r·Δx_l) / (Δx_l + Δx_r).

    Where one side has no such neighbour (the ends), the other side's slope is used alone; where
    neither side has one (a record shorter than 2·L), the first and last points stand in.

    Parameters
    ----------
    t
        Times, shape ``(T,)``, strictly increasing and positive (any unit: only ln t differences count).
    dp
        Pressure change, shape ``(..., T)``: the derivative is taken along the last axis.
    smoothing
        L ≥ 0 in natural-log units of t; 0 uses the nearest neighbours.
    """
    t, dp = np.asarray(t, dtype=float), np.asarray(dp, dtype=float)
    n = t.size
    if t.ndim != 1 or n < 2 or dp.shape[-1] != n:
        raise ValueError(f"need T ≥ 2 times and Δp ending in T; got t {t.shape}, Δp {dp.shape}")
    if not (np.all(np.isfinite(t)) and t[0] > 0 and np.all(np.diff(t) > 0)):
        raise ValueError("times must be positive and strictly increasing")
    x = np.log(t)
    if smoothing < 0:
        raise ValueError(f"smoothing must be ≥ 0, got {smoothing}")
    i = np.arange(n)
    # Nearest left point at least L away (−1: none) and nearest right point (n: none).
    left = np.minimum(np.searchsorted(x, x - smoothing, side="right") - 1, i - 1)
    right = np.maximum(np.searchsorted(x, x + smoothing, side="left"), i + 1)
    has_l, has_r = left >= 0, right < n
    neither = ~has_l & ~has_r
    left = np.where(neither & (i > 0), 0, left)
    right = np.where(neither & (i < n - 1), n - 1, right)
    has_l, has_r = left >= 0, right < n
    j, k = np.clip(left, 0, n - 1), np.clip(right, 0, n - 1)
    wl = np.where(has_l, x - x[j], 1.0)
    wr = np.where(has_r, x[k] - x, 1.0)
    ml = (dp - dp[..., j]) / wl
    mr = (dp[..., k] - dp) / wr
    central = (ml * wr + mr * wl) / (wl + wr)
    return np.where(has_l & has_r, central, np.where(has_l, ml, mr))


def superposition_time_h(dt_h: ArrayLike, production_time_h: float) -> np.ndarray:
    """Agarwal's equivalent time t_e = Δt·t_p/(t_p + Δt) [h] of a buildup; Δt itself when t_p = 0.

    A buildup after producing for t_p looks, against t_e, like a drawdown: its derivative is taken
    with respect to ln t_e (and plotted against Δt). t_p → ∞ gives t_e → Δt.
    """
    dt = np.asarray(dt_h, dtype=float)
    tp = float(production_time_h)
    return dt / (1.0 + dt / tp) if tp > 0 else dt.copy()


def pressure_change(
    t_h: ArrayLike,
    pressure: ArrayLike,
    initial_pressure: float,
    production_time_h: float = 0.0,
    smoothing: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Δp [psi] and its Bourdet derivative of a pressure record, shapes ``(..., T)``.

    Drawdown (``production_time_h`` = 0): Δp = p_i − p_wf(t), derivative in ln t.
    Buildup (> 0; ``t_h`` is the shut-in time Δt): Δp = p_ws(Δt) − p_ws(Δt_first), derivative in the
    equivalent time ln t_e. The flowing pressure at shut-in, p_wf(Δt = 0), is not in the record, so the
    first shut-in point stands in for it: the derivative does not depend on that choice (a constant
    offset), but Δp is low by the true Δp(Δt_first) and is 0, so off a log plot, at the first point.
    """
    p = np.asarray(pressure, dtype=float)
    t_p = float(production_time_h or 0.0)
    dp = p - p[..., :1] if t_p > 0 else float(initial_pressure) - p
    return dp, bourdet_derivative(superposition_time_h(t_h, t_p), dp, smoothing)
