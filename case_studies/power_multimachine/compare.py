"""Inertia and damping of the 4-bus system from noisy records: SINDy, a UKF and Bayesian NUTS.

    python case_studies/power_multimachine/compare.py [--quick] [--out results.json]

The published 4-bus system (surrogates/power/networks/four_bus.toml: two machines, two
first-order buses) after its power step, every bus's angle and frequency deviation sampled every
20 ms for 5 s, with Gaussian noise of 0.1 %, 1 % and 5 % of each signal's peak. Each method
identifies m_1, m_2 and d_1..d_4 from the same record:

- SINDy (pysindy) with plain and with smoothed finite differences (``baselines.sindy``);
- an unscented Kalman filter (filterpy) over the state augmented with log m and log d
  (``baselines.ukf``), with its 90 % intervals from the filter's covariance;
- ``bayespinn calibrate`` with NUTS on the exact model (``power.multimachine:reference``,
  diffrax inside JAX) and on the network's surrogate (``power.multimachine``), plain and with
  ``correct = "importance"`` (the surrogate's posterior reweighted by the exact model, 1,000
  reference solves), the same log-uniform priors over the surrogate's box (each value's
  nominal / 3 to 3 · nominal), the noise sd known; its 90 % intervals are central posterior
  intervals.

Printed and written to ``results.json``: per method and noise level, the largest and the median
relative error of the six estimates, how many of the six 90 % intervals hold the truth, and the
wall time; and the surrogate posterior against the exact one (each mean's shift in exact sds,
each sd's ratio).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import jax
import numpy as np
import pandas as pd
from baselines import sindy, ukf

# As the CLI does (bayespinn/cli.py:_jax_setup): asynchronous CPU dispatch deadlocked the
# importance weights of the network surrogate (jax-ml/jax#25861).
jax.config.update("jax_cpu_enable_async_dispatch", False)

from surrogates.power.network_models import NetworkReference, bundled
from surrogates.power.network_pinn import Ansatz

NOISE_LEVELS = (0.001, 0.01, 0.05)
DT_S, T_END_S = 0.02, 5.0
STUDY = """# Written by case_studies/power_multimachine/compare.py
[surrogate]
name = "{model}"
network = "four_bus"
[data]
path = "record.csv"
{priors}
[noise]
sigma = {{ {sigma} }}
[inference]
engine = "nuts"
chains = {chains}
warmup = {warmup}
samples = {samples}
seed = 0
{extra}[output]
dir = "run"
"""


def record(model: NetworkReference, level: float, seed: int) -> tuple[np.ndarray, dict, dict]:
    t_s = np.arange(0.0, T_END_S + DT_S / 2, DT_S)
    clean = model.numpy_forward(t_s, **model.truth())
    rng = np.random.default_rng(seed)
    sigma = {k: level * float(np.max(np.abs(v))) for k, v in clean.items()}
    return t_s, {k: v + sigma[k] * rng.standard_normal(len(t_s)) for k, v in clean.items()}, sigma


def scores(truth: dict, estimates: dict, intervals: dict | None) -> dict:
    errors = {k: float(estimates[k] / truth[k] - 1.0) for k in truth}
    out = {
        "relative_error": {k: round(v, 4) for k, v in errors.items()},
        "max_abs_relative_error": round(max(abs(v) for v in errors.values()), 4),
        "median_abs_relative_error": round(float(np.median([abs(v) for v in errors.values()])), 4),
    }
    if intervals is not None:
        out["intervals_holding_truth"] = (
            f"{sum(lo <= truth[k] <= hi for k, (lo, hi) in intervals.items())} of {len(truth)}"
        )
    return out


# (row, model, extra [inference] lines): NUTS on the exact model, on the surrogate, and on the
# surrogate with its draws reweighted by the exact model (issue 10's importance correction).
BAYESIAN_ROWS = (
    ("nuts_reference", "power.multimachine:reference", ""),
    ("nuts_surrogate", "power.multimachine", ""),
    ("nuts_surrogate_importance", "power.multimachine", 'correct = "importance"\nreference_draws = 1000\n'),
)


def bayesian(
    name: str,
    model: NetworkReference,
    t_s,
    y: dict,
    sigma: dict,
    folder: Path,
    settings: dict,
    extra: str = "",
) -> dict:
    """NUTS with the model ``name`` (the surrogate or the reference) on one record; ``extra``
    adds [inference] lines (a correction)."""
    from bayespinn.pipeline import calibrate
    from bayespinn.study import load_study

    pd.DataFrame({"Time [s]": t_s, **y}).to_csv(folder / "record.csv", index=False)
    box = Ansatz(model.network).box()
    priors = "".join(
        f'[parameters.{k}]\nprior = "loguniform"\nlower = {box[k][0]!r}\nupper = {box[k][1]!r}\n'
        for k in model.parameters
    )
    sigma_table = ", ".join(f'"{k}" = {v!r}' for k, v in sigma.items())
    study = STUDY.format(model=name, priors=priors, sigma=sigma_table, extra=extra, **settings)
    (folder / "study.toml").write_text(study)
    t0 = time.perf_counter()
    run = calibrate(load_study(folder / "study.toml"), progress=False)
    wall = time.perf_counter() - t0
    import arviz as az

    idata = az.from_netcdf(run.dir / "posterior.nc")
    estimates, sds, intervals = {}, {}, {}
    for k in model.parameters:
        draws = np.asarray(idata.posterior[k]).ravel()
        estimates[k] = float(draws.mean())
        sds[k] = float(draws.std())
        intervals[k] = tuple(float(q) for q in np.quantile(draws, [0.05, 0.95]))
    out = {
        "estimates": estimates,
        "sd": sds,
        "interval_90": intervals,
        "wall_time_s": wall,
        "converged": bool(run.diagnostics["converged"]),
        "max_rhat": run.diagnostics["max_rhat"],
        "min_ess_bulk": run.diagnostics["min_ess_bulk"],
    }
    if "correction" in run.diagnostics:
        record = run.diagnostics["correction"]
        keep = ("k_hat", "ess", "trusted", "refined", "reference_solves", "proposal", "wall_time_s")
        out["correction"] = {k: record[k] for k in keep if k in record}
    return out


def against_exact(surrogate: dict, exact: dict) -> dict:
    """Each surrogate posterior mean's shift in exact posterior sds, and its sd's ratio."""
    return {
        k: {
            "shift_sd": round((surrogate["estimates"][k] - exact["estimates"][k]) / exact["sd"][k], 3),
            "sd_ratio": round(surrogate["sd"][k] / exact["sd"][k], 3),
        }
        for k in exact["estimates"]
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one noise level, a short NUTS run")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    p.add_argument(
        "--levels", type=float, nargs="+", default=list(NOISE_LEVELS), help="noise levels (fractions)"
    )
    args = p.parse_args(argv)
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    model = NetworkReference(bundled("four_bus"))
    truth = model.truth()
    levels = [0.01] if args.quick else args.levels
    settings = (
        {"chains": 2, "warmup": 100, "samples": 100}
        if args.quick
        else {"chains": 2, "warmup": 500, "samples": 500}
    )
    results = {"truth": truth, "settings": {"dt_s": DT_S, "t_end_s": T_END_S, "nuts": settings}, "levels": {}}
    for level in levels:
        t_s, y, sigma = record(model, level, seed=NOISE_LEVELS.index(level) if level in NOISE_LEVELS else 0)
        rows = {}
        baseline_runs = {
            "sindy": sindy(model.network, t_s, y),
            "sindy_smoothed": sindy(model.network, t_s, y, smoothed=True),
            "ukf": ukf(model.network, t_s, y, sigma),
        }
        for name, out in baseline_runs.items():
            rows[name] = {
                **scores(truth, out["estimates"], out.get("interval_90")),
                "wall_time_s": round(out["wall_time_s"], 3),
            }
        posteriors = {}
        for row, name, extra in BAYESIAN_ROWS:
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
                out = posteriors[row] = bayesian(name, model, t_s, y, sigma, Path(tmp), settings, extra)
            rows[row] = {
                **scores(truth, out["estimates"], out["interval_90"]),
                "posterior_mean": {k: round(v, 6) for k, v in out["estimates"].items()},
                "posterior_sd": {k: float(f"{v:.4g}") for k, v in out["sd"].items()},
                "wall_time_s": round(out["wall_time_s"], 1),
                "converged": out["converged"],
                "max_rhat": round(out["max_rhat"], 4),
                "min_ess_bulk": round(out["min_ess_bulk"]),
                **({"correction": out["correction"]} if "correction" in out else {}),
            }
        for row in ("nuts_surrogate", "nuts_surrogate_importance"):
            rows[row]["against_exact"] = against_exact(posteriors[row], posteriors["nuts_reference"])
        results["levels"][f"{level:.1%}"] = rows
        for name, row in rows.items():
            print(
                f"{level:6.1%} {name:15s} max {row['max_abs_relative_error']:.2%} "
                f"median {row['median_abs_relative_error']:.2%} "
                f"{row.get('intervals_holding_truth', '-'):>6s} {row['wall_time_s']} s",
                file=sys.stderr,
            )
    if not args.quick and args.out.exists():  # keep the levels this run did not measure
        kept = json.loads(args.out.read_text())["levels"]
        results["levels"] = {**kept, **results["levels"]}
    results["levels"] = dict(sorted(results["levels"].items(), key=lambda kv: float(kv[0].rstrip("%"))))
    text = json.dumps(results, indent=2)
    print(text)
    if not args.quick:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
