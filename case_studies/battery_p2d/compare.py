"""Calibrate both scales from a noisy DFN discharge and score three surrogate posteriors against
the exact one computed with PyBaMM's DFN (issue 4, item 4).

The record (``data/dfn_1C.csv``): PyBaMM's DFN (``battery.p2d:reference``) at 1C, every 10 s up
to its 2.5 V cut-off, 5 mV Gaussian noise (seed ``RECORD_SEED``), truth
positive_diffusivity_scale = 2.0, negative_j0_scale = 0.5. The studies, σ = 5 mV known,
LogUniform(0.1, 10) priors, NUTS 4 chains × 1,000 warm-up + 1,000 draws:

- ``p2d``: NUTS on the ``battery.p2d`` surrogate with its default error model (``auto``, which
  resolves to the card's held-out RMSE in quadrature for ``battery.p2d``);
- ``p2d_importance``: the same surrogate, corrected with the DFN (``correct = "importance"``,
  1,000 reference solves, one adaptive refinement when fewer than 400 draws count);
- ``p2d_tabulated``: ``p2d`` on ``battery.p2d:tabulated``, the surrogate tabulated at the
  study's C-rate (``surrogates/battery/discharge_table.py``), its build included in the time;
- ``spm``: NUTS on the ``battery.spm`` surrogate (the single-particle model) on the same DFN
  record: the simpler model's bias.

The exact posterior is the DFN's on a 61 × 61 adaptive grid (``bayespinn check-exact``'s
computation, started from the ``p2d_importance`` run, which saves a second round of the grid;
where it starts does not change what it converges to). Beside it, the exact posterior of PyBaMM's SPM on
the same record (``bayespinn check-exact spm.toml``'s grid) separates the SPM's model bias from
its surrogate's error. Each run is scored against the DFN grid: the shift of each posterior mean
in exact sds, the sd ratio, and whether its central 90 % interval holds the truth. The issue's
goal for ``p2d``, ``p2d_importance`` and ``p2d_tabulated``: means within 0.3 sd, sds within 25 %.

What does not depend on the surrogates' weights is cached and reused: the record (kept while it
exists) and both exact grids (``exact/*.npz``, keyed on the record's hash, the study's priors,
noise and conditions, the grid size and the PyBaMM version). New weights need only
``compare.py``; ``--fresh-exact`` recomputes the grids.

Usage: python case_studies/battery_p2d/compare.py [--reuse] [--fresh-exact] [--grid 61] [--quick]
       python case_studies/battery_p2d/compare.py --table     # results.json as the README's table
Writes results.json and posterior.png (--reuse reads finished runs instead of calibrating).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")

import numpyro

numpyro.set_host_device_count(4)
numpyro.enable_x64()

import jax

# As the CLI does (bayespinn/cli.py:_jax_setup): inline CPU computations, since asynchronous
# dispatch can deadlock the importance weights (jax-ml/jax#25861).
jax.config.update("jax_cpu_enable_async_dispatch", False)

import arviz as az
import matplotlib
import matplotlib.ticker
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bayespinn.pipeline import calibrate, prepare
from bayespinn.reference import exact_grid
from bayespinn.simulate import simulate
from bayespinn.study import load_study
from inference.exact import GridPosterior, compare
from surrogates.pinn.card import write_json_atomic

HERE = Path(__file__).parent
NAMES = ("positive_diffusivity_scale", "negative_j0_scale")
SHORT = {"positive_diffusivity_scale": "Dp", "negative_j0_scale": "j0n"}
# run -> (study file, what it is)
STUDIES = {
    "p2d": ("p2d.toml", "battery.p2d surrogate, default error (auto)"),
    "p2d_importance": ("p2d_importance.toml", "battery.p2d + DFN importance correction"),
    "p2d_tabulated": ("p2d_tabulated.toml", "battery.p2d tabulated at the study's C-rate"),
    "spm": ("spm.toml", "battery.spm surrogate (the simpler model)"),
}
# The exact grids: name -> (study whose run starts the grid and whose reference solves it, label)
# The DFN grid starts from the corrected run: started from p2d's posterior, inflated by the
# RMSE term, its first window is more than 1.5× too wide and the grid goes round twice (twice
# the DFN solves for the same answer; measured with a 21 × 21 grid).
GRIDS = {"dfn": ("p2d_importance", "PyBaMM DFN"), "spm": ("spm", "PyBaMM SPM")}
RECORD_SYSTEM = "battery.p2d:reference"
RECORD_SEED = 4
NOISE_SD = 0.005  # V
GOAL = {"shift_sd": 0.3, "sd_ratio": 0.25}


def make_record(study) -> dict:
    """The synthetic cycler record (kept when it exists: it does not depend on any weights)."""
    path = study.data_path
    if not path.exists():
        truth = {**study.truth, **study.conditions}
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = simulate(RECORD_SYSTEM, truth, None, noise_sd=NOISE_SD, seed=RECORD_SEED)
        frame.to_csv(path, index=False, float_format="%.10g")
    frame = np.loadtxt(path, delimiter=",", skiprows=1)
    return {
        "path": str(path.relative_to(HERE)),
        "system": RECORD_SYSTEM,
        "truth": study.truth,
        "conditions": study.conditions,
        "noise_sd_V": NOISE_SD,
        "seed": RECORD_SEED,
        "points": len(frame),
        "last_time_s": float(frame[-1, 0]),
        "last_voltage_V": float(frame[-1, -1]),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def run_study(key: str, reuse: bool, quick: bool = False):
    study = load_study(HERE / STUDIES[key][0])
    if quick:  # a smoke test of the whole chain: short chains, their own run directories
        inference = dataclasses.replace(study.inference, chains=2, warmup=200, samples=200)
        study = dataclasses.replace(study, inference=inference, output_dir=HERE / "runs" / "quick" / key)
    if not (reuse and (study.output_dir / "posterior.nc").exists()):
        calibrate(study, progress=True)
    idata = az.from_netcdf(str(study.output_dir / "posterior.nc"))
    diagnostics = json.loads((study.output_dir / "diagnostics.json").read_text())
    return study, idata, diagnostics


def _grid_key(prep, n: int) -> str:
    """What the exact posterior depends on: the record, the reference, priors, noise, conditions."""
    import pybamm

    st = prep.study
    key = {
        "data": hashlib.sha256(st.data_path.read_bytes()).hexdigest(),
        "reference": f"{prep.model.name}:reference",
        "pybamm": pybamm.__version__,
        "priors": {k: repr(v) for k, v in st.priors.items()},
        "noise": {k: repr(v) for k, v in prep.spec.noise.items()},
        "conditions": st.conditions,
        "n": n,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def exact(name: str, runs: dict, n: int, fresh: bool) -> tuple[GridPosterior, dict]:
    """The exact grid posterior of ``GRIDS[name]``'s reference, cached in ``exact/<name>_<n>.npz``."""
    study, idata, _ = runs[GRIDS[name][0]]
    prep = prepare(study)
    key, path = _grid_key(prep, n), HERE / "exact" / f"{name}_{n}.npz"
    if not fresh and path.exists():
        cached = np.load(path)
        if str(cached["key"]) == key:
            grid = GridPosterior(
                NAMES,
                (cached["axis0"], cached["axis1"]),
                cached["density"],
                int(cached["evaluations"]),
                int(cached["rounds"]),
            )
            return grid, {"wall_time_s": float(cached["wall_time_s"]), "cached": True}
    t0 = time.perf_counter()
    grid, ref = exact_grid(prep, idata, n)
    wall = time.perf_counter() - t0
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        key=key,
        reference=ref.name,
        axis0=grid.axes[0],
        axis1=grid.axes[1],
        density=grid.density,
        evaluations=grid.evaluations,
        rounds=grid.rounds,
        wall_time_s=wall,
    )
    os.replace(tmp, path)
    return grid, {"wall_time_s": wall, "cached": False}


