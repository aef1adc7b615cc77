"""Speed of a state-of-health run: ``bayespinn soh`` in batches against a loop of single calibrations.

On the synthetic ageing data of ``case_studies/battery_soh`` (2 cells × 30 cycles, generated here
by PyBaMM into a temporary folder), in one run and in fresh run folders:

1. ``batched_local``: ``run_soh`` with the local executor (a process per batch, up to one per core);
2. ``batched_dask``: the same work on a Dask LocalCluster of 2 single-threaded worker processes,
   and how far its ``soh.csv`` is from the local run's (same seeds: it should be equal);
3. ``batched_single_process``: the local executor with one worker (batches in this process);
4. ``batched_nuts``: ``run_soh`` with ``engine = "nuts"`` (the project's defaults: 4 chains, 1000
   warmup, 1000 samples), local executor, on a subset of the cycles in batches over the 2 cores,
   extrapolated to all of them; its posterior means against the batched SVI run's;
5. ``loop_of_single``: what a lab would otherwise run, one ``bayespinn.pipeline.calibrate`` per
   cycle with the project's default engine (NUTS, 4 chains, 1000 warmup, 1000 samples), each
   cycle written as its own one-cycle CSV and study; timed on a subset of the cycles and
   extrapolated to all of them.

One JSON object goes to stdout (and to ``--out``), progress to stderr. Wall times include process
and cluster start-up, JAX compilation and the report, as a user waits for them; only ratios taken
in one run are meant to travel between machines.

    python benchmarks/soh.py [--quick] [--loop-cycles N] [--nuts-cycles N] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
import tomllib
from pathlib import Path

# Run from a checkout without installing: the repository root must win on the path.
_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "bayespinn").is_dir():
    sys.path.insert(0, str(_ROOT))
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
# Every run compiles, as a user's first run does: no persistent JAX cache (the tests set one
# through the environment, which worker processes would inherit).
JAX_CACHE_UNSET = os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

import numpyro

CHAINS = 4  # the project's NUTS default (bayespinn.study.Inference)
CPUS = os.cpu_count() or 1
# Each entry point's JAX setup (bayespinn.cli._jax_setup), before JAX starts its backend:
# ``bayespinn soh`` asks for one host device per core, ``bayespinn calibrate`` for one per chain
# (parallel chains). This process runs the loop of calibrations, so it gets the latter; the soh
# runs hand their worker processes the former through the environment they are spawned with.
numpyro.set_host_device_count(max(1, CPUS))
SOH_XLA_FLAGS = os.environ["XLA_FLAGS"]
numpyro.set_host_device_count(max(CHAINS, CPUS))
numpyro.enable_x64()

import jax
import numpy as np
import pandas as pd
from bench_timing import processor, sig

from bayespinn.pipeline import calibrate
from bayespinn.soh import run_soh
from bayespinn.soh_data import load_cycles, soh_settings
from bayespinn.study import Inference, load_study
from surrogates.battery import chen2020
from surrogates.battery.spm_models import KNEE_V
from surrogates.battery.spm_pinn import DOMAIN, T_MAX_NOMINAL

GOAL_CYCLES, GOAL_S = 60, 180.0
GOAL = "60 cycle calibrations in under 3 minutes on 2 cores"
SCALES = ("positive_diffusivity_scale", "negative_j0_scale")
DEFAULT_OUT = _ROOT / "benchmarks" / "results" / "soh_cpu2.json"
SINGLE_STUDY = """\
# One cycle of the state-of-health data as a single study (benchmarks/soh.py).
[surrogate]
name = "battery.spm"

[data]
path = "{data}"

[conditions]
c_rate = {c_rate!r}

[parameters.positive_diffusivity_scale]
prior = "loguniform"
lower = 0.1
upper = 10.0

[parameters.negative_j0_scale]
prior = "loguniform"
lower = 0.1
upper = 10.0

[noise]
sigma = "infer"
{noise_scale}
[inference]
engine = "nuts"
chains = {chains}
warmup = {warmup}
samples = {samples}
seed = 0

