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


def test_nuts_on_the_reference_recovers_the_three_bus_parameters():
    # Noisy angles and frequencies of every bus over 3 s; NUTS on the diffrax solution. With
    # these data each parameter is known to a few per cent, so a wrong mapping of parameters to
    # buses, or a wrong equation, puts the truth many posterior sds away.
    import numpyro

    from inference.model import ModelSpec, Noise, build_model
    from inference.nuts import MCMCSettings, run_mcmc
    from inference.priors import Prior

    numpyro.enable_x64()
    model = NetworkReference(bundled("three_bus"))
    truth = model.truth()
    rng = np.random.default_rng(3)
    t_s = T_S[:31]  # 3 s: each gradient is a diffrax solve through NUTS's trees
    clean = model.numpy_forward(t_s, **truth)
    y = {k: v + SIGMA * rng.standard_normal(len(t_s)) for k, v in clean.items()}
    priors = {k: Prior("loguniform", lower=0.02, upper=2.0) for k in model.parameters}
    spec = ModelSpec(priors, model.observables, dict.fromkeys(model.observables, Noise(sigma=SIGMA)))
    numpyro_model = build_model(lambda theta: model.jax_forward(t_s, **theta), spec)
    settings = MCMCSettings(chains=1, warmup=200, samples=200, seed=0)
    mcmc, _ = run_mcmc(numpyro_model, {"y": y}, settings, progress=False)
    draws = mcmc.get_samples(group_by_chain=True)
    for name in model.parameters:
        values = np.asarray(draws[name])
        z = (values.mean() - truth[name]) / values.std()
        # Measured: |z| ≤ 1.4, relative sds 0.5–3.4 % (one chain of 200 draws: a check of the
        # equations and the names, not of the sampler's efficiency).
        assert abs(z) < 3.5, (name, values.mean(), values.std(), truth[name])
        assert values.std() < 0.08 * truth[name], (name, values.std())