def _holds(interval, value) -> bool:
    return bool(interval[0] <= value <= interval[1])


def score(stats: dict, draws: dict, truth: dict) -> dict:
    """``inference.exact.compare`` against the DFN grid, with the issue's goal, the run's bias in
    % of the exact mean, and whether its central 90 % interval holds the truth."""
    rows = compare(stats, draws)
    for name, row in rows.items():
        row["within_goal"] = (
            abs(row["mean_shift_in_exact_sd"]) <= GOAL["shift_sd"]
            and abs(row["sd_ratio"] - 1) <= GOAL["sd_ratio"]
        )
        row["mean_shift_percent"] = 100.0 * (row["mean"] / row["exact_mean"] - 1.0)
        row["interval_90_holds_truth"] = _holds(row["interval_90"], truth[name])
        row["exact_90_holds_truth"] = _holds(row["exact_90"], truth[name])
        row["truth"] = truth[name]
    return rows


def _grid_rows(other: dict, stats: dict, truth: dict) -> dict:
    """Another grid posterior (the exact SPM one) scored like a run against the DFN grid."""
    rows = {}
    for name, o in other.items():
        ex = stats[name]
        shift, ratio = (o["mean"] - ex["mean"]) / ex["sd"], o["sd"] / ex["sd"]
        rows[name] = {
            "exact_mean": ex["mean"],
            "exact_sd": ex["sd"],
            "exact_90": [ex["q05"], ex["q95"]],
            "mean": o["mean"],
            "sd": o["sd"],
            "interval_90": [o["q05"], o["q95"]],
            "mean_shift_in_exact_sd": shift,
            "sd_ratio": ratio,
            "mean_shift_percent": 100.0 * (o["mean"] / ex["mean"] - 1.0),
            "interval_90_holds_truth": _holds([o["q05"], o["q95"]], truth[name]),
            "exact_90_holds_truth": _holds([ex["q05"], ex["q95"]], truth[name]),
            "truth": truth[name],
        }
    return rows


