"""``reservoir.drawdown``: the physics against outside answers, the PINN against its references."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from surrogates.pinn.card import load_weights
from surrogates.reservoir import wells
from surrogates.reservoir.drawdown_models import DrawdownReference, DrawdownSurrogate
from surrogates.reservoir.drawdown_pinn import (
    WEIGHTS,
    XI_RANGE,
    half_e1,
    jax_exp1,
    reference_half_e1,
    validate_drawdown,
)
from surrogates.reservoir.radial_fv import pressure_d

# The buildup near a sealing fault (field units).
BUILDUP = {
    "rate": 250.0,
    "fvf": 1.25,
    "viscosity": 1.0,
    "porosity": 0.2,
    "total_compressibility": 1.5e-5,
    "wellbore_radius": 0.354,
    "thickness": 30.0,
    "permeability": 50.0,
    "skin": 5.0,
    "initial_pressure": 5000.0,
    "fault_distance": 800.0,
    "production_time": 48.0,
}
SHUT_IN_S = np.array([48.0 * 3600.0])


def test_buildup_known_answer_and_what_the_fault_adds():
    # "About 4989.8 psia after 48 h of buildup": that is the line source alone (the fault's image
    # well at 1,600 ft is not in it). With the image, superposition gives 1.25 psi less.
    ref = DrawdownReference()
    far = {**BUILDUP, "fault_distance": 1e9}
    assert ref.numpy_forward(SHUT_IN_S, **far)[wells.OBSERVABLE][0] == pytest.approx(4989.80, abs=0.01)
    with_fault = ref.numpy_forward(SHUT_IN_S, **BUILDUP)[wells.OBSERVABLE][0]
    assert with_fault == pytest.approx(4988.55, abs=0.01)
    sur = DrawdownSurrogate().numpy_forward(SHUT_IN_S, **BUILDUP)[wells.OBSERVABLE][0]
    # The card's largest relative error (1.7e-5) of this 11.4 psi buildup is 2e-4 psi.
    assert sur == pytest.approx(with_fault, abs=1e-3)


def test_superposed_pressure_drop_matches_an_independent_finite_volume_solution():
    # Line source + skin + image well, by the finite-volume solver of the diffusion equation (no E1),
    # against wells.pressure_drop_psi with SciPy's E1: checks the unit conversions and superposition.
    v = {**BUILDUP, "production_time": 0.0, "fault_distance": 300.0}
    t_s = np.geomspace(360.0, 360_000.0, 7)
    rock = (
        v["permeability"],
        v["porosity"],
        v["viscosity"],
        v["total_compressibility"],
        v["wellbore_radius"],
    )
    t_d = wells.t_dimensionless(t_s / 3600.0, *rock)
    r_image = 2 * v["fault_distance"] / v["wellbore_radius"]
    p = pressure_d(np.array([1.0, r_image]), t_d)
    unit = wells.pressure_unit_psi(v["rate"], v["fvf"], v["viscosity"], v["permeability"], v["thickness"])
    fv = unit * (p[0] + p[1] + v["skin"])
    exact = wells.pressure_drop_psi(np, reference_half_e1(np), t_s, **v)
    np.testing.assert_allclose(fv, exact, rtol=1e-4)


def test_shipped_weights_meet_the_card_and_the_bar_on_a_fresh_design():
    weights, card = load_weights(WEIGHTS)
    shipped = card["validation"]["relative_pressure_drop_error"]
    assert shipped["median"] <= 1e-3 and shipped["max"] <= 5e-3  # the bar, as written in the card
    fresh = validate_drawdown(weights, card["architecture"]["n_layers"], n_points=64, seed=99)
    err = fresh["relative_pressure_drop_error"]
    assert err["median"] <= 1e-3 and err["max"] <= 5e-3
    assert err["max"] <= 2 * max(shipped["max"], 1e-6)


def test_jax_exponential_integral_matches_scipy_and_its_derivative():
    from scipy.special import exp1

    z = np.geomspace(1e-12, 700.0, 2001)
    np.testing.assert_allclose(np.asarray(jax_exp1(jnp.asarray(z))), exp1(z), rtol=5e-12)
    grad = jax.grad(lambda a: jnp.sum(jax_exp1(a * jnp.asarray(z[::50]))))(1.0)
    assert float(grad) == pytest.approx(float(np.sum(-np.exp(-z[::50]))), rel=1e-12)


def test_network_in_torch_numpy_and_jax_agree():
    weights, card = load_weights(WEIGHTS)
    n_layers = card["architecture"]["n_layers"]
    z = np.exp(np.linspace(XI_RANGE[0] - 1, XI_RANGE[1] + 1, 301))
    by_numpy = half_e1(np, weights, n_layers)(z)
    tw = {k: torch.from_numpy(v) for k, v in weights.items()}
    by_torch = half_e1(torch, tw, n_layers)(torch.from_numpy(z)).numpy()
    by_jax = np.asarray(half_e1(jnp, weights, n_layers)(jnp.asarray(z)))  # float64: tests/conftest.py
    np.testing.assert_allclose(by_torch, by_numpy, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(by_jax, by_numpy, rtol=1e-10, atol=1e-300)


def test_surrogate_and_reference_gradients_agree_in_jax():
    sur, ref = DrawdownSurrogate(), DrawdownReference()
    t = jnp.geomspace(36.0, 1.8e6, 40)
    conditions = {k: v for k, v in BUILDUP.items() if k not in wells.PARAMETERS}

    def loss(model, theta):
        return jnp.sum(
            model.jax_forward(t, **conditions, **dict(zip(wells.PARAMETERS, theta)))[wells.OBSERVABLE]
        )

    theta = jnp.array([50.0, 800.0, 5.0])
    g_sur, g_ref = (np.asarray(jax.grad(lambda th, m=m: loss(m, th))(theta)) for m in (sur, ref))
    np.testing.assert_allclose(g_sur, g_ref, rtol=1e-4)


def test_card_records_training_and_a_physics_only_loss():
    card = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert card["training"]["mix"].startswith("physics residual")
    assert card["name"] == "reservoir.drawdown" and set(card["parameters"]) == set(wells.PARAMETERS)