[output]
dir = "run"
"""


def _log(msg: str) -> None:
    print(f"[bench soh] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _environ(**values: str):
    """``os.environ`` with ``values`` while the block runs (a spawned process inherits it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rate(cycles: int, seconds: float) -> float:
    return sig(60.0 * cycles / seconds)


# --- the data ------------------------------------------------------------------------------------


def _generate(folder: Path, cycles: int, batch_size: int | None) -> dict:
    """The case study's data and study in ``folder``; ``batch_size`` overrides its [soh] one."""
    sys.path.insert(0, str(_ROOT / "case_studies" / "battery_soh"))
    from generate import generate

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # its progress lines; stdout is the JSON's
        paths = generate(folder, seed=0, cycles=cycles)
    seconds = time.perf_counter() - t0
    if batch_size is not None:
        text = paths["study"].read_text().replace("[soh]\n", f"[soh]\nbatch_size = {batch_size}\n")
        paths["study"].write_text(text)
    return {**paths, "generate_s": seconds}


# --- the batched runs ----------------------------------------------------------------------------


def _batched(study: Path, out: Path, executor: str, workers: int | None, batches: int) -> dict:
    t0 = time.perf_counter()
    with _environ(XLA_FLAGS=SOH_XLA_FLAGS):
        run = run_soh(study, executor=executor, workers=workers, out=out, progress=False)
    wall = time.perf_counter() - t0
    ok = [r for r in run.results if r["status"] == "ok"]
    n = len(run.results)
    return {
        "executor": executor,
        # as run_soh uses them: dask, the cluster's processes; local, one per core up to one per batch
        "workers": (workers or 2) if executor == "dask" else min(workers or CPUS, batches),
        "cycles": n,
        "cycles_ok": len(ok),
        "cycles_converged": sum(bool(r.get("converged")) for r in ok),
        "cycles_skipped": len(run.skipped),
        "wall_time_s": sig(wall),
        "run_soh_wall_time_s": sig(run.wall_time_s),
        "cycles_per_minute": _rate(n, wall),
        "batch_wall_time_s": sorted({r["batch_wall_time_s"] for r in ok}),
        "_run": run,
    }


def _compare_csv(a: Path, b: Path) -> dict:
    """Exact equality of two soh.csv files, and the largest difference over numeric columns."""
    x, y = pd.read_csv(a), pd.read_csv(b)
    if list(x.columns) != list(y.columns) or len(x) != len(y):
        return {"equal": False, "reason": f"shapes differ: {x.shape} vs {y.shape}"}
    numeric = [
        c for c in x.columns if pd.api.types.is_numeric_dtype(x[c]) and pd.api.types.is_numeric_dtype(y[c])
    ]
    others = [c for c in x.columns if c not in numeric]
    same_text = bool(x[others].equals(y[others]))  # missing in the same places counts as equal
    xv, yv = x[numeric].to_numpy(float), y[numeric].to_numpy(float)
    same_nan = bool(np.array_equal(np.isnan(xv), np.isnan(yv)))
    diff = np.where(np.isnan(xv) & np.isnan(yv), 0.0, np.abs(xv - yv))
    return {
        "equal": bool(same_text and same_nan and np.all(diff == 0.0)),
        "rows": len(x),
        "numeric_columns": numeric,
        "non_numeric_columns_equal": same_text,
        "nan_positions_equal": same_nan,
        "max_abs_difference": float(np.nanmax(diff)) if diff.size else 0.0,
    }


def _means(run) -> dict[tuple[str, int], dict[str, float]]:
    return {
        (r["cell"], r["cycle"]): {k: float(np.mean(r["draws"][k])) for k in SCALES}
        for r in run.results
        if r["status"] == "ok"
    }


def _batched_nuts(study_path: Path, out: Path, cycles: list[int], warmup: int, samples: int, svi_run) -> dict:
    """``run_soh`` with engine "nuts" on ``cycles`` of every cell, batches split over the cores."""
    batch = -(-2 * len(cycles) // CPUS)  # both cells' cycles, one batch per core
    nuts = f'engine = "nuts"\nchains = {CHAINS}\nwarmup = {warmup}\nsamples = {samples}'
    text = study_path.read_text().replace('engine = "svi"\nguide = "laplace"', nuts)
    text = re.sub(r"(?m)^batch_size = \d+\n", "", text)  # --quick set one
    text = text.replace("[soh]\n", f"[soh]\ncycles = {cycles}\nbatch_size = {batch}\n")
    assert nuts in text and f"cycles = {cycles}" in text, "the case study's soh.toml changed"
    nuts_study = study_path.with_name("soh_nuts.toml")
    nuts_study.write_text(text)
    run = _batched(nuts_study, out, "local", None, -(-2 * len(cycles) // batch))
    all_cycles = len(_records(load_study(study_path)))
    svi = {(r["cell"], r["cycle"]): r for r in svi_run.results if r["status"] == "ok"}
    results = run["_run"].results
    shifts = []
    for r in results:
        if r["status"] == "ok" and (r["cell"], r["cycle"]) in svi:
            for k in SCALES:
                other = np.asarray(svi[(r["cell"], r["cycle"])]["draws"][k])
                shifts.append(abs(np.mean(r["draws"][k]) - other.mean()) / other.std())
    run.pop("_run")
    per_cycle = run["wall_time_s"] / run["cycles"]
    return {
        **run,
        "engine": json.loads((out / "soh_diagnostics.json").read_text())["engine"] + " (soh_fit)",
        "cycles_timed": f"cycles {cycles} of each cell",
        "extrapolated_wall_time_s_for_all_cycles": sig(per_cycle * all_cycles),
        "problems": sorted({p for r in results for p in r.get("problem", "").split("; ") if p}),
        "max_mean_shift_vs_batched_svi_in_svi_sd": sig(max(shifts)) if shifts else None,
    }


# --- the loop of single calibrations -------------------------------------------------------------


def _subset(records: list, n: int) -> list:
    """``n`` records evenly spread over the plan (both cells, early and late cycles)."""
    index = np.unique(np.round(np.linspace(0, len(records) - 1, min(n, len(records)))).astype(int))
    return [records[i] for i in index]


def _records(study) -> list:
    """The study's usable cycles, read as run_soh reads them (``bayespinn.soh._plan``)."""
    records, _ = load_cycles(
        study.data_path,
        soh_settings(study),
        capacity_ah=chen2020.CAPACITY_AH,
        c_rate_range=DOMAIN["c_rate"],
        t_max_nominal_h=T_MAX_NOMINAL,
        end_voltage_v=KNEE_V,
    )
    return records


def _loop(study_path: Path, folder: Path, n: int, warmup: int, samples: int, batched_means: dict) -> dict:
    study = load_study(study_path)
    records = _records(study)
    table = pd.read_csv(study.data_path)
    scale = tomllib.loads(study.text).get("noise", {}).get("scale")
    truth = pd.read_csv(study_path.parent / "truth.csv").set_index(["Cell", "Cycle"])
    rows = []
    for record in _subset(records, n):
        cycle_dir = folder / f"{record.cell}_cycle{record.cycle}"
        cycle_dir.mkdir(parents=True)
        one = table[(table["Cell"].astype(str) == record.cell) & (table["Cycle"] == record.cycle)]
        t0 = time.perf_counter()  # from the cycle's own files to its finished run, as a lab's loop
        one[["Time [s]", "Current [A]", "Voltage [V]"]].to_csv(cycle_dir / "data.csv", index=False)
        c_rate = float(one["Current [A]"].median() / chen2020.CAPACITY_AH)
        (cycle_dir / "study.toml").write_text(
            SINGLE_STUDY.format(
                data="data.csv",
                c_rate=c_rate,
                noise_scale="" if scale is None else f"scale = {scale!r}\n",
                chains=CHAINS,
                warmup=warmup,
                samples=samples,
            )
        )
        run = calibrate(load_study(cycle_dir / "study.toml"), progress=False)
        seconds = time.perf_counter() - t0
        key = (record.cell, record.cycle)
        rows.append(
            {
                "cell": record.cell,
                "cycle": record.cycle,
                "c_rate": sig(c_rate),
                "points": len(one),
                "wall_time_s": sig(seconds),
                "sampling_wall_time_s": sig(run.diagnostics["wall_time_s"]),
                "converged": bool(run.diagnostics["converged"]),
                "posterior_mean": {k: sig(run.table.loc[k, "mean"]) for k in SCALES},
                "batched_local_mean": {k: sig(v) for k, v in batched_means.get(key, {}).items()},
                "truth": {k: sig(truth.loc[key, k]) for k in SCALES},
            }
        )
        _log(f"  {record.cell} cycle {record.cycle}: {seconds:.1f} s, converged {rows[-1]['converged']}")
    per_cycle = float(np.mean([r["wall_time_s"] for r in rows]))
    return {
        "engine": f"NUTS ({CHAINS} chains, {warmup} warmup, {samples} samples, seed 0), "
        "bayespinn.pipeline.calibrate on a one-cycle CSV and study per cycle, in this process",
        "cycles_timed": len(rows),
        "seconds_per_cycle": sig(per_cycle),
        "seconds_per_cycle_median": sig(float(np.median([r["wall_time_s"] for r in rows]))),
        "cycles_per_minute": sig(60.0 / per_cycle),
        "extrapolated_wall_time_s_for_all_cycles": sig(per_cycle * len(records)),
        "extrapolated": f"timed on {len(rows)} of {len(records)} cycles (evenly spread over the plan); "
        "cycles_per_minute and the wall time for all cycles are extrapolated from their mean",
        "cycles": rows,
    }


# --- the run -------------------------------------------------------------------------------------


def machine() -> dict:
    import dask
    import distributed
    import pybamm

    return {
        "platform": platform.platform(),
        "processor": processor(),
        "cpu_count": CPUS,
        "load_average_1min_at_start": sig(os.getloadavg()[0], 3),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "pybamm": pybamm.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "numpy": np.__version__,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 2 cells × 3 cycles, batches of 3, short NUTS"
    )
    p.add_argument(
        "--loop-cycles",
        type=int,
        default=None,
        help="cycles the loop of single calibrations times (default 4, 2 with --quick)",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="NUTS warmup per chain (default 1000, 100 with --quick)"
    )
    p.add_argument(
        "--samples", type=int, default=None, help="NUTS samples per chain (default 1000, 100 with --quick)"
    )
    p.add_argument("--no-single-process", action="store_true", help="skip batched_single_process")
    p.add_argument(
        "--nuts-cycles",
        type=int,
        default=None,
        help="cycles per cell batched NUTS runs on (default 4, 1 with --quick; 0 skips it)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"also write the JSON here (default {DEFAULT_OUT.relative_to(_ROOT)}; none with --quick)",
    )
    args = p.parse_args(argv)
    host = machine()  # load average before we add any
    quick = args.quick
    cycles_per_cell = 3 if quick else 30
    batch_size = 3 if quick else None  # quick: 2 batches, so that the local pool runs as in the full run
    loop_n = args.loop_cycles or (2 if quick else 4)
    warmup = args.warmup or (100 if quick else Inference.warmup)
    samples = args.samples or (100 if quick else Inference.samples)
    out = args.out if args.out is not None else (None if quick else DEFAULT_OUT)

    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-soh-") as tmp:
        tmp = Path(tmp)
        _log(f"generating 2 cells × {cycles_per_cell} cycles with PyBaMM")
        data = _generate(tmp / "data", cycles_per_cell, batch_size)
        study = load_study(data["study"])
        settings = soh_settings(study)
        batches = -(-len(_records(study)) // settings.batch_size)
        runs = {}
        _log("batched_local")
        runs["batched_local"] = _batched(data["study"], tmp / "local", "local", None, batches)
        _log("batched_dask")
        runs["batched_dask"] = _batched(data["study"], tmp / "dask", "dask", 2, batches)
        runs["batched_dask"]["soh_csv_vs_local"] = _compare_csv(
            tmp / "local" / "soh.csv", tmp / "dask" / "soh.csv"
        )
        if not args.no_single_process:
            _log("batched_single_process")
            runs["batched_single_process"] = _batched(data["study"], tmp / "single", "local", 1, batches)
        n = runs["batched_local"]["cycles"]
        means = _means(runs["batched_local"]["_run"])
        nuts_n = (
            1 if quick and args.nuts_cycles is None else (4 if args.nuts_cycles is None else args.nuts_cycles)
        )
        if nuts_n:
            cycles = sorted({int(c) for c in np.linspace(1, cycles_per_cell, nuts_n).round()})
            _log(f"batched_nuts: cycles {cycles} of each cell, NUTS {CHAINS} chains {warmup}+{samples}")
            runs["batched_nuts"] = _batched_nuts(
                data["study"], tmp / "nuts", cycles, warmup, samples, runs["batched_local"]["_run"]
            )
        _log(f"loop_of_single: {loop_n} of {n} cycles, NUTS {CHAINS} chains {warmup}+{samples}")
        loop = _loop(data["study"], tmp / "loop", loop_n, warmup, samples, means)
    for r in runs.values():
        r.pop("_run", None)
    local = runs["batched_local"]
    report["settings"] = {
        "data": f"case_studies/battery_soh/generate.py: 2 cells × {cycles_per_cell} cycles = {n} constant-current "
        f"discharges (PyBaMM SPM, Chen2020, 10 s sampling, 5 mV noise, seed 0), generated in "
        f"{data['generate_s']:.1f} s (not timed below)",
        "cycles": n,
        "batch_size": settings.batch_size,
        "batches": batches,
        "batched_engine": f"[inference] engine {study.inference.engine!r}, guide {study.inference.guide!r} "
        f"(the case study's soh.toml), {study.inference.samples} draws per cycle checked by PSIS",
        "loop_engine": loop["engine"],
        "executors": {
            "batched_local": "executor 'local': a spawned process per batch, workers = cpu_count",
            "batched_dask": "executor 'dask': LocalCluster of 2 single-threaded worker processes, started per run",
            "batched_single_process": "executor 'local', workers 1: the batches in this process",
        },
        "xla_flags": {"soh_workers": SOH_XLA_FLAGS, "this_process": os.environ["XLA_FLAGS"]},
        "jax_compilation_cache": "none: every run compiles"
        + ("" if JAX_CACHE_UNSET is None else f" (JAX_COMPILATION_CACHE_DIR={JAX_CACHE_UNSET} ignored)"),
        "timing": "wall_time_s: the whole run_soh call (process/cluster start-up, JAX compilation, "
        "calibration and the report) or the whole calibrate call per cycle (its CSV and study "
        "written, checks, NUTS compilation and sampling, run folder); run_soh_wall_time_s is "
        "run_soh's own (without the report); every run in a fresh folder; the interpreter's start "
        "and imports are not timed",
        "quick": quick,
        "goal": GOAL,
    }
    report.update(runs)
    report["loop_of_single"] = loop
    report["speed_ratio_batched_local_vs_loop"] = sig(
        local["cycles_per_minute"] / loop["cycles_per_minute"], 3
    )
    if "batched_nuts" in runs:
        nuts_rate = runs["batched_nuts"]["cycles_per_minute"]
        report["speed_ratio_batched_nuts_vs_loop"] = sig(nuts_rate / loop["cycles_per_minute"], 3)
    report["speed_ratio_note"] = (
        "cycles per minute of batched_local ÷ those of loop_of_single (the loop's rate extrapolated from "
        f"{loop['cycles_timed']} timed cycles); batched_nuts ÷ loop_of_single the same, for the same NUTS settings"
    )
    measured = n >= GOAL_CYCLES and CPUS == 2
    report["goal_met"] = (
        bool(local["cycles_ok"] >= GOAL_CYCLES and local["wall_time_s"] < GOAL_S) if measured else None
    )
    report["goal_met_from"] = (
        f"batched_local: {local['cycles_ok']} of {n} cycles ok in {local['wall_time_s']} s on {CPUS} cores "
        f"(goal: {GOAL_CYCLES} in < {GOAL_S:g} s on 2)"
        + ("" if measured else "; not measured here (needs 60 cycles on 2 cores): null")
    )
    report["machine"] = {**host, "load_average_1min_at_end": sig(os.getloadavg()[0], 3)}
    text = json.dumps(report, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        _log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
