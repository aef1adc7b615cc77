"""What errors like the surrogate's held-out ones would do to this posterior, before any reference solve.

A surrogate's error at the unknown truth is one curve e(t) that the data cannot tell from a
change of θ, so it moves the posterior mean by −Σ Jᵀ C⁻¹ e to first order (the same operator as
``reference.mean_shift_in_sd``, whose e is measured at the posterior's draws with the reference).
Here e is each of the card's held-out residual curves in turn, laid onto the data's times: the
spread of the resulting shifts, in posterior sds and weighted towards the curves measured near the
study's conditions and posterior mean, is what the surrogate's measured error can do to this
record at this noise. It costs surrogate calls only, so every run reports it; a record long or
quiet enough that typical held-out errors move the mean by more than ``SHIFT_FLAG_SD`` is flagged
with the remedies (the reference correction, ``--check-reference``).
"""

from __future__ import annotations

import numpy as np

from bayespinn.reference import SHIFT_FLAG_SD, likelihood_sd, shift_operator
from inference.surrogate_error import kernel_weights

__all__ = ["curve_grid", "curve_weights", "held_out_bias", "held_out_flags"]


def held_out_bias(prep, idata, n_draws: int = 200) -> dict | None:
    """``{curves, flag_above_sd, parameters: {name: {median_abs_sd, p90_abs_sd, share_above_flag}},
    shift_in_sd: {name: (K,)}, weights: (K,)}``: the shift of each posterior mean in posterior sds
    caused by each held-out curve, and over the curves the |shift|'s weighted quantiles and the
    weighted share above the flag bound; None for a surrogate without residual curves or a
    record they cannot be laid on (a battery record that stops before its knee)."""
    from bayespinn.engines import batch_forward

    model, study, data = prep.model, prep.study, prep.data
    if model.card is None or not hasattr(model, "validation_residuals"):
        return None
    held = model.validation_residuals(study.conditions)
    try:
        at = curve_grid(model, study.conditions, data)
    except ValueError:
        return None
    names = list(study.priors)
    flat = np.stack([idata.posterior[k].values.reshape(-1) for k in names], -1)
    rng = np.random.default_rng(study.inference.seed)
    theta = flat[rng.choice(len(flat), size=min(n_draws, len(flat)), replace=False)]
    obs = [o for o in prep.spec.observables if o in held["residuals"]]
    forward = batch_forward(model, data.time_s, study.conditions, tuple(obs))
    sur = forward({k: theta[:, i] for i, k in enumerate(names)})
    sigma = {o: likelihood_sd(prep, idata, o) for o in obs}
    shift = shift_operator(flat, theta, sur, sigma, prep.spec.surrogate_factor)
    curves = {o: np.stack([np.interp(at, held["grid"], r) for r in held["residuals"][o]], 1) for o in obs}
    signed = shift(curves)  # (p, K)
    shifts = np.abs(signed)
    # the curves near the study's conditions and the posterior's mean weigh more
    mean = dict(zip(names, flat.mean(0), strict=True))
    w = curve_weights(model, study.conditions, held["inputs"], {**mean, **study.conditions})
    parameters = {
        name: {
            "median_abs_sd": _quantile(shifts[i], w, 0.5),
            "p90_abs_sd": _quantile(shifts[i], w, 0.9),
            "share_above_flag": float(np.sum(w * (shifts[i] > SHIFT_FLAG_SD))),
        }
        for i, name in enumerate(names)
    }
    return {
        "curves": shifts.shape[1],
        "flag_above_sd": SHIFT_FLAG_SD,
        "parameters": parameters,
        "shift_in_sd": dict(zip(names, signed.tolist(), strict=True)),
        "weights": w.tolist(),
    }


def held_out_flags(bias: dict | None, model_name: str) -> list[str]:
    """One line per parameter that a typical (weighted-median) held-out error moves by more than
    the flag bound."""
    if not bias:
        return []
    return [
        f"{name}: errors like {model_name}'s on its {bias['curves']} held-out curves would move this "
        f"posterior's mean by a median {v['median_abs_sd']:.2f} sd (90 % of them by up to "
        f"{v['p90_abs_sd']:.2f} sd) at this record's length and noise; the reference correction "
        '(correct = "importance" or "delayed-acceptance") removes it, calibrate --check-reference '
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


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cdf = np.cumsum(weights[order])
    return float(values[order][min(np.searchsorted(cdf, q * cdf[-1]), len(values) - 1)])
