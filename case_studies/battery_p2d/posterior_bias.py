"""What the ``battery.p2d`` surrogate's error does to a posterior that trusts it, linearised: at
the case study's record and at the card's 64 held-out cells.

With a Gaussian likelihood nearly linear in θ (log10 of both scales) over the posterior's
width, a surrogate whose voltage is off by e(t) along the record moves the posterior mean by

    Δθ = −(SᵀS)⁻¹ Sᵀ e,        S = ∂V/∂θ at the record's times (the surrogate's, by differences),

whatever the noise, and the exact posterior's sd is σ·sqrt(diag (SᵀS)⁻¹) for σ = 5 mV and a
sample every 10 s (at the case study's record, the exact DFN grid's own sds, from
``results.json``). At the case study's record Δθ in exact sds is what NUTS on the surrogate
measured (+0.26 to +0.29 / +0.11 to +0.14 over five runs against +0.22 / +0.17 here; a test
holds the two within 0.1 sd), so it
stands in for a calibration at every held-out cell, from the residual curves the card keeps
beside the weights (surrogate − DFN on 240 points up to the cut-off).

Leave one out, it also checks the held-out estimate every run reports (``bayespinn.held_out_bias``:
the weighted spread of the nearby cells' own Δθ): with each cell in turn as the unknown truth, is
its own |Δθ| within the other cells' weighted median about half the time, and within their 90th
percentile nine times in ten?

Usage: python case_studies/battery_p2d/posterior_bias.py [--weights PATH]   (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

HERE = Path(__file__).parent
NAMES = ("positive_diffusivity_scale", "negative_j0_scale")
NOISE_SD_V, DT_S = 0.005, 10.0  # the case study's record: 5 mV, a sample every 10 s
STEP_DECADES = 0.005  # the differences' step in log10 of a scale


def sensitivities(weights: dict, n_layers: int, t: np.ndarray, values: dict) -> np.ndarray:
    """∂V/∂log10(scale) [V per decade] of the surrogate at times ``t``, (T, 2), forward differences."""
    from surrogates.battery import p2d_pinn

    def volts(v):
        return p2d_pinn.predict(np, weights, n_layers, t, **v)["Voltage [V]"]

    base = volts(values)
    columns = [volts({**values, k: values[k] * 10**STEP_DECADES}) - base for k in NAMES]
    return np.stack(columns, 1) / STEP_DECADES


def mean_shift(s: np.ndarray, error_v: np.ndarray) -> np.ndarray:
    """Δθ = −(SᵀS)⁻¹ Sᵀ e [decades]."""
    return -np.linalg.lstsq(s, error_v, rcond=None)[0]


def at_case_record(weights: dict, n_layers: int) -> dict:
    """{name: Δθ in the exact DFN posterior's sds} at the case study's record (1C, the truth)."""
    from surrogates.battery import p2d_pinn, p2d_reference

    results = json.loads((HERE / "results.json").read_text())
    truth = {**results["record"]["truth"], **results["record"]["conditions"]}
    t, dfn, _ = p2d_reference.window(dt_s=DT_S, **truth)
    error = p2d_pinn.predict(np, weights, n_layers, t, **truth)["Voltage [V]"] - dfn
    shift = mean_shift(sensitivities(weights, n_layers, t, truth), error)
    stats = results["exact"]["dfn"]["stats"]
    # the grid's sd of a scale, in decades (its posterior is 2 % wide: log-normal to first order)
    sd = [stats[k]["sd"] / (stats[k]["mean"] * math.log(10.0)) for k in NAMES]
    return dict(zip(NAMES, (shift / sd).tolist(), strict=True))


def over_held_out(weights: dict, n_layers: int, card: dict, path: Path) -> dict:
    """Δθ in exact sds at every held-out cell of the card, how they spread, and how well the
    held-out estimate a run reports (``bayespinn.held_out_bias``) would have foreseen each."""
    from surrogates.pinn.card import load_residuals

    r = load_residuals(path, card)
    errors = r["residual: Voltage [V]"]
    # every curve is complete on the discharge-fraction grid, so curve j lies on cell i's record
    assert np.isfinite(errors).all()
    shifts = []  # shifts[i][:, j]: curve j's error on cell i's record, in cell i's exact sds
    for i, cut_s in enumerate(r["cutoff_s"]):
        values = {k: float(r[k][i]) for k in (*NAMES, "c_rate")}
        s = sensitivities(weights, n_layers, r["discharge_fraction"] * cut_s, values)
        # the curve's 240 points stand for a record of cut_s / DT_S samples
        sd = NOISE_SD_V * np.sqrt(np.diag(np.linalg.inv(s.T @ s)) * errors.shape[1] * DT_S / cut_s)
        shifts.append(mean_shift(s, errors.T) / sd[:, None])
    b = np.abs(np.array([shift[:, i] for i, shift in enumerate(shifts)]))
    return {
        "cells": len(b),
        "median_abs_sd": dict(zip(NAMES, np.median(b, 0).tolist(), strict=True)),
        "p90_abs_sd": dict(zip(NAMES, np.percentile(b, 90, 0).tolist(), strict=True)),
        "share_both_within_0.3_sd": float(np.mean((b < 0.3).all(1))),
        "share_both_within_1_sd": float(np.mean((b < 1.0).all(1))),
        "held_out_estimate_leave_one_out": leave_one_out(r, np.array(shifts)),
    }


def leave_one_out(r: dict, shifts: np.ndarray) -> dict:
    """Each held-out cell in turn as the unknown truth, against the other 63 with the weights
    ``bayespinn.held_out_bias`` gives them around its inputs: the share of cells whose own |Δθ|
    lies within the others' weighted median and 90th percentile. An honest estimate holds about
    half and nine in ten. ``own_cells`` takes each other cell's own Δθ in its own sds (what a run
    reports); ``curves_on_this_cell`` lays the other cells' error curves onto this cell's
    sensitivities instead."""
    from bayespinn.held_out_bias import curve_weights, weighted_quantile
    from surrogates.battery.spm_models import P2dSurrogate

    model = P2dSurrogate()
    inputs = {k: r[k] for k in (*NAMES, "c_rate")}
    n = len(r["cutoff_s"])
    own = np.abs(np.array([shifts[i][:, i] for i in range(n)]))  # (cells, p)
    hits = {"own_cells": [], "curves_on_this_cell": []}
    for i in range(n):
        others = np.arange(n) != i
        target = {k: float(v[i]) for k, v in inputs.items()}
        w = curve_weights(
            model, {"c_rate": target["c_rate"]}, {k: v[others] for k, v in inputs.items()}, target
        )
        for how, rest in (
            ("own_cells", own[others].T),
            ("curves_on_this_cell", np.abs(shifts[i][:, others])),
        ):
            hits[how].append(
                [
                    [own[i, p] <= weighted_quantile(rest[p], w, q) for p in range(len(NAMES))]
                    for q in (0.5, 0.9)
                ]
            )
    return {
        how: {
            f"share_within_{name}": dict(zip(NAMES, np.mean(rows, 0)[k].tolist(), strict=True))
            for k, name in enumerate(("median", "p90"))
        }
        for how, rows in hits.items()
    }


def main(argv=None) -> int:
    from surrogates.battery import p2d_pinn
    from surrogates.pinn.card import load_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=p2d_pinn.WEIGHTS)
    args = parser.parse_args(argv)
    weights, card = load_weights(args.weights)
    n_layers = card["architecture"]["n_layers"]
    out = {
        "weights_sha256": card["sha256"],
        "noise_sd_V": NOISE_SD_V,
        "sample_every_s": DT_S,
        "case_record_shift_in_exact_sd": at_case_record(weights, n_layers),
        "held_out": over_held_out(weights, n_layers, card, args.weights),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
