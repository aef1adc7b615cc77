"""Run the SMIB study on the PINN surrogate and on the reference ODE (diffrax inside JAX), then
compare the two posteriors: mean difference in posterior sd, and the ratio of sds.

Usage: python case_studies/power_smib/compare.py [--reuse]   (--reuse reads existing runs)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpyro

numpyro.set_host_device_count(4)
numpyro.enable_x64()

import pandas as pd

from bayespinn.pipeline import calibrate
from bayespinn.study import load_study

HERE = Path(__file__).parent


def _run(kind: str, reuse: bool) -> tuple[pd.DataFrame, float]:
    study = load_study(HERE / f"study_{kind}.toml")
    if not (reuse and (study.output_dir / "summary.csv").exists()):
        calibrate(study, progress=True)
    table = pd.read_csv(study.output_dir / "summary.csv", index_col="parameter")
    wall = json.loads((study.output_dir / "diagnostics.json").read_text())["wall_time_s"]
    return table, wall


def compare(surrogate: pd.DataFrame, reference: pd.DataFrame) -> dict:
    rows = {}
    for name in reference.index:
        s, r = surrogate.loc[name], reference.loc[name]
        rows[name] = {
            "reference_mean": r["mean"],
            "reference_sd": r["sd"],
            "surrogate_mean": s["mean"],
            "surrogate_sd": s["sd"],
            "mean_shift_in_reference_sd": (s["mean"] - r["mean"]) / r["sd"],
            "sd_ratio": s["sd"] / r["sd"],
            "agree": abs(s["mean"] - r["mean"]) <= 0.2 * r["sd"] and abs(s["sd"] / r["sd"] - 1) <= 0.2,
        }
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="reuse existing run directories")
    args = parser.parse_args(argv)
    surrogate, wall_s = _run("surrogate", args.reuse)
    reference, wall_r = _run("reference", args.reuse)
    result = {
        "parameters": compare(surrogate, reference),
        "nuts_wall_time_s": {"surrogate": wall_s, "reference_diffrax": wall_r, "speedup": wall_r / wall_s},
    }
    text = json.dumps(result, indent=2, default=float)
    (HERE / "results.json").write_text(text + "\n")
    print(text)
    return 0 if all(r["agree"] for r in result["parameters"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
