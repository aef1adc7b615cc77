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
name = "power.multimachine:reference"
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


def _study(tmp_path, network: str = "three_bus", t_end_s: float = 3.0):
    """Noisy angles and frequencies of every bus of the bundled network, and a study of them."""
    import pandas as pd

    model = NetworkReference(bundled(network))
    t_s = T_S[T_S <= t_end_s]
    clean = model.numpy_forward(t_s, **model.truth())
    rng = np.random.default_rng(3)
    frame = {"Time [s]": t_s} | {k: v + SIGMA * rng.standard_normal(len(t_s)) for k, v in clean.items()}
    pd.DataFrame(frame).to_csv(tmp_path / "grid.csv", index=False)
    priors = "".join(
        f'[parameters.{k}]\nprior = "loguniform"\nlower = 0.02\nupper = 2.0\n' for k in model.parameters
    )
    path = tmp_path / "grid.toml"
    path.write_text(STUDY.format(network=network, priors=priors, sigma=SIGMA))
    return path, model


def test_calibrate_recovers_the_three_bus_parameters_with_nuts_on_the_reference(tmp_path):
    # The study names the network; NUTS runs on the diffrax solution of it (3 s of every bus's
    # angle and frequency). With these data each parameter is known to a few per cent, so a
    # wrong mapping of parameters to buses, or a wrong equation, puts the truth many sds away.
    import pandas as pd

    from bayespinn.cli import main

    path, model = _study(tmp_path)
    assert main(["calibrate", str(path), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "run" / "summary.csv", index_col=0)
    for name, true in model.truth().items():
        mean, sd = table.loc[name, "mean"], table.loc[name, "sd"]
        # Measured: |z| ≤ 1.4, relative sds 0.5–3.4 % (one chain of 200 draws: a check of the
        # equations and the names, not of the sampler's efficiency).
        assert abs(mean - true) < 3.5 * sd, (name, mean, sd, true)
        assert sd < 0.08 * true, (name, sd)


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
