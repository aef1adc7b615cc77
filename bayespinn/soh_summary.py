"""From per-cycle draws to health indicators, alarms and the run's outputs.

- Each parameter and the discharge capacity at reference conditions: mean, sd and the 5/50/95 %
  quantiles of the cycle's draws (a 90 % band).
- SOH of a cycle: its capacity over the cell's first calibrated cycle's, draw by draw. The cycles'
  posteriors are independent (each fitted to its own data), so pairing their draws index by index
  samples the joint and hence the ratio; the first cycle's SOH is 1.
- P(SOH < threshold): the share of SOH draws below it.
- Alarms: a trend break (``soh_trend.trend_break``) in the log of each parameter over the cell's
  converged cycles, and the first cycle where SOH is more likely than not below the threshold.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from bayespinn.report import _write_atomic
from bayespinn.soh_fit import CAPACITY, engine_label
from bayespinn.soh_report import write_soh_report
from bayespinn.soh_trend import trend_break

__all__ = ["SOH", "indicator_table", "soh_alarms", "write_outputs"]

SOH = "soh"
COLUMNS = (
    "Cell",
    "Cycle",
    "quantity",
    "mean",
    "sd",
    "q5",
    "q50",
    "q95",
    "truth",
    "c_rate",
    "converged",
    "k_hat",
    "note",
)


def _probability_name(threshold: float) -> str:
    return f"P(soh < {threshold:g})"


def _note(result: dict) -> str:
    if result["converged"]:
        return ""
    return f"{result['problem']}: the draws may not represent the posterior"


def _row(result: dict, quantity: str, draws: np.ndarray) -> dict:
    finite = draws[np.isfinite(draws)]
    q5, q50, q95 = np.quantile(finite, [0.05, 0.5, 0.95]) if finite.size else (np.nan,) * 3
    note = _note(result)
    if finite.size < draws.size:
        note = "; ".join(filter(None, [note, f"{draws.size - finite.size} draws never reach the cut-off"]))
    return {
        "Cell": result["cell"],
        "Cycle": result["cycle"],
        "quantity": quantity,
        "mean": float(np.mean(finite)) if finite.size else np.nan,
        "sd": float(np.std(finite)) if finite.size else np.nan,
        "q5": q5,
        "q50": q50,
        "q95": q95,
        "truth": np.nan,
        "c_rate": result["c_rate"],
        "converged": bool(result["converged"]),
        "k_hat": result["k_hat"],
        "note": note,
    }


def _probability_row(result: dict, quantity: str, probability: float) -> dict:
    """A probability's row: ``mean`` holds it, the spread columns are empty."""
    row = _row(result, quantity, np.array([probability]))
    return {**row, "mean": probability, "sd": np.nan, "q5": np.nan, "q50": np.nan, "q95": np.nan}


