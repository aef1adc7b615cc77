"""What the surrogate's held-out errors would do to a record like this one, before any reference solve.

At held-out cell j the card keeps the surrogate's error e_j(t) against the reference. Data the
reference gives at θ_j are the surrogate's at θ_j minus e_j, so a posterior that trusts the
surrogate lands, to first order, at θ_j + δ_j with

    δ_j = −(J_jᵀ C⁻¹ J_j)⁻¹ J_jᵀ C⁻¹ e_j,        J_j = ∂f_sur/∂θ at θ_j,

in sds sd_j = sqrt(diag (J_jᵀ C⁻¹ J_j)⁻¹), on this study's record laid onto cell j (its times, or
for a battery its fraction of discharge) with this study's likelihood covariance C. So z_j = δ_j /
sd_j is what a record like this one would show if the truth were cell j; over the cells near the
study's conditions and posterior mean (kernel-weighted) it says whether this record is long or
quiet enough for the surrogate's error to matter. It costs 2p surrogate calls per cell, so every
run without a correction reports it; a weighted median above ``SHIFT_FLAG_SD`` is flagged with
the remedies (the reference correction, ``--check-reference``).

Each cell is judged on its own sensitivities: laying every e_j onto the study's sensitivities
instead misses how a surrogate's error lines up with its own parameter directions (on
``battery.p2d``'s 64 cells, leave one out, a cell's own shift fell within the others' median so
laid at a third of the cells, not a half: ``case_studies/battery_p2d/posterior_bias.py``).
"""

from __future__ import annotations

import numpy as np

from bayespinn.reference import SHIFT_FLAG_SD, likelihood_sd, precision_times
from inference.surrogate_error import kernel_weights

__all__ = ["curve_grid", "curve_weights", "held_out_bias", "held_out_flags", "weighted_quantile"]

STEP = 1e-3  # central differences' step in log θ, or in θ over its box's width


def held_out_bias(prep, idata) -> dict | None:
    """``{curves, flag_above_sd, parameters: {name: {median_abs_sd, p90_abs_sd, share_above_flag}},
    shift_in_sd: {name: (K,)}, weights: (K,)}``: z_j of each held-out cell, and over the cells
    the |z|'s weighted quantiles and the weighted share above the flag bound. None for a
    surrogate without residual curves, a record they cannot be laid on (a battery record that
    stops before its knee) or a parameter they do not vary."""
    model, study, data = prep.model, prep.study, prep.data
    if model.card is None or not hasattr(model, "validation_residuals"):
        return None
    held = model.validation_residuals(study.conditions)
    try:
        at = curve_grid(model, study.conditions, data)
    except ValueError:
        return None
    names = list(study.priors)
    if not set(names) <= set(held["inputs"]):
        return None  # the cells do not say where the surrogate was for a parameter they did not vary
    sigma = {o: likelihood_sd(prep, idata, o) for o in prep.spec.observables if o in held["residuals"]}
    box = model.domain(study.conditions)
    # central differences in log θ for a positive box, else in θ relative to the box's width
    logged = np.array([box[k][0] > 0 for k in names])
    step = np.where(logged, STEP, STEP * np.array([box[k][1] - box[k][0] for k in names]))
    n = len(held["times_s"])
    signed = np.array([_shift(prep, held, at, j, names, logged, step, sigma) for j in range(n)]).T  # (p, K)
    mean = {k: float(idata.posterior[k].mean()) for k in names}
    w = curve_weights(model, study.conditions, held["inputs"], {**mean, **study.conditions})
    shifts = np.abs(signed)
    parameters = {
        name: {
            "median_abs_sd": weighted_quantile(shifts[i], w, 0.5),
            "p90_abs_sd": weighted_quantile(shifts[i], w, 0.9),
            "share_above_flag": float(np.sum(w * (shifts[i] > SHIFT_FLAG_SD))),
        }
        for i, name in enumerate(names)
    }
    return {
        "curves": n,
        "flag_above_sd": SHIFT_FLAG_SD,
        "parameters": parameters,
        "shift_in_sd": dict(zip(names, signed.tolist(), strict=True)),
        "weights": w.tolist(),
    }


