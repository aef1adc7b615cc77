"""Well-test calibrations on the reservoir.drawdown surrogate, checked against NUTS on the line
source itself and, for the two-parameter drawdown, against the exact grid posterior.

1. records are simulated with the reference (``bayespinn simulate``'s code path, seeded);
2. NUTS runs on the surrogate and again on the reference (JAX's exp1 inside the model);
3. means are compared in reference sds and sds as ratios (the issue: 0.2 sd and 20 %); the
   drawdown is also compared with ``check-exact``'s grid;
4. the short test's report must say that the fault distance is only bounded from below.

Writes ``results.json``. Usage: python case_studies/reservoir/compare.py [--reuse]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpyro

numpyro.set_host_device_count(4)
numpyro.enable_x64()

import arviz as az
import numpy as np

from bayespinn.pipeline import calibrate, prepare
from bayespinn.reference import check_exact
from bayespinn.simulate import simulate
from bayespinn.study import load_study

HERE = Path(__file__).parent
# record -> (end of the record [h], noise sd [psi], data seed)
RECORDS = {"drawdown": (100.0, 0.5, 21), "buildup": (48.0, 0.1, 22), "short": (10.0, 0.5, 23)}


def _record(key: str, study) -> None:
    path = study.data_path
    if path.exists():
        return
    t_end_h, sd, seed = RECORDS[key]
    values = {**study.conditions, **study.truth}
    times = np.geomspace(36.0, t_end_h * 3600.0, 60)
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate("reservoir.drawdown", values, times, noise_sd=sd, seed=seed).to_csv(
        path, index=False, float_format="%.10g"
    )


def _run(study, reuse: bool):
    if not (reuse and (study.output_dir / "posterior.nc").exists()):
        calibrate(study, progress=True)
    diagnostics = json.loads((study.output_dir / "diagnostics.json").read_text())
    return az.from_netcdf(str(study.output_dir / "posterior.nc")), diagnostics


def _against(idata, ref_idata, names) -> dict:
    rows = {}
    for name in names:
        a, b = idata.posterior[name].values.ravel(), ref_idata.posterior[name].values.ravel()
        shift, ratio = (a.mean() - b.mean()) / b.std(), a.std() / b.std()
        rows[name] = {
            "surrogate_mean": float(a.mean()),
            "reference_mean": float(b.mean()),
            "reference_sd": float(b.std()),
            "shift_in_reference_sd": float(shift),
            "sd_ratio": float(ratio),
            "within_issue_bar": bool(abs(shift) <= 0.2 and abs(ratio - 1) <= 0.2),
        }
    return rows


def compare_pair(key: str, reuse: bool) -> dict:
    study = load_study(HERE / f"study_{key}.toml")
    ref_study = load_study(HERE / f"study_{key}_reference.toml")
    _record(key, study)
    idata, diag = _run(study, reuse)
    ref_idata, ref_diag = _run(ref_study, reuse)
    names = list(study.priors)
    result = {
        "parameters": _against(idata, ref_idata, names),
        "truth": study.truth,
        "surrogate_run": {"converged": diag["converged"], "wall_time_s": diag["wall_time_s"]},
        "reference_run": {"converged": ref_diag["converged"], "wall_time_s": ref_diag["wall_time_s"]},
        "flags": diag.get("flags", []),
    }
    if len(names) == 2:
        t0 = time.perf_counter()
        result["check_exact"] = check_exact(prepare(study), idata)
        result["check_exact"]["wall_time_s"] = time.perf_counter() - t0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="reuse existing run directories")
    args = parser.parse_args()
    results = {key: compare_pair(key, args.reuse) for key in ("drawdown", "buildup")}
    short = load_study(HERE / "study_short.toml")
    _record("short", short)
    _, diag = _run(short, args.reuse)
    results["short"] = {"truth": short.truth, "flags": diag.get("flags", [])}
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