def indicator_table(results: list[dict], parameters: list[str], settings) -> pd.DataFrame:
    """soh.csv: one row per (cell, cycle, quantity) for the calibrated cycles."""
    rows = []
    ok = [r for r in results if r["status"] == "ok"]
    for cell in dict.fromkeys(r["cell"] for r in ok):
        cycles = sorted((r for r in ok if r["cell"] == cell), key=lambda r: r["cycle"])
        first = np.asarray(cycles[0]["draws"][CAPACITY], float)
        for result in cycles:
            draws = {k: np.asarray(v, float) for k, v in result["draws"].items()}
            rows += [_row(result, name, draws[name]) for name in parameters]
            if "capacity" in settings.indicators:
                rows.append(_row(result, CAPACITY, draws[CAPACITY]))
            if "soh" in settings.indicators:
                soh = draws[CAPACITY] / first
                rows.append(_row(result, SOH, soh))
                p_below = float(np.mean(soh[np.isfinite(soh)] < settings.soh_threshold))
                rows.append(_probability_row(result, _probability_name(settings.soh_threshold), p_below))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def soh_alarms(table: pd.DataFrame, parameters: list[str], settings) -> list[dict]:
    """Trend breaks in log(parameter) over each cell's converged cycles, and end-of-life crossings."""
    alarms = []
    converged = table[table["converged"].astype(bool)]
    for cell, rows in converged.groupby("Cell", sort=False):
        for name in parameters:
            q = rows[rows["quantity"] == name].sort_values("Cycle")
            # The posterior of a positive scale is near log-normal: its log has sd ≈ sd / mean.
            test = trend_break(q["Cycle"], np.log(q["mean"]), q["sd"] / q["mean"], alarm_p=settings.alarm_p)
            if test["alarm"]:
                alarms.append(
                    {
                        "cell": cell,
                        "quantity": name,
                        "cycle": int(test["cycle"]),
                        "p_value": test["p_value"],
                        "message": (
                            f"log {name} changes slope at cycle {int(test['cycle'])} (p = {test['p_value']:.2g}): "
                            f"{test['slope_before']:+.3g} → {test['slope_after']:+.3g} per cycle"
                        ),
                    }
                )
        p_below = rows[rows["quantity"] == _probability_name(settings.soh_threshold)].sort_values("Cycle")
        crossed = p_below[p_below["mean"] > 0.5]
        if len(crossed):
            first = crossed.iloc[0]
            alarms.append(
                {
                    "cell": cell,
                    "quantity": SOH,
                    "cycle": int(first["Cycle"]),
                    "p_value": float("nan"),
                    "message": (
                        f"SOH below {settings.soh_threshold:.0%} with probability {first['mean']:.2f} "
                        f"from cycle {int(first['Cycle'])}"
                    ),
                }
            )
    return alarms


def write_outputs(run_dir, study, settings, job, results: list[dict], skipped: list, meta: dict) -> None:
    """soh.csv, soh_diagnostics.json, soh_report.html and a copy of the study in ``run_dir``."""
    parameters = list(job.priors)
    table = indicator_table(results, parameters, settings)
    alarms = soh_alarms(table, parameters, settings)
    failed = [
        {"cell": r["cell"], "cycle": r["cycle"], "error": r["error"]} for r in results if r["status"] != "ok"
    ]
    not_converged = [
        {"cell": r["cell"], "cycle": r["cycle"], "k_hat": r["k_hat"], "problem": r["problem"]}
        for r in results
        if r["status"] == "ok" and not r["converged"]
    ]
    calibrated = sum(r["status"] == "ok" for r in results)
    skipped_rows = [{"cell": s.cell, "cycle": s.cycle, "reason": s.reason} for s in skipped]
    diagnostics = {
        "cycles": len(results) + len(skipped),
        "calibrated": calibrated,
        "skipped": skipped_rows,
        "failed": failed,
        "not_converged": not_converged,
        "alarms": alarms,
        "engine": engine_label(job),
        "cycles_per_minute": round(60.0 * calibrated / meta["wall_time_s"], 2),
        **meta,
    }
    _write_table(run_dir / "soh.csv", table)
    _write_atomic(run_dir / "soh_diagnostics.json", json.dumps(diagnostics, indent=2))
    shown = {
        "surrogate": job.surrogate,
        "engine": diagnostics["engine"],
        "soh_threshold": settings.soh_threshold,
        "reference_c_rate": settings.reference_c_rate,
        "alarm_p": settings.alarm_p,
        "executor": meta["executor"],
        "wall_time_s": round(meta["wall_time_s"], 1),
        "cycles_per_minute": diagnostics["cycles_per_minute"],
    }
    write_soh_report(
        run_dir / "soh_report.html", table, alarms=alarms, skipped=skipped_rows, failed=failed, settings=shown
    )
    if study.path.resolve() != (run_dir / "study.toml").resolve():
        shutil.copyfile(study.path, run_dir / "study.toml")


def _write_table(path, table: pd.DataFrame) -> None:
    _write_atomic(path, table.to_csv(index=False))
