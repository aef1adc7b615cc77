"""Each surrogate posterior three ways, against the exact posterior, on one record and over 20 truths.

Systems (issue 10's settings): ``smib.toml`` (201 samples of angle and frequency, 1 % noise) and
``spm.toml`` (a 1C discharge every 10 s to the cut-off, 2 mV noise). Methods, as study options:

- ``plain``: NUTS on the surrogate, its held-out RMSE added to σ (``surrogate_error = "rmse"``);
- ``correlated``: the card's held-out residual curves as a correlated error, marginalised
  (``surrogate_error = "correlated"``);
- ``corrected``: the surrogate posterior corrected with the reference solver by delayed
  acceptance (``correct = "delayed-acceptance"``), which targets the exact posterior;
- ``importance``: the correlated-error posterior reweighted by the reference likelihood
  (``correct = "importance"``, Pareto-smoothed, k̂), refined once by a Student-t around the
  reweighted draws when they are fewer than 400 effective ones. The reference is solved once
  per reweighted draw, so 1,000 of the 4,000 draws are reweighted (``reference_draws``): enough
  for the verdict's 400 effective draws.

For each: the shift of each posterior mean in exact posterior sds and the sd ratio against the
exact grid (``bayespinn check-exact``), the reference solves and wall time, and the coverage of
the truth over 20 truths from the priors (``bayespinn check-calibration`` on
``*_coverage.toml``). The reference solves NUTS would need on the reference solver alone are its
leapfrog steps (one solve with sensitivities each), counted on the NUTS run of the same study.

Usage: python case_studies/exactness/compare.py [--reuse] [--trials 20] [--only smib|spm]
       [--methods plain,correlated,corrected,importance]
Writes results.json and coverage/*.json (--reuse reads finished runs and coverage files;
--methods re-measures those methods and keeps the others' rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpyro

numpyro.set_host_device_count(4)
numpyro.enable_x64()

import arviz as az

from bayespinn.check_calibration import check_calibration
from bayespinn.pipeline import calibrate, prepare
from bayespinn.reference import check_exact
from bayespinn.study import load_study
from inference.exact import compare
from surrogates.pinn.card import write_json_atomic

HERE = Path(__file__).parent
SYSTEMS = ("smib", "spm")
METHODS = ("plain", "correlated", "corrected", "importance")
COVERAGE_SEED = 5
IMPORTANCE_DRAWS = 1_000  # surrogate draws reweighted, one reference solve each


def _options(method: str) -> dict:
    return {
        "plain": {"surrogate_error": "rmse"},
        "correlated": {"surrogate_error": "correlated"},
        "corrected": {"surrogate_error": "off", "correct": "delayed-acceptance"},
        "importance": {
            "surrogate_error": "auto",
            "correct": "importance",
            "reference_draws": IMPORTANCE_DRAWS,
        },
    }[method]


def _variant(path: Path, method: str):
    study = load_study(path)
    inference = dataclasses.replace(study.inference, **_options(method))
    return dataclasses.replace(study, inference=inference, output_dir=HERE / "runs" / f"{path.stem}_{method}")


def _posterior(system: str, method: str, reuse: bool):
    study = _variant(HERE / f"{system}.toml", method)
    if not (reuse and (study.output_dir / "posterior.nc").exists()):
        calibrate(study, progress=True)
    idata = az.from_netcdf(str(study.output_dir / "posterior.nc"))
    diagnostics = json.loads((study.output_dir / "diagnostics.json").read_text())
    return study, idata, diagnostics


def _coverage(system: str, method: str, trials: int, reuse: bool, measure: bool = True) -> dict | None:
    out = HERE / "coverage" / f"{system}_{method}.json"
    if not out.exists() and not measure:
        return None
    if not (reuse and out.exists()):
        study = _variant(HERE / f"{system}_coverage.toml", method)
        out.parent.mkdir(exist_ok=True)
        write_json_atomic(out, check_calibration(study, trials=trials, seed=COVERAGE_SEED, progress=True))
    return json.loads(out.read_text())


def _coverage_summary(result: dict | None) -> dict | None:
    if result is None:
        return None
    # Coverage files measured before check-calibration recorded each trial's cost have no runs.
    runs = result.get("runs", [])
    wall = sorted(r["wall_time_s"] for r in runs) or [None]
    return {
        "source": result.get("source", f"check-calibration, seed {COVERAGE_SEED}"),
        "trials": result["trials"],
        "calibrated": result["calibrated"],
        "inside": {
            name: {level: row["inside"] for level, row in p["levels"].items()}
            for name, p in result["parameters"].items()
        },
        "rank_p_value": {name: p["rank_p_value"] for name, p in result["parameters"].items()},
        "not_converged": sum(not r["converged"] for r in runs) if runs else None,
        "median_wall_time_s": wall[len(wall) // 2],
        "mean_reference_solves": sum(r["reference_solves"] for r in runs) / len(runs) if runs else None,
    }


def _nuts_steps(study) -> dict:
    """The reference solves NUTS would need on the reference solver alone, with the study's
    settings: one solve with sensitivities per leapfrog step, warm-up included. The posterior's
    geometry sets the steps, so they are counted on the surrogate posterior, which is as wide and
    as correlated as the exact one (the README compares with NUTS run on SMIB's reference)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS, init_to_median

    prep, inf = prepare(study), study.inference
    kernel = NUTS(
        prep.numpyro_model,
        target_accept_prob=inf.target_accept,
        dense_mass=inf.dense_mass,
        init_strategy=init_to_median,
    )
    mcmc = MCMC(
        kernel, num_warmup=inf.warmup, num_samples=inf.samples, num_chains=inf.chains, progress_bar=False
    )
    y = {k: jnp.asarray(v) for k, v in prep.data.values.items()}
    mcmc.warmup(jax.random.PRNGKey(inf.seed), y=y, collect_warmup=True, extra_fields=("num_steps",))
    warmup = int(mcmc.get_extra_fields()["num_steps"].sum())
    mcmc.run(mcmc.post_warmup_state.rng_key, y=y, extra_fields=("num_steps",))
    sampling = int(mcmc.get_extra_fields()["num_steps"].sum())
    ess = float(min(az.ess(az.from_numpyro(mcmc))[k].min() for k in study.priors))
    return {
        "warmup": warmup,
        "sampling": sampling,
        "total": warmup + sampling,
        "min_ess_bulk": ess,
        "solves_per_effective_draw": (warmup + sampling) / ess,
    }


def _system(system: str, methods, trials: int, reuse: bool, measure: bool) -> dict:
    runs = {m: _posterior(system, m, reuse) for m in methods}
    # The grid starts from any run's posterior; NUTS's steps are counted with the plain settings.
    plain = _variant(HERE / f"{system}.toml", "plain")
    exact = check_exact(prepare(plain), next(iter(runs.values()))[1])
    stats = {
        name: {"mean": r["exact_mean"], "sd": r["exact_sd"], "q05": r["exact_90"][0], "q95": r["exact_90"][1]}
        for name, r in exact["parameters"].items()
    }
    nuts = _nuts_steps(plain)
    methods = {}
    for method, (st, data, diag) in runs.items():
        solves = diag.get("correction", {}).get("reference_solves", 0)
        methods[method] = {
            "parameters": compare(stats, {name: data.posterior[name].values for name in st.priors}),
            "converged": diag["converged"],
            "reference_solves": solves,
            "fewer_solves_than_nuts_on_reference": nuts["total"] / solves if solves else None,
            "solves_per_effective_draw": solves / diag["min_ess_bulk"] if solves else None,
            "wall_time_s": diag["wall_time_s"],
            "coverage": _coverage_summary(_coverage(system, method, trials, reuse, measure)),
        }
    return {
        "exact": {k: exact[k] for k in ("grid", "reference_solves")},
        "nuts_on_reference": nuts,
        "methods": methods,
    }


def markdown(results: dict) -> str:
    """The README's tables from results.json: one row per system and method."""
    rows = [
        (
            "| system | method | mean shift (exact sd) | sd ratio | 90 % intervals holding the truth "
            "| 50 % | reference solves | NUTS steps ÷ solves | the same per effective draw | wall time |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for system, result in results.items():
        nuts_per_draw = result["nuts_on_reference"]["solves_per_effective_draw"]
        for method, r in result["methods"].items():
            per_draw = r.get("solves_per_effective_draw")
            params = r["parameters"]
            cov = (r["coverage"] or {}).get("inside", {})
            trials = f" of {r['coverage']['trials']}" if r["coverage"] else "not measured"
            ratio = r["fewer_solves_than_nuts_on_reference"]
            rows.append(
                f"| {system} | {method} | "
                + ", ".join(f"{p['mean_shift_in_exact_sd']:+.2f}" for p in params.values())
                + " | "
                + ", ".join(f"{p['sd_ratio']:.2f}" for p in params.values())
                + " | "
                + ", ".join(f"{c['90%']}" for c in cov.values())
                + f"{trials} | "
                + ", ".join(f"{c['50%']}" for c in cov.values())
                + f" | {r['reference_solves']:,} | "
                + (f"{ratio:.0f}×" if ratio else "–")
                + " | "
                + (f"{nuts_per_draw / per_draw:.1f}×" if per_draw else "–")
                + f" | {r['wall_time_s']:.0f} s |"
            )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs and coverage files")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--only", choices=SYSTEMS)
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS)
    )
    parser.add_argument("--table", action="store_true", help="print results.json as the README's table")
    parser.add_argument("--no-coverage", action="store_true", help="leave out coverage not yet measured")
    args = parser.parse_args(argv)
    path = HERE / "results.json"
    if args.table:
        print(markdown(json.loads(path.read_text())))
        return 0
    methods = [m for m in METHODS if m in args.methods.split(",")]
    for system in [args.only] if args.only else SYSTEMS:
        new = _system(system, methods, args.trials, args.reuse, not args.no_coverage)
        # Read again: another system's run may have written meanwhile.
        results = json.loads(path.read_text()) if path.exists() else {}
        rows = {**results.get(system, {}).get("methods", {}), **new["methods"]}
        results[system] = {**new, "methods": {m: rows[m] for m in METHODS if m in rows}}
        write_json_atomic(path, results)
    print(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
