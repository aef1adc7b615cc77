"""Flags for a study that leans on the edge of its surrogate's trained domain.

A PINN's validation error is a summary over held-out points spread through its box. Near the
box's faces it saw fewer training points on one side, and some systems have regions inside the box
where the surrogate is measurably worse (the SMIB near its unstable equilibrium). A calibration
there can converge perfectly and still be wrong, so the report says so.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EDGE_SHARE", "condition_flags", "domain_flags"]

EDGE_SHARE = 0.02  # within 2 % of a range's width from a bound counts as "at the edge"


def condition_flags(conditions: dict, domain: dict, model_name: str) -> list[str]:
    """Fixed conditions that sit within ``EDGE_SHARE`` of the width of a trained-domain bound."""
    flags = []
    for name, value in conditions.items():
        lo, hi = domain.get(name, (-math.inf, math.inf))
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            continue
        for side, bound in (("lower", lo), ("upper", hi)):
            if abs(value - bound) <= EDGE_SHARE * (hi - lo):
                flags.append(
                    f"{name} = {value:g} lies within {100 * EDGE_SHARE:g} % of the {side} bound {bound:g} of the "
                    f"domain {model_name} was trained on, where its error is least well measured; "
                    "check the run with --check-reference"
                )
    return flags


def domain_flags(prep, idata, n_draws: int = 200) -> list[str]:
    """Condition flags and the surrogate's own (``trust_flags``, over ``n_draws`` posterior draws),
    and for any model what its posterior cannot say (``posterior_flags``, over all draws)."""
    model, conditions = prep.model, prep.study.conditions
    draws = {k: idata.posterior[k].values.reshape(-1) for k in prep.study.priors}
    flags = []
    if hasattr(model, "posterior_flags"):
        bounds = {k: p.support() for k, p in prep.study.priors.items()}
        flags += model.posterior_flags(prep.data.time_s, conditions, draws, bounds)
    if model.card is None:  # the reference solver has no trained domain
        return flags
    flags += condition_flags(conditions, model.domain(conditions), model.name)
    if hasattr(model, "trust_flags"):
        n = len(next(iter(draws.values())))
        pick = np.random.default_rng(0).choice(n, min(n_draws, n), replace=False)
        flags += model.trust_flags(prep.data.time_s, conditions, {k: v[pick] for k, v in draws.items()})
    return flags
