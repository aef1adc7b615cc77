"""Change-point ("knee") alarm for one cell's per-cycle parameter trend.

Each cycle c of a cell carries the posterior mean m_c and posterior sd s_c of a quantity (the log of
a diffusivity scale, the capacity, ...). The alarm asks whether the trend breaks, i.e. whether the
degradation changes pace, against the null of one straight line.

Method
------
Null model, a straight line with over-dispersion τ² ≥ 0 (scatter from cycle to cycle that the
posterior sds do not carry):

    m_c = a + b·c + e_c,    e_c ~ N(0, s_c² + τ²).

τ² is the DerSimonian–Laird method-of-moments estimate, in its regression form, from the straight
line fitted by weighted least squares with W = diag(1/s_c²):

    τ² = max(0, (Q − (n − 2)) / (tr W − tr((XᵀWX)⁻¹ XᵀW²X))),    Q = Σ w_c (m_c − â − b̂·c)².

Alternative, a hinge (a continuous line whose slope changes by g after the break k):

    m_c = a + b·c + g·max(c − k, 0) + e_c,

for every observed cycle k with at least ``min_segment`` cycles on each side (k counts on the left).
Statistic: T = max_k |ĝ_k| / se(ĝ_k), each fit by weighted least squares with weights 1/(s_c² + τ²)
and se from (XᵀVX)⁻¹ (the variances are taken as known, so T_k is a z-score).

p-value by parametric bootstrap: ``n_null`` series are drawn from the fitted null line with independent
N(0, s_c² + τ²) errors; τ² and T are re-estimated on each exactly as on the data, and
p = (1 + #{T* ≥ T}) / (1 + n_null). The alarm sounds when p ≤ ``alarm_p``.

Assumptions
-----------
- The per-cycle estimates are independent (each cycle calibrated on its own data) and Gaussian
  around the trend; the posterior sds are known up to the common extra variance τ².
- At most one break, and the trend is continuous at it (a slope change, no jump in level).
- The test is two-sided: a slowing trend also alarms; compare ``slope_after`` with ``slope_before``.
- The bootstrap plugs in the estimated τ², so the false-alarm rate is close to, not exactly,
  ``alarm_p`` when τ² is poorly determined (few cycles).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["trend_break"]

# Simulated series handled at once: bounds memory at a few (block × candidate breaks) arrays.
_BLOCK = 256


def trend_break(
    cycles: ArrayLike,
    mean: ArrayLike,
    sd: ArrayLike,
    *,
    alarm_p: float = 0.01,
    min_segment: int = 4,
    n_null: int = 2000,
    seed: int = 0,
) -> dict:
    """Test a straight-line trend of ``mean`` (sd ``sd``) over ``cycles`` against a one-break hinge.

    Parameters
    ----------
    cycles : array-like of whole numbers
        Cycle numbers, distinct, in any order; gaps (cycles skipped for bad data) are allowed.
    mean, sd : array-like
        Posterior mean and posterior sd (> 0) of the quantity at each cycle.
    alarm_p : float
        Alarm when the bootstrap p-value is ≤ this; it must be ≥ 1/(1 + ``n_null``) to be reachable.
    min_segment : int
        Fewest cycles on each side of a candidate break (≥ 2: one cycle cannot anchor a slope).
    n_null, seed : int
        Number of bootstrap series and the seed of their ``numpy.random.default_rng``.

    Returns
    -------
    dict
        ``tested``, ``reason`` ("" when tested), ``alarm``, ``p_value``, ``z`` (T), ``cycle`` (the first
        cycle after the best break, where the new slope shows), ``slope_before`` (b̂) and
        ``slope_after`` (b̂ + ĝ) in units of the quantity per cycle, and ``tau`` (√τ²). With fewer than
        2·``min_segment`` + 1 cycles the numbers are NaN, ``tested`` and ``alarm`` false.
    """
    cycles, mean, sd = _checked(cycles, mean, sd)
    _check_settings(alarm_p, min_segment, n_null)
    need = 2 * min_segment + 1
    if cycles.size < need:
        return _untested(f"{cycles.size} cycles found, {need} needed (2·min_segment + 1 = {need})")
    # Centre and scale the cycle axis so the 2×2 solves stay well conditioned for long records.
    span = float(cycles[-1] - cycles[0])
    x = (cycles - 0.5 * (cycles[0] + cycles[-1])) / span
    var_sd = sd**2
    tau2 = float(_tau2(x, mean, var_sd)[0])
    var = var_sd + tau2
    z, best, g, b = (float(value[0]) for value in _statistic(x, mean, var, min_segment))
    z_null = _null_statistics(x, _line_fit(x, mean, 1.0 / var), var_sd, tau2, min_segment, n_null, seed)
    p_value = (1 + np.count_nonzero(z_null >= z)) / (1 + n_null)
    knot = int(best) + min_segment - 1
    return {
        "tested": True,
        "reason": "",
        "alarm": bool(p_value <= alarm_p),
        "p_value": float(p_value),
        "z": z,
        "cycle": int(cycles[knot + 1]),
        "slope_before": b / span,
        "slope_after": (b + g) / span,
        "tau": float(np.sqrt(tau2)),
    }


def _checked(cycles: ArrayLike, mean: ArrayLike, sd: ArrayLike) -> tuple[np.ndarray, ...]:
    """The three inputs as float arrays sorted by cycle; ValueError naming the argument at fault."""
    named = {"cycles": cycles, "mean": mean, "sd": sd}
    arrays = {name: np.asarray(value, dtype=float) for name, value in named.items()}
    for name, values in arrays.items():
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    n = arrays["cycles"].size
    for name in ("mean", "sd"):
        if arrays[name].size != n:
            raise ValueError(f"{name} has {arrays[name].size} values but cycles has {n}")
    for name, values in arrays.items():
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} has non-finite values (NaN or inf)")
    if np.any(arrays["sd"] <= 0):
        raise ValueError("sd must be > 0 at every cycle")
    cycles = arrays["cycles"]
    if np.any(cycles != np.round(cycles)):
        raise ValueError("cycles must be whole numbers")
    order = np.argsort(cycles, kind="stable")
    # A repeated cycle makes "the cycles left of the break" ambiguous.
    if np.any(np.diff(cycles[order]) == 0):
        raise ValueError("cycles must be distinct")
    return cycles[order], arrays["mean"][order], arrays["sd"][order]


def _check_settings(alarm_p: float, min_segment: int, n_null: int) -> None:
    if min_segment < 2:
        # With one cycle left of the break the hinge column equals x − k there too: collinear with the line.
        raise ValueError(f"min_segment must be ≥ 2, got {min_segment}")
    if n_null < 1:
        raise ValueError(f"n_null must be ≥ 1, got {n_null}")
    if not 0 < alarm_p < 1:
        raise ValueError(f"alarm_p must lie in (0, 1), got {alarm_p}")
    if alarm_p < 1.0 / (1 + n_null):
        # The smallest bootstrap p-value is 1/(1 + n_null): below it the alarm could never sound.
        raise ValueError(f"alarm_p {alarm_p} < 1/(1 + n_null) = {1 / (1 + n_null):.2g}: raise n_null")


def _untested(reason: str) -> dict:
    keys = ("p_value", "z", "cycle", "slope_before", "slope_after", "tau")
    return {"tested": False, "reason": reason, "alarm": False} | dict.fromkeys(keys, float("nan"))


def _line_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Fitted values of the weighted least-squares line through each row of ``y`` (weights ``w``, (n,))."""
    design = np.column_stack([np.ones_like(x), x])
    coef = np.linalg.solve(design.T @ (w[:, None] * design), design.T @ (w * y).T)
    return (design @ coef).T


