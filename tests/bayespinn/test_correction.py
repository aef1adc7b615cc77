"""``[inference] correct``: the surrogate posterior corrected with the reference solver, checked
against the exact grid posterior of ``check-exact`` on the real SMIB system."""

from __future__ import annotations

import dataclasses
import json

import arviz as az
import pytest

from bayespinn.errors import UserError
from bayespinn.pipeline import _flags, calibrate, prepare
from bayespinn.reference import check_exact, reference_of
from bayespinn.study import load_study
from tests.bayespinn.helpers import write_study


def test_correct_accepts_only_known_methods(tmp_path):
    path = write_study(tmp_path, inference_extra='correct = "reweight"')
    with pytest.raises(
        UserError, match=r"\[inference\] correct: found 'reweight', expected none or importance"
    ):
        load_study(path)


def test_correct_picks_the_error_model_of_its_proposal_and_rejects_the_rmse_term(tmp_path):
    # Importance sampling reweights the correlated error model's wider posterior; delayed
    # acceptance screens with the bare surrogate.
    path = write_study(tmp_path, inference_extra='correct = "importance"')
    assert prepare(load_study(path)).study.inference.surrogate_error == "correlated"
    path = write_study(tmp_path, inference_extra='correct = "delayed-acceptance"')
    assert prepare(load_study(path)).study.inference.surrogate_error == "off"
    path = write_study(tmp_path, inference_extra='correct = "importance"\nsurrogate_error = "rmse"')
    with pytest.raises(
        UserError,
        match=r"surrogate_error: found 'rmse', expected \"auto\" or \"correlated\" or \"off\" with correct",
    ):
        load_study(path)
    path = write_study(
        tmp_path, inference_extra='correct = "delayed-acceptance"\nsurrogate_error = "correlated"'
    )
    with pytest.raises(UserError, match=r"found 'correlated', expected \"auto\" or \"off\" with correct"):
        load_study(path)
    path = write_study(tmp_path, inference_extra='correct = "delayed-acceptance"\nreference_draws = 500')
    with pytest.raises(UserError, match=r"correct: found 'delayed-acceptance', expected \"importance\" with"):
        load_study(path)


def test_delayed_acceptance_run_agrees_with_the_exact_grid_posterior(tmp_path):
    # 101 samples at 1 % noise: the posterior sd of d is ~0.5 % of its value, narrow enough that
    # the surrogate's own bias is a visible fraction of it.
    path = write_study(tmp_path, points=101, samples=1000, inference_extra='correct = "delayed-acceptance"')
    study = load_study(path)
    run = calibrate(study, progress=False)
    diagnostics = json.loads((run.dir / "diagnostics.json").read_text())
    record = diagnostics["correction"]
    assert record["method"] == "delayed-acceptance"
    assert record["proposal"].startswith("Laplace")
    # Stage 1 screens: fewer reference solves than chain steps (2 chains × 1,000 draws × rounds),
    # start and Laplace mode included (measured: 2,664 over 3 rounds, 43 % passing stage 1).
    assert 0 < record["reference_solves"] < 2 * 1000 * record["rounds"]
    assert diagnostics["converged"], diagnostics["warnings"]
    idata = az.from_netcdf(str(run.dir / "posterior.nc"))
    assert idata.posterior.attrs["correct"] == "delayed-acceptance"
    assert "sample_stats" not in idata.groups()
    exact = check_exact(prepare(study), idata)
    # 2,000 draws with ESS ≳ 400: the mean is within ~0.05 sd by chance; the bar is 0.2 sd, 20 % in sd.
    assert exact["agree"], exact["parameters"]


def test_check_exact_cli_compares_a_run_with_the_grid(tmp_path, capsys):
    from bayespinn.cli import main

    path = write_study(tmp_path, points=41, warmup=200, samples=200)
    out = tmp_path / "exact.json"
    assert main(["check-exact", str(path), "--grid", "31", "--quiet", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["parameters"]) == {"m", "d"}
    for row in result["parameters"].values():
        assert row["exact_sd"] > 0 and row["exact_90"][0] < row["exact_mean"] < row["exact_90"][1]
    # The run it compared is the study's own, written by the same command.
    assert (tmp_path / "run" / "posterior.nc").exists()
    assert "exact posterior" in capsys.readouterr().err


def test_check_exact_needs_two_parameters(tmp_path, capsys):
    from bayespinn.cli import main

    path = write_study(tmp_path)
    text = path.read_text().replace('[parameters.d]\nprior = "uniform"\nlower = 0.05\nupper = 0.5\n', "")
    path.write_text(text.replace("omega0 = 0.1\n", "omega0 = 0.1\nd = 0.15\n", 1))
    assert main(["check-exact", str(path)]) == 2
    err = capsys.readouterr().err
    assert "[parameters]: found 1 parameters, expected 2 for check-exact" in err
    assert not (tmp_path / "run").exists()  # rejected before anything was written


def test_importance_run_reports_its_weights_not_the_resampled_chains(tmp_path):
    path = write_study(
        tmp_path,
        points=41,
        warmup=200,
        samples=300,
        inference_extra='correct = "importance"\nreference_draws = 400\n',
    )
    run = calibrate(load_study(path), progress=False)
    diagnostics = json.loads((run.dir / "diagnostics.json").read_text())
    record = diagnostics["correction"]
    # 400 of the 600 draws, and 400 more when a Student-t around the reweighted ones refined them.
    assert record["method"] == "importance"
    assert record["reference_solves"] == 400 * (2 if record["refined"] else 1)
    assert 0 < record["ess"] <= 400 and record["k_hat"] < 0.7  # 41 points: the surrogate is close
    # Resampled draws repeat: the table's ESS is the weights' and the verdict follows it.
    assert (run.table["ess_bulk"] == record["ess"]).all()
    assert diagnostics["min_ess_bulk"] == record["ess"]
    below = record["ess"] < 400
    assert below == any("importance weights: effective sample size" in w for w in diagnostics["warnings"])
    assert diagnostics["converged"] == (not diagnostics["warnings"])
    # The flags describe the posterior written, judged with the reference (whose box is not the
    # surrogate's); the surrogate chains' own stay with them.
    prep = prepare(load_study(path))
    written = az.from_netcdf(str(run.dir / "posterior.nc"))
    assert diagnostics["flags"] == _flags(dataclasses.replace(prep, model=reference_of(prep)[0]), written)
    assert "flags" in diagnostics["surrogate_run"]