def _shift(prep, held: dict, at, j: int, names, logged, step, sigma: dict) -> np.ndarray:
    """z_j (p,): where a posterior trusting the surrogate lands, less held-out cell j's θ, in its
    sds, to first order, on this study's record laid onto cell j; ``sigma`` {observable: the
    likelihood's sd}, ``step`` (p,) the differences' step, in log θ where ``logged``."""
    from bayespinn.engines import batch_forward

    cell = {k: float(v[j]) for k, v in held["inputs"].items()}
    conditions = {**prep.study.conditions, **{k: v for k, v in cell.items() if k not in names}}
    theta = np.array([cell[k] for k in names])
    moves = np.concatenate([np.diag(step), -np.diag(step)])  # (2p, p)
    sets = np.where(logged, theta * np.exp(moves), theta + moves)
    t_s = np.interp(at, held["grid"], held["times_s"][j])
    out = batch_forward(prep.model, t_s, conditions, tuple(sigma))(
        {k: sets[:, i] for i, k in enumerate(names)}
    )
    p = len(names)
    normal, rhs = np.zeros((p, p)), np.zeros(p)
    for o, sd in sigma.items():
        jac = ((out[o][:p] - out[o][p:]) / (2 * step[:, None])).T  # (T, p)
        error = np.interp(at, held["grid"], held["residuals"][o][j])
        whitened = precision_times(sd, prep.spec.surrogate_factor.get(o), np.column_stack([jac, error]))
        normal += jac.T @ whitened[:, :p]
        rhs += jac.T @ whitened[:, p]
    cov = np.linalg.inv(normal)
    return -(cov @ rhs) / np.sqrt(np.diag(cov))


def held_out_flags(bias: dict | None, model_name: str) -> list[str]:
    """One line per parameter whose weighted median |z| over the held-out cells exceeds the flag
    bound."""
    if not bias:
        return []
    return [
        f"{name}: at {model_name}'s held-out cells near this posterior, a record like this one would "
        f"put a posterior that trusts the surrogate a median {v['median_abs_sd']:.2f} sd from the truth "
        f"(90 % of the cells within {v['p90_abs_sd']:.2f} sd); the reference correction "
        '(correct = "importance" or "delayed-acceptance") removes that, calibrate --check-reference '
        "measures it at this record"
        for name, v in bias["parameters"].items()
        if v["median_abs_sd"] > bias["flag_above_sd"]
    ]


def curve_grid(model, conditions: dict, data) -> np.ndarray:
    """Where the data's times lie on the held-out curves' grid: the times themselves, or (a
    battery's curves are laid out over the fraction of discharge) the model's own clock, which
    raises ValueError for a record it cannot place (``residual_grid``)."""
    grid_of = getattr(model, "residual_grid", None)
    return grid_of(conditions, data.time_s, data.values) if grid_of else np.asarray(data.time_s, float)


def curve_weights(model, conditions: dict, inputs: dict, target: dict) -> np.ndarray:
    """Kernel weights (``kernel_weights``) of held-out curves measured at ``inputs`` {name: (K,)}
    around ``target`` {name: value}: the inputs both name, each scaled to [0, 1] over the model's
    box at ``conditions`` (in log10 where the box spans a decade or more of positive values, as
    the battery's scales do). The error of a surrogate varies over its box, so the curves near a
    study say more about its error there."""
    box = model.domain(conditions)
    known = [k for k in inputs if k in target and k in box and box[k][1] > box[k][0]]

    def scaled(name: str, value):
        lo, hi = box[name]
        if lo > 0 and hi >= 10 * lo:
            value, lo, hi = np.log10(value), np.log10(lo), np.log10(hi)
        return (np.asarray(value, float) - lo) / (hi - lo)

    n = len(next(iter(inputs.values())))
    x = np.stack([scaled(k, inputs[k]) for k in known], axis=1) if known else np.zeros((n, 0))
    return kernel_weights(x, np.array([scaled(k, target[k]) for k in known]))


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of ``values`` under ``weights``: the smallest value whose cumulative weight reaches q."""
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    return float(values[order][min(np.searchsorted(cdf, q * cdf[-1]), len(values) - 1)])