def _tau2(x: np.ndarray, y: np.ndarray, var_sd: np.ndarray) -> np.ndarray:
    """DerSimonian–Laird τ² of the straight-line fit, one per row of ``y`` (regression form)."""
    y = np.atleast_2d(y)
    w = 1.0 / var_sd
    design = np.column_stack([np.ones_like(x), x])
    q = np.sum(w * (y - _line_fit(x, y, w)) ** 2, axis=-1)
    info = design.T @ (w[:, None] * design)
    # E[Q] = (n − 2) + τ²·(tr W − tr((XᵀWX)⁻¹ XᵀW²X)); solve for τ² and clip at 0.
    scale = w.sum() - np.trace(np.linalg.solve(info, design.T @ (w[:, None] ** 2 * design)))
    return np.maximum(0.0, (q - (x.size - 2)) / scale)


def _right_sums(f: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Σ_{j>i} f[..., j] for i = lo … hi − 1: sums over the cycles right of each candidate break."""
    from_i = np.cumsum(f[..., ::-1], axis=-1)[..., ::-1]  # Σ_{j≥i}
    return from_i[..., lo + 1 : hi + 1]


def _hinge_wls(x: ArrayLike, y: ArrayLike, var: ArrayLike, min_segment: int) -> tuple[np.ndarray, ...]:
    """WLS fit of a + b·x + g·max(x − k, 0), weights 1/var, at every candidate break k = x[i].

    ``x`` is sorted; ``y`` is (n,) or (series, n); ``var`` broadcasts to ``y``. The breaks are
    i = min_segment − 1 … n − min_segment − 1. Returns ĝ, se(ĝ) and b̂, each (series, breaks).
    The line block of XᵀVX is shared by all breaks, so ĝ comes from its Schur complement and the
    hinge's cross-products from cumulative sums: O(series × n), not a solve per break.
    """
    x = np.asarray(x, dtype=float)
    y = np.atleast_2d(np.asarray(y, dtype=float))
    v = np.broadcast_to(1.0 / np.asarray(var, dtype=float), y.shape)
    lo, hi = min_segment - 1, x.size - min_segment
    k = x[lo:hi]
    s0, s1, s2, sy, sxy = (_right_sums(f, lo, hi) for f in (v, v * x, v * x**2, v * y, v * x * y))
    # Cross-products of the hinge column h = max(x − k, 0) with 1, x, h and y.
    h1, hx, hh, hy = s1 - k * s0, s2 - k * s1, s2 - 2 * k * s1 + k**2 * s0, sxy - k * sy
    n0, n1, n2, r0, r1 = (np.sum(f, axis=-1, keepdims=True) for f in (v, v * x, v * x**2, v * y, v * x * y))
    det = n0 * n2 - n1**2
    # u = (XᵀVX)⁻¹XᵀVh, the hinge's projection on the line; what is left of hh is 1/var(ĝ).
    u0, u1 = (n2 * h1 - n1 * hx) / det, (n0 * hx - n1 * h1) / det
    schur = hh - u0 * h1 - u1 * hx
    g = (hy - u0 * r0 - u1 * r1) / schur
    b = (n0 * (r1 - g * hx) - n1 * (r0 - g * h1)) / det
    return g, 1.0 / np.sqrt(schur), b


def _statistic(x: ArrayLike, y: ArrayLike, var: ArrayLike, min_segment: int = 4) -> tuple[np.ndarray, ...]:
    """T = max_k |ĝ_k| / se(ĝ_k) per series, with the index of the best break among the candidates
    and its ĝ and b̂ (per unit of ``x``). T does not change under an affine map of ``x``."""
    g, se, b = _hinge_wls(x, y, var, min_segment)
    z = np.abs(g) / se
    best = np.argmax(z, axis=-1)
    rows = np.arange(z.shape[0])
    return z[rows, best], best, g[rows, best], b[rows, best]


def _null_statistics(
    x: np.ndarray,
    line: np.ndarray,
    var_sd: np.ndarray,
    tau2: float,
    min_segment: int,
    n_null: int,
    seed: int,
) -> np.ndarray:
    """T* of ``n_null`` series drawn from the null line, τ² re-estimated on each as on the data."""
    rng = np.random.default_rng(seed)
    sims = line + np.sqrt(var_sd + tau2) * rng.standard_normal((n_null, x.size))
    z = np.empty(n_null)
    for start in range(0, n_null, _BLOCK):
        block = sims[start : start + _BLOCK]
        var = var_sd + _tau2(x, block, var_sd)[:, None]
        z[start : start + _BLOCK] = _statistic(x, block, var, min_segment)[0]
    return z
