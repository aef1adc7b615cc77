"""Run the SMIB study with every engine of ``engines.toml`` and compare each posterior with NUTS's.

For each variant: posterior mean and sd per parameter, the mean's shift in NUTS posterior sds, the
sd ratio, wall time, bulk ESS and ESS per second (MCMC and SVI draws), forward-model calls
(ensembles). ``[engines]`` run ``study.toml`` (5 % noise), ``[low_noise]`` ``study_low_noise.toml``
(0.2 % noise). Study files for every variant are written to ``studies/``, runs to ``runs/``.

Usage: python case_studies/engines/compare.py [--group engines|low_noise] [--only NAME ...] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpyro

numpyro.set_host_device_count(4)
numpyro.enable_x64()

from bayespinn.pipeline import calibrate
from bayespinn.study import load_study

HERE = Path(__file__).parent
BASES = {"engines": HERE / "study.toml", "low_noise": HERE / "study_low_noise.toml"}


def variants() -> dict[str, dict[str, dict]]:
    return tomllib.loads((HERE / "engines.toml").read_text())


def study_file(group: str, name: str, overrides: dict) -> Path:
    """The base study with the variant's [inference] keys (and surrogate), in ``studies/``."""
    text = BASES[group].read_text().replace('path = "', 'path = "../')
    settings = dict(overrides)
    surrogate = settings.pop("surrogate", None)
    if surrogate:
        text = text.replace('name = "power.smib"', f'name = "{surrogate}"')
    # Every engine with the same error model: the RMSE in quadrature (the only one EKI takes).
    keys = {"chains": 4, "warmup": 1000, "samples": 1000, "seed": 0, "surrogate_error": "rmse", **settings}
    lines = [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    text += "\n[inference]\n" + "\n".join(lines) + f'\n\n[output]\ndir = "../runs/{group}/{name}"\n'
    path = HERE / "studies" / f"{group}-{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def run(group: str, name: str, overrides: dict, reuse: bool) -> dict:
    """Calibrate one variant (or read its run) and return its row of figures."""
    study = load_study(study_file(group, name, overrides))
    out = study.output_dir
    if not (reuse and (out / "diagnostics.json").exists()):
        print(f"--- {group}/{name}", file=sys.stderr, flush=True)
        calibrate(study, progress=False)
    import pandas as pd

    table = pd.read_csv(out / "summary.csv", index_col="parameter")
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    ensemble = overrides.get("engine") in ("eki", "esmda")
    wall = diagnostics["wall_time_s"]
    ess = None if ensemble else float(table["ess_bulk"].min())
    return {
        "mean": table["mean"].to_dict(),
        "sd": table["sd"].to_dict(),
        "wall_time_s": wall,
        "min_ess_bulk": ess,
        "ess_per_s": None if ess is None else ess / wall,
        "forward_calls": _forward_calls(out) if ensemble else None,
        "converged": diagnostics["converged"],
        "warnings": diagnostics["warnings"],
    }


def _forward_calls(out: Path) -> int:
    import xarray as xr

    with xr.open_dataset(out / "posterior.nc", group="posterior") as posterior:
        return int(posterior.attrs["forward_calls"])


def against(rows: dict, reference: str) -> dict:
    """Each row's mean shift (in the reference's sds) and sd ratio against the reference row."""
    ref = rows[reference]
    for row in rows.values():
        row["shift_in_nuts_sd"] = {p: (row["mean"][p] - ref["mean"][p]) / ref["sd"][p] for p in ref["mean"]}
        row["sd_ratio"] = {p: row["sd"][p] / ref["sd"][p] for p in ref["mean"]}
    return rows


def markdown(rows: dict) -> str:
    head = "| engine | m shift / sd ratio | d shift / sd ratio | wall [s] | min ESS | ESS/s |\n| --- | --- | --- | --- | --- | --- |"
    lines = [head]
    for name, r in rows.items():
        cells = [f"{r['shift_in_nuts_sd'][p]:+.2f} sd / {r['sd_ratio'][p]:.2f}" for p in ("m", "d")]
        ess = "—" if r["min_ess_bulk"] is None else f"{r['min_ess_bulk']:.0f}"
        rate = "—" if r["ess_per_s"] is None else f"{r['ess_per_s']:.0f}"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {r['wall_time_s']:.1f} | {ess} | {rate} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=tuple(BASES), action="append", help="default: both")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--reuse", action="store_true", help="read runs that exist instead of rerunning")
    args = parser.parse_args(argv)
    results_path = HERE / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for group in args.group or tuple(BASES):
        todo = {n: o for n, o in variants()[group].items() if not args.only or n in args.only or n == "nuts"}
        # With --only, NUTS (the yardstick) is read from its earlier run when there is one.
        reuse = {n: args.reuse or bool(args.only) and n not in args.only for n in todo}
        rows = against({n: run(group, n, o, reuse[n]) for n, o in todo.items()}, "nuts")
        merged = {**results.get(group, {}), **rows}
        results[group] = {n: merged[n] for n in variants()[group] if n in merged}
        print(f"\n## {group}\n{markdown(results[group])}")
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
