"""State of health of two synthetic cells with known ageing paths: do the bands hold the truth,
and is the knee flagged?

Runs ``bayespinn soh`` on the data ``generate.py`` made with the reference solver (cell A: smooth
fade; cell B: a knee at cycle 19), then compares every (cell, cycle) with the truth:

- coverage: the share of true values inside the 90 % bands, per quantity, with the range a
  calibrated method gives 95 % of the time (binomial);
- alarms: a trend-break alarm on cell B's diffusivity near cycle 19, none on cell A's parameters;
  the first cycle flagged below the SOH threshold against the true crossing.

Writes ``results.json`` here and the run (with the truth drawn into ``soh_report.html``) under
``runs/soh``. Usage: python case_studies/battery_soh/compare.py [--executor local|dask]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).parent
DATA = HERE / "data"
KNEE_CYCLE = 19  # cell B's diffusivity falls ten times faster from this cycle (generate.py)
BAND = 0.90


def coverage(table: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """Per quantity with a truth: covered / n, and the binomial 95 % range of a calibrated band."""
    out = {}
    for quantity in [c for c in truth.columns if c not in ("Cell", "Cycle", "c_rate")]:
        rows = table[table["quantity"] == quantity].merge(
            truth[["Cell", "Cycle", quantity]], on=["Cell", "Cycle"]
        )
        inside = int(((rows["q5"] <= rows[quantity]) & (rows[quantity] <= rows["q95"])).sum())
        z = (rows["mean"] - rows[quantity]) / rows["sd"]
        lo, hi = stats.binom.interval(0.95, len(rows), BAND)
        out[quantity] = {
            "covered": inside,
            "n": len(rows),
            "rate": round(inside / len(rows), 3),
            "calibrated_range_95": [int(lo), int(hi)],
            "z_sd": round(float(np.std(z[np.isfinite(z)])), 2),
        }
    return out


def with_truth(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``truth`` column filled where the truth file has the quantity."""
    long = truth.melt(
        id_vars=["Cell", "Cycle"],
        value_vars=[c for c in truth.columns if c not in ("Cell", "Cycle", "c_rate")],
        var_name="quantity",
        value_name="true",
    )
    merged = table.drop(columns="truth").merge(long, on=["Cell", "Cycle", "quantity"], how="left")
    return merged.rename(columns={"true": "truth"})[table.columns]


def main(argv: list[str] | None = None) -> dict:
    from bayespinn.soh import run_soh
    from bayespinn.soh_report import write_soh_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", default="local")
    parser.add_argument("--out", default=str(HERE / "runs" / "soh"))
    args = parser.parse_args(argv)
    if not (DATA / "cells.csv").exists():
        from generate import generate

        generate(DATA)
    run = run_soh(DATA / "soh.toml", executor=args.executor, out=Path(args.out))
    table = pd.read_csv(run.dir / "soh.csv", dtype={"Cell": str})
    truth = pd.read_csv(DATA / "truth.csv", dtype={"Cell": str})
    diagnostics = json.loads((run.dir / "soh_diagnostics.json").read_text())
    alarms = diagnostics["alarms"]
    trend = [a for a in alarms if a["quantity"] != "soh"]
    crossings = truth[truth["soh"] < 0.8].groupby("Cell")["Cycle"].min().to_dict()
    results = {
        "cycles": diagnostics["cycles"],
        "calibrated": diagnostics["calibrated"],
        "not_converged": diagnostics["not_converged"],
        "wall_time_s": round(run.wall_time_s, 1),
        "cycles_per_minute": diagnostics["cycles_per_minute"],
        "coverage_90": coverage(table, truth),
        "trend_alarms": trend,
        "knee_flagged": any(
            a["cell"] == "B"
            and a["quantity"] == "positive_diffusivity_scale"
            and abs(a["cycle"] - KNEE_CYCLE) <= 2
            for a in trend
        ),
        "false_trend_alarms_cell_A": sum(a["cell"] == "A" for a in trend),
        "soh_below_threshold": {
            "flagged_from_cycle": {a["cell"]: a["cycle"] for a in alarms if a["quantity"] == "soh"},
            "true_first_cycle": {k: int(v) for k, v in crossings.items()},
        },
    }
    shown = {"surrogate": "battery.spm", "soh_threshold": 0.8, "truth": "generate.py (PyBaMM SPM)"}
    write_soh_report(
        run.dir / "soh_report.html",
        with_truth(table, truth),
        alarms=alarms,
        skipped=diagnostics["skipped"],
        failed=diagnostics["failed"],
        settings={**shown, "wall_time_s": results["wall_time_s"]},
    )
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
