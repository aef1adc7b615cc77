"""Coverage of the credible intervals over synthetic SMIB data sets with truths from the prior
(``bayespinn check-calibration``).

Data come from the reference solver (solve_ivp), the posterior from NUTS on the PINN surrogate
with its validation RMSE in the likelihood, so the test checks the whole chain, surrogate error
included. Under calibration the number of data sets whose central 90 % interval holds the truth
is Binomial(20, 0.9) for each parameter (the foundation issue asks for at least 20 data sets);
we accept 15 or more, whose chance of failing a calibrated method is P(X ≤ 14) = 1.1 %. The seed
is fixed, so the test is deterministic.
"""

import json

import numpy as np
import pytest

from bayespinn.check_calibration import LEVELS, RANK_BINS, check_calibration
from bayespinn.cli import main
from bayespinn.study import load_study
from tests.bayespinn.helpers import write_study

N_DATASETS, MIN_COVERED = 20, 15
SIGMA = '{"Angle [rad]" = 0.01, "Frequency deviation [rad.s-1]" = 0.01}'


@pytest.mark.slow
def test_90_percent_intervals_cover_the_truth(tmp_path):
    study = load_study(write_study(tmp_path, sigma=SIGMA, warmup=200, samples=200))
    result = check_calibration(study, trials=N_DATASETS, seed=20261129)
    covered = {name: row["levels"]["90%"]["inside"] for name, row in result["parameters"].items()}
    print(f"covered out of {N_DATASETS}: {covered}; warnings: {result['warnings']}")
    assert all(count >= MIN_COVERED for count in covered.values()), covered
    for name, row in result["parameters"].items():
        # Nested intervals: a truth inside the 50 % interval is inside the wider ones.
        counts = [row["levels"][f"{level:.0%}"]["inside"] for level in LEVELS]
        assert counts == sorted(counts), (name, counts)
        assert sum(row["rank_histogram"]) == N_DATASETS and len(row["rank_histogram"]) == RANK_BINS
    assert len(result["truths"]) == N_DATASETS
    assert all(0.1 <= t["m"] <= 1.0 and 0.05 <= t["d"] <= 0.5 for t in result["truths"])


def test_check_calibration_flags_intervals_that_are_too_narrow(tmp_path):
    # Noise of 1e-4 (σ known) with the surrogate's error left out of the likelihood: the surrogate
    # is about 1e-3 off, ten times the noise, so the posteriors are narrow and in the wrong place
    # and most truths fall outside their intervals. The verdict must say so.
    sigma = '{"Angle [rad]" = 0.0001, "Frequency deviation [rad.s-1]" = 0.0001}'
    extra = 'surrogate_error = "off"\n'
    study = load_study(write_study(tmp_path, sigma=sigma, warmup=150, samples=150, inference_extra=extra))
    result = check_calibration(study, trials=4, seed=1)
    assert not result["calibrated"]
    assert any("too narrow" in w for w in result["warnings"]), result["warnings"]


def test_cli_writes_the_result_and_rejects_too_few_trials(tmp_path, capsys):
    path = write_study(tmp_path, sigma=SIGMA, warmup=100, samples=100)
    out = tmp_path / "calibration.json"
    assert main(["check-calibration", str(path), "--trials", "2", "--out", str(out), "--quiet"]) == 0
    written = json.loads(out.read_text())
    assert written["trials"] == 2 and set(written["parameters"]) == {"m", "d"}
    assert np.isclose(sum(written["parameters"]["m"]["rank_histogram"]), 2)
    assert main(["check-calibration", str(path), "--trials", "1"]) == 2
    assert "--trials: found 1, expected at least 2" in capsys.readouterr().err
