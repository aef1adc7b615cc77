"""Coverage of the 90 % credible intervals over synthetic SMIB data sets with truths from the prior.

Data come from the reference solver (solve_ivp), the posterior from NUTS on the PINN surrogate
with its validation RMSE in the likelihood, so the test checks the whole chain, surrogate error
included. Under calibration the number of data sets whose central 90 % interval holds the truth
is Binomial(24, 0.9) for each parameter; we accept 18 or more, whose chance of failing a
calibrated method is P(X ≤ 17) = 0.75 %. The seed is fixed, so the test is deterministic.
"""

import dataclasses

import numpy as np
import pytest

from bayespinn.data import Measurements
from bayespinn.pipeline import prepare, sample
from bayespinn.study import load_study
from surrogates.power import smib_reference
from tests.bayespinn.helpers import write_study

N_DATASETS, MIN_COVERED = 24, 18
SIGMA = {"Angle [rad]": 0.01, "Frequency deviation [rad.s-1]": 0.01}


@pytest.mark.slow
def test_90_percent_intervals_cover_the_truth(tmp_path):
    study = load_study(
        write_study(
            tmp_path,
            sigma='{"Angle [rad]" = 0.01, "Frequency deviation [rad.s-1]" = 0.01}',
            warmup=300,
            samples=400,
        )
    )
    prep = prepare(study)
    rng = np.random.default_rng(20261129)
    t = prep.data.time_s
    covered = {"m": 0, "d": 0}
    for _ in range(N_DATASETS):
        truth = {"m": float(np.exp(rng.uniform(np.log(0.1), np.log(1.0)))), "d": rng.uniform(0.05, 0.5)}
        clean = smib_reference.solve(t, **truth, **study.conditions)
        values = {k: y + SIGMA[k] * rng.standard_normal(len(y)) for k, y in clean.items()}
        data = Measurements(prep.data.path, t, values)
        idata, _, _ = sample(dataclasses.replace(prep, data=data), progress=False)
        for name, value in truth.items():
            lo, hi = np.quantile(idata.posterior[name].values, [0.05, 0.95])
            covered[name] += bool(lo <= value <= hi)
    print(f"covered out of {N_DATASETS}: {covered}")
    assert all(count >= MIN_COVERED for count in covered.values()), covered
