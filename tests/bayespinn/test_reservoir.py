"""Well-test calibration end to end: simulate, units, a NUTS smoke test, bad input, the fault flag."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayespinn.cli import main
from bayespinn.data import load_measurements
from bayespinn.pipeline import calibrate
from bayespinn.simulate import simulate
from bayespinn.study import load_study
from surrogates.reservoir import wells
from surrogates.reservoir.drawdown_models import DrawdownSurrogate
from tests.surrogates.test_reservoir import BUILDUP

# The well and fluid of the buildup, produced from the start (a drawdown).
CONDITIONS = {k: v for k, v in BUILDUP.items() if k not in (*wells.PARAMETERS, "production_time")}
TRUTH = {"permeability": 50.0, "fault_distance": 300.0, "skin": 5.0}

STUDY = """
[surrogate]
name = "reservoir.drawdown"

[data]
path = "well.csv"

[conditions]
{conditions}

[parameters.permeability]
prior = "loguniform"
lower = 1.0
upper = 1000.0

[parameters.fault_distance]
prior = "loguniform"
lower = 50.0
upper = 5000.0

[parameters.skin]
prior = "uniform"
lower = -3.0
upper = 20.0

[noise]
sigma = 0.5

[inference]
chains = 2
warmup = 500
samples = 200
seed = 0

[truth]
permeability = 50.0
fault_distance = 300.0
skin = 5.0

[output]
dir = "run"
"""


def _study(folder: Path, frame: pd.DataFrame, **conditions) -> Path:
    frame.to_csv(folder / "well.csv", index=False)
    lines = "\n".join(f"{k} = {v!r}" for k, v in {**CONDITIONS, **conditions}.items())
    path = folder / "study.toml"
    path.write_text(STUDY.format(conditions=lines))
    return path


@pytest.fixture(scope="module")
def record() -> pd.DataFrame:
    return simulate("reservoir.drawdown", {**CONDITIONS, **TRUTH}, None, noise_sd=0.5, seed=1)


def test_simulated_record_is_in_hours_and_psi_and_starts_at_a_hundredth_of_an_hour(record):
    assert list(record.columns) == ["Time [h]", "Pressure [psi]"]
    assert record["Time [h]"].iloc[0] == pytest.approx(0.01) and record["Time [h]"].iloc[-1] == pytest.approx(
        100.0
    )
    assert (record["Pressure [psi]"] < CONDITIONS["initial_pressure"]).all()


@pytest.mark.parametrize(
    ("time_col", "time_factor", "p_col", "p_factor"),
    [
        ("Time [min]", 60.0, "Pressure [bar]", 1 / 14.503773773),
        ("Time [s]", 3600.0, "Pressure [kPa]", 6.894757293),
    ],
)
def test_minutes_seconds_bar_and_kpa_load_as_hours_and_psi(
    tmp_path, record, time_col, time_factor, p_col, p_factor
):
    converted = pd.DataFrame(
        {time_col: record["Time [h]"] * time_factor, p_col: record["Pressure [psi]"] * p_factor}
    )
    record.to_csv(tmp_path / "h.csv", index=False)
    converted.to_csv(tmp_path / "other.csv", index=False)
    a = load_measurements(tmp_path / "h.csv", ["Pressure [psi]"])
    b = load_measurements(tmp_path / "other.csv", ["Pressure [psi]"])
    np.testing.assert_allclose(b.time_s, a.time_s, rtol=1e-12)
    np.testing.assert_allclose(b.values["Pressure [psi]"], a.values["Pressure [psi]"], rtol=1e-9)


def test_nuts_recovers_permeability_fault_distance_and_skin(tmp_path, record):
    run = calibrate(load_study(_study(tmp_path, record)), progress=False)
    # 2 × 200 draws keep the test short; skin and permeability correlate strongly, so ESS stays
    # under the report's 400 and only R-hat is asked for here.
    assert run.diagnostics["max_rhat"] < 1.05 and run.diagnostics["divergences"] == 0
    for name, truth in TRUTH.items():
        mean, sd = run.table.loc[name, "mean"], run.table.loc[name, "sd"]
        assert abs(mean - truth) < 4 * sd, (name, mean, sd)
    assert (run.dir / "report.html").read_text().count('id="bourdet"') == 1


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        ("time", ("Time [h]", "expected within")),
        ("pressure", ("Pressure [psi]", "5025")),
        ("porosity", ("porosity", "0.6", "expected within")),
    ],
)
def test_bad_well_test_input_is_one_line_and_exit_2(tmp_path, record, capsys, edit, needles):
    frame, conditions = record.copy(), {}
    if edit == "time":
        frame.loc[0, "Time [h]"] = -1.0
    elif edit == "pressure":  # a drawdown record above the initial pressure
        frame.loc[3, "Pressure [psi]"] = 5100.0
    else:
        conditions = {"porosity": 0.6}
    study = _study(tmp_path, frame, **conditions)
    assert main(["calibrate", str(study), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "run").exists()


def test_a_fault_beyond_the_transient_is_reported_as_a_lower_bound():
    model, t_s = DrawdownSurrogate(), np.geomspace(36.0, 3600.0, 30)  # one hour of record
    bounds = {"fault_distance": (50.0, 5000.0)}
    rng = np.random.default_rng(0)
    unseen = {
        "permeability": rng.normal(50, 1, 400),
        "fault_distance": np.exp(rng.uniform(np.log(700), np.log(5000), 400)),
    }
    flags = model.posterior_flags(t_s, CONDITIONS, unseen, bounds)
    assert len(flags) == 1 and flags[0].startswith("fault_distance is only bounded from below")
    seen = {"permeability": rng.normal(50, 1, 400), "fault_distance": rng.normal(300, 10, 400)}
    assert model.posterior_flags(t_s, CONDITIONS, seen, bounds) == []
