"""Convergence diagnostics through ArviZ, and one verdict."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["BFMI_MIN", "ENSEMBLE_ENGINES", "ESS_MIN", "RHAT_MAX", "bound_flags", "summary", "verdict"]

RHAT_MAX, ESS_MIN, BFMI_MIN = 1.01, 400.0, 0.3
ENSEMBLE_ENGINES = ("eki", "esmda")


def summary(idata: az.InferenceData, var_names: list[str], truth: dict | None = None) -> pd.DataFrame:
    """Mean, sd, 90 % HDI, MCSE, rank-normalised R-hat, bulk and tail ESS, one row a parameter."""
    # One chain (an ensemble's members) has no between-chain R-hat: its columns stay empty.
    kind = "all" if idata.posterior.sizes["chain"] > 1 else "stats"
    table = az.summary(idata, var_names=var_names, hdi_prob=0.9, round_to="none", kind=kind)
    table = table.reindex(
        columns=["mean", "sd", "hdi_5%", "hdi_95%", "mcse_mean", "r_hat", "ess_bulk", "ess_tail"]
    )
    if truth:
        table["truth"] = [truth.get(name, np.nan) for name in table.index]
    table.index.name = "parameter"
    return table


def verdict(idata: az.InferenceData, table: pd.DataFrame) -> dict:
    """``converged`` is true when R-hat ≤ 1.01, bulk and tail ESS ≥ 400, no divergence, E-BFMI ≥ 0.3."""
    warnings = []
    engine = idata.posterior.attrs.get("engine", "nuts")
    max_rhat = float(table["r_hat"].max())
    min_ess = float(min(table["ess_bulk"].min(), table["ess_tail"].min()))
    # Samplers without Hamiltonian dynamics (a reference correction) have no divergences or energy.
    stats = idata.get("sample_stats")
    divergences = int(stats["diverging"].values.sum()) if stats is not None and "diverging" in stats else 0
    bfmi = np.atleast_1d(az.bfmi(idata)) if stats is not None and "energy" in stats else np.array([np.nan])
    # An ensemble's members are not a Markov chain: R-hat and ESS would only count them.
    chains = engine not in ENSEMBLE_ENGINES
    if chains and not max_rhat <= RHAT_MAX:
        warnings.append(f"R-hat {max_rhat:.3f} > {RHAT_MAX}: chains disagree; run more warmup or samples")
    if chains and not min_ess >= ESS_MIN:
        warnings.append(f"ESS {min_ess:.0f} < {ESS_MIN:.0f}: draw more samples or reparameterise")
    if stats is not None and "elbo" in stats:
        warnings.extend(_elbo_warnings(np.asarray(stats["elbo"].values)))
    if divergences:
        warnings.append(f"{divergences} divergent transitions: raise target_accept or reparameterise")
    if np.any(bfmi < BFMI_MIN):
        warnings.append(f"E-BFMI {bfmi.min():.2f} < {BFMI_MIN}: poor energy exploration; reparameterise")
    return {
        "converged": not warnings,
        "max_rhat": max_rhat,
        "min_ess_bulk": float(table["ess_bulk"].min()),
        "min_ess_tail": float(table["ess_tail"].min()),
        "divergences": divergences,
        "min_bfmi": None if np.isnan(bfmi).all() else float(np.nanmin(bfmi)),
        "warnings": warnings,
    }


def _elbo_warnings(elbo: np.ndarray) -> list[str]:
    """A warning when the ELBO still rose over the last tenth of the optimisation.

    The rise between the last two tenths is compared with its Monte Carlo noise (the ELBO is a
    stochastic estimate): more than 3 standard errors and 0.1 nat means the guide had not settled.
    """
    tenth = len(elbo) // 10
    if tenth < 5 or not np.all(np.isfinite(elbo[-2 * tenth :])):
        return [] if tenth < 5 else ["ELBO is not finite at the end of the optimisation; lower learning_rate"]
    last, before = elbo[-tenth:], elbo[-2 * tenth : -tenth]
    rise = last.mean() - before.mean()
    se = np.sqrt(last.var() / tenth + before.var() / tenth)
    if rise > max(3 * se, 0.1):
        return [f"ELBO still rising ({rise:.2f} nat over the last tenth of the steps): raise svi_steps"]
    return []


def bound_flags(
    idata: az.InferenceData, bounds: dict, share: float = 0.05, edge: float = 0.01, log_scale=()
) -> list[str]:
    """Parameters whose posterior piles up at a bound of their prior or of the surrogate's domain.

    More than ``share`` of the draws within ``edge`` of the interval's width from a bound means the
    bound, not the data, shapes the posterior: its mean and interval are then artefacts of the
    bound. For the names in ``log_scale`` (log-uniform priors) the width is log(upper/lower): 1 %
    of (0.1, 10)'s linear width is 0.1, the whole bottom decade's width.
    """
    flags = []
    for name, (lower, upper) in bounds.items():
        if not (np.isfinite(lower) and np.isfinite(upper)) or name not in idata.posterior:
            continue
        draws = idata.posterior[name].values.ravel()
        to = np.log if name in log_scale else (lambda x: x)
        position, lo, hi = to(draws), to(lower), to(upper)
        for side, value, near in (
            ("lower", lower, position < lo + edge * (hi - lo)),
            ("upper", upper, position > hi - edge * (hi - lo)),
        ):
            if near.mean() > share:
                flags.append(
                    f"{name}: {near.mean():.0%} of the posterior lies within {edge:.0%} of the {side} bound "
                    f"{value:g}{' (in log scale)' if name in log_scale else ''}: the bound, not the data, "
                    "shapes it; widen the prior if the physics allows"
                )
    return flags
