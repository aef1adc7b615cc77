"""``power.multimachine:reference`` (surrogates/power/network_models.py): the forward model and
NUTS on it, the exact posterior the network surrogates are to be measured against."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.power.network_models import NetworkReference, bundled

T_S = np.linspace(0.0, 5.0, 51)
SIGMA = 1e-3  # rad and rad/s: 1–3 % of the swings


def test_names_and_forward_agree_with_the_solver():
    model = NetworkReference(bundled("four_bus"))
    assert model.parameters == ("m_1", "m_2", "d_1", "d_2", "d_3", "d_4")
    assert model.observables[:2] == ("Angle 1 [rad]", "Frequency deviation 1 [rad.s-1]")
    assert model.truth() == {"m_1": 0.3, "m_2": 0.2, "d_1": 0.15, "d_2": 0.3, "d_3": 0.25, "d_4": 0.2}
    numpy = model.numpy_forward(T_S, **model.truth())
    jax = model.jax_forward(T_S, **model.truth())
    for name in model.observables:
        np.testing.assert_allclose(np.asarray(jax[name]), numpy[name], atol=5e-9, err_msg=name)


def test_unknown_network_file_is_reported():
    from surrogates.power.network import NetworkError

    with pytest.raises(NetworkError, match="no_such_grid.toml: cannot read the network file"):
        bundled("no_such_grid.toml")


STUDY = """
[surrogate]
name = "{model}"
network = "{network}"
[data]
path = "grid.csv"
{priors}
[noise]
sigma = {sigma}
[inference]
engine = "nuts"
chains = 1
warmup = 200
samples = 200
seed = 0
[output]
dir = "run"
"""


def _study(
    tmp_path,
    network: str = "three_bus",
    t_end_s: float = 3.0,
    model_name: str = "power.multimachine:reference",
):
    """Noisy angles and frequencies of every bus of the bundled network, and a study of them
    (priors over the surrogate's box)."""
    import pandas as pd

    from surrogates.power.network_pinn import Ansatz

    model = NetworkReference(bundled(network))
    t_s = T_S[T_S <= t_end_s]
    clean = model.numpy_forward(t_s, **model.truth())
    rng = np.random.default_rng(3)
    frame = {"Time [s]": t_s} | {k: v + SIGMA * rng.standard_normal(len(t_s)) for k, v in clean.items()}
    pd.DataFrame(frame).to_csv(tmp_path / "grid.csv", index=False)
    box = Ansatz(model.network).box()
    priors = "".join(
        f'[parameters.{k}]\nprior = "loguniform"\nlower = {box[k][0]!r}\nupper = {box[k][1]!r}\n'
        for k in model.parameters
    )
    path = tmp_path / "grid.toml"
    path.write_text(STUDY.format(model=model_name, network=network, priors=priors, sigma=SIGMA))
    return path, model


@pytest.fixture(scope="module")
def three_bus_posteriors(tmp_path_factory):
    """``bayespinn calibrate`` on one 3-bus record with the exact model and with the surrogate;
    their summary tables."""
    import pandas as pd

    from bayespinn.cli import main

    tmp = tmp_path_factory.mktemp("three_bus")
    path, model = _study(tmp)
    tables = {}
    for name in ("power.multimachine:reference", "power.multimachine"):
        text = path.read_text().replace("power.multimachine:reference", name)
        if name == "power.multimachine":  # cheap: 2 chains × 500 draws
            text = text.replace("chains = 1", "chains = 2").replace("= 200", "= 500")
        study = tmp / f"{name.replace(':', '_')}.toml"
        study.write_text(text.replace('dir = "run"', f'dir = "run_{study.stem}"'))
        assert main(["calibrate", str(study), "--quiet"]) == 0
        tables[name] = pd.read_csv(tmp / f"run_{study.stem}" / "summary.csv", index_col=0)
    return model, tables


def test_calibrate_recovers_the_three_bus_parameters_with_nuts_on_the_reference(three_bus_posteriors):
    # The study names the network; NUTS runs on the diffrax solution of it (3 s of every bus's
    # angle and frequency). With these data each parameter is known to a few per cent, so a
    # wrong mapping of parameters to buses, or a wrong equation, puts the truth many sds away.
    model, tables = three_bus_posteriors
    table = tables["power.multimachine:reference"]
    for name, true in model.truth().items():
        mean, sd = table.loc[name, "mean"], table.loc[name, "sd"]
        # Measured: |z| ≤ 1.4, relative sds 0.5–3.4 % (one chain of 200 draws: a check of the
        # equations and the names, not of the sampler's efficiency).
        assert abs(mean - true) < 3.5 * sd, (name, mean, sd, true)
        assert sd < 0.08 * true, (name, sd)


def test_surrogate_posterior_agrees_with_the_exact_one(three_bus_posteriors):
    """The issue's bar is 0.2 sd and 20 %; the exact run here has one chain of 200 draws, whose
    own Monte Carlo error is about 0.08 sd in a mean and 6 % in an sd, so the test allows 0.35
    sd and 25 % (the case study measures the bar with long runs). Measured: shifts −0.18 to
    +0.11 sd, sd ratios 0.86 to 1.08."""
    _, tables = three_bus_posteriors
    exact, surrogate = tables["power.multimachine:reference"], tables["power.multimachine"]
    for name in exact.index:
        shift = (surrogate.loc[name, "mean"] - exact.loc[name, "mean"]) / exact.loc[name, "sd"]
        ratio = surrogate.loc[name, "sd"] / exact.loc[name, "sd"]
        assert abs(shift) < 0.35 and abs(ratio - 1.0) < 0.25, (name, shift, ratio)


def test_buses_left_out_of_the_data_are_left_out_of_the_likelihood(tmp_path):
    """Only bus 1's and bus 3's records: the run uses those columns alone, and the damping of the
    unmeasured bus 2 is known less well than with every bus measured."""
    import arviz as az
    import pandas as pd

    from bayespinn.cli import main

    path, _ = _study(tmp_path, model_name="power.multimachine")
    frame = pd.read_csv(tmp_path / "grid.csv")
    frame.drop(columns=[c for c in frame.columns if " 2 [" in c]).to_csv(tmp_path / "part.csv", index=False)
    text = path.read_text().replace("chains = 1", "chains = 2").replace("= 200", "= 300")
    sds = {}
    for label, data in (("all", "grid.csv"), ("part", "part.csv")):
        study = tmp_path / f"{label}.toml"
        study.write_text(
            text.replace('"grid.csv"', f'"{data}"').replace('dir = "run"', f'dir = "run_{label}"')
        )
        assert main(["calibrate", str(study), "--quiet"]) == 0
        sds[label] = pd.read_csv(tmp_path / f"run_{label}" / "summary.csv", index_col=0)["sd"]
        observed = az.from_netcdf(tmp_path / f"run_{label}" / "posterior.nc").observed_data
        assert any("2 [" in name for name in observed.data_vars) == (label == "all"), list(observed.data_vars)
    assert sds["part"]["d_2"] > 1.5 * sds["all"]["d_2"], sds  # measured 1.84×


def test_a_study_without_a_network_or_with_a_bad_one_is_refused(tmp_path, capsys):
    from bayespinn.cli import main

    path, _ = _study(tmp_path)
    text = path.read_text()
    path.write_text(text.replace('network = "three_bus"\n', ""))
    assert main(["calibrate", str(path), "--quiet"]) == 2
    assert "[surrogate] network: power.multimachine:reference needs a network" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'buses = ["A", "B"]\ninertia = [0.1, 0.2]\ndamping = [0.1, 0.1]\npower_after = [0.5, -0.5]\nsusceptance = [[0, 0.3], [0.3, 0]]\n'
    )
    path.write_text(text.replace('network = "three_bus"', 'network = "bad.toml"'))
    assert main(["calibrate", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "bad.toml: power_after: powers [0.5, -0.5] admit no stable steady state" in err[0]
    ), err


def test_registry_builds_network_models_per_network_and_only_those():
    from surrogates.registry import NetworkArgumentError, load

    assert load("power.multimachine:reference", "three_bus").parameters == ("m_1", "m_2", "d_1", "d_2", "d_3")
    with pytest.raises(NetworkArgumentError, match="power.smib takes no network, found 'four_bus'"):
        load("power.smib", "four_bus")
    with pytest.raises(NetworkArgumentError, match="needs a network"):
        load("power.multimachine:reference")
