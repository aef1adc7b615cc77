"""``bayespinn soh`` end to end: coverage of known ageing paths, the knee alarm, a skipped cycle,
a failing calibration, resume after an interruption, and Dask against local processes.

The data are 2 cells × 10 cycles drawn from the surrogate itself (so the test measures the
engine, not the surrogate's error; the case study does both against PyBaMM), with 5 mV noise:
cell A's log D falls on a straight line, cell B's bends ten times steeper from cycle 6 (a knee);
both cells' log J fall on a straight line.

One local run, interrupted after its first batch and resumed, serves every test; an uninterrupted
run on Dask worker processes must give the same numbers to the last bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayespinn import soh as soh_module
from bayespinn import soh_fit
from bayespinn.soh import run_soh
from surrogates.battery.chen2020 import CAPACITY_AH, CUTOFF_V

CYCLES = 10
KNEE = 6
BATCH = 10
NOISE_V = 0.005
CURRENT_NOISE = 0.002  # a cycler's current readings scatter 0.2 % about the set current
PARAMETERS = ("positive_diffusivity_scale", "negative_j0_scale")

STUDY = """
[surrogate]
name = "battery.spm"
[data]
path = "cells.csv"
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
scale = 0.02
[inference]
engine = "svi"
guide = "laplace"
samples = 1000
seed = 0
[output]
dir = "run"
[soh]
batch_size = 10
"""


def _truth(cell: str, cycle: int) -> dict:
    log_d = np.log(0.42) + (cycle - 1) * np.log(0.30 / 0.42) / (CYCLES - 1)
    if cell == "B":
        slow = np.log(0.40 / 0.42) / (KNEE - 1)
        log_d = np.log(0.42) + slow * (min(cycle, KNEE) - 1) + 10 * slow * max(cycle - KNEE, 0)
    c_rate = 1.25 if cycle % 5 == 0 else 1.0
    return {
        "positive_diffusivity_scale": float(np.exp(log_d)),
        "negative_j0_scale": float(np.exp(-0.03 * (cycle - 1))),
        "c_rate": c_rate,
    }


def _cycle_frame(surrogate, cell: str, cycle: int, rng) -> pd.DataFrame:
    truth = _truth(cell, cycle)
    t = np.arange(0.0, 1.5 * 3600.0 / truth["c_rate"], 10.0)
    v = surrogate.numpy_forward(t, **truth)["Voltage [V]"]
    n = int(np.argmax(v < CUTOFF_V))  # the cycler stops at the cut-off
    current = CAPACITY_AH * truth["c_rate"]
    return pd.DataFrame(
        {
            "Cell": cell,
            "Cycle": cycle,
            "Time [s]": t[:n],
            "Current [A]": current * (1.0 + CURRENT_NOISE * rng.standard_normal(n)),
            "Voltage [V]": v[:n] + NOISE_V * rng.standard_normal(n),
        }
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from surrogates.registry import load

    folder = tmp_path_factory.mktemp("soh")
    rng = np.random.default_rng(7)
    surrogate = load("battery.spm")
    frames = [_cycle_frame(surrogate, cell, c, rng) for cell in "AB" for c in range(1, CYCLES + 1)]
    corrupt = frames[4].copy()  # cell A cycle 5 logged a rest step: not a discharge
    corrupt.loc[corrupt.index[20:25], "Current [A]"] = 0.0
    frames[4] = corrupt
    pd.concat(frames).to_csv(folder / "cells.csv", index=False)
    (folder / "soh.toml").write_text(STUDY)
    return folder / "soh.toml"


@pytest.fixture(scope="module")
def local_run(study):
    """The local run, killed (as far as the store can tell) after its first batch, then resumed."""
    real = soh_module._execute

    def interrupted(*args, **kwargs):
        for i, result in enumerate(real(*args, **kwargs)):
            yield result
            if i == BATCH - 1:  # all of the first batch handed over: stop as a kill would
                raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(soh_module, "_execute", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_soh(study, executor="local", workers=1, progress=False)
    run_dir = study.parent / "run"
    stored = len(list((run_dir / "cycles").glob("*.json")))
    assert stored == BATCH and not (run_dir / "soh.csv").exists()
    return run_soh(study, executor="local", workers=1, progress=False)


def _table(run) -> pd.DataFrame:
    return pd.read_csv(run.dir / "soh.csv", dtype={"Cell": str})


def test_corrupt_cycle_is_skipped_with_its_reason_and_the_others_are_calibrated(local_run):
    assert [(s.cell, s.cycle) for s in local_run.skipped] == [("A", 5)]
    assert "not a discharge" in local_run.skipped[0].reason
    assert sum(r["status"] == "ok" for r in local_run.results) == 2 * CYCLES - 1
    diagnostics = json.loads((local_run.dir / "soh_diagnostics.json").read_text())
    assert diagnostics["skipped"][0]["cycle"] == 5
    assert "not a discharge" in (local_run.dir / "soh_report.html").read_text()


def test_ninety_percent_bands_hold_the_true_parameters_at_the_calibrated_rate(local_run):
    table = _table(local_run)
    inside = n = 0
    for name in PARAMETERS:
        rows = table[table["quantity"] == name]
        for _, row in rows.iterrows():
            true = _truth(row["Cell"], int(row["Cycle"]))[name]
            inside += row["q5"] <= true <= row["q95"]
            n += 1
    # 38 intervals; a calibrated 90 % band misses 10 or more with probability < 1 %
    # (Binomial(38, 0.9)).
    assert n == 2 * (2 * CYCLES - 1)
    assert stats.binom.cdf(inside, n, 0.9) > 0.01, f"{inside}/{n} inside"
    # PSIS k̂: at most 2 of 19 fits above 0.7 (seed 7: 2, at 0.74 and 0.81), none at 1 or more,
    # where the importance weights lose their mean.
    k_hat = table.drop_duplicates(["Cell", "Cycle"])["k_hat"]
    assert (k_hat > 0.7).sum() <= 2 and (k_hat < 1.0).all(), k_hat.tolist()


def test_the_knee_is_flagged_near_its_cycle_and_the_straight_fade_is_not(local_run):
    alarms = json.loads((local_run.dir / "soh_diagnostics.json").read_text())["alarms"]
    trend = [a for a in alarms if a["quantity"] in PARAMETERS]
    assert [(a["cell"], a["quantity"]) for a in trend] == [("B", "positive_diffusivity_scale")]
    assert abs(trend[0]["cycle"] - (KNEE + 1)) <= 1


def test_soh_is_capacity_over_the_first_cycle_and_matches_the_truth(local_run):
    from surrogates.battery.spm_pinn import cutoff_time
    from surrogates.registry import load

    surrogate = load("battery.spm")
    table = _table(local_run)
    cap = table[table["quantity"] == "capacity [A.h]"].set_index(["Cell", "Cycle"])
    soh = table[table["quantity"] == "soh"].set_index(["Cell", "Cycle"])
    assert soh.loc[("A", 1), "mean"] == pytest.approx(1.0, abs=1e-12)
    for cell, cycle in [("A", CYCLES), ("B", CYCLES)]:
        values = {k: _truth(cell, cycle)[k] for k in PARAMETERS}
        t_cut = cutoff_time(surrogate._weights, surrogate._n_layers, **values, c_rate=1.0)
        true_ah = CAPACITY_AH * t_cut / 3600.0
        row = cap.loc[(cell, cycle)]
        assert abs(row["mean"] - true_ah) < 4 * row["sd"] + 1e-3, (cell, row["mean"], true_ah)
        assert soh.loc[(cell, cycle), "q5"] < soh.loc[(cell, cycle), "mean"] < soh.loc[(cell, cycle), "q95"]


def test_the_resumed_run_calibrated_only_the_missing_batch(local_run):
    diagnostics = json.loads((local_run.dir / "soh_diagnostics.json").read_text())
    assert (diagnostics["batches"], diagnostics["batches_run"]) == (2, 1)


def test_one_failing_calibration_is_recorded_and_the_others_go_on(study, tmp_path, monkeypatch):
    def fake(job, records):  # fails on one record; the others get a quick stand-in result
        if any((r.cell, r.cycle) == ("B", 3) for r in records):
            raise FloatingPointError("non-finite Hessian")
        draws = {k: [0.3, 0.31] for k in PARAMETERS} | {soh_fit.CAPACITY: [4.5, 4.6]}
        base = {"status": "ok", "k_hat": 0.1, "converged": True, "problem": "", "draws": draws}
        return [{**base, "cell": r.cell, "cycle": r.cycle, "c_rate": r.c_rate} for r in records]

    monkeypatch.setattr(soh_fit, "_calibrate", fake)
    run = run_soh(study, workers=1, out=tmp_path, progress=False)
    failed = [r for r in run.results if r["status"] != "ok"]
    assert [(r["cell"], r["cycle"]) for r in failed] == [("B", 3)]
    assert "FloatingPointError: non-finite Hessian" in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in run.results) == 2 * CYCLES - 2
    assert "non-finite Hessian" in (tmp_path / "soh_report.html").read_text()


def test_an_uninterrupted_run_on_dask_workers_equals_the_resumed_local_run(study, local_run, tmp_path):
    dask_run = run_soh(study, executor="dask", workers=1, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(_table(dask_run), _table(local_run), check_exact=True)


def test_a_study_with_an_engine_that_is_not_batched_is_refused_with_one_line(study, tmp_path, capsys):
    from bayespinn.cli import main

    bad = tmp_path / "hmc.toml"
    bad.write_text(
        study.read_text()
        .replace('engine = "svi"\nguide = "laplace"', 'engine = "hmc"')
        .replace("cells.csv", str(study.parent / "cells.csv"))
    )
    assert main(["soh", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[inference] engine: found 'hmc'" in err[0], err


# NUTS on two of the knee cell's cycles (one batch): the same posteriors as the PSIS-corrected
# Laplace fits above, reached by another road. The study sets no target_accept, so soh's 0.95
# applies: at NumPyro's 0.8 the chains of these cycles diverged 5–38 times in 1,000 draws and
# mixed slowly (R-hat up to 1.02).
NUTS_CYCLES = (1, 8)
NUTS_INFERENCE = """engine = "nuts"
chains = 4
warmup = 500
samples = 250"""


@pytest.fixture(scope="module")
def nuts_run(study, tmp_path_factory):
    folder = tmp_path_factory.mktemp("soh_nuts")
    text = (
        study.read_text()
        .replace('engine = "svi"\nguide = "laplace"\nsamples = 1000', NUTS_INFERENCE)
        .replace("[soh]\n", f'[soh]\ncells = ["B"]\ncycles = {list(NUTS_CYCLES)}\n')
        .replace("cells.csv", str(study.parent / "cells.csv"))
    )
    assert NUTS_INFERENCE in text
    (folder / "nuts.toml").write_text(text)
    return run_soh(folder / "nuts.toml", out=folder / "run", workers=1, progress=False)


def test_nuts_engine_mixes_and_agrees_with_the_psis_corrected_fits(nuts_run, local_run):
    assert [r["cycle"] for r in nuts_run.results] == list(NUTS_CYCLES)
    for r in nuts_run.results:
        assert len(r["draws"][PARAMETERS[0]]) == 4 * 250
        # The verdict follows the diagnostics (R-hat ≤ 1.01, ESS ≥ 400, no divergence, E-BFMI ≥ 0.3).
        flags = r["r_hat"] > 1.01 or min(r["ess_bulk"], r["ess_tail"]) < 400 or r["divergences"] > 0
        assert r["converged"] == (not flags) and bool(r["problem"]) == flags, r
        # Measured on an Intel Xeon: R-hat 1.016 and 1.002 (so cycle 1 is flagged), bulk ESS 412
        # and 601, no divergence; on an AMD EPYC, same seed, XLA's other code gave cycle 1 R-hat
        # 1.022. Over 4 × 250 draws a mixed run's split R-hat scatters by a few hundredths; a
        # chain that has not found the posterior gives far more. The means and sds below are the
        # check that the chains sample the right one.
        assert r["r_hat"] < 1.05 and r["ess_bulk"] > 300 and r["divergences"] <= 2, r
    nuts = _table(nuts_run).set_index(["Cell", "Cycle", "quantity"])
    svi = _table(local_run).set_index(["Cell", "Cycle", "quantity"])
    engine = json.loads((nuts_run.dir / "soh_diagnostics.json").read_text())["engine"]
    assert "nuts (4 chains" in engine and "target_accept 0.95" in engine, engine
    for cycle in NUTS_CYCLES:
        for name in (*PARAMETERS, "capacity [A.h]"):
            a, b = nuts.loc[("B", cycle, name)], svi.loc[("B", cycle, name)]
            # Two Monte Carlo estimates of one posterior (ESS ≥ 300 each, 0.06 sd of error on a
            # mean, 4 % on an sd): means within 0.3 sd, sds within 20 %. Measured: means within
            # 0.12 sd, sds within 8 %.
            assert abs(a["mean"] - b["mean"]) < 0.3 * b["sd"], (cycle, name, a["mean"], b["mean"], b["sd"])
            assert abs(a["sd"] / b["sd"] - 1) < 0.2, (cycle, name, a["sd"], b["sd"])
