"""Run the SMIB study three ways and compare each posterior with the exact one.

- ``study_surrogate.toml``: NUTS on the PINN surrogate (its RMSE added to the noise);
- ``study_correlated.toml``: the same with the correlated surrogate-error model (the card's
  held-out residual curves as a low-rank error covariance, marginalised);
- ``study_corrected.toml``: the same, corrected by delayed acceptance with the reference solver;
- ``study_reference.toml``: NUTS on the reference ODE solved inside JAX (diffrax);

and the exact posterior on an adaptive grid with ``solve_ivp`` (``bayespinn check-exact``).
For each run: mean shift in exact sds, sd ratio, reference solves, wall time.

Usage: python case_studies/power_smib/compare.py [--reuse]   (--reuse reads existing runs)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpyro

numpyro.set_host_device_count(4)
numpyro.enable_x64()

import arviz as az

from bayespinn.pipeline import calibrate, prepare
from bayespinn.reference import check_exact
from bayespinn.study import load_study
from inference.exact import compare

HERE = Path(__file__).parent
KINDS = ("surrogate", "correlated", "corrected", "reference")


def _run(kind: str, reuse: bool):
    study = load_study(HERE / f"study_{kind}.toml")
    if not (reuse and (study.output_dir / "posterior.nc").exists()):
        calibrate(study, progress=True)
    idata = az.from_netcdf(str(study.output_dir / "posterior.nc"))
    diagnostics = json.loads((study.output_dir / "diagnostics.json").read_text())
    return study, idata, diagnostics


def _reference_solves(kind: str, idata, diagnostics: dict) -> int | None:
    if kind == "corrected":
        return diagnostics["correction"]["reference_solves"]
    if kind == "reference":  # one solve with its adjoint per leapfrog step, sampling phase only
        return int(idata.sample_stats["n_steps"].values.sum())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="reuse existing run directories")
    args = parser.parse_args(argv)
    runs = {kind: _run(kind, args.reuse) for kind in KINDS}
    study, idata, _ = runs["surrogate"]
    t0 = time.perf_counter()
    exact = check_exact(prepare(study), idata)
    grid_s = time.perf_counter() - t0
    exact_stats = {
        name: {"mean": r["exact_mean"], "sd": r["exact_sd"], "q05": r["exact_90"][0], "q95": r["exact_90"][1]}
        for name, r in exact["parameters"].items()
    }
    result = {
        "exact": {"grid": exact["grid"], "reference_solves": exact["reference_solves"], "wall_time_s": grid_s}
    }
    for kind, (st, data, diag) in runs.items():
        draws = {name: data.posterior[name].values for name in st.priors}
        result[kind] = {
            "parameters": compare(exact_stats, draws),
            "converged": diag["converged"],
            "reference_solves": _reference_solves(kind, data, diag),
            "wall_time_s": diag["wall_time_s"],
        }
    text = json.dumps(result, indent=2, default=float)
    (HERE / "results.json").write_text(text + "\n")
    print(text)
    return 0 if all(r["agree"] for r in result["corrected"]["parameters"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