def voltage_gaps(study, spm_fit: dict) -> dict:
    """What the posteriors see, in mV over the record's times: the DFN against the SPM (PyBaMM
    both) at the truth, the two surrogates against their references there, and the record's
    residuals under the DFN at the truth and under the SPM at its exact posterior mean."""
    from surrogates import registry

    prep = prepare(study)
    t, data = prep.data.time_s, prep.data.values["Voltage [V]"]
    at = {**study.conditions, **study.truth}

    def volts(name: str, values: dict) -> np.ndarray:
        return np.asarray(registry.load(name).numpy_forward(t, **values)["Voltage [V]"])

    dfn, spm = volts("battery.p2d:reference", at), volts("battery.spm:reference", at)
    spm_at_fit = volts("battery.spm:reference", {**study.conditions, **spm_fit})

    def mv(x: np.ndarray) -> dict:
        return {
            "rms_mV": float(1e3 * np.sqrt(np.mean(x**2))),
            "mean_mV": float(1e3 * x.mean()),
            "max_abs_mV": float(1e3 * np.abs(x).max()),
            "last_mV": float(1e3 * x[-1]),
        }

    return {
        "dfn_minus_spm_at_truth": mv(dfn - spm),
        "p2d_surrogate_minus_dfn_at_truth": mv(volts("battery.p2d", at) - dfn),
        "spm_surrogate_minus_spm_at_truth": mv(volts("battery.spm", at) - spm),
        "record_minus_dfn_at_truth": mv(data - dfn),
        "record_minus_spm_at_its_exact_mean": mv(data - spm_at_fit),
        "spm_exact_mean": spm_fit,
    }


def _mass_levels(density: np.ndarray, masses) -> list[float]:
    """Density thresholds whose upper sets hold the given masses, increasing."""
    p = np.sort(density.ravel())[::-1]
    cum = np.cumsum(p) / p.sum()
    return [float(p[min(np.searchsorted(cum, m), len(p) - 1)]) for m in masses]


