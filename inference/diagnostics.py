"""Convergence diagnostics through ArviZ, and one verdict."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

__all__ = ["BFMI_MIN", "ESS_MIN", "RHAT_MAX", "summary", "verdict"]

RHAT_MAX, ESS_MIN, BFMI_MIN = 1.01, 400.0, 0.3


def summary(idata: az.InferenceData, var_names: list[str], truth: dict | None = None) -> pd.DataFrame:
    """Mean, sd, 90 % HDI, MCSE, rank-normalised R-hat, bulk and tail ESS, one row a parameter."""
    table = az.summary(idata, var_names=var_names, hdi_prob=0.9, round_to="none")
    table = table[["mean", "sd", "hdi_5%", "hdi_95%", "mcse_mean", "r_hat", "ess_bulk", "ess_tail"]]
    if truth:
        table["truth"] = [truth.get(name, np.nan) for name in table.index]
    table.index.name = "parameter"
    return table


def verdict(idata: az.InferenceData, table: pd.DataFrame) -> dict:
    """``converged`` is true when R-hat ≤ 1.01, bulk and tail ESS ≥ 400, no divergence, E-BFMI ≥ 0.3."""
    warnings = []
    max_rhat = float(table["r_hat"].max())
    min_ess = float(min(table["ess_bulk"].min(), table["ess_tail"].min()))
    # Samplers without Hamiltonian dynamics (a reference correction) have no divergences or energy.
    stats = idata.get("sample_stats")
    divergences = int(stats["diverging"].values.sum()) if stats is not None and "diverging" in stats else 0
    bfmi = np.atleast_1d(az.bfmi(idata)) if stats is not None and "energy" in stats else np.array([np.nan])
    if not max_rhat <= RHAT_MAX:
        warnings.append(f"R-hat {max_rhat:.3f} > {RHAT_MAX}: chains disagree; run more warmup or samples")
    if not min_ess >= ESS_MIN:
        warnings.append(f"ESS {min_ess:.0f} < {ESS_MIN:.0f}: draw more samples or reparameterise")
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