def plot(grids: dict, draws: dict, truth: dict, out: Path) -> None:
    """Exact DFN and SPM regions (50/90/99 %) under each run's draws: all of them on log axes,
    then the DFN's region close up."""
    colors = {
        "p2d": "tab:blue",
        "p2d_importance": "tab:green",
        "p2d_tabulated": "tab:purple",
        "spm": "tab:orange",
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, keys, grid_names in (
        (axes[0], list(draws), ("dfn", "spm")),
        (axes[1], ["p2d", "p2d_importance", "p2d_tabulated"], ("dfn",)),
    ):
        for key in keys:
            d = draws[key]
            step = max(1, len(d[NAMES[0]]) // 800)
            ax.plot(d[NAMES[0]][::step], d[NAMES[1]][::step], ".", ms=2, alpha=0.4, color=colors[key])
            ax.plot([], [], "o", ms=4, color=colors[key], label=f"{key}: {STUDIES[key][1]}")
        for name in grid_names:
            g, style = grids[name], "-" if name == "dfn" else "--"
            levels = _mass_levels(g.density, (0.99, 0.9, 0.5))
            ax.contour(*g.axes, g.density.T, levels=levels, colors="black", linestyles=style, linewidths=0.9)
            ax.plot([], [], style, color="black", label=f"exact, {GRIDS[name][1]}: 50/90/99 %")
        ax.plot(truth[NAMES[0]], truth[NAMES[1]], "r*", ms=11, label="truth")
        ax.set_xlabel("positive_diffusivity_scale [× 4e-15 m²/s]")
        ax.set_ylabel("negative_j0_scale [× Chen2020 j0]")
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[0].yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes[0].set_title("DFN record (1C, 10 s, 5 mV): all fits")
    axes[1].set_title("close up: the DFN surrogate against the exact DFN")
    axes[0].legend(loc="center right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def run(reuse: bool, fresh_exact: bool, n: int, quick: bool = False) -> dict:
    base = load_study(HERE / STUDIES["p2d"][0])
    record = make_record(base)
    truth = base.truth
    runs = {key: run_study(key, reuse, quick) for key in STUDIES}
    grids, grid_info = {}, {}
    for name in GRIDS:
        grids[name], info = exact(name, runs, n, fresh_exact)
        grid_info[name] = {
            "reference": GRIDS[name][1],
            "started_from": GRIDS[name][0],
            "grid": f"{n}×{n} nodes, {grids[name].rounds} rounds",
            "reference_solves": grids[name].evaluations,
            "cell_width_in_sd": {
                k: float(np.diff(grids[name].axes[i][:2])[0] / grids[name].stats()[k]["sd"])
                for i, k in enumerate(NAMES)
            },
            **info,
        }
    stats = grids["dfn"].stats()
    draws = {
        key: {k: idata.posterior[k].values.ravel() for k in NAMES} for key, (_, idata, _) in runs.items()
    }
    rows = {}
    for key, (study, idata, diag) in runs.items():
        correction = diag.get("correction", {})
        rows[key] = {
            "what": STUDIES[key][1],
            "surrogate": study.surrogate,
            "surrogate_error": idata.attrs.get("surrogate_error") or _resolved_error(study),
            "parameters": score(stats, draws[key], truth),
            "converged": diag["converged"],
            "max_rhat": diag.get("max_rhat"),
            "min_ess_bulk": diag.get("min_ess_bulk"),
            "divergences": diag.get("divergences"),
            "flags": diag.get("flags", []),
            # what the card's held-out curves predict for the shift, before any reference solve
            "held_out_median_abs_shift_sd": {
                k: v["median_abs_sd"]
                for k, v in (diag.get("held_out_bias") or {}).get("parameters", {}).items()
            },
            "reference_solves": correction.get("reference_solves", 0),
            "correction": {k: v for k, v in correction.items() if not isinstance(v, (list, dict))},
            "surrogate_run": diag.get("surrogate_run"),
            "wall_time_s": diag["wall_time_s"],
        }
    rows["spm_exact"] = {
        "what": "exact posterior of PyBaMM's SPM on the DFN record (its model bias alone)",
        "surrogate": "battery.spm:reference",
        "parameters": _grid_rows(grids["spm"].stats(), stats, truth),
        "reference_solves": grids["spm"].evaluations,
        "wall_time_s": grid_info["spm"]["wall_time_s"],
    }
    plot(grids, draws, truth, HERE / ("posterior_quick.png" if quick else "posterior.png"))
    spm_fit = {k: v["mean"] for k, v in grids["spm"].stats().items()}
    return {
        "record": record,
        "weights": _weights(),
        "voltage_gaps": voltage_gaps(base, spm_fit),
        "goal": "means within 0.3 exact sd, sds within 25 % (p2d, p2d_importance, p2d_tabulated)",
        "exact": {
            "dfn": {**grid_info["dfn"], "stats": stats},
            "spm": {**grid_info["spm"], "stats": grids["spm"].stats()},
        },
        "runs": rows,
    }


def _weights() -> dict:
    """Which surrogate weights the runs were made with (their cards' sha256)."""
    from surrogates import registry

    return {
        name: {
            "sha256": registry.load(name).card["sha256"],
            "validation_rmse_V": registry.load(name).validation_rmse(),
        }
        for name in ("battery.p2d", "battery.spm")
    }


def _resolved_error(study) -> str:
    return prepare(study).study.inference.surrogate_error


def markdown(results: dict) -> str:
    """The README's table from results.json: one row per run, each cell (Dp, j0n)."""
    rows = [
        (
            "| run | surrogate error | mean shift (exact DFN sd) | held-out estimate: median abs. shift (sd) "
            "| mean shift (%) | sd ratio | 90 % interval holds truth | R-hat or k̂ (ESS) "
            "| reference solves | wall time |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in results["runs"].items():
        p = r["parameters"].values()
        rhat, corr = r.get("max_rhat"), r.get("correction") or {}
        check = (
            f"k̂ {corr['k_hat']:.2f} ({corr['ess']:.0f})"
            if "k_hat" in corr
            else f"{rhat:.3f}"
            if rhat is not None
            else "–"
        )
        rows.append(
            f"| {key} | {r.get('surrogate_error', '–')} | "
            + ", ".join(f"{x['mean_shift_in_exact_sd']:+.2f}" for x in p)
            + " | "
            + (", ".join(f"{x:.2f}" for x in (r.get("held_out_median_abs_shift_sd") or {}).values()) or "–")
            + " | "
            + ", ".join(f"{x['mean_shift_percent']:+.2f}" for x in p)
            + " | "
            + ", ".join(f"{x['sd_ratio']:.2f}" for x in p)
            + " | "
            + ", ".join("yes" if x["interval_90_holds_truth"] else "no" for x in p)
            + f" | {check} | {r['reference_solves']:,} | {r['wall_time_s']:.0f} s |"
        )
    ex = results["exact"]["dfn"]
    p = ex["stats"]
    truth = results["record"]["truth"]
    means = ", ".join(f"{p[k]['mean']:.4g}" for k in NAMES)
    sds = ", ".join(f"{p[k]['sd']:.3g}" for k in NAMES)
    holds = ", ".join("yes" if p[k]["q05"] <= truth[k] <= p[k]["q95"] else "no" for k in NAMES)
    rows.append(
        f"| exact DFN grid | – | mean {means} | – | – | sd {sds} | {holds} | – "
        f"| {ex['reference_solves']:,} | {ex['wall_time_s']:.0f} s |"
    )
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reuse", action="store_true", help="read finished runs instead of calibrating")
    parser.add_argument("--fresh-exact", action="store_true", help="recompute the exact grids")
    parser.add_argument("--grid", type=int, default=61, help="grid nodes per parameter")
    parser.add_argument("--table", action="store_true", help="print results.json as the README's table")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 chains × 200 + 200, runs/quick/, results_quick.json",
    )
    args = parser.parse_args(argv)
    path = HERE / ("results_quick.json" if args.quick else "results.json")
    if args.table:
        print(markdown(json.loads(path.read_text())))
        return 0
    results = run(args.reuse, args.fresh_exact, args.grid, args.quick)
    write_json_atomic(path, results)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
